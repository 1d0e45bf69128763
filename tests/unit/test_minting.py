"""The minting slots: one minter per credential identity (profile, region) at a time, across processes."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from pgiam import fileio, minting
from pgiam.errors import LockedError
from pgiam.paths import Paths

# Holds the lock file argv[1] as pgiam.fileio.locked does (a flock, the holder's pid in the file).
HOLDER = """
import fcntl, os, sys
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT, 0o600)
fcntl.flock(fd, fcntl.LOCK_EX)
os.ftruncate(fd, 0)
os.write(fd, f"{os.getpid()}\\n".encode())
print("held", flush=True)
sys.stdin.readline()  # hold until the test writes a line (or closes stdin)
"""

KEY: minting.SlotKey = ("p1", "us-west-2", None)
OTHER: minting.SlotKey = ("p2", "us-west-2", None)


@pytest.fixture
def paths(tmp_path: Path) -> Paths:
    p = Paths.from_env()
    fileio.ensure_private_dir(p.mint_dir, scope=p.scope)  # created (and marked as pgiam's) as pgiam does
    return p


def hold(paths: Paths, key: minting.SlotKey = KEY) -> subprocess.Popen[str]:
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(minting.slot_file(paths, key))], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline() == "held\n"
    return proc


def release(proc: subprocess.Popen[str]) -> None:
    assert proc.stdin is not None
    proc.stdin.write("go\n")
    proc.stdin.flush()
    proc.wait(30)


def test_a_free_slot_is_taken_at_once_in_a_lock_file_of_its_own(paths: Paths) -> None:
    with minting.slot(paths, KEY, 0) as waited:
        assert waited is False
        assert (paths.mint_dir / "p1@us-west-2.lock").read_text() == f"{os.getpid()}\n"
    assert sorted(os.listdir(paths.mint_dir)) == [fileio.MARKER, "p1@us-west-2.lock"]


def test_slot_files_are_safe_names_for_any_profile(paths: Paths) -> None:
    assert minting.slot_file(paths, ("a/b c", "us-east-1", None)).name == "a%2fb%20c@us-east-1.lock"
    odd = minting.slot_file(paths, ("..", "us-east-1", None)).name
    assert odd.startswith("..@us-east-1-") and odd.endswith(".lock") and "/" not in odd
    sandbox = minting.slot_file(paths, (None, "us-east-1", "/x/credentials"))
    assert sandbox.parent == paths.mint_dir and sandbox != minting.slot_file(paths, (None, "us-east-1", None))


def test_a_background_caller_returns_at_once_when_a_mint_is_in_progress(paths: Paths) -> None:
    proc = hold(paths)
    try:
        with pytest.raises(minting.MintBusy):
            with minting.slot(paths, KEY, 0):
                pass
    finally:
        release(proc)


def test_another_identity_is_not_held_up(paths: Paths) -> None:
    """Issue 20 repro 8: a minter at work for one profile holds only that profile's slot."""
    proc = hold(paths)
    try:
        with minting.slot(paths, OTHER, 0) as waited:
            assert waited is False
    finally:
        release(proc)


def test_a_caller_that_needs_a_token_waits_for_the_minter_then_judges_again(paths: Paths) -> None:
    proc = hold(paths)
    result: list[bool] = []

    def waiter() -> None:
        with minting.slot(paths, KEY, 60) as waited:
            result.append(waited)

    t = threading.Thread(target=waiter)
    t.start()
    t.join(0.1)
    assert t.is_alive() and result == []  # still waiting while the other process mints
    release(proc)
    t.join(30)
    assert result == [True]


def test_a_bounded_wait_gives_up_naming_the_holder_and_the_profile(paths: Paths) -> None:
    proc = hold(paths)
    try:
        with pytest.raises(LockedError) as err:
            with minting.slot(paths, KEY, 0.05):
                pass
        assert not isinstance(err.value, minting.MintBusy)
        assert err.value.message == f"another pgiam (pid {proc.pid}) holds the mint lock of profile p1 in us-west-2 (waited 0.05 s)"
        assert err.value.hint == f"wait for it to finish, or check it with `ps -p {proc.pid}`"
    finally:
        release(proc)
