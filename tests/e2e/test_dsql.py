"""Aurora DSQL, first class (issue 15): tokens equal boto3's, and psql logs in to the sandbox's DSQL endpoint."""

from __future__ import annotations

import datetime
import os
import subprocess
import sys
from pathlib import Path

import boto3
import botocore.auth
import pytest

from pgiam import pgpass, tokeninfo
from pgiam.errors import ExitCode
from pgiam.sandbox.cluster import DSQL_HOST
from tests.e2e.conftest import World
from tests.e2e.test_psql import info, sandbox_env

pytestmark = pytest.mark.e2e

HOST = "abcdefghijklmnopqrstuvwxyz.dsql.eu-west-3.on.aws"
FROZEN = datetime.datetime(2026, 11, 26, 12, 0, 0)
SESSION = "IQoJb3JpZ2luX2VjEJr//////////wEaCXVzLWVhc3QtMSJHMEUCIQ+/=" * 8


@pytest.fixture
def frozen(monkeypatch: pytest.MonkeyPatch) -> None:
    """botocore reads the clock through botocore.auth.get_current_datetime (botocore/auth.py)."""
    monkeypatch.setattr(botocore.auth, "get_current_datetime", lambda *a, **k: FROZEN)


def boto3_token(user: str, host: str = HOST, region: str = "eu-west-3") -> str:
    client = boto3.session.Session().client("dsql", region_name=region)
    if user == "admin":
        return client.generate_db_connect_admin_auth_token(host, region)
    return client.generate_db_connect_auth_token(host, region)


@pytest.mark.parametrize("user", ["admin", "app_reader"])
@pytest.mark.parametrize("session_token", [None, SESSION], ids=["static", "session"])
def test_pgiam_token_equals_boto3_at_a_frozen_clock(run_cli, ca_file: Path, frozen: None, user: str,
                                                   session_token: str | None, monkeypatch: pytest.MonkeyPatch) -> None:
    if session_token:
        monkeypatch.setenv("AWS_SESSION_TOKEN", session_token)
    code, _, err = run_cli("add", "d", "--host", HOST, "--user", user, "--sslrootcert", str(ca_file), "--no-refresh")
    assert code == ExitCode.OK, err
    code, out, err = run_cli("token", "d")
    assert code == ExitCode.OK, err
    mine = out.strip()
    assert mine == boto3_token(user)
    t = tokeninfo.decode(mine)
    assert (t.host, t.port, t.region, t.service, t.user) == (HOST, None, "eu-west-3", "dsql", None)
    assert t.action == ("DbConnectAdmin" if user == "admin" else "DbConnect")
    assert t.lifetime == 900 and t.session_token == bool(session_token)


FREEZE = """\
import datetime
import botocore.auth
botocore.auth.get_current_datetime = lambda *a, **k: datetime.datetime(2026, 11, 26, 12, 0, 0)
"""


def test_pgiam_token_subprocess_equals_boto3_at_a_frozen_clock(run_cli, tmp_path: Path, ca_file: Path, frozen: None) -> None:
    """The installed command, in its own process, with botocore's clock frozen by a sitecustomize module."""
    code, _, err = run_cli("add", "d", "--host", HOST, "--user", "admin", "--sslrootcert", str(ca_file), "--no-refresh")
    assert code == ExitCode.OK, err
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(FREEZE)
    root = Path(__file__).resolve().parents[2]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(site), str(root)]))
    p = subprocess.run([sys.executable, "-m", "pgiam", "token", "d"], env=env, capture_output=True, text=True,
                       timeout=60, stdin=subprocess.DEVNULL)
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == boto3_token("admin") and "X-Amz-Date=20261126T120000Z" in p.stdout


def test_dsql_defaults_region_dbname_and_the_token_in_pgpass(run_cli, home: Path, ca_file: Path, frozen: None) -> None:
    code, _, err = run_cli("add", "d", "--host", HOST, "--user", "admin", "--sslrootcert", str(ca_file))
    assert code == ExitCode.OK, err
    svc = (home / ".pg_service.conf").read_text().split("\n")
    assert f"host={HOST}" in svc and "port=5432" in svc and "dbname=postgres" in svc and "sslmode=verify-full" in svc
    (token,) = pgpass.parse_tokens((home / ".pgpass").read_text()).values()
    assert token == boto3_token("admin")
    assert "region =" not in (home / ".config" / "pgiam" / "config.toml").read_text()  # read from the host name


