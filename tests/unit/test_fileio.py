"""Atomic writes and the lock (issue 2): a failed write keeps the old file and leaves no temp file."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pgiam import fileio
from pgiam.errors import ExitCode, FileError, LockedError


def temps(d: Path) -> list[str]:
    return [n for n in os.listdir(d) if fileio.TMP_MARK in n]


def test_write_creates_0600_under_umask_000(tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        fileio.atomic_write(tmp_path / "f", b"secret", 0o600, scope=fileio.NOWHERE)
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.stat(tmp_path / "f").st_mode) == 0o600
    assert (tmp_path / "f").read_bytes() == b"secret"


def test_failed_write_keeps_old_file_and_no_temp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "f"
    target.write_bytes(b"old")

    def boom(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(fileio.os, "fsync", boom)
    with pytest.raises(FileError) as exc:
        fileio.atomic_write(target, b"new" * 1000, 0o600, scope=fileio.NOWHERE)
    assert "No space left" in exc.value.message and "free some space" in (exc.value.hint or "")
    assert exc.value.code == ExitCode.FILE
    assert target.read_bytes() == b"old"
    assert temps(tmp_path) == []


def test_write_all_rolls_back_earlier_files(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "dir-not-file"
    a.write_bytes(b"A0")
    b.mkdir()
    with pytest.raises(FileError):
        fileio.write_all([(a, b"A1", 0o600), (b, b"B1", 0o600)], scope=fileio.NOWHERE)
    assert a.read_bytes() == b"A0"
    assert temps(tmp_path) == []


def test_symlink_target_is_replaced_and_link_kept(tmp_path: Path) -> None:
    real = tmp_path / "real"
    real.write_bytes(b"x")
    link = tmp_path / "link"
    link.symlink_to(real)
    fileio.atomic_write(link, b"y", 0o600, scope=fileio.NOWHERE)
    assert link.is_symlink() and real.read_bytes() == b"y"


def test_non_regular_target_is_refused(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    with pytest.raises(FileError):
        fileio.atomic_write(fifo, b"y", 0o600, scope=fileio.NOWHERE)
    assert stat.S_ISFIFO(os.stat(fifo).st_mode)


def test_stale_temps_removed(tmp_path: Path) -> None:
    d = tmp_path / "d"
    d.mkdir()
    (d / f".f{fileio.TMP_MARK}123-456").write_bytes(b"partial")
    (d / "other").write_bytes(b"keep")
    assert fileio.remove_stale_temps(d / "f", scope=fileio.NOWHERE) == 1
    assert os.listdir(d) == ["other"]


def test_lock_busy_gives_up_and_names_holder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A busy lock: wait 0 gives up at once (it never sleeps: seen by a spy on time.sleep, not by a
    wall-clock bound that a loaded machine breaks, issue 10 item 7); a wait of 0.1 s waits at least that
    (a monotonic clock never runs early); the error names the holder's pid."""
    lock = tmp_path / "state" / "lock"
    lock.parent.mkdir()
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import sys, time; sys.path.insert(0, sys.argv[2]); from pathlib import Path; from pgiam.fileio import NOWHERE, locked\n"
         "with locked(Path(sys.argv[1]), 5, scope=NOWHERE):\n print('held', flush=True); sys.stdin.readline()",
         str(lock), str(Path(__file__).resolve().parents[2])],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)  # holds the lock until killed, however slow we are
    try:
        assert holder.stdout.readline().strip() == "held"
        sleeps: list[float] = []
        real_sleep = time.sleep

        def spy(seconds: float) -> None:
            sleeps.append(seconds)
            real_sleep(seconds)

        monkeypatch.setattr(time, "sleep", spy)
        with pytest.raises(LockedError) as exc:
            with fileio.locked(lock, 0, scope=fileio.NOWHERE):
                pass
        assert sleeps == []  # gave up at the first try
        assert f"pid {holder.pid}" in exc.value.message and exc.value.code == ExitCode.LOCKED
        t = time.monotonic()
        with pytest.raises(LockedError):
            with fileio.locked(lock, 0.1, scope=fileio.NOWHERE):
                pass
        assert time.monotonic() - t >= 0.1
        assert sleeps  # it did wait, by sleeping between tries
        monkeypatch.undo()
    finally:
        holder.kill()
        holder.wait()
    with fileio.locked(lock, 1, scope=fileio.NOWHERE):  # released when the holder dies
        pass
