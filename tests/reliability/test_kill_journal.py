"""A kill at every step of a commit (issue 20, repro 4 and the commit journal).

`add`, `remove`, `refresh`, `discover --add` and `uninstall --yes` are killed with SIGKILL at every
rename (strace's syscall injection, tracing the real interpreter) and at every write and fsync of
pgiam's files (fileio's seam, in a forked copy of this process: no interpreter start per step).
Then any command (`pgiam list`) runs: the files agree (config, service file and ~/.pgpass name the
same services; foreign lines kept), no journal and no temp file is left (some held live tokens), and
the interrupted command, run again, succeeds.
"""

from __future__ import annotations

import contextlib
import datetime
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import urllib.parse
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import botocore.auth
import pytest

from pgiam import fileio, pgpass, servicefile, store
from pgiam.cli import main
from pgiam.config import load_config
from tests.conftest import SANDBOX_HOST
from tests.reliability.conftest import FOREIGN_PGPASS, FOREIGN_SERVICE, need

HOST2 = SANDBOX_HOST.replace("abc123", "def456")


def cli(*argv: str) -> tuple[int, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(list(argv), stdout=out, stderr=err)
    return code, err.getvalue()


@dataclass
class Scenario:
    argv: list[str]
    setup: Callable[[Path], None]  # builds the files the command starts from (in the template home)
    env: dict[str, str]


def _point_at(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / ".config"))
    monkeypatch.setenv("XDG_STATE_HOME", str(home / ".local" / "state"))
    monkeypatch.setenv("XDG_DATA_HOME", str(home / ".local" / "share"))


def _foreign(home: Path) -> None:
    (home / ".pgpass").write_bytes(FOREIGN_PGPASS)
    os.chmod(home / ".pgpass", 0o600)
    (home / ".pg_service.conf").write_bytes(FOREIGN_SERVICE)


def agree(home: Path, root: Path) -> list[str]:
    """The services that config, service file and ~/.pgpass all name; fails when they disagree or a
    journal or temp file is left anywhere under `root`."""
    config = load_config(home / ".config" / "pgiam" / "config.toml", scope=fileio.NOWHERE)
    sv = (home / ".pg_service.conf").read_bytes().decode("utf-8", "surrogateescape")
    pg = (home / ".pgpass").read_bytes().decode("utf-8", "surrogateescape")
    assert set(servicefile.managed_names(sv)) == set(config.services)
    assert set(pgpass.parse_tokens(pg)) == {store.key_of(s) for s in config.services.values()}
    assert pg.encode("utf-8", "surrogateescape").endswith(FOREIGN_PGPASS)
    assert FOREIGN_SERVICE in sv.encode("utf-8", "surrogateescape")
    left = [str(Path(d) / n) for d, _, names in os.walk(root) for n in names
            if fileio.TMP_MARK in n or n == "journal"]
    assert left == []
    return sorted(config.services)


RDS_NS = "http://rds.amazonaws.com/doc/2014-10-31/"
INSTANCE = ("<DBInstance><DBInstanceIdentifier>pg-iam</DBInstanceIdentifier><Engine>postgres</Engine>"
            "<IAMDatabaseAuthenticationEnabled>true</IAMDatabaseAuthenticationEnabled>"
            "<Endpoint><Address>pg-iam.c9abcdefghij.us-east-1.rds.amazonaws.com</Address><Port>5432</Port></Endpoint>"
            "<DBInstanceArn>arn:aws:rds:us-east-1:123456789012:db:pg-iam</DBInstanceArn>"
            "<DbiResourceId>db-ABCDEFGHIJKLMNOPQRSTUVWXYZ</DbiResourceId></DBInstance>")


