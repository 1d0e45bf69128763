"""`pgiam doctor` and `pgiam status --check` against the sandbox, each fault made on purpose (issue 13).

Every cause in README's troubleshooting table is made to happen here and `pgiam doctor` must name it
with its fix; with nothing wrong it prints only `ok` lines and exits 0. The online checks run against
a real moto server behind a thin local stand-in that answers what moto lacks (IAM
SimulatePrincipalPolicy) and can shift the Date header (clock skew) or deny describe calls.
"""

from __future__ import annotations

import contextlib
import datetime
import email.utils
import fnmatch
import hashlib
import json
import os
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from pgiam import pgpass
from tests.awsfake import env_for, free_port, reset
from tests.e2e.conftest import World, make_world
from tests.e2e.test_psql import add_sandbox_like, botocore_token, info, sandbox_env

pytestmark = pytest.mark.e2e

HOST = "sandbox.cluster-pgiam.us-east-1.rds.amazonaws.com"


def doctor(world: World, *argv: str, env: dict[str, str] | None = None) -> tuple[int, dict[str, Any]]:
    p = world.pgiam("doctor", "--json", *argv, check=False, env=env)
    assert p.returncode in (0, 1), p.stderr
    return p.returncode, json.loads(p.stdout)


def checks(report: dict[str, Any], name: str | None = None) -> dict[str, list[dict[str, Any]]]:
    """Checks by id (an id may repeat), for one service or the global ones."""
    rows = report["checks"] if name is None else next(s for s in report["services"] if s["name"] == name)["checks"]
    out: dict[str, list[dict[str, Any]]] = {}
    for c in rows:
        out.setdefault(c["id"], []).append(c)
    return out


def failed(report: dict[str, Any], name: str) -> dict[str, dict[str, Any]]:
    return {c["id"]: c for c in next(s for s in report["services"] if s["name"] == name)["checks"] if c["status"] == "FAIL"}


@contextlib.contextmanager
def edited(path: Path, new_text: str, mode: int = 0o600) -> Iterator[None]:
    """Replace a file's text for the block, then put the exact old bytes and mode back."""
    old = path.read_bytes()
    old_mode = path.stat().st_mode & 0o777
    try:
        path.write_text(new_text)
        os.chmod(path, mode)
        yield
    finally:
        path.write_bytes(old)
        os.chmod(path, old_mode)


def with_token(world: World, token: str) -> str:
    """The sandbox's ~/.pgpass with its token replaced by `token`."""
    pg = world.home / ".pgpass"
    text = pg.read_text()
    tokens = pgpass.parse_tokens(text)
    key = next(k for k in tokens if k.user == "pgiam_sandbox" and k.host == HOST)
    tokens[key] = token
    return pgpass.merge(text, tokens)


def utc(offset: float) -> datetime.datetime:
    return datetime.datetime.fromtimestamp(time.time() + offset, datetime.timezone.utc)


# ---------------------------------------------------------------- nothing wrong


def test_healthy_sandbox_prints_only_ok_lines_and_exits_0(world: World) -> None:
    """Nothing wrong, nothing but `ok`. The test's HOME is a temp dir, not the passwd home: without the two
    variables env.home is a warning (issue 24), with them every client finds the files."""
    p = world.pgiam("doctor", "sandbox", check=False)
    assert p.returncode == 0, p.stdout + p.stderr
    warned = [ln for ln in p.stdout.splitlines() if ln.startswith("warn ")]
    assert len(warned) == 1 and " env.home: $HOME (" in warned[0], p.stdout
    env = dict(world.env, PGPASSFILE=f"{world.home}/.pgpass", PGSERVICEFILE=f"{world.home}/.pg_service.conf")
    p = world.pgiam("doctor", "sandbox", check=False, env=env)
    assert p.returncode == 0, p.stdout + p.stderr
    lines = [ln for ln in p.stdout.splitlines() if ln and ln != "no check failed"]
    assert lines and all(ln.startswith("ok ") for ln in lines), p.stdout
    assert any("login:" in ln for ln in lines) and any("tls.handshake:" in ln for ln in lines)
    token = next(iter(pgpass.parse_tokens((world.home / ".pgpass").read_text()).values()))
    assert token not in p.stdout and token not in p.stderr


def test_online_on_the_sandbox_asks_nothing_of_aws(world: World) -> None:
    """The sandbox's key is random and local: --online must not send it to AWS."""
    code, report = doctor(world, "sandbox", "--online")
    online_checks = [c for c in next(s for s in report["services"])["checks"] if c["id"].startswith("online.")]
    assert code == 0 and [c["id"] for c in online_checks] == ["online.skipped"]


