"""The commit journal (issue 20): a commit a kill cut short is undone by the next command, which says so;
the fast paths (next-due check, `pgiam token`, the prompt hooks) see a pending journal and take the full
path. tests/reliability/test_kill_journal.py kills real commands at every step; these are the pieces."""

from __future__ import annotations

import json
import os
from pathlib import Path

from pgiam import entry, fileio, hooks
from pgiam.errors import ExitCode
from pgiam.paths import Paths
from tests.conftest import SANDBOX_HOST


def add(run_cli, ca_file: Path, name: str, user: str) -> None:
    code, out, err = run_cli("add", name, "--host", SANDBOX_HOST, "--user", user, "--sslrootcert", str(ca_file))
    assert code == ExitCode.OK, err


def half_done(paths: Paths, new: dict[Path, bytes]) -> None:
    """What a pgiam killed after its first rename leaves: the journal, the first file replaced (its old
    contents under a second name), the others still in their temp files."""
    entries = []
    for i, (target, data) in enumerate(new.items()):
        old = target.parent / f".{target.name}{fileio.TMP_MARK}999999-1.old"
        tmp = target.parent / f".{target.name}{fileio.TMP_MARK}999999-2"
        existed = target.exists()
        if existed:
            os.link(target, old)
        tmp.write_bytes(data)
        entries.append({"target": str(target), "new": str(tmp), "old": str(old) if existed else None})
        if i == 0:
            os.replace(tmp, target)
    paths.journal_file.write_text(json.dumps({"version": 1, "pid": 999999, "files": entries}))


def test_a_half_done_commit_is_undone_by_the_next_command_and_said(run_cli, home: Path, ca_file: Path) -> None:
    """Issue 20 repro 4: config.toml had `b` and the libpq files did not, `add b` said "already exists" and
    a temp file with a token stayed. Now any command puts every file back first and says so."""
    add(run_cli, ca_file, "a", "alice")
    paths = Paths.from_env()
    before = {p: p.read_bytes() for p in (paths.config_file, paths.pgpass, paths.service_file)}
    half_done(paths, {paths.config_file: before[paths.config_file] + b'\n[services.b]\nhost = "x"\n',
                      paths.pgpass: b"h:5432:*:bob:TOKEN-IN-A-TEMP-FILE\n", paths.service_file: b"[b]\n"})

    code, out, err = run_cli("list", "--names")
    assert code == ExitCode.OK, err
    assert out == "a\n"
    assert "killed in the middle of a change; pgiam undid it and put back" in err and str(paths.config_file) in err
    assert {p: p.read_bytes() for p in before} == before
    left = [n for d in (home, paths.state_dir, paths.config_dir) for n in os.listdir(d)
            if fileio.TMP_MARK in n or n == "journal"]
    assert left == []
    add(run_cli, ca_file, "b", "bob")  # the interrupted `add b` runs again


def test_a_pending_journal_sends_the_fast_paths_to_the_full_path(run_cli, home: Path, ca_file: Path) -> None:
    """While a journal is pending the files may disagree: neither the next-due check nor the token reader
    answers from them (issue 20), and the prompt hooks watch the journal."""
    add(run_cli, ca_file, "a", "alice")
    assert run_cli("token", "a")[0] == ExitCode.OK  # writes the token index
    assert entry.nothing_due() and entry.cached_token("a") is not None
    paths = Paths.from_env()
    paths.journal_file.write_text('{"version": 1, "pid": 999999, "files": []}')
    assert not entry.nothing_due()
    assert entry.cached_token("a") is None
    code, out, err = run_cli("hook", "bash")
    assert f"{hooks.sh_quote(str(paths.journal_file))} -nt " in out


def test_stale_temps_of_a_live_writer_are_kept(tmp_path: Path) -> None:
    """Only a dead writer's temp files go: a running pgiam's (say, writing a notice) are its own."""
    target = tmp_path / "f"
    mine = tmp_path / f".f{fileio.TMP_MARK}{os.getpid()}-1"
    dead = tmp_path / f".f{fileio.TMP_MARK}999999-1"
    mine.write_bytes(b"x")
    dead.write_bytes(b"x")
    assert fileio.remove_stale_temps(target, only_dead=True, scope=fileio.NOWHERE) == 1
    assert mine.exists() and not dead.exists()
