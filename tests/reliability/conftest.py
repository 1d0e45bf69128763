"""Helpers for issue 7's reliability suite: pgiam in real subprocesses, real files, real tools.

Every pgiam here runs as `python3 -m pgiam ...` with PYTHONPATH=PGIAM_SRC (default: this checkout) and an
environment built from scratch: HOME, XDG_*, AWS_* under the test's tmp dir, dummy static AWS keys.
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

SRC = os.environ.get("PGIAM_SRC", str(Path(__file__).resolve().parents[2]))
ACCESS_KEY = "AKIARELIABILITYTEST7"
SECRET_KEY = "reliabilitySecretKey/DoNotLeak+0123456789"
HOSTS = [
    "db1.cluster-abc.us-west-2.rds.amazonaws.com",
    "db2.cluster-abc.us-west-2.rds.amazonaws.com",
    "db3.cluster-abc.eu-west-1.rds.amazonaws.com",
]

# Bytes a user already had: comments, CRLF, an escaped colon, non-UTF-8, a 10 kB line, no final newline.
FOREIGN_PGPASS = (
    b"# my passwords\r\nlocalhost:5432:*:me:s\\:ecret\r\n"
    + b"long:1:*:u:" + b"x" * 10_000 + b"\n"
    + b"other:1:*:x:\xff\xfe\x80"
)
FOREIGN_SERVICE = (
    b"# my services\r\n[local]\r\nhost=localhost\r\n\n  [odd]  spaced\nport= 5\n"
    b"[local]\nhost=duplicate-section-first-wins-is-libpq's-rule\n"
    b"# \xe9t\xe9 latin-1 comment " + b"y" * 10_000 + b"\n[broken"
)


def need(tool: str) -> str:
    """The tool's path; a missing tool fails the test unless PGIAM_ALLOW_SKIP_E2E=1."""
    from tests.tools import require_tool

    return require_tool(tool)


def need_root() -> None:
    from tests.tools import skip_or_fail

    if os.geteuid() != 0:
        skip_or_fail("this fault test needs root (tmpfs and bind mounts)", "run it as root, as CI does")


def pgiam_env(home: Path, **extra: str) -> dict[str, str]:
    """A from-scratch environment for one pgiam user living in `home`."""
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "LANG": "C.UTF-8",
        "PYTHONPATH": SRC,
        "PYTHONDONTWRITEBYTECODE": "1",
        "HOME": str(home),
        "XDG_CONFIG_HOME": str(home / ".config"),
        "XDG_STATE_HOME": str(home / ".local" / "state"),
        "XDG_DATA_HOME": str(home / ".local" / "share"),
        "XDG_CACHE_HOME": str(home / ".cache"),
        "AWS_ACCESS_KEY_ID": ACCESS_KEY,
        "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
        "AWS_CONFIG_FILE": str(home / ".aws" / "config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(home / ".aws" / "credentials"),
        "AWS_EC2_METADATA_DISABLED": "true",
        "TMPDIR": "/tmp",
    }
    env.update(extra)
    return env


def pgiam_argv(*args: str) -> list[str]:
    return [sys.executable, "-m", "pgiam", *args]


