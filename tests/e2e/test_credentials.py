"""Credentials as AWS users have them (issue 12): assume-role, MFA, SSO, credential_process, env keys, bad networks.

Every test drives pgiam as a subprocess with real botocore; STS is a real moto server (through a thin
counting proxy, to prove what the credential cache saves); keys are dummies and nothing reaches AWS.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import pty
import re
import select
import socket
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from tests.e2e.conftest import World, make_world
from tests.tools import require_tool

pytestmark = pytest.mark.e2e

HOST = "db.cluster-abc123.us-west-2.rds.amazonaws.com"
NOREGION_HOST = "db.cluster-abc123.us-west-2.rds.amazonaws.com"  # the profile has no region: only the service has one
SRC_KEY = "AKIAPGIAMSOURCEKEY01"
SRC_SECRET = "pgiamSourceSecret/ExampleOnly0123456789ab"
P1_KEY = "AKIAPGIAMPROFILEONE1"
P2_KEY = "AKIAPGIAMPROFILETWO2"
SECRET = "pgiamProfileSecret/ExampleOnly012345678ab"
MFA_CODE = "918273"
# What a leaky credential helper might print on stderr: none of it may be stored or shown.
LEAK_KEY = "AKIAIOSFODNN7LEAKED1"
LEAK_SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYLEAKEDKEY1"
LEAK_TOKEN = "IQoJb3JpZ2luX2VjEFAKEFAKEFAKEFAKEFAKEFAKEFAKEFAKEFAKEFAKE" * 3

AWS_CONFIG = """\
[profile dbrole]
role_arn = arn:aws:iam::123456789012:role/db
source_profile = src

[profile mfarole]
role_arn = arn:aws:iam::123456789012:role/dbmfa
source_profile = src
mfa_serial = arn:aws:iam::123456789012:mfa/alice

[profile ssoprof]
sso_start_url = https://pgiam-test.awsapps.com/start
sso_region = us-east-1
sso_account_id = 123456789012
sso_role_name = db

[profile ssorole]
role_arn = arn:aws:iam::123456789012:role/db
source_profile = ssoprof
"""

AWS_CREDENTIALS = f"""\
[src]
aws_access_key_id = {SRC_KEY}
aws_secret_access_key = {SRC_SECRET}

[p1]
aws_access_key_id = {P1_KEY}
aws_secret_access_key = {SECRET}