def test_json_output_validates_against_its_schema(world: World) -> None:
    import jsonschema

    code, report = doctor(world, "sandbox")
    schema = json.loads((Path(__file__).resolve().parents[2] / "pgiam" / "schemas" / "doctor.schema.json").read_text())
    jsonschema.validate(report, schema)
    assert code == 0 and report["ok"] is True and report["command"] == "doctor"
    token = next(iter(pgpass.parse_tokens((world.home / ".pgpass").read_text()).values()))
    assert token not in json.dumps(report) and token.split("X-Amz-Signature=")[1] not in json.dumps(report)


# ---------------------------------------------------------------- environment and files


def test_pgpassword_set_is_named(world: World) -> None:
    code, report = doctor(world, "sandbox", env=dict(world.env, PGPASSWORD="not-a-token"))
    f = failed(report, "sandbox")
    assert code == 1
    assert f["env.PGPASSWORD"]["fix"] == "unset PGPASSWORD"
    assert "authentication failed" in f["login"]["message"] and "PGPASSWORD" in f["login"]["message"]


def test_environment_that_refuses_cleartext_is_named(world: World) -> None:
    """PGCHANNELBINDING=require applies to entries without channel_binding: the server's cleartext request is refused."""
    env = dict(world.env, PGCHANNELBINDING="require")
    assert world.psql("sandbox", env=env).returncode != 0
    code, report = doctor(world, "sandbox", env=env)
    f = failed(report, "sandbox")
    assert code == 1 and f["env.override"]["fix"] == "unset PGCHANNELBINDING"


def test_pgpassfile_elsewhere_than_pgiams_tokens_is_named(world: World, tmp_path: Path) -> None:
    """PGPASSFILE in this shell, while ~/.pgpass (where a timer without it writes) holds pgiam's block."""
    other = tmp_path / "pgpass"
    other.write_bytes((world.home / ".pgpass").read_bytes())
    os.chmod(other, 0o600)
    code, report = doctor(world, "sandbox", env=dict(world.env, PGPASSFILE=str(other)))
    c = checks(report, "sandbox")["env.files"][0]
    assert c["status"] == "warn" and f"PGPASSFILE={other}" in c["message"] and "PGPASSFILE" in c["fix"]
    assert code == 0  # the copy still works today; the warning is about tomorrow


def test_pgpass_0644_is_named(world: World) -> None:
    pg = world.home / ".pgpass"
    with edited(pg, pg.read_text(), mode=0o644):
        assert "group or world access" in world.psql("sandbox").stderr  # libpq really ignores it
        code, report = doctor(world, "sandbox")
    f = failed(report, "sandbox")
    assert code == 1 and "0644" in f["files.pgpass"]["message"]
    assert f["files.pgpass"]["fix"].startswith(f"chmod 600 {pg}")


def test_wildcard_line_above_pgiams_block_is_named_by_line_number(world: World) -> None:
    pg = world.home / ".pgpass"
    with edited(pg, "# mine\n*:*:*:pgiam_sandbox:hunter2\n" + pg.read_text()):
        assert world.psql("sandbox").returncode != 0
        code, report = doctor(world, "sandbox")
    f = failed(report, "sandbox")
    assert code == 1
    assert "line 2" in f["files.pgpass_line"]["message"] and "delete line 2" in f["files.pgpass_line"]["fix"]


def test_a_hand_section_above_pgiams_is_named(world: World) -> None:
    sf = world.home / ".pg_service.conf"
    with edited(sf, "[sandbox]\nhost=localhost\n\n" + sf.read_text()):
        code, report = doctor(world, "sandbox")
    f = failed(report, "sandbox")
    assert code == 1 and "line 1" in f["files.service"]["message"]


def test_key_unknown_to_the_detected_libpq_is_named(world: World) -> None:
    """README: `syntax error in service file`. sslnegotiation needs libpq 17; the sandbox's psql has 15."""
    sf = world.home / ".pg_service.conf"
    text = sf.read_text()
    assert "sslmode=verify-full\n" in text
    with edited(sf, text.replace("sslmode=verify-full\n", "sslmode=verify-full\nsslnegotiation=postgres\n", 1)):
        psql = world.psql("sandbox")
        code, report = doctor(world, "sandbox")
        major = int(checks(report)["libpq.version"][0]["message"].split()[1].split(".")[0])
        if major >= 17:
            pytest.fail("this test needs a libpq older than 17 (it relies on sslnegotiation being unknown)")
        assert "syntax error in service file" in psql.stderr
        f = failed(report, "sandbox")
        assert code == 1 and "sslnegotiation" in f["libpq.keys"]["message"]
        assert "syntax error in service file" in f["login"]["message"]
        assert f["libpq.keys"]["fix"].startswith("`pgiam refresh sandbox`")
        world.pgiam("refresh", "sandbox")  # the fix named: pgiam rewrites its own section
        assert world.psql("sandbox").returncode == 0


