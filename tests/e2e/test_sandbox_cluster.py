"""Stock psql against the sandbox PostgreSQL: IAM tokens checked the way RDS does, over verify-full TLS."""

from __future__ import annotations

import datetime
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import botocore.auth
import botocore.session
import pytest

from pgiam.errors import EnvironmentProblem
from pgiam.paths import Paths
from pgiam.sandbox import cluster
from tests.tools import require_server

pytestmark = pytest.mark.e2e

ODD_ROLE = "it's a:b\\c d"


def _binaries_or_fail() -> None:
    """Without server binaries the e2e tests fail, unless PGIAM_ALLOW_SKIP_E2E=1 (CI never sets it)."""
    require_server()


@pytest.fixture(scope="module")
def paths(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Paths]:
    """pgiam's locations, all under a private tmp dir (HOME, XDG_*, AWS_*)."""
    _binaries_or_fail()
    home = tmp_path_factory.mktemp("home")
    with pytest.MonkeyPatch.context() as mp:
        for var in ("PGPASSFILE", "PGSERVICEFILE", "PGHOST", "PGPORT", "PGUSER", "PGDATABASE", "PGSSLMODE"):
            mp.delenv(var, raising=False)
        mp.setenv("HOME", str(home))
        mp.setenv("XDG_STATE_HOME", str(home / ".local/state"))
        mp.setenv("XDG_CONFIG_HOME", str(home / ".config"))
        mp.setenv("XDG_DATA_HOME", str(home / ".local/share"))
        mp.setenv("AWS_CONFIG_FILE", str(home / ".aws/config"))
        mp.setenv("AWS_SHARED_CREDENTIALS_FILE", str(home / ".aws/credentials"))
        # The cluster lives in a postgres-owned dir outside tmp_path (whose /tmp/pytest-of-root parent is
        # 0700), so the postgres account never needs to enter it; pin TMPDIR to a searchable one anyway.
        mp.setenv("TMPDIR", "/tmp")
        p = Paths.from_env()
        yield p
        cluster.down(p)


@pytest.fixture(scope="module")
def sandbox(paths: Paths) -> cluster.SandboxInfo:
    started = time.monotonic()
    info = cluster.up(paths, roles=[ODD_ROLE])
    assert time.monotonic() - started < 30
    return info


def _keys(info: cluster.SandboxInfo) -> tuple[str, str]:
    lines = dict(
        line.split(" = ", 1) for line in info.aws_credentials_file.read_text().splitlines() if " = " in line
    )
    return lines["aws_access_key_id"], lines["aws_secret_access_key"]


def mint(info: cluster.SandboxInfo, role: str, minted_at: datetime.datetime | None = None) -> str:
    """A real botocore token for the sandbox endpoint (host:5432), optionally minted in the past."""
    ak, sk = _keys(info)
    session = botocore.session.Session()
    session.set_credentials(ak, sk)
    client = session.create_client("rds", region_name=info.region)
    if minted_at is None:
        return client.generate_db_auth_token(info.endpoint_host, info.endpoint_port, role)
    saved = botocore.auth.get_current_datetime
    botocore.auth.get_current_datetime = lambda *a, **k: minted_at  # type: ignore[assignment]
    try:
        return client.generate_db_auth_token(info.endpoint_host, info.endpoint_port, role)
    finally:
        botocore.auth.get_current_datetime = saved  # type: ignore[assignment]


def _conninfo_value(value: str) -> str:
    """libpq conninfo quoting: single quotes, backslash escapes ' and \\."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def psql(info: cluster.SandboxInfo, role: str, password: str, ca: Path | None = None) -> subprocess.CompletedProcess[str]:
    conninfo = (
        f"host={info.endpoint_host} hostaddr=127.0.0.1 port={info.local_port} user={_conninfo_value(role)} "
        f"dbname=postgres sslmode=verify-full sslrootcert={_conninfo_value(str(ca or info.ca_file))}"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    env.update(PGPASSWORD=password, PGCONNECT_TIMEOUT="10")
    return subprocess.run(
        ["psql", conninfo, "-X", "-A", "-t", "-c", "select current_user"],
        env=env, capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL,
    )


def _gone(pid: int) -> bool:
    """The process has exited (a zombie waiting for its reaper counts as gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] == "Z"


def test_token_login_as_default_role(sandbox: cluster.SandboxInfo) -> None:
    out = psql(sandbox, sandbox.role, mint(sandbox, sandbox.role))
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == sandbox.role


def test_token_login_with_quote_colon_backslash_space(sandbox: cluster.SandboxInfo) -> None:
    out = psql(sandbox, ODD_ROLE, mint(sandbox, ODD_ROLE))
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == ODD_ROLE