[p2]
aws_access_key_id = {P2_KEY}
aws_secret_access_key = {SECRET}
"""


# ---------------------------------------------------------------- fixtures


class CountingProxy:
    """A reverse proxy in front of moto that counts the STS actions it forwards."""

    def __init__(self, upstream: str) -> None:
        self.upstream = urlsplit(upstream)
        self.actions: list[str] = []
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                action = parse_qs(body.decode(errors="replace")).get("Action", ["?"])[0]
                proxy.actions.append(action)
                conn = http.client.HTTPConnection(proxy.upstream.hostname or "127.0.0.1", proxy.upstream.port, timeout=30)
                headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "connection")}
                conn.request("POST", self.path, body, headers)
                resp = conn.getresponse()
                data = resp.read()
                self.send_response(resp.status)
                for k, v in resp.getheaders():
                    if k.lower() not in ("transfer-encoding", "connection", "content-length", "server", "date"):
                        self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
                conn.close()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def count(self, action: str = "AssumeRole") -> int:
        return sum(1 for a in self.actions if a == action)


@pytest.fixture
def sts(moto_url: str) -> Iterator[CountingProxy]:
    p = CountingProxy(moto_url)
    p.thread.start()
    try:
        yield p
    finally:
        p.server.shutdown()
        p.server.server_close()


def aws_world(tmp_path: Path, sts_url: str | None = None) -> World:
    w = make_world(tmp_path / "home")
    (w.home / ".aws").mkdir(exist_ok=True)
    (w.home / ".aws" / "config").write_text(AWS_CONFIG)
    (w.home / ".aws" / "credentials").write_text(AWS_CREDENTIALS)
    (w.home / ".aws" / "credentials").chmod(0o600)
    if sts_url:
        w.env["AWS_ENDPOINT_URL_STS"] = sts_url
    # No endpoint may be AWS itself: SSO and anything else goes to a closed local port.
    w.env["AWS_ENDPOINT_URL"] = f"http://127.0.0.1:{closed_port()}"
    w.env.pop("AWS_DEFAULT_REGION", None)
    w.env.pop("AWS_REGION", None)
    (tmp_path / "ca.pem").write_text("-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n")  # unused (no libpq here), but add checks it is PEM
    return w


def add(w: World, name: str, *extra: str, host: str = HOST, check: bool = True, env: dict[str, str] | None = None):  # type: ignore[no-untyped-def]
    return w.pgiam("add", name, "--host", host, "--user", "alice", "--sslrootcert", str(w.home.parent / "ca.pem"),
                   *extra, check=check, env=env)


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def state(w: World) -> dict:  # type: ignore[type-arg]
    return json.loads((w.home / ".local" / "state" / "pgiam" / "state.json").read_text())["services"]


def notice(w: World) -> str:
    return (w.home / ".local" / "state" / "pgiam" / "notice").read_text()


def pgpass_key_ids(w: World) -> set[str]:
    """The access key ids that signed the tokens in ~/.pgpass (X-Amz-Credential), never the tokens."""
    return set(re.findall(r"X-Amz-Credential=(\w+)%2F", (w.home / ".pgpass").read_text()))


def run_in_pty(w: World, argv: list[str], answer: str | None, expect: bytes = b"MFA code") -> tuple[int, str]:
    """Run argv on a fresh pseudo-terminal (its controlling tty), type `answer` at the prompt `expect`
    (answer None: expect no prompt at all)."""
    pid, fd = pty.fork()
    if pid == 0:  # the child: stdin/stdout/stderr are the pty
        try:
            os.execvpe(argv[0], argv, w.env)
        finally:
            os._exit(127)
    out = b""
    answered = False
    try:
        while True:
            ready, _, _ = select.select([fd], [], [], 60)
            if not ready:
                raise AssertionError(f"no output for 60 s: {out!r}")
            try:
                chunk = os.read(fd, 4096)
            except OSError:  # EIO: the child closed the pty
                break
            if not chunk:
                break
            out += chunk
            if not answered and answer is not None and expect in out:
                os.write(fd, (answer + "\n").encode())
                answered = True
    finally:
        os.close(fd)
    _, status = os.waitpid(pid, 0)
    assert answered == (answer is not None), f"prompted: {answered}: {out!r}"
    return os.waitstatus_to_exitcode(status), out.decode(errors="replace")


def pgiam_argv(*args: str) -> list[str]:
    return [sys.executable, "-m", "pgiam", *args]


# ---------------------------------------------------------------- assume-role, region, cache, MFA


def test_assume_role_without_region_uses_the_services_region_and_the_cli_cache(tmp_path: Path, sts: CountingProxy) -> None:
    """A role_arn + source_profile profile without region works with --region; three refreshes, one AssumeRole."""
    w = aws_world(tmp_path, sts.url)
    add(w, "prod", "--profile", "dbrole", "--region", "us-west-2", host=NOREGION_HOST)
    assert sts.count() == 1
    for _ in range(3):
        w.pgiam("refresh", "prod")
    assert sts.count() == 1, sts.actions  # served from ~/.aws/cli/cache
    cached = list((w.home / ".aws" / "cli" / "cache").glob("*.json"))
    assert len(cached) == 1 and "Credentials" in json.loads(cached[0].read_text())
    assert state(w)["prod"]["profile"] == "dbrole"
    assert "profile dbrole" in w.pgiam("status").stdout


def test_web_identity_roles_share_the_cli_cache_too(tmp_path: Path, sts: CountingProxy) -> None:
    """role_arn + web_identity_token_file (IRSA-style): one AssumeRoleWithWebIdentity for several refreshes."""
    w = aws_world(tmp_path, sts.url)
    (w.home / "web-token").write_text("dummy-oidc-token")
    with (w.home / ".aws" / "config").open("a") as f:
        f.write(f"\n[profile webrole]\nrole_arn = arn:aws:iam::123456789012:role/web\n"
                f"web_identity_token_file = {w.home / 'web-token'}\n")
    add(w, "prod", "--profile", "webrole")
    w.pgiam("refresh", "prod")
    w.pgiam("refresh", "prod")
    assert sts.count("AssumeRoleWithWebIdentity") == 1, sts.actions
    assert list((w.home / ".aws" / "cli" / "cache").glob("*.json"))


def test_mfa_role_without_a_terminal_exits_4_with_a_hint_and_never_prompts(tmp_path: Path, sts: CountingProxy) -> None:
    """No tty: no prompt, no EOFError/exit 70; exit 4, recorded in state and the prompt notice."""
    w = aws_world(tmp_path, sts.url)
    add(w, "prod", "--profile", "mfarole", "--no-refresh")
    p = w.pgiam("refresh", "prod", check=False)
    assert p.returncode == 4, p.stderr
    assert "needs an MFA code" in p.stderr and "no terminal" in p.stderr
    assert "aws sts get-caller-identity --profile mfarole" in p.stderr
    assert "Traceback" not in p.stderr and "Warning" not in p.stderr and "MFA code for" not in p.stderr
    assert "aws sso login" not in p.stderr
    assert sts.count() == 0
    assert state(w)["prod"]["code"] == 4 and "MFA" in state(w)["prod"]["error"]
    assert "MFA" in notice(w)
    assert "last error" in w.pgiam("status").stdout


def test_mfa_code_is_asked_once_on_a_terminal_then_the_cache_serves_without_sts(tmp_path: Path, sts: CountingProxy) -> None:
    """With a tty botocore's prompt works once; the next refresh (no tty) needs no code and no STS call."""
    w = aws_world(tmp_path, sts.url)
    code, out = run_in_pty(w, pgiam_argv("add", "prod", "--host", HOST, "--user", "alice", "--profile", "mfarole",
                                         "--sslrootcert", str(tmp_path / "ca.pem")), MFA_CODE)
    assert code == 0, out
    assert MFA_CODE not in out  # getpass does not echo
    assert sts.count() == 1
    assert sts.actions == ["AssumeRole"]
    p = w.pgiam("refresh", "prod")  # stdin is /dev/null: a prompt would fail
    assert p.returncode == 0
    assert sts.count() == 1, sts.actions


