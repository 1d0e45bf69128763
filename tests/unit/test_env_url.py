"""`pgiam env` and `pgiam url` (issue 14): the entry's libpq keys, quoted so real shells and libpq read them back."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import jsonschema
import pytest
from psycopg.conninfo import conninfo_to_dict

from pgiam import servicefile
from pgiam.errors import ExitCode
from tests.conftest import SANDBOX_HOST
from tests.tools import require_tool

ROOT = Path(__file__).resolve().parents[2]
ODD_USER = "o'ne: \\il $x `y` \"z\""
ODD_DB = "my db/é?&="


def add(run_cli, ca: Path, *extra: str) -> None:
    code, _, err = run_cli("add", "odd", "--host", SANDBOX_HOST, "--user", ODD_USER, "--dbname", ODD_DB,
                           "--sslrootcert", str(ca), "--no-refresh", *extra)
    assert code == ExitCode.OK, err


def entry(home: Path, name: str = "odd") -> dict[str, str]:
    """The section pgiam wrote into the service file, as libpq reads it (key=value, no trimming)."""
    text = (home / ".pg_service.conf").read_text()
    lines = text.split("\n")
    start = lines.index(f"[{name}]")
    keys: dict[str, str] = {}
    for line in lines[start + 1:]:
        if not line or line.startswith(("[", "#")):
            break
        k, _, v = line.partition("=")
        keys[k] = v
    return keys


@pytest.fixture
def odd_ca(home: Path, ca_file: Path) -> Path:
    """The shared test CA at a path with a space, quotes and a `$` in it."""
    d = home / "certs dir 'q'"
    d.mkdir()
    ca = d / "ca $x.pem"
    ca.write_bytes(ca_file.read_bytes())
    return ca


VARS = {"host": "PGHOST", "hostaddr": "PGHOSTADDR", "port": "PGPORT", "user": "PGUSER", "dbname": "PGDATABASE",
        "sslmode": "PGSSLMODE", "sslrootcert": "PGSSLROOTCERT", "require_auth": "PGREQUIREAUTH"}


def expected_env(keys: dict[str, str]) -> dict[str, str]:
    return {VARS[k]: v for k, v in keys.items()}


def shell_env(argv: list[str], script: str, home: Path) -> dict[str, str]:
    """The PG* variables a real shell has after running `script` (stale values set beforehand)."""
    env = dict(os.environ, PGHOSTADDR="stale", PGREQUIREAUTH="stale")
    out = subprocess.run([*argv, script], env=env, capture_output=True, timeout=60, cwd=home).stdout
    pairs = [line.split("=", 1) for line in out.decode().split("\0") if line.startswith("PG")]
    return {k: v for k, v in pairs if k in VARS.values()}


@pytest.mark.parametrize("via", [False, True])
@pytest.mark.parametrize("shell", ["sh", "bash", "fish"])
def test_env_round_trips_through_real_shells(run_cli, home: Path, odd_ca: Path, shell: str, via: bool) -> None:
    require_tool(shell)
    add(run_cli, odd_ca, *(["--via", "127.0.0.1:15432"] if via else []))
    code, out, err = run_cli("env", "odd", "--format", "fish" if shell == "fish" else "sh")
    assert code == ExitCode.OK, err
    script = out + ("\nenv -0" if shell != "fish" else "\nenv -0")
    got = shell_env([shutil.which(shell) or shell, "-c"], script, home)
    assert got == expected_env(entry(home))
    assert ("PGHOSTADDR" in got) == via and "PGREQUIREAUTH" not in got  # stale values unset


def test_env_json_matches_its_schema_and_the_entry(run_cli, home: Path, odd_ca: Path) -> None:
    add(run_cli, odd_ca, "--via", "127.0.0.1:15432")
    code, out, _ = run_cli("env", "odd", "--format", "json")
    assert code == ExitCode.OK
    doc = json.loads(out)
    schema = json.loads((ROOT / "pgiam" / "schemas" / "env.schema.json").read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    jsonschema.validate(doc, schema, cls=jsonschema.Draft202012Validator)
    assert doc["command"] == "env" and doc["name"] == "odd"
    want = {v: None for v in VARS.values()} | expected_env(entry(home))
    assert doc["variables"] == want


def test_env_never_prints_the_token(run_cli, home: Path, ca_file: Path) -> None:
    code, _, err = run_cli("add", "p", "--host", SANDBOX_HOST, "--user", "alice", "--sslrootcert", str(ca_file))
    assert code == ExitCode.OK, err
    for fmt in ("sh", "fish", "json"):
        code, out, err = run_cli("env", "p", "--format", fmt)
        assert code == ExitCode.OK and "X-Amz" not in out + err and "PGPASSWORD" not in out


@pytest.mark.parametrize("via", [False, True])
def test_url_parses_back_to_the_entry_through_libpq(run_cli, home: Path, odd_ca: Path, via: bool) -> None:
    add(run_cli, odd_ca, *(["--via", "[::1]:15432"] if via else []))
    code, out, err = run_cli("url", "odd")
    assert code == ExitCode.OK, err
    url = out.strip()
    assert url.startswith("postgresql://") and ":" not in url.split("://")[1].split("@")[0]  # no password
    assert conninfo_to_dict(url) == entry(home)  # libpq's own parser (PQconninfoParse)


def test_url_for_sqlalchemy(run_cli, home: Path, odd_ca: Path) -> None:
    sqlalchemy = pytest.importorskip("sqlalchemy")
    add(run_cli, odd_ca)
    code, out, _ = run_cli("url", "odd", "--scheme", "postgresql+psycopg")
    assert code == ExitCode.OK
    u = sqlalchemy.engine.make_url(out.strip())
    keys = entry(home)
    assert (u.drivername, u.username, u.password, u.host, u.port, u.database) == (
        "postgresql+psycopg", keys["user"], None, keys["host"], int(keys["port"]), keys["dbname"])
    assert dict(u.query) == {"sslmode": "verify-full", "sslrootcert": keys["sslrootcert"]}


@pytest.mark.parametrize("argv", [("env", "nope"), ("url", "nope")])
def test_unknown_service(run_cli, home: Path, ca_file: Path, argv: tuple[str, ...]) -> None:
    code, out, err = run_cli(*argv)
    assert code == ExitCode.CONFIG and out == "" and "no service named 'nope'" in err


def test_bad_scheme_is_a_usage_error(run_cli, home: Path, odd_ca: Path) -> None:
    add(run_cli, odd_ca)
    code, out, err = run_cli("url", "odd", "--scheme", "x://y")
    assert code == ExitCode.USAGE and out == "" and "--scheme" in err


def test_entry_helper_reads_what_servicefile_writes(home: Path) -> None:
    """Guards the test's own reader against the service-file renderer."""
    e = servicefile.Entry("x", [("host", "h"), ("user", "a=b")])
    (home / ".pg_service.conf").write_text("\n".join(servicefile.render_section(e)) + "\n")
    assert entry(home, "x") == {"host": "h", "user": "a=b"}
