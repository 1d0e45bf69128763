"""Stock psql (and psycopg's libpq 18) through the files pgiam writes, against the sandbox (issues 2, 3, 5)."""

from __future__ import annotations

import datetime
import os
import ssl
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import botocore.auth
import botocore.session
import pytest

from pgiam import pgpass
from tests.e2e.conftest import World, make_world
from tests.tools import require_tool

pytestmark = pytest.mark.e2e

ODD_USERS = ["o'brien", "a:b", "back\\slash", "two words", "all: o'\\ x"]


def info(world: World) -> dict[str, str]:
    out = world.pgiam("sandbox", "status").stdout
    return dict(line.split(": ", 1) for line in out.splitlines() if ": " in line)


def sandbox_keys(world: World) -> tuple[str, str]:
    text = Path(info(world)["aws_credentials_file"]).read_text()
    kv = dict(ln.split(" = ", 1) for ln in text.splitlines() if " = " in ln)
    return kv["aws_access_key_id"], kv["aws_secret_access_key"]


def botocore_token(world: World, host: str, port: int, user: str, region: str = "us-east-1",
                   at: datetime.datetime | None = None, session_token: str | None = None) -> str:
    ak, sk = sandbox_keys(world)
    s = botocore.session.Session()
    s.set_credentials(ak, sk, session_token)
    client = s.create_client("rds", region_name=region)
    saved = botocore.auth.get_current_datetime
    if at is not None:
        botocore.auth.get_current_datetime = lambda *a, **k: at  # type: ignore[assignment]
    try:
        return client.generate_db_auth_token(host, port, user, Region=region)
    finally:
        botocore.auth.get_current_datetime = saved  # type: ignore[assignment]


def sandbox_env(world: World) -> dict[str, str]:
    """The environment for adding more services signed with the sandbox key, through botocore's chain."""
    return dict(world.env, AWS_SHARED_CREDENTIALS_FILE=info(world)["aws_credentials_file"], AWS_PROFILE="pgiam-sandbox")


def add_sandbox_like(world: World, name: str, user: str, *extra: str, env: dict[str, str] | None = None,
                     managed_bundle: bool = False) -> None:
    i = info(world)
    host = i["endpoint"].rsplit(":", 1)[0]
    if "--sslrootcert" not in extra and not managed_bundle:
        extra = (*extra, "--sslrootcert", i["ca_file"])
    world.pgiam("add", name, "--host", host, "--user", user, "--via", f"127.0.0.1:{i['local_port']}",
                "--dbname", "postgres", *extra, env=env or sandbox_env(world))


def test_fresh_token_connects_with_verify_full(world: World) -> None:
    p = world.psql("sandbox", "select current_user || ' ' || ssl::text from pg_stat_ssl where pid = pg_backend_pid()")
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == "pgiam_sandbox true"
    svc = (world.home / ".pg_service.conf").read_text().split("\n")
    assert "sslmode=verify-full" in svc


def test_garbage_password_is_refused(world: World) -> None:
    p = world.psql("sandbox", env=dict(world.env, PGPASSWORD="garbage"))
    assert p.returncode != 0
    assert "authentication failed" in p.stderr


def test_via_signs_for_the_endpoint_and_dials_the_local_port(world: World) -> None:
    i = info(world)
    host = i["endpoint"].rsplit(":", 1)[0]
    svc = (world.home / ".pg_service.conf").read_text().split("\n")
    assert f"host={host}" in svc and "hostaddr=127.0.0.1" in svc and f"port={i['local_port']}" in svc
    tokens = pgpass.parse_tokens((world.home / ".pgpass").read_text())
    (key, token), = [(k, t) for k, t in tokens.items() if k.user == "pgiam_sandbox"]
    assert key == pgpass.Key(host, i["local_port"], "pgiam_sandbox")
    assert token.startswith(f"{host}:5432/?Action=connect&DBUser=pgiam_sandbox&")


def test_token_minted_20_minutes_ago_is_refused_then_refresh_fixes_it(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    """Write a 20-minute-old token through pgiam's own refresh path, then let --if-needed renew it."""
    for k, v in world.env.items():
        monkeypatch.setenv(k, v)
    from pgiam import refresh, token
    from pgiam.paths import Paths

    past = datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None) - datetime.timedelta(minutes=20)
    monkeypatch.setattr(botocore.auth, "get_current_datetime", lambda *a, **k: past)
    res = refresh.refresh(Paths.from_env(), time.time(), token.mint, ["sandbox"])
    monkeypatch.undo()
    assert [o.status for o in res.outcomes] == ["renewed"]
    p = world.psql("sandbox")
    assert p.returncode != 0 and "authentication failed" in p.stderr
    log = Path(info(world)["log_file"]).read_text()
    assert "expired" in log.splitlines()[-1]
    r = world.pgiam("refresh", "--if-needed")
    assert "sandbox: renewed" in r.stdout
    p = world.psql("sandbox")
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == "pgiam_sandbox"