def test_the_detached_child_of_refresh_wait_never_prompts(tmp_path: Path, sts: CountingProxy) -> None:
    """`refresh --wait` on a terminal: its worker has left the terminal's session, so it must not read
    the terminal behind the prompt's back; it fails with the MFA hint instead."""
    w = aws_world(tmp_path, sts.url)
    add(w, "prod", "--profile", "mfarole", "--no-refresh")
    code, out = run_in_pty(w, pgiam_argv("refresh", "prod", "--wait", "30"), None)
    assert code == 4, out
    assert "needs an MFA code" in out and "MFA code for" not in out
    assert sts.count() == 0


def test_a_role_cached_by_the_aws_cli_from_a_terminal_serves_pgiam(tmp_path: Path, sts: CountingProxy) -> None:
    """The hint's fix works: `aws sts get-caller-identity --profile X` in a terminal caches the role for pgiam."""
    aws = require_tool("aws", "awscli")
    w = aws_world(tmp_path, sts.url)
    add(w, "prod", "--profile", "mfarole", "--no-refresh")
    env = dict(w.env, AWS_DEFAULT_REGION="us-west-2")
    code, out = run_in_pty(World(w.home, env), [aws, "sts", "get-caller-identity", "--profile", "mfarole"], MFA_CODE)
    assert code == 0, out
    assert sts.count() == 1
    assert list((w.home / ".aws" / "cli" / "cache").glob("*.json"))
    p = w.pgiam("refresh", "prod")
    assert p.returncode == 0
    assert sts.count() == 1, sts.actions  # pgiam used the CLI's cached role: no STS, no code


def test_no_cache_is_written_without_a_home(tmp_path: Path, sts: CountingProxy) -> None:
    """The CLI cache lives under HOME: with HOME pointing nowhere, pgiam still works and creates nothing there."""
    w = aws_world(tmp_path, sts.url)
    add(w, "prod", "--profile", "dbrole", "--no-refresh")
    env = dict(w.env, HOME=str(tmp_path / "nohome"), PGPASSFILE=str(w.home / ".pgpass"),
               PGSERVICEFILE=str(w.home / ".pg_service.conf"))
    p = w.pgiam("refresh", "prod", env=env)
    assert p.returncode == 0, p.stderr
    assert not (tmp_path / "nohome").exists()