def test_libpq_that_cuts_pgpass_lines_is_named(world: World) -> None:
    """README: a libpq that cuts ~/.pgpass lines at 320 bytes (12.4 here, pinned with PGIAM_LIBPQ_VERSION)."""
    code, report = doctor(world, "sandbox", env=dict(world.env, PGIAM_LIBPQ_VERSION="12.4"))
    c = checks(report)["libpq.version"][0]
    assert code == 1 and c["status"] == "FAIL" and "319 bytes" in c["message"] and "upgrade libpq" in c["fix"]
    code, report = doctor(world, "sandbox", env=dict(world.env, PGIAM_LIBPQ_VERSION="12.5"))
    assert checks(report)["libpq.version"][0]["status"] == "ok"
    # libpq < 15 reads the passwd home, not $HOME (the test's HOME is a temp dir): named, with the exports.
    home = failed(report, "sandbox")["env.home"]
    assert code == 1 and home["fix"] == f"export PGPASSFILE={world.home}/.pgpass PGSERVICEFILE={world.home}/.pg_service.conf"
    env = dict(world.env, PGIAM_LIBPQ_VERSION="12.5", PGPASSFILE=f"{world.home}/.pgpass",
               PGSERVICEFILE=f"{world.home}/.pg_service.conf")
    code, report = doctor(world, "sandbox", env=env)
    assert code == 0, failed(report, "sandbox")


def test_cname_to_an_aws_endpoint_is_named() -> None:
    """README: token signed for a CNAME. The resolver is the edge faked here (no DNS server to point at)."""
    from pgiam.config import Service
    from pgiam.doctor import net

    svc = Service(name="prod", host="db.example.com", user="alice", region="us-east-1")
    aws_name = "prod.abc123.us-east-1.rds.amazonaws.com"
    t = net.Target("db.example.com", None, 5432, None)
    got, addrs = net.check_dns(svc, t, resolve=lambda h: (aws_name, ["db.example.com"], ["10.0.0.5"]))
    assert got[0].status == "FAIL" and aws_name in got[0].message and f"--host {aws_name}" in (got[0].fix or "")
    assert addrs == ["10.0.0.5"]
    got, _ = net.check_dns(svc, t, resolve=lambda h: ("db.example.com", [], ["10.0.0.5"]))
    assert got[0].status == "ok"


def test_lock_held_by_another_pgiam_is_named(world: World) -> None:
    """README: `another pgiam (pid N) holds the lock` (exit 6)."""
    from pgiam.fileio import NOWHERE, locked

    lock = world.home / ".local" / "state" / "pgiam" / "lock"
    with locked(lock, 0, scope=NOWHERE):
        code, report = doctor(world, "sandbox")
    c = checks(report)["pgiam.lock"][0]
    assert c["status"] == "warn" and f"pid {os.getpid()}" in c["message"] and f"ps -p {os.getpid()}" in c["fix"]
    assert code == 0  # a warning does not fail


# ---------------------------------------------------------------- the token


def test_expired_token_is_named(world: World) -> None:
    token = botocore_token(world, HOST, 5432, "pgiam_sandbox", at=utc(-1800))
    with edited(world.home / ".pgpass", with_token(world, token)):
        code, report = doctor(world, "sandbox")
    f = failed(report, "sandbox")
    assert code == 1 and "expired" in f["token.time"]["message"]
    assert f["token.time"]["fix"].startswith("pgiam refresh sandbox")
    assert "token.time" in f["login"]["message"] and f["login"]["fix"].startswith("pgiam refresh sandbox")


def test_future_dated_token_is_named(world: World) -> None:
    token = botocore_token(world, HOST, 5432, "pgiam_sandbox", at=utc(3600))
    with edited(world.home / ".pgpass", with_token(world, token)):
        code, report = doctor(world, "sandbox")
    f = failed(report, "sandbox")
    assert code == 1 and "ahead of this machine's clock" in f["token.time"]["message"]
    assert "clock" in f["token.time"]["fix"]