@contextlib.contextmanager
def canned_aws() -> Iterator[str]:
    """A loopback stand-in for the few calls `discover` makes in one region of an account holding one
    IAM-enabled PostgreSQL instance: canned answers, cheaper than moto for a command run ~50 times."""
    lists = {"DescribeDBClusters": ("DBClusters", ""), "DescribeDBInstances": ("DBInstances", INSTANCE),
             "DescribeDBProxies": ("DBProxies", "")}

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *a: object) -> None:
            pass

        def _answer(self, status: int, kind: str, body: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_POST(self) -> None:
            form = dict(urllib.parse.parse_qsl(self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode()))
            action = form.get("Action", "")
            if action not in lists:
                return self._answer(400, "text/xml", f'<ErrorResponse xmlns="{RDS_NS}"><Error><Code>InvalidAction</Code>'
                                    f"<Message>{action}</Message></Error></ErrorResponse>".encode())
            key, items = lists[action]
            self._answer(200, "text/xml", (f'<{action}Response xmlns="{RDS_NS}"><{action}Result><{key}>{items}</{key}>'
                                           f"</{action}Result><ResponseMetadata><RequestId>canned</RequestId>"
                                           f"</ResponseMetadata></{action}Response>").encode())

        def do_GET(self) -> None:  # Aurora DSQL ListClusters
            self._answer(200, "application/json", json.dumps({"clusters": []}).encode())

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@contextlib.contextmanager
def _signed_a_minute_ago() -> Iterator[None]:
    """The template's tokens signed a minute back (botocore's signing clock, the edge pgiam reads the time
    from). A token is signed to the second: a killed `refresh` in the same second as the template's adds
    minted the same tokens, wrote only what else changed and made fewer renames to kill (1 instead of 3)."""
    real = botocore.auth.get_current_datetime  # type: ignore[attr-defined]
    botocore.auth.get_current_datetime = lambda: real() - datetime.timedelta(seconds=60)  # type: ignore[attr-defined]
    try:
        yield
    finally:
        botocore.auth.get_current_datetime = real  # type: ignore[attr-defined]


@pytest.fixture
def scenarios(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Scenario]]:
    from tests.awsfake import env_for
    from tests.unit.test_launchd import FAKE_CRONTAB, FAKE_LAUNCHCTL, FAKE_SYSTEMCTL

    ca = tmp_path / "ca.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, text in (("launchctl", FAKE_LAUNCHCTL), ("crontab", FAKE_CRONTAB), ("systemctl", FAKE_SYSTEMCTL)):
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    monkeypatch.setenv("PGIAM_LIBPQ_VERSION", "16.4")  # no psql --version per run
    stack = contextlib.ExitStack()
    aws_url = stack.enter_context(canned_aws())

    def one(home: Path) -> None:
        _foreign(home)
        (home / "systemd-down").touch()
        with _signed_a_minute_ago():
            assert cli("add", "a", "--host", SANDBOX_HOST, "--user", "alice", "--sslrootcert", str(ca))[0] == 0

    def two(home: Path) -> None:
        one(home)
        with _signed_a_minute_ago():
            assert cli("add", "b", "--host", HOST2, "--user", "bob", "--sslrootcert", str(ca))[0] == 0

    def bundle(home: Path) -> None:
        one(home)
        certs = home / ".local" / "share" / "pgiam" / "certs"
        certs.mkdir(parents=True)
        (certs / "rds-aws.pem").write_text(ca.read_text())  # the managed bundle, without a download

    discover_env = env_for(aws_url)
    yield {
        "add": Scenario(["add", "b", "--host", HOST2, "--user", "bob", "--sslrootcert", str(ca)], one, {}),
        "remove": Scenario(["remove", "b"], two, {}),
        "refresh": Scenario(["refresh"], two, {}),
        "discover": Scenario(["discover", "--region", "us-east-1", "--add", "--user", "alice"], bundle, discover_env),
        "uninstall": Scenario(["uninstall", "--yes"], two, {}),
    }
    stack.close()


