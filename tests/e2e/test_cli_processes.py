"""pgiam's command line as a real process, where the process is the point (issue 10): a closed stdout, a
pipeline into head, and PGIAM_LOCK_WAIT read by the console entry point. Moved from tests/unit, which
starts no pgiam process (issue 22)."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from pgiam.errors import ExitCode
from tests.conftest import SANDBOX_HOST

pytestmark = pytest.mark.e2e


def add(run_cli, ca_file: Path, name: str = "prod", *extra: str) -> tuple[int, str, str]:
    return run_cli("add", name, "--host", SANDBOX_HOST, "--user", "alice", "--sslrootcert", str(ca_file), *extra)


def pgiam_proc(*argv: str, stdout: int | None = subprocess.PIPE, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "pgiam", *argv], stdout=stdout, stderr=subprocess.PIPE,
                            stdin=subprocess.DEVNULL, env=env)


@pytest.mark.parametrize("argv", [("status",), ("hook", "bash"), ("list", "--json")], ids=" ".join)
def test_a_closed_stdout_ends_quietly(argv: tuple[str, ...]) -> None:
    """`pgiam status | head -0`: the reader is gone before pgiam writes. The read end of a real pipe is
    closed before pgiam starts, so the write fails every time (no race with the reader): exit 141
    (128 + SIGPIPE, as a shell reports a process killed by SIGPIPE), nothing on stderr."""
    r, w = os.pipe()
    os.close(r)
    try:
        p = pgiam_proc(*argv, stdout=w)
    finally:
        os.close(w)
    _, err = p.communicate(timeout=60)
    assert (p.returncode, err.decode()) == (128 + signal.SIGPIPE, "")


def test_hook_piped_into_head_ends_quietly(run_cli) -> None:
    """`pgiam hook bash | head -1` through a real shell pipeline: the first line arrives, nothing on stderr,
    exit 0. The script is one write(2) (smaller than Python's stdout buffer, which pgiam flushes once), done
    before head can read a line, so head leaving cannot fail it; a reader gone *before* the write is
    test_a_closed_stdout_ends_quietly (141). One outcome each (issue 22)."""
    text = run_cli("hook", "bash")[1]
    assert len(text.encode()) < io.DEFAULT_BUFFER_SIZE  # else the write is split and head may leave in between
    p = subprocess.run(["bash", "-c", f'"{sys.executable}" -m pgiam hook bash | head -1; echo "status=${{PIPESTATUS[0]}}"'],
                       capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert (p.stdout, p.stderr) == (text.splitlines()[0] + "\nstatus=0\n", "")


@pytest.mark.parametrize("value", ["abc", "-1", "nan", "1e9", ""])
def test_bad_lock_wait_is_a_usage_error_naming_the_variable(home: Path, ca_file: Path, run_cli, value: str) -> None:
    """`PGIAM_LOCK_WAIT=abc pgiam refresh`: exit 2 naming the variable and the fix, nothing changed (not 70 at import)."""
    assert add(run_cli, ca_file, "prod", "--no-refresh")[0] == ExitCode.OK
    before = {p: p.read_bytes() for p in home.rglob("*") if p.is_file()}
    p = pgiam_proc("refresh", env={**os.environ, "PGIAM_LOCK_WAIT": value})
    out, err = p.communicate(timeout=60)
    assert p.returncode == ExitCode.USAGE, err
    lines = err.decode().splitlines()
    assert lines == [f"pgiam: PGIAM_LOCK_WAIT={value!r} is not a number of seconds",
                     "hint: set PGIAM_LOCK_WAIT to a number from 0 to 3600, or unset it"]
    assert {p: p.read_bytes() for p in home.rglob("*") if p.is_file()} == before