def test_a_fresh_dsql_token_is_judged_fresh(run_cli, ca_file: Path) -> None:
    """store.verdict and freshness know a DSQL token names no port and no user: no endless renewals."""
    code, _, err = run_cli("add", "d", "--host", HOST, "--user", "app", "--sslrootcert", str(ca_file))
    assert code == ExitCode.OK, err
    code, out, err = run_cli("refresh", "--if-needed")
    assert code == ExitCode.OK and out.startswith("d: still fresh"), (out, err)
    code, out, err = run_cli("status", "--json")
    assert code == ExitCode.OK and '"token": "fresh"' in out, (out, err)


@pytest.mark.parametrize(("libpq", "root"), [("16.2", "system"), ("15.18", "file")])
def test_dsql_uses_the_public_roots_like_rds_proxy(run_cli, home: Path, monkeypatch: pytest.MonkeyPatch,
                                                   frozen: None, libpq: str, root: str) -> None:
    monkeypatch.setenv("PGIAM_LIBPQ_VERSION", libpq)
    code, _, err = run_cli("add", "d", "--host", HOST, "--user", "admin")
    assert code == ExitCode.OK, err
    (line,) = [ln for ln in (home / ".pg_service.conf").read_text().split("\n") if ln.startswith("sslrootcert=")]
    value = line.split("=", 1)[1]
    assert value == "system" if root == "system" else (value.startswith("/") and os.path.isfile(value))
    assert not (home / ".local" / "share" / "pgiam" / "certs").exists()  # no RDS bundle download for DSQL


def test_libpq_before_14_is_refused_for_dsql(run_cli, home: Path, ca_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """DSQL routes on the TLS SNI name, which libpq sends from 14 on."""
    monkeypatch.setenv("PGIAM_LIBPQ_VERSION", "13.14")
    code, _, err = run_cli("add", "d", "--host", HOST, "--user", "admin", "--sslrootcert", str(ca_file))
    assert code == ExitCode.ENVIRONMENT
    assert "SNI" in err and "14" in err and "\nhint: " in err
    assert not (home / ".pg_service.conf").exists() and not (home / ".pgpass").exists()


# ---------------------------------------------------------------- psql against the sandbox's DSQL endpoint


def add_dsql(world: World, name: str, user: str) -> None:
    from pgiam.paths import Paths
    from pgiam.sandbox import cluster

    env = sandbox_env(world)
    saved = dict(os.environ)
    os.environ.update(world.env)
    try:
        cluster.add_role(Paths.from_env(), user)
    finally:
        os.environ.clear()
        os.environ.update(saved)
    i = info(world)
    world.pgiam("add", name, "--host", DSQL_HOST, "--user", user, "--via", f"127.0.0.1:{i['local_port']}",
                "--sslrootcert", i["ca_file"], env=env)


@pytest.mark.parametrize("user", ["admin", "dsql_app"])
def test_psql_logs_in_to_the_dsql_endpoint_with_a_dsql_token(world: World, user: str) -> None:
    name = f"dsql-{user}"
    add_dsql(world, name, user)
    try:
        p = world.psql(name, "select current_user || ' ' || current_database() || ' ' || ssl::text "
                             "from pg_stat_ssl where pid = pg_backend_pid()")
        assert p.returncode == 0, p.stderr
        assert p.stdout.strip() == f"{user} postgres true"
        (token,) = [t for k, t in pgpass.parse_tokens((world.home / ".pgpass").read_text()).items() if k.user == user]
        assert token.startswith(f"{DSQL_HOST}/?Action={'DbConnectAdmin' if user == 'admin' else 'DbConnect'}&")
        stamp = token.split("X-Amz-Date=", 1)[1].split("&", 1)[0]
        assert Path(info(world)["log_file"]).read_text().splitlines()[-1].endswith(f"accepted user={user} signed={stamp}")
    finally:
        world.pgiam("remove", name)


def test_the_sandbox_refuses_a_dsql_token_with_the_wrong_action(world: World) -> None:
    """The checker is a real judge: a DbConnect token for `admin` is refused, as DSQL does."""
    add_dsql(world, "dsql-admin2", "admin")
    try:
        ak, sk = (dict(ln.split(" = ", 1) for ln in Path(info(world)["aws_credentials_file"]).read_text().splitlines()
                       if " = " in ln)[k] for k in ("aws_access_key_id", "aws_secret_access_key"))
        client = boto3.session.Session(aws_access_key_id=ak, aws_secret_access_key=sk).client("dsql", region_name="us-east-1")
        wrong = client.generate_db_connect_auth_token(DSQL_HOST, "us-east-1")
        p = world.psql("dsql-admin2", env=dict(world.env, PGPASSWORD=wrong))
        assert p.returncode != 0 and "authentication failed" in p.stderr
        assert "wrong action (expected DbConnectAdmin)" in Path(info(world)["log_file"]).read_text().splitlines()[-1]
    finally:
        world.pgiam("remove", "dsql-admin2")