# ---------------------------------------------------------------- which profile signs


def test_aws_profile_at_add_is_recorded_and_used_by_later_refreshes(tmp_path: Path) -> None:
    """`AWS_PROFILE=p1 pgiam add` signs with p1, records it, and a refresh without AWS_PROFILE still signs with p1."""
    w = aws_world(tmp_path)
    add(w, "envp", env=dict(w.env, AWS_PROFILE="p1"))
    assert 'profile = "p1"' in (w.home / ".config" / "pgiam" / "config.toml").read_text()
    assert pgpass_key_ids(w) == {P1_KEY}
    (w.home / ".pgpass").unlink()
    w.pgiam("refresh", "envp")  # no AWS_PROFILE now, as in a timer
    assert pgpass_key_ids(w) == {P1_KEY}
    assert "profile p1" in w.pgiam("status").stdout
    assert state(w)["envp"]["profile"] == "p1"


def test_defaults_profile_is_read_live_and_signs_at_add_too(tmp_path: Path) -> None:
    """[defaults] profile signs the add's first token and, changed later, the next refresh."""
    w = aws_world(tmp_path)
    cfg = w.home / ".config" / "pgiam" / "config.toml"
    cfg.parent.mkdir(parents=True)
    cfg.write_text('[defaults]\nprofile = "p1"\n')
    add(w, "prod")
    assert pgpass_key_ids(w) == {P1_KEY}
    assert state(w)["prod"]["profile"] == "p1"
    cfg.write_text(cfg.read_text().replace('profile = "p1"', 'profile = "p2"'))
    w.pgiam("refresh", "prod")
    assert pgpass_key_ids(w) == {P2_KEY}
    assert "profile p2" in w.pgiam("status").stdout


def test_keys_from_environment_variables_warn_at_add(tmp_path: Path) -> None:
    """Env keys sign the add, but timers and other shells will not have them: say so and name the fix."""
    w = aws_world(tmp_path)
    env = dict(w.env, AWS_ACCESS_KEY_ID=P1_KEY, AWS_SECRET_ACCESS_KEY=SECRET)
    p = add(w, "prod", env=env)
    assert "AWS_ACCESS_KEY_ID" in p.stderr and "timers" in p.stderr
    assert "aws configure --profile NAME" in p.stderr and "--profile NAME" in p.stderr
    quiet = add(w, "other", "--profile", "p1", "--port", "5433")  # its own ~/.pgpass line (issue 20)
    assert "AWS_ACCESS_KEY_ID" not in quiet.stderr


# ---------------------------------------------------------------- configuration errors (exit 3)


def test_unknown_profile_exits_3_and_a_failed_add_saves_nothing_nor_points_at_refresh(tmp_path: Path) -> None:
    w = aws_world(tmp_path)
    p = add(w, "prod", "--profile", "nosuch", check=False)
    assert p.returncode == 3, p.stderr
    assert "nosuch" in p.stderr and str(w.home / ".aws" / "config") in p.stderr
    assert "pgiam refresh prod" not in p.stderr and "the same `pgiam add` again" in p.stderr
    assert not (w.home / ".config" / "pgiam" / "config.toml").exists()


def test_unparsable_aws_config_exits_3_naming_the_file(tmp_path: Path) -> None:
    w = aws_world(tmp_path)
    add(w, "prod", "--profile", "p1", "--no-refresh")
    (w.home / ".aws" / "config").write_text("[profile broken\nregion = us-east-1\n  = x\n")
    p = w.pgiam("refresh", "prod", check=False)
    assert p.returncode == 3, p.stderr
    assert str(w.home / ".aws" / "config") in p.stderr
    assert state(w)["prod"]["code"] == 3


# ---------------------------------------------------------------- credential_process (exit 4)


def _process_profile(w: World, name: str, command: str) -> None:
    with (w.home / ".aws" / "config").open("a") as f:
        f.write(f"\n[profile {name}]\ncredential_process = {command}\n")


def _script(w: World, name: str, body: str) -> str:
    path = w.home / name
    path.write_text(f"#!{sys.executable}\nimport json, sys\n{body}\n")
    path.chmod(0o755)
    return str(path)


