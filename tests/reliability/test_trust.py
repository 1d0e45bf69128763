"""Issue 11: trust the files and the clock, not pgiam's notes. Each test reproduces one report of the
issue with real pgiam processes, real files and (where it matters) real psql, real signals and real shells."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from pgiam import pgpass, servicefile
from tests.reliability.conftest import HOSTS, add_args, assert_one_error, need, pgiam_env, run, snapshot

pytestmark = pytest.mark.reliability


def _psql_finds(env: dict[str, str], service: str) -> bool:
    """Does libpq (psql) find a definition of `service` in the service file? (no connection needed)"""
    p = subprocess.run([need("psql"), f"service={service}", "-XAtc", "select 1"], env=dict(env, PGCONNECT_TIMEOUT="1"),
                       capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL)
    return f'definition of service "{service}" not found' not in p.stderr


# --- 3. exact markers -------------------------------------------------------------------------------------

USER_BLOCK = (b"# BEGIN pgiam tokens copied from my laptop\n"
              b"laptop.example.com:5432:*:me:s3cret\n"
              b"# END pgiam (laptop)\n")
USER_SECTIONS = (b"# BEGIN pgiam sections copied from my laptop\n"
                 b"[laptop]\nhost=laptop.example.com\n"
                 b"# END pgiam\n")


def test_users_own_pgiam_like_markers_are_foreign(home: Path, ca: Path) -> None:
    """Issue 11 (3): a user's `# BEGIN pgiam tokens copied from my laptop` … `# END pgiam …` lines are not
    pgiam's block: add, refresh and remove keep them, and the lines between, byte for byte."""
    (home / ".pgpass").write_bytes(USER_BLOCK)
    os.chmod(home / ".pgpass", 0o600)
    (home / ".pg_service.conf").write_bytes(USER_SECTIONS)
    env = pgiam_env(home)
    for argv in (add_args("prod", HOSTS[0], "alice", ca), ["refresh"], ["remove", "prod"]):
        p = run(env, *argv)
        assert p.returncode == 0, (argv, p.stderr)
        assert (home / ".pgpass").read_bytes().endswith(USER_BLOCK), argv
        assert (home / ".pg_service.conf").read_bytes().endswith(USER_SECTIONS), argv
    assert (home / ".pgpass").read_bytes() == USER_BLOCK
    assert (home / ".pg_service.conf").read_bytes() == USER_SECTIONS
    assert _psql_finds(env, "laptop")


@pytest.mark.parametrize("which", [".pg_service.conf", ".pgpass"])
def test_begin_without_end_is_refused_and_nothing_written(home: Path, ca: Path, which: str) -> None:
    """Issue 11 (3): pgiam's BEGIN line whose END line was deleted: every command that writes refuses with
    the file and line named (exit 3) and changes nothing; once the END line is back, `pgiam remove prod`
    really removes [prod] (psql no longer finds it)."""
    env = pgiam_env(home)
    assert run(env, *add_args("prod", HOSTS[0], "alice", ca)).returncode == 0
    assert _psql_finds(env, "prod")
    path = home / which
    good = path.read_bytes()
    end = (servicefile.END_LINE if which == ".pg_service.conf" else pgpass.END_LINE).encode() + b"\n"
    assert good.count(end) == 1
    path.write_bytes(good.replace(end, b"") + b"# my own line\n")
    before = snapshot(home)
    for argv in (["remove", "prod"], ["refresh"], ["refresh", "--if-needed"], add_args("s2", HOSTS[1], "bob", ca)):
        p = run(env, *argv)
        assert_one_error(p.stderr, p.returncode, 3)
        assert f"{path}, line 1: pgiam's block starts here but its end line `# END pgiam` is missing" in p.stderr
        notice = home / ".local/state/pgiam/notice"
        if "--if-needed" in argv:  # a hook or timer: the next prompt says why
            assert "end line `# END pgiam` is missing" in notice.read_text()
            notice.unlink()
        assert snapshot(home) == before, argv
    path.write_bytes(good)
    p = run(env, "remove", "prod")
    assert p.returncode == 0, p.stderr
    assert not _psql_finds(env, "prod")


# --- 4. all-or-nothing --------------------------------------------------------------------------------------

def _chattr(flag: str, path: Path) -> None:
    p = subprocess.run([need("chattr"), flag, str(path)], capture_output=True, text=True, timeout=30)
    assert p.returncode == 0, p.stderr


