"""Issue 7: disk full, read-only directory, unreadable file, busy lock: one clear error, a distinct code, no change."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.reliability.conftest import (
    FOREIGN_PGPASS, FOREIGN_SERVICE, HOSTS, add_args, assert_one_error, need, need_root, pgiam_env, run, snapshot,
)

pytestmark = pytest.mark.reliability


def _mount(*argv: str) -> None:
    p = subprocess.run(["mount", *argv], capture_output=True, text=True, timeout=30)
    assert p.returncode == 0, p.stderr


def _umount(path: Path) -> None:
    subprocess.run(["umount", "-l", str(path)], capture_output=True, timeout=30)


def _setup(home: Path, ca: Path, **env_extra: str) -> dict[str, str]:
    (home / ".pgpass").write_bytes(FOREIGN_PGPASS)
    os.chmod(home / ".pgpass", 0o600)
    (home / ".pg_service.conf").write_bytes(FOREIGN_SERVICE)
    env = pgiam_env(home, **env_extra)
    for i in range(2):
        p = run(env, *add_args(f"s{i}", HOSTS[i], f"user{i}", ca))
        assert p.returncode == 0, p.stderr
    time.sleep(1.05)  # tokens are byte-identical within one second: make the next refresh a real change
    return env


def test_disk_full(home: Path, ca: Path, tmp_path: Path) -> None:
    """Issue 7: ENOSPC on a full 64 kB tmpfs holding PGPASSFILE: exit 5 (FILE), nothing changed."""
    need_root()
    need("mount")
    full = tmp_path / "full"
    full.mkdir()
    _mount("-t", "tmpfs", "-o", "size=64k", "tmpfs", str(full))
    try:
        (full / "pgpass").write_bytes(FOREIGN_PGPASS)
        os.chmod(full / "pgpass", 0o600)
        env = _setup(home, ca, PGPASSFILE=str(full / "pgpass"))
        fd = os.open(full / "filler", os.O_WRONLY | os.O_CREAT, 0o600)  # fill every last block
        try:
            for size in (4096, 1):
                with __import__("contextlib").suppress(OSError):
                    while True:
                        os.write(fd, b"\0" * size)
        finally:
            os.close(fd)
        before = snapshot(home), snapshot(full)
        for argv in (["refresh"], ["refresh", "s0"], add_args("s9", HOSTS[2], "user9", ca)):
            p = run(env, *argv)
            assert_one_error(p.stderr, p.returncode, 5)
            assert "space" in p.stderr, p.stderr
            assert (snapshot(home), snapshot(full)) == before, argv
    finally:
        _umount(full)


def test_read_only_directory(home: Path, ca: Path, tmp_path: Path) -> None:
    """Issue 7: PGPASSFILE in a read-only bind mount, then the whole HOME read-only: exit 5, nothing changed."""
    need_root()
    ro = tmp_path / "ro"
    ro.mkdir()
    (ro / "pgpass").write_bytes(FOREIGN_PGPASS)
    os.chmod(ro / "pgpass", 0o600)
    env = _setup(home, ca, PGPASSFILE=str(ro / "pgpass"))
    mounted: list[Path] = []
    try:
        for target in (ro, home):
            _mount("--bind", str(target), str(target))
            mounted.append(target)
            _mount("-o", "remount,bind,ro", str(target))
            before = snapshot(home), snapshot(ro)
            for argv in (["refresh"], add_args("s9", HOSTS[2], "user9", ca), ["remove", "s1"]):
                p = run(env, *argv)
                assert_one_error(p.stderr, p.returncode, 5)
                assert "Read-only file system" in p.stderr, p.stderr
                assert (snapshot(home), snapshot(ro)) == before, (target, argv)
    finally:
        for m in reversed(mounted):
            _umount(m)


@pytest.mark.parametrize("which", [".pgpass", ".pg_service.conf"])
def test_unreadable_file(home: Path, ca: Path, which: str) -> None:
    """Issue 7: a directory where a libpq file should be: exit 5, named, untouched."""
    env = _setup(home, ca)
    (home / which).unlink()
    (home / which).mkdir()
    (home / which / "inside").write_text("mine")
    before = snapshot(home)
    for argv in (["refresh"], add_args("s9", HOSTS[2], "user9", ca), ["remove", "s1"]):
        p = run(env, *argv)
        assert_one_error(p.stderr, p.returncode, 5)
        assert str(home / which) in p.stderr
        assert snapshot(home) == before, argv


HOLDER = """
import fcntl, os, sys
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT, 0o600)
fcntl.flock(fd, fcntl.LOCK_EX)
os.ftruncate(fd, 0)
os.pwrite(fd, f"{os.getpid()}\\n".encode(), 0)
print("held", flush=True)
sys.stdin.readline()  # hold the lock until the test says so (or closes our stdin)
"""


def _opened(pid: int, path: Path, proc: subprocess.Popen[str], timeout: float = 60) -> None:
    """Wait for the event "process `pid` has `path` open" (it has reached the lock), via /proc."""
    deadline = time.monotonic() + timeout  # a safety net for a hung test, not a bound on speed
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"exited {proc.returncode} before reaching the lock: {proc.communicate()}"
        try:
            if any(os.readlink(f"/proc/{pid}/fd/{fd}") == str(path) for fd in os.listdir(f"/proc/{pid}/fd")):
                return
        except (FileNotFoundError, ProcessLookupError):
            pass
        time.sleep(0.01)
    raise AssertionError(f"pid {pid} never opened {path}")


def test_lock_held_by_another_process(home: Path, ca: Path) -> None:
    """Issue 7: --if-needed --quiet gives up at once, silently (6); a hand-run one waits PGIAM_LOCK_WAIT and names the pid.

    No wall-clock bound (issue 10): "gives up at once" is shown by a PGIAM_LOCK_WAIT of an hour that it
    ignores; "waits" by a refresh that is still waiting when the lock is released and then succeeds."""
    env = _setup(home, ca)
    assert run(env, *add_args("due", HOSTS[2], "user9", ca, "--no-refresh")).returncode == 0  # due: no token yet
    lock = home / ".local/state/pgiam/lock"
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(lock)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        before = snapshot(home)
        p = run(dict(env, PGIAM_LOCK_WAIT="3600"), "refresh", "--if-needed", "--quiet")
        assert (p.returncode, p.stdout, p.stderr) == (6, "", ""), p
        waited = dict(env, PGIAM_LOCK_WAIT="1")
        for argv in (["refresh"], ["refresh", "--if-needed"], add_args("s9", HOSTS[2], "user9", ca), ["remove", "s1"]):
            t = time.monotonic()
            p = run(waited, *argv)
            took = time.monotonic() - t
            assert_one_error(p.stderr, p.returncode, 6)
            assert f"pid {holder.pid}" in p.stderr, p.stderr
            if argv[-1] != "--if-needed":
                assert took >= 1.0, (argv, took)  # waited its PGIAM_LOCK_WAIT (a monotonic clock never runs early)
            assert snapshot(home) == before, argv
        # A hand-run refresh waiting on the lock finishes once the holder lets go.
        waiter = subprocess.Popen([sys.executable, "-m", "pgiam", "refresh", "due"], env=dict(env, PGIAM_LOCK_WAIT="3600"),
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL)
        try:
            _opened(waiter.pid, lock, waiter)
            assert holder.stdin is not None
            holder.stdin.close()  # release
            holder.wait(30)
            out, err = waiter.communicate(timeout=60)
            assert waiter.returncode == 0, err
            assert "due: renewed" in out
        finally:
            if waiter.poll() is None:
                waiter.kill()
                waiter.wait(10)
    finally:
        holder.kill()
        holder.wait(10)
