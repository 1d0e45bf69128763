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
