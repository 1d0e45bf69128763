"""The minting slot: one minter at a time, across processes; no file of its own."""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path

import pytest

from pgiam import fileio, minting
from pgiam.errors import LockedError
from pgiam.paths import Paths

HOLDER = """
import fcntl, os, sys
fd = os.open(sys.argv[1], os.O_RDONLY | os.O_DIRECTORY)
fcntl.flock(fd, fcntl.LOCK_EX)
print("held", flush=True)
sys.stdin.readline()  # hold until the test writes a line (or closes stdin)
"""


@pytest.fixture
def paths(tmp_path: Path) -> Paths:
    p = Paths.from_env()
    fileio.ensure_private_dir(p.state_dir, scope=p.scope)  # created (and marked as pgiam's) as pgiam does
    return p


def hold(paths: Paths) -> subprocess.Popen[str]:
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(paths.state_dir)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline() == "held\n"
    return proc


def release(proc: subprocess.Popen[str]) -> None:
    assert proc.stdin is not None
    proc.stdin.write("go\n")
    proc.stdin.flush()
    proc.wait(30)


def test_a_free_slot_is_taken_at_once_and_creates_no_file(paths: Paths) -> None:
    before = sorted(paths.state_dir.iterdir())
    with minting.slot(paths, 0) as waited:
        assert waited is False
    assert sorted(paths.state_dir.iterdir()) == before


def test_a_background_caller_returns_at_once_when_a_mint_is_in_progress(paths: Paths) -> None:
    proc = hold(paths)
    try:
        with pytest.raises(minting.MintBusy):
            with minting.slot(paths, 0):
                pass
    finally:
        release(proc)


def test_a_caller_that_needs_a_token_waits_for_the_minter_then_judges_again(paths: Paths) -> None:
    proc = hold(paths)
    result: list[bool] = []

    def waiter() -> None:
        with minting.slot(paths, 60) as waited:
            result.append(waited)

    t = threading.Thread(target=waiter)
    t.start()
    t.join(0.3)
    assert t.is_alive() and result == []  # still waiting while the other process mints
    release(proc)
    t.join(30)
    assert result == [True]


def test_a_bounded_wait_gives_up_with_a_lock_error(paths: Paths) -> None:
    proc = hold(paths)
    try:
        with pytest.raises(LockedError) as err:
            with minting.slot(paths, 0.2):
                pass
        assert not isinstance(err.value, minting.MintBusy)
        assert str(paths.state_dir) in err.value.message
    finally:
        release(proc)
