"""`pgiam run` as a service manager runs it (issue 16): a real subprocess, a stand-in NOTIFY_SOCKET,
botocore's own container credential provider served from 127.0.0.1, psql against the sandbox.

Everything synchronises on events (datagrams, log lines, HTTP requests, /proc's pending signals),
never on a sleep.
"""

from __future__ import annotations

import datetime
import json
import os
import queue
import secrets
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from pgiam import freshness, pgpass, tokeninfo
from tests.awsfake import credential_profiles
from tests.e2e.conftest import World
from tests.e2e.test_psql import info, sandbox_keys

pytestmark = pytest.mark.e2e

CRED_LIFE = 120  # the credential source hands out credentials that expire in two minutes


@dataclass
class CredServer:
    """An ECS/EKS-style container credential endpoint (AWS_CONTAINER_CREDENTIALS_FULL_URI) on 127.0.0.1."""

    access: str
    secret: str
    auth: str
    requests: list[float] = field(default_factory=list)
    refused: int = 0
    hold: threading.Event = field(default_factory=threading.Event)  # hold the next request ...
    arrived: threading.Event = field(default_factory=threading.Event)  # ... tell the test it arrived ...
    release: threading.Event = field(default_factory=threading.Event)  # ... and wait for this
    expirations: list[float] = field(default_factory=list)

    def handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class H(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.headers.get("Authorization") != server.auth:
                    server.refused += 1
                    self.send_response(401)
                    self.end_headers()
                    return
                if server.hold.is_set():
                    server.hold.clear()
                    server.arrived.set()
                    server.release.wait(30)
                now = time.time()
                server.requests.append(now)
                expiry = int(now) + CRED_LIFE
                server.expirations.append(expiry)
                body = json.dumps({
                    "AccessKeyId": server.access, "SecretAccessKey": server.secret,
                    "Token": "session-" + secrets.token_hex(8),
                    "Expiration": datetime.datetime.fromtimestamp(expiry, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
                }).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        return H


@pytest.fixture
def creds(world: World, tmp_path: Path) -> Iterator[tuple[CredServer, dict[str, str]]]:
    access, secret = sandbox_keys(world)
    auth = "pgiam-test-" + secrets.token_hex(8)
    cs = CredServer(access, secret, auth)
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), cs.handler())
    t = threading.Thread(target=httpd.serve_forever, daemon=True)
    t.start()
    token_file = tmp_path / "eks-pod-identity-token"
    token_file.write_text(auth)
    env = {"AWS_CONTAINER_CREDENTIALS_FULL_URI": f"http://127.0.0.1:{httpd.server_address[1]}/v1/credentials",
           "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE": str(token_file)}
    try:
        yield cs, env
    finally:
        cs.release.set()
        httpd.shutdown()
        httpd.server_close()


@dataclass
class Pod:
    """A headless layout: config from a ConfigMap-style symlink, outputs and state in a shared volume."""

    config: Path
    shared: Path
    env: dict[str, str]

    @property
    def pgpass(self) -> Path:
        return self.shared / "pgpass"

    @property
    def service_file(self) -> Path:
        return self.shared / "pg_service.conf"

    def token(self) -> str:
        (tok,) = pgpass.parse_tokens(self.pgpass.read_text()).values()
        return tok

    def psql(self, service: str = "app") -> subprocess.CompletedProcess[str]:
        e = {k: v for k, v in self.env.items() if not k.startswith("AWS_")}
        return subprocess.run(["psql", f"service={service}", "-XAtqc", "select current_user"],
                              env=dict(e, PGCONNECT_TIMEOUT="10"), capture_output=True, text=True, timeout=60,
                              stdin=subprocess.DEVNULL)