PROCESS_CASES = {
    "garbage": ("print('this is not json')", "did not print JSON"),
    "fails": (f"sys.stderr.write('denied for {LEAK_KEY} secret {LEAK_SECRET} token {LEAK_TOKEN}\\n'); sys.exit(1)",
              "credential_process failed: denied for [redacted]"),
    "expired": ("print(json.dumps({'Version': 1, 'AccessKeyId': 'ASIAPGIAMTESTEXAMPL1', 'SecretAccessKey': 'x' * 40, "
                "'SessionToken': 'tok', 'Expiration': '2020-01-01T00:00:00Z'}))", "already expired"),
    "noversion": ("print(json.dumps({'AccessKeyId': 'x'}))", "credential_process failed"),
}


@pytest.mark.parametrize("case", sorted(PROCESS_CASES))
def test_credential_process_failures_exit_4_recorded_scrubbed_and_noticed(tmp_path: Path, case: str) -> None:
    body, expected = PROCESS_CASES[case]
    w = aws_world(tmp_path)
    _process_profile(w, "proc", _script(w, "helper.py", body))
    add(w, "prod", "--profile", "proc", "--no-refresh")
    p = w.pgiam("refresh", "--if-needed", check=False)
    assert p.returncode == 4, p.stderr
    assert expected in p.stderr
    assert "aws configure get credential_process --profile proc" in p.stderr
    assert "aws sso login" not in p.stderr and "Traceback" not in p.stderr
    st = state(w)["prod"]
    assert st["code"] == 4 and st["error"]
    assert "last error" in w.pgiam("status").stdout
    seen = p.stderr + json.dumps(st) + notice(w) + w.pgiam("status", "--json").stdout
    for secret in (LEAK_KEY, LEAK_SECRET, LEAK_TOKEN[:40]):
        assert secret not in seen


def test_credential_process_program_missing_exits_4(tmp_path: Path) -> None:
    w = aws_world(tmp_path)
    _process_profile(w, "proc", str(w.home / "no-such-helper"))
    add(w, "prod", "--profile", "proc", "--no-refresh")
    p = w.pgiam("refresh", "prod", check=False)
    assert p.returncode == 4, p.stderr
    assert "cannot be run" in p.stderr and "no-such-helper" in p.stderr
    assert state(w)["prod"]["code"] == 4


def test_a_working_credential_process_signs(tmp_path: Path) -> None:
    """The control case for the failures above: the same fixture with good output works."""
    w = aws_world(tmp_path)
    later = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 3600))
    _process_profile(w, "proc", _script(w, "helper.py", f"print(json.dumps({{'Version': 1, 'AccessKeyId': '{P2_KEY}', "
                                                          f"'SecretAccessKey': '{SECRET}', 'Expiration': '{later}'}}))"))
    add(w, "prod", "--profile", "proc")
    assert pgpass_key_ids(w) == {P2_KEY}


# ---------------------------------------------------------------- SSO (exit 4, `aws sso login` only here)


def _sso_cache(w: World, expires: str) -> None:
    import hashlib

    d = w.home / ".aws" / "sso" / "cache"
    d.mkdir(parents=True, exist_ok=True)
    url = "https://pgiam-test.awsapps.com/start"
    (d / (hashlib.sha1(url.encode()).hexdigest() + ".json")).write_text(json.dumps(
        {"startUrl": url, "region": "us-east-1", "accessToken": "dummy-sso-access-token", "expiresAt": expires}))


@pytest.mark.parametrize("cache", ["missing", "expired"])
@pytest.mark.parametrize("profile", ["ssoprof", "ssorole"])
def test_sso_session_missing_or_expired_exits_4_with_sso_login_hint(tmp_path: Path, cache: str, profile: str) -> None:
    """The hint names the SSO profile, also for a role whose source profile is the SSO one."""
    w = aws_world(tmp_path)
    if cache == "expired":
        _sso_cache(w, "2020-01-01T00:00:00Z")
    add(w, "prod", "--profile", profile, "--no-refresh")
    p = w.pgiam("refresh", "prod", check=False)
    assert p.returncode == 4, p.stderr
    assert "SSO session of profile ssoprof is missing or expired" in p.stderr
    assert "aws sso login --profile ssoprof" in p.stderr
    assert state(w)["prod"]["code"] == 4