def test_unwritable_state_file_changes_nothing_and_retry_works(home: Path, ca: Path) -> None:
    """Issue 11 (4): with state.json unreplaceable (immutable: even root's rename fails), `add` and `remove`
    exit 5 and change no file (no config or service-file change left behind); once it is writable again,
    the same commands succeed (no "already exists")."""
    env = pgiam_env(home)
    assert run(env, *add_args("s1", HOSTS[0], "alice", ca)).returncode == 0
    state = home / ".local/state/pgiam/state.json"
    _chattr("+i", state)
    try:
        before = snapshot(home)
        for argv in (add_args("s2", HOSTS[1], "bob", ca), ["remove", "s1"]):
            p = run(env, *argv)
            assert_one_error(p.stderr, p.returncode, 5)
            assert str(state) in p.stderr
            assert snapshot(home) == before, argv
    finally:
        _chattr("-i", state)
    for argv in (add_args("s2", HOSTS[1], "bob", ca), ["remove", "s1"]):
        p = run(env, *argv)
        assert p.returncode == 0, (argv, p.stderr)
    assert b"[s2]" in (home / ".pg_service.conf").read_bytes()
    assert b"[s1]" not in (home / ".pg_service.conf").read_bytes()


# A real signal at an exact moment: an audit hook (PEP 578) in sitecustomize sends SIGTERM (or SIGINT) to
# the pgiam process itself when it is about to make its Nth rename (os.replace raises the "os.rename" event).
SITECUSTOMIZE = """
import os, signal, sys
_at = {int(n) for n in os.environ.get("PGIAM_TEST_SIGNAL_AT_RENAME", "").split(",") if n}
_sig = getattr(signal, os.environ.get("PGIAM_TEST_SIGNAL", "SIGTERM"))
_count = [0]
def _hook(event, args):
    if event == "os.rename":
        _count[0] += 1
        with open(os.environ["PGIAM_TEST_RENAME_LOG"], "a") as f:
            f.write(f"{_count[0]} {args[1]}\\n")
        if _count[0] in _at:
            os.kill(os.getpid(), _sig)
if _at:
    sys.addaudithook(_hook)
"""


def _consistent(home: Path, name: str) -> bool | None:
    """Do the config, the service file and ~/.pgpass agree about `name`? True/False: all have it or none."""
    cfg = home / ".config/pgiam/config.toml"
    has = [cfg.exists() and f"[services.{name}]" in cfg.read_text(),
           f"[{name}]\n".encode() in (home / ".pg_service.conf").read_bytes()]
    return has[0] if len(set(has)) == 1 else None


@pytest.mark.parametrize("sig", ["SIGTERM", "SIGINT"])
def test_signal_between_renames_leaves_files_agreeing(home: Path, ca: Path, tmp_path: Path, sig: str) -> None:
    """Issue 11 (4): a real SIGTERM/SIGINT/SIGHUP delivered just before each rename of `add` (and a second
    one during what would be the rollback): the config and the service file always agree, the command
    exits 130, and the next command works. (SIGHUP takes the same path as SIGTERM in pgiam.cli.)"""
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(SITECUSTOMIZE)
    log = tmp_path / "renames.log"
    env = pgiam_env(home, PGIAM_TEST_RENAME_LOG=str(log))
    env["PYTHONPATH"] = f"{site}:{env['PYTHONPATH']}"
    assert run(env, *add_args("s1", HOSTS[0], "alice", ca)).returncode == 0
    # How many renames does the second add make? Count them once, with no signal.
    log.write_text("")
    assert run(dict(env, PGIAM_TEST_SIGNAL_AT_RENAME="999"), *add_args("probe", HOSTS[2], "carol", ca)).returncode == 0
    renames = len(log.read_text().splitlines())
    assert renames >= 4, log.read_text()
    assert run(env, "remove", "probe").returncode == 0
    for at in [f"{n}" for n in range(1, renames + 1)] + [f"{n},{n + 1}" for n in range(1, renames)]:
        p = run(dict(env, PGIAM_TEST_SIGNAL_AT_RENAME=at, PGIAM_TEST_SIGNAL=sig), *add_args("s2", HOSTS[1], "bob", ca))
        assert p.returncode == 130, (at, p.returncode, p.stderr)
        assert "Traceback" not in p.stderr
        agreed = _consistent(home, "s2")
        assert agreed is not None, (at, "config and service file disagree")
        assert _consistent(home, "s1") is True, at
        if agreed:  # the commit completed before the signal was acted on: start the next round without s2
            assert run(env, "remove", "s2").returncode == 0
    again = run(env, *add_args("s2", HOSTS[1], "bob", ca))
    assert again.returncode == 0, again.stderr