def test_add_role(paths: Paths, sandbox: cluster.SandboxInfo) -> None:
    cluster.add_role(paths, "Later Role")
    cluster.add_role(paths, "Later Role")  # idempotent
    assert psql(sandbox, "Later Role", mint(sandbox, "Later Role")).stdout.strip() == "Later Role"


def test_garbage_password_refused(sandbox: cluster.SandboxInfo) -> None:
    out = psql(sandbox, sandbox.role, "garbage")
    assert out.returncode != 0
    assert "authentication failed" in out.stderr


def test_token_minted_20_minutes_ago_refused(sandbox: cluster.SandboxInfo) -> None:
    old = datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None) - datetime.timedelta(minutes=20)
    out = psql(sandbox, sandbox.role, mint(sandbox, sandbox.role, minted_at=old))
    assert out.returncode != 0 and "authentication failed" in out.stderr


def test_token_for_another_role_refused(sandbox: cluster.SandboxInfo) -> None:
    out = psql(sandbox, sandbox.role, mint(sandbox, ODD_ROLE))
    assert out.returncode != 0 and "authentication failed" in out.stderr


def test_unrelated_ca_fails_verification(sandbox: cluster.SandboxInfo, tmp_path: Path) -> None:
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(tmp_path / "k"),
         "-out", str(tmp_path / "other-ca.crt"), "-days", "1", "-subj", "/CN=unrelated"],
        check=True, capture_output=True, timeout=30,
    )
    out = psql(sandbox, sandbox.role, mint(sandbox, sandbox.role), ca=tmp_path / "other-ca.crt")
    assert out.returncode != 0
    assert "certificate verify failed" in out.stderr


def test_log_has_reasons_and_never_a_token(sandbox: cluster.SandboxInfo) -> None:
    tokens = [mint(sandbox, sandbox.role), "garbage"]
    for t in tokens:
        psql(sandbox, sandbox.role, t)
    log = sandbox.log_file.read_text()
    assert f"accepted user={sandbox.role}" in log
    assert f"accepted user={ODD_ROLE}" in log
    assert f"refused user={sandbox.role}: malformed token" in log
    assert f"refused user={sandbox.role}: token expired" in log
    assert f"refused user={sandbox.role}: signed for another database user" in log
    assert "X-Amz-Signature" not in log and "garbage" not in log
    assert _keys(sandbox)[1] not in log


def test_files_are_private(sandbox: cluster.SandboxInfo, paths: Paths) -> None:
    for f in (sandbox.aws_credentials_file, paths.sandbox_dir / "ldapd.json", paths.sandbox_dir / "ca.key"):
        assert f.stat().st_mode & 0o077 == 0, f
    assert f"[{sandbox.aws_profile}]" in sandbox.aws_credentials_file.read_text()


def test_status_and_idempotent_up(paths: Paths, sandbox: cluster.SandboxInfo) -> None:
    st = cluster.status(paths)
    assert st["running"] and st["postgres_alive"] and st["ldapd_alive"]
    assert st["local_port"] == sandbox.local_port
    assert cluster.up(paths) == sandbox  # already healthy: same sandbox


def test_port_in_use_is_an_environment_problem_with_the_log_tail(tmp_path: Path) -> None:
    other = Paths(
        config_file=tmp_path / "config.toml", state_dir=tmp_path / "state", data_dir=tmp_path / "data",
        pgpass=tmp_path / ".pgpass", service_file=tmp_path / ".pg_service.conf", home=tmp_path,
    )
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        with pytest.raises(EnvironmentProblem) as err:
            cluster.up(other, port=busy.getsockname()[1])
    assert "did not start" in err.value.message and "Address already in use" in err.value.message
    st = cluster.status(other)
    assert not st["postgres_alive"] and not st["ldapd_alive"]  # a failed up() leaves nothing running
    assert not Path(str(st["cluster_dir"])).exists()


def test_up_after_postgres_killed(paths: Paths, sandbox: cluster.SandboxInfo) -> None:
    pid = cluster.status(paths)["postgres_pid"]
    assert isinstance(pid, int)
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while cluster.status(paths)["postgres_alive"] and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not cluster.status(paths)["running"]
    info = cluster.up(paths, roles=[ODD_ROLE])
    out = psql(info, ODD_ROLE, mint(info, ODD_ROLE))
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == ODD_ROLE


def test_down_stops_everything(paths: Paths) -> None:
    before = cluster.status(paths)
    assert cluster.down(paths) is True
    after = cluster.status(paths)
    assert not after["postgres_alive"] and not after["ldapd_alive"]
    for pid in (before["postgres_pid"], before["ldapd_pid"]):
        assert isinstance(pid, int)
        assert _gone(pid), pid
    assert not Path(str(before["cluster_dir"])).exists()
    assert cluster.down(paths) is False