def test_a_failed_add_with_sso_hints_at_add_not_refresh(tmp_path: Path) -> None:
    w = aws_world(tmp_path)
    p = add(w, "prod", "--profile", "ssoprof", check=False)
    assert p.returncode == 4, p.stderr
    assert "aws sso login --profile ssoprof" in p.stderr
    assert "pgiam refresh" not in p.stderr and "the same `pgiam add` again" in p.stderr


# ---------------------------------------------------------------- networks (exit 8, bounded time)


@contextlib.contextmanager
def silent_server() -> Iterator[str]:
    """A TCP server that accepts every connection and never answers: a captive portal, a stuck proxy."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(64)
    conns: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        srv.settimeout(0.2)
        while not stop.is_set():
            with contextlib.suppress(OSError):
                conns.append(srv.accept()[0])

    t = threading.Thread(target=accept, daemon=True)
    t.start()
    try:
        yield f"http://127.0.0.1:{srv.getsockname()[1]}"
    finally:
        stop.set()
        t.join()
        for c in conns:
            c.close()
        srv.close()


def test_an_endpoint_that_never_answers_gives_up_within_15_s_with_exit_8(tmp_path: Path) -> None:
    """Three services behind one silent STS: one timeout for all of them, not three."""
    with silent_server() as url:
        w = aws_world(tmp_path, url)
        for n in ("prod", "prod2", "prod3"):
            add(w, n, "--profile", "dbrole", "--no-refresh", host=f"{n}.cluster-abc123.us-west-2.rds.amazonaws.com")
        start = time.monotonic()
        p = w.pgiam("refresh", check=False)
        took = time.monotonic() - start
    assert p.returncode == 8, p.stderr
    assert took < 15, took
    assert "did not answer" in p.stderr and "check the network" in p.stderr
    assert "aws sso login" not in p.stderr
    assert [state(w)[n]["code"] for n in ("prod", "prod2", "prod3")] == [8, 8, 8]
    assert "did not answer" in notice(w)


def test_an_sso_endpoint_that_never_answers_gives_up_within_15_s_with_exit_8(tmp_path: Path) -> None:
    """A valid SSO token, but the SSO portal hangs (a laptop waking behind a captive portal)."""
    with silent_server() as url:
        w = aws_world(tmp_path)
        w.env["AWS_ENDPOINT_URL_SSO"] = url
        _sso_cache(w, time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 3600)))
        add(w, "prod", "--profile", "ssoprof", "--no-refresh")
        start = time.monotonic()
        p = w.pgiam("refresh", "prod", check=False)
        took = time.monotonic() - start
    assert p.returncode == 8, p.stderr
    assert took < 15, took
    assert "did not answer" in p.stderr and "aws sso login" not in p.stderr


def test_a_refused_port_exits_8_with_a_network_hint(tmp_path: Path) -> None:
    w = aws_world(tmp_path, f"http://127.0.0.1:{closed_port()}")
    add(w, "prod", "--profile", "dbrole", "--no-refresh")
    p = w.pgiam("refresh", "prod", check=False)
    assert p.returncode == 8, p.stderr
    assert "cannot reach" in p.stderr and "check the network" in p.stderr
    assert state(w)["prod"]["code"] == 8
    a = add(w, "other", "--profile", "dbrole", check=False)
    assert a.returncode == 8 and "the same `pgiam add` again" in a.stderr


# ---------------------------------------------------------------- the scrubber itself


def test_scrub_removes_key_like_text_and_shortens() -> None:
    from pgiam.awserrors import scrub

    text = f"error: key {LEAK_KEY} secret {LEAK_SECRET}\ntoken={LEAK_TOKEN} \x1b[31m" + "x " * 300
    out = scrub(text)
    assert LEAK_KEY not in out and LEAK_SECRET not in out and LEAK_TOKEN[:32] not in out
    assert "\n" not in out and "\x1b" not in out and len(out) <= 200
    assert scrub("exit status 1: permission denied") == "exit status 1: permission denied"
    path = "/tmp/pytest-of-root/pytest-33/test_credential_process_progra0/home/no-such-helper"
    assert scrub(path) == path


@pytest.mark.parametrize("profile", ["proc", "procrole"])
def test_a_credential_process_that_hangs_is_stopped(profile: str, home: Path, run_cli, ca_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    """botocore waits for a helper forever; pgiam stops it (own profile or a role's source) with exit 4.

    In-process, so the time limit can be shortened from its 120 s; the helper is a real process.
    """
    from pgiam import awscreds

    monkeypatch.setattr(awscreds, "PROCESS_TIMEOUT", 1.0)
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    helper = home / "hang.py"
    helper.write_text(f"#!{sys.executable}\nimport time\ntime.sleep(60)\n")
    helper.chmod(0o755)
    (home / ".aws").mkdir()
    (home / ".aws" / "config").write_text(
        f"[profile proc]\ncredential_process = {helper}\n\n"
        "[profile procrole]\nrole_arn = arn:aws:iam::123456789012:role/db\nsource_profile = proc\n")
    assert run_cli("add", "prod", "--host", HOST, "--user", "alice", "--sslrootcert", str(ca_file),
                   "--profile", profile, "--no-refresh")[0] == 0
    start = time.monotonic()
    code, _, err = run_cli("refresh", "prod")
    assert code == 4, err
    assert time.monotonic() - start < 30
    assert "did not finish within 1 s" in err and "credential_process --profile proc" in err


def test_a_tls_failure_exits_8_with_a_network_hint(tmp_path: Path) -> None:
    """An endpoint whose certificate does not verify (a proxy or captive portal intercepting HTTPS)."""
    import ssl
    import subprocess

    openssl = require_tool("openssl")
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run([openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert),
                    "-days", "1", "-subj", "/CN=127.0.0.1"], check=True, capture_output=True)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(8)
    stop = threading.Event()

    def serve() -> None:
        srv.settimeout(0.2)
        while not stop.is_set():
            try:
                conn = srv.accept()[0]
            except OSError:
                continue
            with contextlib.suppress(OSError, ssl.SSLError):
                conn.settimeout(5)
                ctx.wrap_socket(conn, server_side=True).close()  # the client refuses the certificate
            conn.close()

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    try:
        w = aws_world(tmp_path, f"https://127.0.0.1:{srv.getsockname()[1]}")
        add(w, "prod", "--profile", "dbrole", "--no-refresh")
        p = w.pgiam("refresh", "prod", check=False)
    finally:
        stop.set()
        t.join()
        srv.close()
    assert p.returncode == 8, p.stderr
    assert "TLS failed" in p.stderr and "captive portal" in p.stderr
    assert state(w)["prod"]["code"] == 8


@contextlib.contextmanager
def sts_answering(status: int, code: str, message: str) -> Iterator[str]:
    """An STS stand-in that answers every call with one error, as AWS words it."""
    body = (f'<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><Error><Type>Sender</Type>'
            f"<Code>{code}</Code><Message>{message}</Message></Error><RequestId>1</RequestId></ErrorResponse>").encode()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            self.send_response(status)
            self.send_header("Content-Type", "text/xml")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    srv = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    try:
        yield f"http://127.0.0.1:{srv.server_address[1]}"
    finally:
        srv.shutdown()
        srv.server_close()


def test_expired_source_credentials_exit_4_with_what_aws_said(tmp_path: Path) -> None:
    with sts_answering(403, "ExpiredToken", "The security token included in the request is expired") as url:
        w = aws_world(tmp_path, url)
        add(w, "prod", "--profile", "dbrole", "--no-refresh")
        p = w.pgiam("refresh", "prod", check=False)
    assert p.returncode == 4, p.stderr
    assert "the credentials have expired (AssumeRole: ExpiredToken)" in p.stderr
    assert "aws sts get-caller-identity --profile dbrole" in p.stderr and "aws sso login" not in p.stderr
    assert state(w)["prod"]["code"] == 4


def test_an_sts_outage_is_a_network_failure(tmp_path: Path) -> None:
    with sts_answering(503, "ServiceUnavailable", "try later") as url:
        w = aws_world(tmp_path, url)
        add(w, "prod", "--profile", "dbrole", "--no-refresh")
        p = w.pgiam("refresh", "prod", check=False)
    assert p.returncode == 8, p.stderr
    assert "ServiceUnavailable" in p.stderr and "check the network" in p.stderr