def _fresh(template: Path, runs: Path, n: int, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of the template home for one kill (symlinks, modes and bytes as they were)."""
    root = runs / str(n)
    shutil.copytree(template, root / "home", symlinks=True)
    _point_at(root / "home", monkeypatch)
    return root


def _fork_killed_at(argv: list[str], step: int) -> bool:
    """Run pgiam in a forked copy of this process, SIGKILLed at its `step`th write or fsync of a file;
    True when it was killed (False: it finished before that step)."""
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        code = 99
        try:
            seen = [0]

            def seam(kind: str) -> None:
                seen[0] += 1
                if seen[0] == step:
                    os.kill(os.getpid(), signal.SIGKILL)

            fileio._seam = seam
            with open(os.devnull, "w") as devnull:
                code = main(argv, stdout=devnull, stderr=devnull)
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    return os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL


def _strace_killed_at(argv: list[str], step: int, strace: str) -> bool:
    """Run `python -m pgiam ARGV` under strace, SIGKILLed at its `step`th rename(2)."""
    proc = subprocess.run([strace, "-f", "-qq", "-o", "/dev/null", "-e", "trace=rename,renameat,renameat2",
                           "-e", f"inject=rename,renameat,renameat2:signal=SIGKILL:when={step}",
                           sys.executable, "-m", "pgiam", *argv],
                          env=dict(os.environ), capture_output=True, timeout=120, stdin=subprocess.DEVNULL)
    return proc.returncode in (-signal.SIGKILL, 128 + signal.SIGKILL)


@pytest.mark.parametrize("command", ["add", "remove", "refresh", "discover", "uninstall"])
def test_a_kill_at_every_step_leaves_files_that_agree(command: str, scenarios: dict[str, Scenario], tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 20 repro 4: a SIGKILL between two renames of `add b` left config.toml with b and neither libpq
    file, `add b` then said "already exists", and a temp file with a live token stayed beside ~/.pgpass.
    Now, at every rename, write and fsync of every committing command: the next command undoes the
    half-done commit, the files agree, nothing is left behind, and the command run again succeeds."""
    strace = need("strace")
    # The kernel runs the interpreter itself (a venv's python is a link to it, not a version-manager
    # shim script): strace's counts are the interpreter's own renames.
    with open(os.path.realpath(sys.executable), "rb") as exe:
        assert exe.read(4) == b"\x7fELF"
    sc = scenarios[command]
    for k, v in sc.env.items():
        monkeypatch.setenv(k, v)
    template = tmp_path / "template"
    template.mkdir()
    _point_at(template, monkeypatch)
    sc.setup(template)
    before = agree(template, template)
    runs = tmp_path / "runs"
    kills = {"rename": 0, "write/fsync": 0}
    retried: set[frozenset[tuple[str, bytes]]] = set()
    n = 0
    for how in ("rename", "write/fsync"):
        step = 0
        while True:
            step += 1
            n += 1
            root = _fresh(template, runs, n, monkeypatch)
            home = root / "home"
            if how == "rename":
                killed = _strace_killed_at(sc.argv, step, strace)
            else:
                killed = _fork_killed_at(sc.argv, step)
            code, err = cli("list", "--names")
            assert code == 0, (how, step, err)
            now = agree(home, root)
            if not killed:
                break  # the command finished before this step: every step was tried
            kills[how] += 1
            assert now in (before, after_of(command, before)), (how, step, now)
            state = _files(home)
            if state not in retried:  # the same files as a kill already retried: the same retry
                retried.add(state)
                code, err = cli(*sc.argv)
                assert code == 0, (how, step, err)
                assert agree(home, root) == after_of(command, before), (how, step)
            shutil.rmtree(root)
    assert kills["rename"] >= 3 and kills["write/fsync"] >= 6, kills


def _files(home: Path) -> frozenset[tuple[str, bytes]]:
    """Every file under `home` and its bytes (the lock file and the mint slots hold the last holder's pid: left out)."""
    return frozenset((str(p.relative_to(home)), p.read_bytes()) for p in home.rglob("*")
                     if p.is_file() and not p.is_symlink() and p.name != "lock" and not p.name.endswith(".lock"))


def after_of(command: str, before: list[str]) -> list[str]:
    """The services once the command has done its work."""
    return {"add": sorted([*before, "b"]), "remove": [s for s in before if s != "b"], "refresh": before,
            "discover": sorted([*before, "pg-iam"]), "uninstall": []}[command]