def make_pod(world: World, tmp_path: Path, extra_env: dict[str, str], config_text: str | None = None) -> Pod:
    i = info(world)
    host = i["endpoint"].rsplit(":", 1)[0]
    # A ConfigMap mount: config.toml -> ..data/config.toml -> ..2026_11_30/config.toml
    cm = tmp_path / "configmap"
    (cm / "..2026_11_30").mkdir(parents=True)
    (cm / "..2026_11_30" / "config.toml").write_text(config_text or f"""\
[services.app]
host = "{host}"
port = 5432
user = "pgiam_sandbox"
dbname = "postgres"
region = "us-east-1"
via = "127.0.0.1:{i['local_port']}"
sslrootcert = "{i['ca_file']}"
""")
    (cm / "..data").symlink_to("..2026_11_30")
    (cm / "config.toml").symlink_to("..data/config.toml")
    shared = tmp_path / "shared"
    shared.mkdir()
    os.chmod(shared, 0o1777)  # an emptyDir is world-writable
    env = {k: v for k, v in world.env.items() if not k.startswith(("XDG_", "AWS_"))}
    env.update(HOME=str(tmp_path / "no-such-home"), PGIAM_CONFIG=str(cm / "config.toml"), PGIAM_STATE_DIR=str(shared),
               PGPASSFILE=str(shared / "pgpass"), PGSERVICEFILE=str(shared / "pg_service.conf"),
               AWS_EC2_METADATA_DISABLED="true", **extra_env)
    return Pod(cm / "config.toml", shared, env)