def test_token_for_the_wrong_port_is_named(world: World) -> None:
    """README: token signed for a CNAME or another port (here the tunnel's port instead of the endpoint's)."""
    token = botocore_token(world, HOST, info(world)["local_port"] and int(info(world)["local_port"]), "pgiam_sandbox")
    with edited(world.home / ".pgpass", with_token(world, token)):
        assert world.psql("sandbox").returncode != 0
        code, report = doctor(world, "sandbox")
    f = failed(report, "sandbox")
    assert code == 1 and f"{HOST}:{int(info(world)['local_port'])}" in f["token.endpoint"]["message"]
    assert "libpq dials" in f["token.endpoint"]["message"]


def test_token_for_another_host_is_named(world: World) -> None:
    """README: token signed for a CNAME: the server checks the AWS name."""
    token = botocore_token(world, "db.example.com", 5432, "pgiam_sandbox")
    with edited(world.home / ".pgpass", with_token(world, token)):
        code, report = doctor(world, "sandbox")
    assert "db.example.com:5432" in failed(report, "sandbox")["token.endpoint"]["message"]


def test_token_for_the_wrong_region_is_named(world: World) -> None:
    """README: wrong region (the token's scope)."""
    token = botocore_token(world, HOST, 5432, "pgiam_sandbox", region="us-west-2")
    with edited(world.home / ".pgpass", with_token(world, token)):
        assert world.psql("sandbox").returncode != 0
        code, report = doctor(world, "sandbox")
    f = failed(report, "sandbox")
    assert code == 1 and "us-west-2" in f["token.scope"]["message"]
    assert f["token.scope"]["fix"] == "pgiam refresh sandbox"


def test_service_region_against_the_host_name_is_named(world: World) -> None:
    """README: wrong region, in the config: the host name says us-east-1."""
    # Its own ~/.pgpass line (another user): `add` refuses a second region on the sandbox's line (issue 20).
    add_sandbox_like(world, "wrongregion", "plain", "--region", "us-west-2")
    try:
        code, report = doctor(world, "wrongregion")
        f = failed(report, "wrongregion")
        assert code == 1 and "--region us-east-1" in f["token.scope"]["fix"]
    finally:
        world.pgiam("remove", "wrongregion")


# ---------------------------------------------------------------- TLS and login


def test_wrong_ca_is_named(world: World) -> None:
    """README: `certificate verify failed`."""
    add_sandbox_like(world, "wrongca", "pgiam_sandbox", "--sslrootcert", "/etc/ssl/certs/ca-certificates.crt")
    try:
        assert "certificate verify failed" in world.psql("wrongca").stderr
        code, report = doctor(world, "wrongca")
        f = failed(report, "wrongca")
        assert code == 1 and "certificate verify failed" in f["tls.handshake"]["message"]
        assert f["tls.handshake"]["fix"].startswith("pgiam certs update")
        assert f["login"]["fix"].startswith("pgiam certs update")
    finally:
        world.pgiam("remove", "wrongca")