def run(env: dict[str, str], *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Run `python3 -m pgiam ARGS` to completion; output as text (non-UTF-8 shown with escapes)."""
    return subprocess.run(
        pgiam_argv(*args), env=env, capture_output=True, text=True, errors="backslashreplace",
        timeout=timeout, stdin=subprocess.DEVNULL,
    )


def add_args(name: str, host: str, user: str, ca: Path, *extra: str) -> list[str]:
    return ["add", name, "--host", host, "--user", user, "--sslrootcert", str(ca), *extra]


def snapshot(root: Path) -> dict[str, tuple[str, int, bytes | None]]:
    """Every entry under `root`: kind, mode and (for files) bytes. pgiam's lock file and its mint slots
    (pgiam/mint/) are left out: they hold the pid of the last process that took them, which is how a
    waiting pgiam names the holder."""
    out: dict[str, tuple[str, int, bytes | None]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            rel = str(p.relative_to(root))
            if rel.endswith("pgiam/lock") or rel.endswith("pgiam/mint") or "pgiam/mint/" in rel:
                continue
            st = os.lstat(p)
            kind = "dir" if stat.S_ISDIR(st.st_mode) else "file" if stat.S_ISREG(st.st_mode) else "other"
            data = p.read_bytes() if kind == "file" else None
            out[rel] = (kind, stat.S_IMODE(st.st_mode), data)
    return out


def assert_one_error(stderr: str, code: int, expected: int) -> None:
    """A documented failure: exit code, a `pgiam: ...` line and a `hint: ...` line, no traceback."""
    assert code == expected, (code, stderr)
    assert "Traceback" not in stderr, stderr
    lines = stderr.strip().splitlines()
    assert lines and lines[0].startswith("pgiam: "), stderr
    assert any(ln.startswith("hint: ") for ln in lines), stderr
    assert len(lines) == 2, stderr


@pytest.fixture
def ca(tmp_path: Path) -> Path:
    """Any file stands in for a CA bundle when nothing connects."""
    p = tmp_path / "ca.pem"
    p.write_text("-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n")
    return p


class Sandbox:
    """One sandbox for the whole suite, started by `pgiam sandbox up` under strace (execve only)."""

    def __init__(self, home: Path, env: dict[str, str], ca: Path, trace: Path) -> None:
        self.home, self.env, self.ca, self.trace = home, env, ca, trace

    @property
    def state_dir(self) -> Path:
        return self.home / ".local" / "state" / "pgiam"

    def secret_key(self) -> str:
        import json

        return json.loads((self.state_dir / "sandbox" / "keys.json").read_text())["secret_key"]

    def psql(self, sql: str = "select current_user") -> subprocess.CompletedProcess[str]:
        env = {k: v for k, v in self.env.items() if not k.startswith("PG")}
        env.update(PGSERVICEFILE=str(self.home / ".pg_service.conf"), PGPASSFILE=str(self.home / ".pgpass"),
                   PGCONNECT_TIMEOUT="10")
        return subprocess.run(["psql", "service=sandbox", "-XAtc", sql], env=env, capture_output=True, text=True,
                              timeout=30, stdin=subprocess.DEVNULL)


@pytest.fixture(scope="session")
def sandbox(tmp_path_factory: pytest.TempPathFactory):
    """A running sandbox and its `sandbox` service in a home with foreign bytes in both libpq files."""
    need("psql")
    strace = need("strace")
    sys.path.insert(0, SRC)
    from tests.tools import require_server

    require_server()
    root = tmp_path_factory.mktemp("sandbox")
    home = root / "home"
    home.mkdir()
    (home / ".pgpass").write_bytes(FOREIGN_PGPASS)
    os.chmod(home / ".pgpass", 0o600)
    (home / ".pg_service.conf").write_bytes(FOREIGN_SERVICE)
    ca = root / "ca.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n")
    env = pgiam_env(home)
    trace = root / "strace-up.txt"
    code, output = _traced(strace, trace, env, root, "sandbox", "up")
    assert code == 0, output
    sb = Sandbox(home, env, ca, trace)
    sb.up_output = output
    try:
        yield sb
    finally:
        run(env, "sandbox", "down", timeout=120)


def _traced(strace: str, trace: Path, env: dict[str, str], workdir: Path, *args: str) -> tuple[int, str]:
    """Run pgiam under `strace -f -e trace=execve`; return its exit code and output once pgiam itself exits.

    strace -f keeps following the daemons `sandbox up` leaves running, so wait for pgiam's own
    `+++ exited with N +++` line, then stop strace (which detaches, leaving the daemons alone)."""
    import re

    out = workdir / f"traced-{os.getpid()}-{len(list(workdir.iterdir()))}.out"
    with open(out, "wb") as f:
        proc = subprocess.Popen([strace, "-f", "-e", "trace=execve", "-s", "4096", "-o", str(trace), *pgiam_argv(*args)],
                                env=env, stdout=f, stderr=f, stdin=subprocess.DEVNULL)
    deadline = time.monotonic() + 180
    code: int | None = None
    try:
        while code is None and time.monotonic() < deadline:
            text = trace.read_text(errors="replace") if trace.exists() else ""
            first = re.match(r"(\d+) ", text)
            if first:
                m = re.search(rf"^{first.group(1)}\s+\+\+\+ exited with (\d+) \+\+\+", text, re.M)
                if m:
                    code = int(m.group(1))
            if proc.poll() is not None and code is None:
                code = proc.returncode
            time.sleep(0.1)
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()  # the kernel detaches the tracees; the daemons keep running
                proc.wait(10)
    assert code is not None, "pgiam under strace did not finish in 180 s"
    return code, out.read_text(errors="replace")