class NotifySocket:
    """A stand-in for systemd's notification socket (abstract namespace, as systemd itself uses)."""

    def __init__(self, path: Path | None = None) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        if path is None:
            self.name = f"@pgiam-test-{os.getpid()}-{secrets.token_hex(4)}"
            self.sock.bind(b"\0" + self.name[1:].encode())
        else:  # a socket file, as NOTIFY_SOCKET=/run/systemd/notify
            self.name = str(path)
            self.sock.bind(self.name)

    def until(self, key: str, timeout: float) -> dict[str, str]:
        """The next message carrying `key` (e.g. READY); fails after `timeout` seconds without one."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no {key}= message from pgiam run in {timeout} s")
            self.sock.settimeout(left)
            msg = self.sock.recv(4096).decode()
            fields = dict(line.split("=", 1) for line in msg.splitlines())
            if key in fields:
                return fields

    def close(self) -> None:
        self.sock.close()


class Log:
    """pgiam run's stderr, line by line, read by a thread; wait for a line by its content."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.lines: list[str] = []
        self.q: queue.Queue[str | None] = queue.Queue()
        assert proc.stderr is not None
        stream = proc.stderr

        def pump() -> None:
            for line in stream:
                self.lines.append(line)
                self.q.put(line)
            self.q.put(None)

        threading.Thread(target=pump, daemon=True).start()

    def until(self, needle: str, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self.q.get(timeout=max(0.01, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError(f"no log line with {needle!r} in {timeout} s:\n{''.join(self.lines)}") from None
            if line is None:
                raise AssertionError(f"pgiam run ended before logging {needle!r}:\n{''.join(self.lines)}")
            if needle in line:
                return line


def start(pod: Pod, notify: NotifySocket | None, *argv: str) -> subprocess.Popen[str]:
    env = dict(pod.env, **({"NOTIFY_SOCKET": notify.name} if notify else {}))
    return subprocess.Popen([sys.executable, "-m", "pgiam", "run", *argv], env=env, stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def signal_delivered(pid: int, sig: int, timeout: float = 10) -> None:
    """Wait until `sig` is no longer pending for `pid` (the kernel handed it to the process)."""
    bit = 1 << (sig - 1)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = Path(f"/proc/{pid}/status").read_text()
        pending = [int(line.split()[1], 16) for line in status.splitlines() if line.startswith(("SigPnd:", "ShdPnd:"))]
        if not any(p & bit for p in pending):
            return
        time.sleep(0.001)
    raise AssertionError(f"signal {sig} still pending for pid {pid}")


def test_ready_renews_before_short_credentials_expire_and_stops_cleanly(
        world: World, tmp_path: Path, creds: tuple[CredServer, dict[str, str]]) -> None:
    """The issue's done-when: READY=1 after a token psql accepts; renewed before two-minute credentials
    expire; SIGTERM during a renewal lets it finish and exits 0 with both files intact."""
    cs, cred_env = creds
    pod = make_pod(world, tmp_path, cred_env)
    notify = NotifySocket()
    proc = start(pod, notify)
    log = Log(proc)
    try:
        ready = notify.until("READY", timeout=60)
        assert ready["READY"] == "1" and "1 of 1 service(s) fresh" in ready["STATUS"]
        p = pod.psql()
        assert p.returncode == 0, p.stderr
        assert p.stdout.strip() == "pgiam_sandbox"
        t1 = tokeninfo.decode(pod.token())
        assert t1.session_token  # signed with the container provider's temporary credentials
        first_expiry = max(cs.expirations)
        state = json.loads((pod.shared / "pgiam" / "state.json").read_text())["services"]["app"]
        assert state["expires"] <= first_expiry <= t1.signed_at + CRED_LIFE + 1  # the credentials end it, not 900 s
        assert stat.S_IMODE(os.stat(pod.shared / "pgiam").st_mode) == 0o700
        assert stat.S_IMODE(os.stat(pod.pgpass).st_mode) == 0o600

        # One renewal proves both claims: it comes before the credentials that signed t1 expire (half-way
        # through their two minutes, less the jitter), and a SIGTERM arriving while it fetches credentials
        # lets its write finish, then exit 0. (Renewal after renewal on short credentials, under load, is
        # tests/e2e/test_pgbouncer.py's three rotations.)
        log.until("app: renewed", timeout=30)  # the first write
        # No spinning: the credential fetches of the first mint come in one burst (botocore refreshes
        # credentials that are inside its 15-minute advisory window each time they are read: two or three
        # per mint), and nothing more until the renewal, no sooner than MIN_INTERVAL after t1 was signed.
        before = len(cs.requests)
        assert 1 <= before <= 3 and cs.requests[-1] - cs.requests[0] <= 5, cs.requests
        cs.hold.set()
        assert cs.arrived.wait(CRED_LIFE), "the daemon never came back for new credentials"
        came_back = time.time()
        assert len(cs.requests) == before, cs.requests
        assert t1.signed_at + freshness.MIN_INTERVAL <= came_back < state["expires"], (t1.signed_at, came_back)
        proc.send_signal(signal.SIGTERM)
        signal_delivered(proc.pid, signal.SIGTERM)
        cs.release.set()
        assert proc.wait(60) == 0
        assert before < len(cs.requests) <= before + 3
        t2 = tokeninfo.decode(pod.token())
        assert t2.signed_at > t1.signed_at
        assert t2.signed_at < state["expires"], "renewed only after the credentials had expired"
        assert "[app]" in pod.service_file.read_text()
        p = pod.psql()
        assert p.returncode == 0, p.stderr
        assert proc.stdout is not None and proc.stdout.read() == ""
        log.until("stopping (SIGTERM)", timeout=10)
        err = "".join(log.lines)
        stop = next(i for i, line in enumerate(log.lines) if "stopping (SIGTERM)" in line)
        assert "app: renewed" in log.lines[stop - 1]  # the renewal in progress was written first
        assert sum("app: renewed" in line for line in log.lines) == 2
        for secret in (pod.token(), cs.secret, cs.auth, "X-Amz-Signature", "session-"):
            assert secret not in err
        assert all(line.startswith("pgiam: ") for line in log.lines)
        assert cs.refused == 0
    finally:
        notify.close()
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_invalid_config_at_start_is_an_exit_not_a_loop(world: World, tmp_path: Path) -> None:
    pod = make_pod(world, tmp_path, {}, config_text="[services.app]\nhost = \n")
    p = subprocess.run([sys.executable, "-m", "pgiam", "run"], env=pod.env, capture_output=True, text=True,
                       timeout=60, stdin=subprocess.DEVNULL)
    assert p.returncode == 3, p.stderr
    assert str(pod.config) in p.stderr and p.stderr.startswith("pgiam: ")
    assert not pod.pgpass.exists()


def test_sighup_rereads_the_config(world: World, tmp_path: Path, creds: tuple[CredServer, dict[str, str]]) -> None:
    """A second service added to the ConfigMap is written after SIGHUP, without a restart; WATCHDOG=1 pings."""
    cs, cred_env = creds
    pod = make_pod(world, tmp_path, cred_env)
    notify = NotifySocket()
    pod.env["WATCHDOG_USEC"] = "400000"  # systemd's WatchdogSec=0.4s: a ping every 0.2 s
    proc = start(pod, notify)
    log = Log(proc)
    try:
        notify.until("READY", timeout=60)
        assert notify.until("WATCHDOG", timeout=10)["WATCHDOG"] == "1"
        target = pod.config.resolve()
        target.write_text(target.read_text() + target.read_text().replace("[services.app]", "[services.app2]"))
        proc.send_signal(signal.SIGHUP)
        log.until("reloaded", timeout=30)
        log.until("app2: renewed", timeout=60)
        assert "[app2]" in pod.service_file.read_text()
        p = pod.psql("app2")
        assert p.returncode == 0, p.stderr
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 0
    finally:
        notify.close()
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_failed_bundle_download_never_stops_token_renewal(world: World, tmp_path: Path,
                                                         creds: tuple[CredServer, dict[str, str]]) -> None:
    """A managed CA bundle a week old is checked; its download fails; tokens are still written and READY sent."""
    cs, cred_env = creds
    i = info(world)
    host = i["endpoint"].rsplit(":", 1)[0]
    shared_pgiam = tmp_path / "shared" / "pgiam"
    bundle = shared_pgiam / "certs" / "rds-aws.pem"
    config = f"""\
[services.app]
host = "{host}"
port = 5432
user = "pgiam_sandbox"
dbname = "postgres"
region = "us-east-1"
via = "127.0.0.1:{i['local_port']}"
sslrootcert = "{bundle}"
"""
    pod = make_pod(world, tmp_path, cred_env, config_text=config)
    bundle.parent.mkdir(parents=True, mode=0o700)
    os.chmod(shared_pgiam, 0o700)
    bundle.write_bytes(Path(i["ca_file"]).read_bytes())  # the sandbox CA stands in for the RDS bundle
    week_ago = time.time() - 8 * 24 * 3600
    os.utime(bundle, (week_ago, week_ago))
    with socket.socket() as s:  # a port nobody listens on: the download fails at once
        s.bind(("127.0.0.1", 0))
        dead = s.getsockname()[1]
    (bundle.parent / "sources.json").write_text(json.dumps({"version": 1, "sources": {"aws": f"https://127.0.0.1:{dead}/global-bundle.pem"}}))
    short = Path(tempfile.mkdtemp(prefix="pgiam-notify-", dir="/tmp"))  # sun_path holds 108 bytes
    notify = NotifySocket(short / "notify")
    proc = start(pod, notify)
    log = Log(proc)
    try:
        notify.until("READY", timeout=60)
        line = log.until("CA bundle", timeout=60)
        assert "keeping the current one" in line
        p = pod.psql()
        assert p.returncode == 0, p.stderr
        assert proc.poll() is None
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 0
    finally:
        notify.close()
        shutil.rmtree(short, ignore_errors=True)
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_web_identity_signs_with_sts_credentials(tmp_path: Path, moto_url: str) -> None:
    """IRSA: AWS_WEB_IDENTITY_TOKEN_FILE + AWS_ROLE_ARN through botocore's chain, against moto's STS."""
    from tests.e2e.conftest import make_world

    w = make_world(tmp_path / "home")
    shared = tmp_path / "shared"
    shared.mkdir()
    ca = tmp_path / "ca.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n")
    cfg = tmp_path / "config.toml"
    cfg.write_text(f'[services.app]\nhost = "db.cluster-abc.us-west-2.rds.amazonaws.com"\nuser = "app"\n'
                   f'sslrootcert = "{ca}"\n')
    jwt = tmp_path / "token"
    jwt.write_text("eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJzeXN0ZW06c2VydmljZWFjY291bnQ6YXBwOmFwcCJ9.c2ln")
    env = {k: v for k, v in w.env.items() if not k.startswith(("XDG_", "AWS_"))}
    env.update(HOME=str(tmp_path / "no-home"), PGIAM_CONFIG=str(cfg), PGIAM_STATE_DIR=str(shared),
               PGPASSFILE=str(shared / "pgpass"), PGSERVICEFILE=str(shared / "pg_service.conf"),
               AWS_WEB_IDENTITY_TOKEN_FILE=str(jwt), AWS_ROLE_ARN="arn:aws:iam::123456789012:role/app",
               AWS_ROLE_SESSION_NAME="pgiam-test", AWS_ENDPOINT_URL_STS=moto_url, AWS_DEFAULT_REGION="us-west-2",
               AWS_EC2_METADATA_DISABLED="true", AWS_CONFIG_FILE=str(tmp_path / "none"),
               AWS_SHARED_CREDENTIALS_FILE=str(tmp_path / "none"))
    p = subprocess.run([sys.executable, "-m", "pgiam", "run", "--once"], env=env, capture_output=True, text=True,
                       timeout=120, stdin=subprocess.DEVNULL)
    assert p.returncode == 0, p.stderr
    assert "app: renewed" in p.stderr
    (tok,) = pgpass.parse_tokens((shared / "pgpass").read_text()).values()
    t = tokeninfo.decode(tok)
    assert t.session_token and t.host == "db.cluster-abc.us-west-2.rds.amazonaws.com"
    assert "X-Amz-Credential=ASIA" in tok  # moto's temporary key, not a static one
    state = json.loads((shared / "pgiam" / "state.json").read_text())["services"]["app"]
    assert state["expires"] <= t.signed_at + 900
    assert tok not in p.stderr and tok not in p.stdout


# ---------------------------------------------------------------- probes and metrics (issue 23)

def scrape(url: str) -> tuple[int, str]:
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode()


def metric(page: str, name: str, **labels: str) -> float | None:
    from prometheus_client.parser import text_string_to_metric_families

    for fam in text_string_to_metric_families(page):
        for s in fam.samples:
            if s.name == name and s.labels == labels:
                return float(s.value)
    return None


def until(what: str, check: Callable[[], bool], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout} s: {what}")
        time.sleep(0.2)


def age_token(env: dict[str, str], name: str, seconds: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """Write `name`'s token as signed `seconds` ago, with pgiam's own refresh and botocore's clock moved back."""
    import datetime

    import botocore.auth

    from pgiam import refresh, token
    from pgiam.paths import Paths

    with monkeypatch.context() as m:
        for k in [k for k in os.environ if k.startswith(("AWS_", "PG"))]:
            m.delenv(k)
        for k, v in env.items():
            m.setenv(k, v)
        past = datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None) - datetime.timedelta(seconds=seconds)
        m.setattr(botocore.auth, "get_current_datetime", lambda *a, **k: past)
        res = refresh.refresh(Paths.from_env(), time.time(), token.mint, [name])
    assert [o.status for o in res.outcomes] == ["renewed"], res.outcomes


def test_probes_and_metrics_during_a_run_with_a_failing_source_and_an_expiring_token(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 23's done-when: /startup, /liveness, /readiness and /metrics scraped during a real `pgiam run
    --http`. Three services: `steady` (keys that never expire: no credentials gauge), `flaky` (two-minute
    credentials from a credential_process that fails until a file is removed: no token, /startup 503, then
    SIGHUP and a token), `old` (a token signed 850 s ago, 50 s left, whose source keeps failing: the token
    runs out unrenewed and /readiness names it). Failed mints are counted by class; no secret in any
    answer or in the log."""
    from tests.conftest import ACCESS_KEY, SECRET_KEY

    life = 600
    aws = credential_profiles(tmp_path, {"steady": None, "flaky": life, "old": None}, ACCESS_KEY, SECRET_KEY)
    ca = tmp_path / "ca.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n")
    cfg = tmp_path / "config.toml"
    cfg.write_text("".join(f'[services.{n}]\nhost = "{n}.cluster-abc.us-west-2.rds.amazonaws.com"\nuser = "app"\n'
                           f'profile = "{n}"\nsslrootcert = "{ca}"\n\n' for n in ("steady", "flaky", "old")))
    shared = tmp_path / "shared"
    shared.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "PG"))}
    env.update(PGIAM_CONFIG=str(cfg), PGIAM_STATE_DIR=str(shared), PGPASSFILE=str(shared / "pgpass"),
               PGSERVICEFILE=str(shared / "pg_service.conf"), AWS_CONFIG_FILE=str(aws),
               AWS_SHARED_CREDENTIALS_FILE=str(tmp_path / "none"), AWS_EC2_METADATA_DISABLED="true")
    age_token(env, "old", 850, monkeypatch)  # a token made to expire: 50 s left
    (tmp_path / "old" / "fail").touch()  # ... and its source down for good
    fail = tmp_path / "flaky" / "fail"
    fail.touch()  # the flaky source is down at the start
    proc = subprocess.Popen([sys.executable, "-m", "pgiam", "run", "--http", "127.0.0.1:0"], env=env,
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    log = Log(proc)
    try:
        line = log.until("serving /startup", timeout=60)
        base = line.rsplit(" ", 1)[1].strip()
        assert base.startswith("http://127.0.0.1:")
        bodies: list[str] = []

        def get(path: str) -> tuple[int, str]:
            code, body = scrape(base + path)
            bodies.append(body)
            return code, body

        until("the first pass", lambda: (metric(get("/metrics")[1], "pgiam_passes_total") or 0) >= 1, 60)
        assert get("/startup") == (503, "starting: no token yet for flaky\n")
        code, body = get("/readiness")
        assert code == 503 and body.startswith("not ready: flaky (no token), old (token valid for ")
        assert body.endswith(" s; renewal failing, auth)\n") and "steady" not in body
        assert get("/liveness") == (200, "alive\n")
        page = get("/metrics")[1]
        assert metric(page, "pgiam_mints_total", service="flaky", result="auth") == 1
        assert metric(page, "pgiam_mints_total", service="flaky", result="ok") == 0
        assert metric(page, "pgiam_mints_total", service="old", result="auth") == 1
        assert metric(page, "pgiam_mints_total", service="steady", result="ok") == 1
        assert 800 < (metric(page, "pgiam_token_seconds_left", service="steady") or 0) <= 900
        assert 0 < (metric(page, "pgiam_token_seconds_left", service="old") or 0) <= 50
        assert metric(page, "pgiam_token_seconds_left", service="flaky") is None
        assert metric(page, "pgiam_credentials_seconds_left", service="steady") is None  # keys that never expire
        assert metric(page, "pgiam_credentials_seconds_left", service="flaky") is None  # nothing minted yet
        assert metric(page, "pgiam_ready") == 0

        # The flaky source comes back; SIGHUP makes the loop try at once (a missing token is not held by the backoff).
        fail.unlink()
        proc.send_signal(signal.SIGHUP)
        until("/startup 200", lambda: get("/startup")[0] == 200, 60)
        code, body = get("/readiness")
        assert code == 503 and body.startswith("not ready: old (token ") and "flaky" not in body
        page = get("/metrics")[1]
        assert metric(page, "pgiam_mints_total", service="flaky", result="ok") == 1
        assert metric(page, "pgiam_mints_total", service="flaky", result="auth") == 1
        assert metric(page, "pgiam_mints_total", service="old", result="auth") == 1  # backing off, not retried at once
        assert life - 60 < (metric(page, "pgiam_credentials_seconds_left", service="flaky") or 0) <= life
        assert life - 60 < (metric(page, "pgiam_token_seconds_left", service="flaky") or 0) <= life  # the credentials end it
        assert metric(page, "pgiam_credentials_seconds_left", service="steady") is None
        assert (metric(page, "pgiam_last_success_timestamp_seconds", service="flaky") or 0) > time.time() - 60
        assert metric(page, "pgiam_last_success_timestamp_seconds", service="old") is None
        assert get("/liveness") == (200, "alive\n") and get("/nothing")[0] == 404

        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 0
        tokens = pgpass.parse_tokens((shared / "pgpass").read_text()).values()
        err = "".join(log.lines)
        for secret in (SECRET_KEY, "session-", "X-Amz-Signature", *tokens):
            assert all(secret not in b for b in bodies) and secret not in err
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