def test_missing_ca_file_is_named(world: World, tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_bytes(Path(info(world)["ca_file"]).read_bytes())
    add_sandbox_like(world, "goneca", "pgiam_sandbox", "--sslrootcert", str(ca))
    try:
        ca.unlink()
        assert world.psql("goneca").returncode != 0
        code, report = doctor(world, "goneca")
        f = failed(report, "goneca")
        assert code == 1 and "does not exist" in f["tls.ca"]["message"] and f["tls.ca"]["fix"] == "pgiam certs update"
    finally:
        world.pgiam("remove", "goneca")


def test_host_name_not_in_the_certificate_is_named(world: World) -> None:
    """README: `server certificate for "…" does not match host name` (host is localhost)."""
    i = info(world)
    # `add` refuses localhost now; an entry written by hand (or by pgiam 0.1) still reaches the server.
    config = world.home / ".config" / "pgiam" / "config.toml"
    config.write_text(config.read_text() + (
        f'\n[services.bylocalhost]\nhost = "localhost"\nport = {i["local_port"]}\nuser = "pgiam_sandbox"\n'
        f'region = "us-east-1"\ndbname = "postgres"\nprofile = "pgiam-sandbox"\nsslrootcert = "{i["ca_file"]}"\n'))
    world.pgiam("refresh", "bylocalhost", env=sandbox_env(world))
    try:
        assert "does not match host name" in world.psql("bylocalhost").stderr
        code, report = doctor(world, "bylocalhost")
        f = failed(report, "bylocalhost")
        assert code == 1 and "does not match host name" in f["tls.handshake"]["message"]
        assert "--host" in f["tls.handshake"]["fix"] and "--via" in f["tls.handshake"]["fix"]
    finally:
        world.pgiam("remove", "bylocalhost")


def _sandbox_sql(world: World, sql: str) -> str:
    """Run SQL as the sandbox superuser over its private socket (test setup only)."""
    script = (
        "import sys\n"
        "from pgiam.paths import Paths\n"
        "from pgiam.sandbox import cluster as c\n"
        "p = Paths.from_env(); layout = c._Layout.of(p); runner = c._Runner.current(layout.cluster)\n"
        "state = c._load_state(layout)\n"
        "r = c._psql(layout, runner, c.find_server_binaries(), int(state['info']['local_port']), sys.stdin.read())\n"
        "print(layout.data); sys.exit(r.returncode)\n"
    )
    p = subprocess.run([sys.executable, "-c", script], input=sql, env=world.env, capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stdout + p.stderr
    return p.stdout.strip()


def test_user_without_rds_iam_gets_password_authentication_and_is_named(world: World) -> None:
    """README: the user lacks rds_iam. RDS sends members of rds_iam to PAM and everyone else to password
    authentication (AWS RDS user guide, IAM DB authentication limitations): the sandbox is given the same
    split for one role, so the token meets "password authentication failed"."""
    data = Path(_sandbox_sql(world, "CREATE ROLE plain LOGIN PASSWORD 'x';"))
    hba = data / "pg_hba.conf"
    old = hba.read_text()
    add_sandbox_like(world, "plain", "plain")
    try:
        hba.write_text("hostssl all plain 127.0.0.1/32 scram-sha-256\n" + old)
        _sandbox_sql(world, "SELECT pg_reload_conf();")
        psql = world.psql("plain")
        assert "password authentication failed" in psql.stderr, psql.stderr
        code, report = doctor(world, "plain")
        f = failed(report, "plain")
        assert code == 1 and "rds_iam" in f["login"]["message"]
        assert f["login"]["fix"] == 'as an admin: GRANT rds_iam TO "plain";'
    finally:
        hba.write_text(old)
        _sandbox_sql(world, "SELECT pg_reload_conf();")
        world.pgiam("remove", "plain")


# ---------------------------------------------------------------- credentials


def test_expired_sso_session_is_named(world: World) -> None:
    """README: SSO login expired (exit 4 from refresh)."""
    aws = world.home / ".aws"
    aws.mkdir(exist_ok=True)
    (aws / "config").write_text("[profile dev]\nsso_session = corp\nsso_account_id = 111122223333\n"
                                "sso_role_name = Dev\nregion = us-east-1\n\n[sso-session corp]\n"
                                "sso_start_url = https://corp.awsapps.com/start\nsso_region = us-east-1\n")
    cache = aws / "sso" / "cache"
    cache.mkdir(parents=True, exist_ok=True)
    expired = (datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M:%SZ")
    (cache / (hashlib.sha1(b"corp").hexdigest() + ".json")).write_text(json.dumps({"accessToken": "x", "expiresAt": expired}))
    i = info(world)
    # Another user: its own ~/.pgpass line, as `add` wants for another profile (issue 20).
    world.pgiam("add", "ssodev", "--host", HOST, "--user", "plain", "--profile", "dev", "--no-refresh",
                "--via", f"127.0.0.1:{i['local_port']}", "--sslrootcert", i["ca_file"])
    try:
        refresh = world.pgiam("refresh", "ssodev", check=False)
        assert refresh.returncode == 4, refresh.stderr
        code, report = doctor(world, "ssodev")
        f = failed(report, "ssodev")
        assert code == 1 and "expired" in f["creds.sso"]["message"]
        assert f["creds.sso"]["fix"] == "aws sso login --profile dev"
    finally:
        world.pgiam("remove", "ssodev")


# ---------------------------------------------------------------- --python


def fake_interpreter(tmp: Path, libpq: int, version: str = "2.8.6 (dt dec pq3 ext lo64)") -> Path:
    """A venv whose `psycopg2` reports a given libpq: what psycopg2-binary 2.8.x wheels (libpq 11.x) say."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(tmp)], check=True, timeout=120)
    site = next((tmp / "lib").glob("python*/site-packages"))
    pkg = site / "psycopg2"
    pkg.mkdir()
    (pkg / "__init__.py").write_text(f"__version__ = {version!r}\n__libpq_version__ = {libpq}\n")
    (pkg / "extensions.py").write_text(f"def libpq_version():\n    return {libpq}\n")
    return tmp / "bin" / "python"


def test_python_with_old_bundled_libpq_fails_with_the_upgrade(world: World, tmp_path: Path) -> None:
    py = fake_interpreter(tmp_path / "old", 110009)
    code, report = doctor(world, "sandbox", "--python", str(py))
    c = checks(report)["python.libpq"][0]
    assert code == 1 and c["status"] == "FAIL" and "libpq 11.9" in c["message"]
    assert c["fix"] == f"{py} -m pip install -U 'psycopg2-binary>=2.9'"


def test_python_with_current_libpq_is_ok(world: World, tmp_path: Path) -> None:
    py = fake_interpreter(tmp_path / "new", 160004, "2.9.9 (dt dec pq3 ext lo64)")
    code, report = doctor(world, "sandbox", "--python", str(py))
    assert code == 0 and checks(report)["python.libpq"][0]["status"] == "ok"


# ---------------------------------------------------------------- status --check


def test_status_check(world: World) -> None:
    assert world.pgiam("status", "--check", "sandbox").returncode == 0
    p = world.pgiam("status", "--check", "--min-left", "100000", "sandbox", check=False)
    assert p.returncode == 1 and p.stdout == ""
    assert p.stderr.startswith("pgiam: sandbox: token valid for") and len(p.stderr.splitlines()) == 1
    token = botocore_token(world, HOST, 5432, "pgiam_sandbox", at=utc(-1800))
    with edited(world.home / ".pgpass", with_token(world, token)):
        p = world.pgiam("status", "--check", check=False)
    assert p.returncode == 1 and "sandbox: token expired" in p.stderr
    assert world.pgiam("status", "--check", "--min-left", "-1", check=False).returncode == 2


def test_status_check_fails_when_the_last_refresh_failed(world: World) -> None:
    """A token still valid, but the refresh that should renew it failed: a probe must see it."""
    creds = Path(info(world)["aws_credentials_file"])
    saved = creds.read_bytes()
    creds.unlink()
    try:
        assert world.pgiam("refresh", "sandbox", check=False).returncode != 0
        p = world.pgiam("status", "--check", "sandbox", check=False)
        assert p.returncode == 1 and "sandbox: last refresh failed:" in p.stderr, p.stderr
    finally:
        creds.write_bytes(saved)
        os.chmod(creds, 0o600)
        world.pgiam("refresh", "sandbox")
    assert world.pgiam("status", "--check", "sandbox").returncode == 0


# ---------------------------------------------------------------- the server stopped (last: it stops the sandbox)


def test_server_stopped_is_named(world: World) -> None:
    add_sandbox_like(world, "afterstop", "pgiam_sandbox")
    world.pgiam("sandbox", "down")
    code, report = doctor(world, "afterstop")
    f = failed(report, "afterstop")
    assert code == 1 and "cannot connect" in f["net.tcp"]["message"]
    assert "running" in f["net.tcp"]["fix"]
    assert "login" not in f  # no second failure for the same cause


# ---------------------------------------------------------------- --online, against moto behind a stand-in


class StandIn:
    """Forwards every request to moto; answers IAM SimulatePrincipalPolicy itself (moto lacks it) from the
    user's inline policies it reads back from moto; can shift the Date header and deny RDS describe calls."""

    def __init__(self, moto: str) -> None:
        self.moto = moto
        self.skew = 0.0
        self.deny: set[str] = set()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                form = urllib.parse.parse_qs(body.decode(errors="replace"))
                action = form.get("Action", [""])[0]
                if action in outer.deny:
                    return self.reply(403, b"<ErrorResponse><Error><Type>Sender</Type><Code>AccessDenied</Code>"
                                      b"<Message>denied by the test</Message></Error></ErrorResponse>")
                if action == "SimulatePrincipalPolicy":
                    return self.reply(200, outer.simulate(form))
                req = urllib.request.Request(outer.moto + self.path, data=body, method="POST",
                                             headers={k: v for k, v in self.headers.items() if k.lower() != "host"})
                try:
                    with urllib.request.urlopen(req, timeout=30) as r:
                        self.reply(r.status, r.read(), r.headers.get("Content-Type"))
                except urllib.error.HTTPError as e:
                    self.reply(e.code, e.read(), e.headers.get("Content-Type"))

            def reply(self, status: int, data: bytes, ctype: str | None = "text/xml") -> None:
                self.send_response(status)
                self.send_header("Content-Type", ctype or "text/xml")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def date_time_string(self, timestamp: float | None = None) -> str:
                return email.utils.formatdate(time.time() + outer.skew, usegmt=True)

        self.server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def simulate(self, form: dict[str, list[str]]) -> bytes:
        import boto3

        iam = boto3.client("iam", endpoint_url=self.moto, region_name="us-east-1", **{
            "aws_access_key_id": "AKIAIOSFODNN7EXAMPLE", "aws_secret_access_key": "x"})
        user = form["PolicySourceArn"][0].rsplit("/", 1)[-1]
        action = form["ActionNames.member.1"][0]
        resource = form["ResourceArns.member.1"][0]
        decision = "implicitDeny"
        for pname in iam.list_user_policies(UserName=user)["PolicyNames"]:
            doc = iam.get_user_policy(UserName=user, PolicyName=pname)["PolicyDocument"]
            doc = json.loads(doc) if isinstance(doc, str) else doc
            for st in doc["Statement"]:
                acts = st["Action"] if isinstance(st["Action"], list) else [st["Action"]]
                ress = st["Resource"] if isinstance(st["Resource"], list) else [st["Resource"]]
                if any(fnmatch.fnmatchcase(action, a) for a in acts) and any(fnmatch.fnmatchcase(resource, r) for r in ress):
                    if st["Effect"] == "Deny":
                        decision = "explicitDeny"
                        break
                    decision = "allowed"
        return (f"<SimulatePrincipalPolicyResponse xmlns=\"https://iam.amazonaws.com/doc/2010-05-08/\">"
                f"<SimulatePrincipalPolicyResult><IsTruncated>false</IsTruncated><EvaluationResults><member>"
                f"<EvalActionName>{action}</EvalActionName><EvalResourceName>{resource}</EvalResourceName>"
                f"<EvalDecision>{decision}</EvalDecision></member></EvaluationResults></SimulatePrincipalPolicyResult>"
                f"<ResponseMetadata><RequestId>1</RequestId></ResponseMetadata></SimulatePrincipalPolicyResponse>").encode()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def aws(moto_url: str) -> Iterator[tuple[StandIn, Any]]:
    import boto3

    reset(moto_url)
    s = StandIn(moto_url)
    session = boto3.Session(aws_access_key_id="AKIAIOSFODNN7EXAMPLE", aws_secret_access_key="x", region_name="us-east-1")
    try:
        yield s, lambda svc: session.client(svc, endpoint_url=moto_url)
    finally:
        s.close()


def rds_ca(tmp: Path, cn: str) -> Path:
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(tmp / "k.pem"),
                    "-out", str(tmp / "ca.pem"), "-days", "3650", "-subj", f"/CN={cn}"],
                   check=True, capture_output=True, timeout=60)
    return tmp / "ca.pem"


def online_world(tmp: Path, aws: tuple[StandIn, Any], iam_on: bool, policy_resource: str | None,
                 cluster: bool = False, port: int | None = None) -> tuple[World, dict[str, str], str]:
    """A user `alice` with keys from moto, an instance (or Aurora cluster), and a pgiam service for it."""
    stand, client = aws
    iam = client("iam")
    iam.create_user(UserName="alice")
    key = iam.create_access_key(UserName="alice")["AccessKey"]
    if policy_resource:
        iam.put_user_policy(UserName="alice", PolicyName="db", PolicyDocument=json.dumps({
            "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "rds-db:connect", "Resource": policy_resource}]}))
    rds = client("rds")
    if cluster:
        c = rds.create_db_cluster(DBClusterIdentifier="prod", Engine="aurora-postgresql", MasterUsername="admin",
                                  MasterUserPassword="password123", EnableIAMDatabaseAuthentication=iam_on)["DBCluster"]
        host, rid, real_port = c["Endpoint"], c["DbClusterResourceId"], c["Port"]
    else:
        i = rds.create_db_instance(DBInstanceIdentifier="prod", Engine="postgres", DBInstanceClass="db.t3.micro",
                                   AllocatedStorage=20, MasterUsername="admin", MasterUserPassword="password123",
                                   EnableIAMDatabaseAuthentication=iam_on,
                                   CACertificateIdentifier="rds-ca-rsa2048-g1")["DBInstance"]
        host, rid, real_port = i["Endpoint"]["Address"], i["DbiResourceId"], i["Endpoint"]["Port"]
    w = make_world(tmp / "home")
    env = dict(w.env, **env_for(stand.url, AWS_ACCESS_KEY_ID=key["AccessKeyId"], AWS_SECRET_ACCESS_KEY=key["SecretAccessKey"]))
    ca = rds_ca(tmp, "Amazon RDS us-east-1 Root CA RSA2048 G1")
    w.pgiam("add", "prod", "--host", host, "--port", str(port or real_port), "--user", "alice", "--region", "us-east-1",
            "--via", f"127.0.0.1:{free_port()}", "--sslrootcert", str(ca), env=env)
    return w, env, f"arn:aws:rds-db:us-east-1:123456789012:dbuser:{rid}/alice"


def online(w: World, env: dict[str, str]) -> dict[str, dict[str, Any]]:
    p = w.pgiam("doctor", "prod", "--online", "--json", env=env, check=False)
    report = json.loads(p.stdout)
    return {c["id"]: c for c in report["services"][0]["checks"] if c["id"].startswith("online.")}


def test_online_everything_right(tmp_path: Path, aws: tuple[StandIn, Any]) -> None:
    w, env, arn = online_world(tmp_path, aws, True, "arn:aws:rds-db:us-east-1:123456789012:dbuser:*/alice")
    c = online(w, env)
    assert c["online.identity"]["message"] == "signing as arn:aws:iam::123456789012:user/alice"
    assert c["online.clock"]["status"] == "ok" and c["online.iam_enabled"]["status"] == "ok"
    assert arn in c["online.policy_arn"]["message"]
    assert c["online.policy"]["status"] == "ok", c["online.policy"]
    assert c["online.ca"]["status"] == "ok" and "rds-ca-rsa2048-g1" in c["online.ca"]["message"]
    assert all(x["status"] == "ok" for x in c.values()), c


def test_online_policy_on_the_cluster_name_is_named(tmp_path: Path, aws: tuple[StandIn, Any]) -> None:
    """README: the IAM policy names the cluster name, not its resource id."""
    w, env, arn = online_world(tmp_path, aws, True, "arn:aws:rds-db:us-east-1:123456789012:dbuser:prod/alice", cluster=True)
    c = online(w, env)
    assert c["online.policy"]["status"] == "FAIL" and arn in c["online.policy"]["fix"]
    assert ":cluster-" in arn  # Aurora: the cluster's resource id


@pytest.mark.parametrize("cluster", [False, True], ids=["instance", "cluster"])
def test_online_iam_off_is_named(tmp_path: Path, aws: tuple[StandIn, Any], cluster: bool) -> None:
    w, env, _ = online_world(tmp_path, aws, False, "*", cluster=cluster)
    c = online(w, env)
    assert c["online.iam_enabled"]["status"] == "FAIL"
    assert "--enable-iam-database-authentication" in c["online.iam_enabled"]["fix"]
    assert ("modify-db-cluster" if cluster else "modify-db-instance") in c["online.iam_enabled"]["fix"]


def test_online_port_other_than_the_instances_is_named(tmp_path: Path, aws: tuple[StandIn, Any]) -> None:
    """README: token signed for another port (the tunnel's, given as --port instead of --via)."""
    w, env, _ = online_world(tmp_path, aws, True, "*", port=15432)
    c = online(w, env)
    assert c["online.port"]["status"] == "FAIL" and "listens on 5432" in c["online.port"]["message"]
    assert "--port 5432" in c["online.port"]["fix"]


def test_online_ca_missing_from_the_bundle_is_named(tmp_path: Path, aws: tuple[StandIn, Any]) -> None:
    w, env, _ = online_world(tmp_path, aws, True, "*")
    rds_ca(tmp_path, "Some Other Root CA")  # overwrite the bundle the service points at
    c = online(w, env)
    assert c["online.ca"]["status"] == "FAIL" and c["online.ca"]["fix"] == "pgiam certs update"


def test_online_clock_skew_is_named(tmp_path: Path, aws: tuple[StandIn, Any]) -> None:
    """README: clock skew on your machine."""
    aws[0].skew = 600
    w, env, _ = online_world(tmp_path, aws, True, "*")
    c = online(w, env)
    assert c["online.clock"]["status"] == "FAIL" and "behind" in c["online.clock"]["message"]
    assert "timedatectl" in c["online.clock"]["fix"]


def test_online_denied_describe_and_simulate_are_warnings(tmp_path: Path, aws: tuple[StandIn, Any]) -> None:
    aws[0].deny = {"DescribeDBInstances", "DescribeDBClusters", "DescribeDBProxies"}
    w, env, _ = online_world(tmp_path, aws, True, "*")
    c = online(w, env)
    assert c["online.resource"]["status"] == "warn" and "not allowed" in c["online.resource"]["message"]
    assert not any(x["status"] == "FAIL" for x in c.values())