def test_unrelated_ca_fails_with_a_certificate_error(world: World, tmp_path: Path) -> None:
    ca = tmp_path / "unrelated.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(tmp_path / "k.pem"),
                    "-out", str(ca), "-subj", "/CN=unrelated test CA", "-days", "2"], check=True, capture_output=True)
    add_sandbox_like(world, "badca", "pgiam_sandbox", "--sslrootcert", str(ca))
    try:
        p = world.psql("badca")
        assert p.returncode != 0
        assert "certificate verify failed" in p.stderr
    finally:
        world.pgiam("remove", "badca")


@pytest.mark.parametrize("user", ODD_USERS)
def test_odd_user_names_connect(world: World, user: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Our ~/.pgpass and service-file escaping equals libpq's parsing (issue 2: ', :, \\ and space)."""
    for k, v in world.env.items():
        monkeypatch.setenv(k, v)
    from pgiam.paths import Paths
    from pgiam.sandbox import cluster

    cluster.add_role(Paths.from_env(), user)
    name = f"odd{ODD_USERS.index(user)}"
    add_sandbox_like(world, name, user)
    try:
        p = world.psql(name)
        assert p.returncode == 0, p.stderr
        assert p.stdout.rstrip("\n") == user
    finally:
        world.pgiam("remove", name)


@pytest.mark.parametrize("case", ["tampered", "other user", "other endpoint", "other region", "other port", "session token, tampered"])
def test_checker_refuses_bad_tokens_through_psql(world: World, case: str) -> None:
    i = info(world)
    host = i["endpoint"].rsplit(":", 1)[0]
    args = {"host": host, "port": 5432, "user": "pgiam_sandbox"}
    if case == "other user":
        args["user"] = "postgres"
    if case == "other endpoint":
        args["host"] = "other.cluster-pgiam.us-east-1.rds.amazonaws.com"
    if case == "other port":
        args["port"] = int(i["local_port"])
    region = "us-west-2" if case == "other region" else "us-east-1"
    tok = botocore_token(world, args["host"], args["port"], args["user"], region,
                         session_token="FwoGZXIvYXdzEXAMPLE" if "session" in case else None)
    if "tampered" in case:
        sig = tok[-1]
        tok = tok[:-1] + ("0" if sig != "0" else "1")
    # the untampered, correct token works (so the refusals below are the checker's doing)
    good = botocore_token(world, host, 5432, "pgiam_sandbox", session_token="FwoGZXIvYXdzEXAMPLE" if "session" in case else None)
    assert world.psql("sandbox", env=dict(world.env, PGPASSWORD=good)).returncode == 0
    p = world.psql("sandbox", env=dict(world.env, PGPASSWORD=tok))
    assert p.returncode != 0 and "authentication failed" in p.stderr
    assert tok not in Path(i["log_file"]).read_text()


FOREIGN_PGPASS = b"# my own passwords\r\nlocalhost:5432:*:me:s\\:ec\\\\ret\r\n*:*:*:nobody:x"
FOREIGN_SERVICE = b"# my services\r\n[mine]\r\nhost=localhost\r\nport=5432\r\n\r\n# trailing comment, no newline"


def test_foreign_lines_survive_and_env_files_are_honoured(world: World, tmp_path: Path) -> None:
    pp, sf = tmp_path / "my pgpass", tmp_path / "my services.conf"
    pp.write_bytes(FOREIGN_PGPASS)
    os.chmod(pp, 0o600)
    sf.write_bytes(FOREIGN_SERVICE)
    # Another user (own HOME and config) whose libpq files live where PGPASSFILE / PGSERVICEFILE say.
    other = make_world(tmp_path / "other-home")
    env = dict(other.env, PGPASSFILE=str(pp), PGSERVICEFILE=str(sf),
               AWS_SHARED_CREDENTIALS_FILE=info(world)["aws_credentials_file"], AWS_PROFILE="pgiam-sandbox")
    add_sandbox_like(world, "envfiles", "pgiam_sandbox", env=env)
    try:
        assert pp.read_bytes().endswith(FOREIGN_PGPASS) and sf.read_bytes().endswith(FOREIGN_SERVICE)
        p = world.psql("envfiles", env=env)
        assert p.returncode == 0, p.stderr
        world.pgiam("refresh", "envfiles", env=env)
        assert world.psql("envfiles", env=env).returncode == 0
        assert pp.read_bytes().endswith(FOREIGN_PGPASS) and sf.read_bytes().endswith(FOREIGN_SERVICE)
        # the default files were not touched by this service
        assert "envfiles" not in (world.home / ".pg_service.conf").read_text()
    finally:
        world.pgiam("remove", "envfiles", env=env)
    assert pp.read_bytes() == FOREIGN_PGPASS
    assert sf.read_bytes() == FOREIGN_SERVICE


def test_psycopg_with_its_own_libpq_reads_the_same_files(world: World) -> None:
    code = ("import psycopg; c = psycopg.connect('service=sandbox'); "
            "print(psycopg.pq.version(), c.execute('select current_user').fetchone()[0])")
    p = subprocess.run([sys.executable, "-c", code], env=world.env, capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    version, user = p.stdout.split()
    assert user == "pgiam_sandbox"


class _Bundle(BaseHTTPRequestHandler):
    body = b""

    def do_GET(self) -> None:  # noqa: N802
        self.send_response(200)
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, *args: object) -> None:
        pass


def test_managed_bundle_is_used_by_add_and_verify_full_connects(world: World, tmp_path: Path) -> None:
    """Issue 5: `certs update` then `add` without --sslrootcert gives a service that connects."""
    require_tool("openssl")
    i = info(world)
    # A local HTTPS server (its own CA, trusted through SSL_CERT_FILE) serves the sandbox CA as "the bundle".
    run = lambda *a: subprocess.run(list(a), check=True, capture_output=True, cwd=tmp_path)  # noqa: E731
    run("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem",
        "-subj", "/CN=pgiam test web CA", "-days", "2", "-addext", "basicConstraints=critical,CA:TRUE")
    run("openssl", "req", "-newkey", "rsa:2048", "-nodes", "-keyout", "srv.key", "-out", "srv.csr", "-subj", "/CN=127.0.0.1")
    (tmp_path / "ext").write_text("subjectAltName=IP:127.0.0.1\n")
    run("openssl", "x509", "-req", "-in", "srv.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
        "-out", "srv.pem", "-days", "2", "-extfile", "ext")
    _Bundle.body = Path(i["ca_file"]).read_bytes()
    httpd = HTTPServer(("127.0.0.1", 0), _Bundle)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(tmp_path / "srv.pem", tmp_path / "srv.key")
    httpd.socket = ctx.wrap_socket(httpd.socket, server_side=True)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    env = dict(sandbox_env(world), SSL_CERT_FILE=str(tmp_path / "ca.pem"))
    try:
        url = f"https://127.0.0.1:{httpd.server_address[1]}/global-bundle.pem"
        world.pgiam("certs", "update", "--url", url, env=env)
        add_sandbox_like(world, "managed", "pgiam_sandbox", env=env, managed_bundle=True)
        svc = (world.home / ".pg_service.conf").read_text()
        bundle = world.home / ".local" / "share" / "pgiam" / "certs" / "rds-aws.pem"
        assert f"sslrootcert={bundle}" in svc.split("\n")
        p = world.psql("managed")
        assert p.returncode == 0, p.stderr
        st = world.pgiam("certs", "status", env=env)
        assert str(bundle) in st.stdout
    finally:
        httpd.shutdown()
        world.pgiam("remove", "managed", check=False)


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_prompt_hook_renews_an_expired_token_before_the_next_command(world: World, shell: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 4: after a sleep the token has expired; the next prompt renews it synchronously, psql connects."""
    require_tool(shell)
    for k, v in world.env.items():
        monkeypatch.setenv(k, v)
    from pgiam import refresh, token
    from pgiam.paths import Paths

    past = datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None) - datetime.timedelta(minutes=20)
    monkeypatch.setattr(botocore.auth, "get_current_datetime", lambda *a, **k: past)
    refresh.refresh(Paths.from_env(), time.time(), token.mint, ["sandbox"])
    monkeypatch.undo()
    assert world.psql("sandbox").returncode != 0  # the token in ~/.pgpass has expired
    prompt = {
        "bash": 'eval "$(python3 -m pgiam hook bash)"; for c in "${PROMPT_COMMAND[@]}"; do eval "$c"; done',
        "zsh": 'eval "$(python3 -m pgiam hook zsh)"; for f in $precmd_functions; do $f; done',
        "fish": 'python3 -m pgiam hook fish | source; emit fish_prompt',
    }[shell]
    script = prompt + "; psql service=sandbox -XAtqc 'select current_user'"
    argv = {"bash": ["bash", "--norc", "--noprofile", "-c"], "zsh": ["zsh", "-f", "-c"], "fish": ["fish", "--no-config", "-c"]}[shell]
    env = dict(world.env, PATH=f"{Path(sys.executable).parent}:{os.environ['PATH']}")
    p = subprocess.run([*argv, script], env=env, capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip().endswith("pgiam_sandbox")
