"""`pgiam env` and `pgiam url` (issue 14): the entry's libpq keys, quoted so real shells and libpq read them back."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
from psycopg.conninfo import conninfo_to_dict

from pgiam import servicefile
from pgiam.errors import ExitCode
from tests.conftest import SANDBOX_HOST
from tests.tools import require_module

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
    sqlalchemy = require_module("sqlalchemy")
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


# ---------------------------------------------------------------- url --for CLIENT (issue 21)


def test_url_for_every_client_keeps_verify_full_and_no_password(run_cli, home: Path, odd_ca: Path) -> None:
    """Each form names the CA file and the endpoint it checks, and carries no password (issue 21)."""
    from urllib.parse import parse_qs, unquote, urlsplit

    add(run_cli, odd_ca)
    keys = entry(home)
    forms = {}
    for client in ("libpq", "sqlalchemy+psycopg", "sqlalchemy+psycopg2", "asyncpg", "jdbc"):
        code, out, err = run_cli("url", "odd", "--for", client)
        assert (code, err) == (ExitCode.OK, ""), client
        forms[client] = out.strip()
    for client in ("libpq", "sqlalchemy+psycopg", "sqlalchemy+psycopg2"):
        assert conninfo_to_dict(forms[client].replace(forms[client].split("://")[0], "postgresql", 1)) == keys
    asyncpg_dsn = urlsplit(forms["asyncpg"])
    assert (asyncpg_dsn.scheme, unquote(asyncpg_dsn.username or ""), asyncpg_dsn.hostname, asyncpg_dsn.port,
            asyncpg_dsn.password) == ("postgresql", keys["user"], keys["host"].lower(), 5432, None)
    assert parse_qs(asyncpg_dsn.query) == {"sslmode": ["verify-full"], "sslrootcert": [str(odd_ca)]}
    jdbc = forms["jdbc"]
    assert jdbc.startswith(f"jdbc:postgresql://{keys['host']}:5432/{quote_path(ODD_DB)}?")
    assert parse_qs(jdbc.split("?", 1)[1]) == {"user": [keys["user"]], "sslmode": ["verify-full"],
                                                "sslrootcert": [str(odd_ca)]}


def quote_path(s: str) -> str:
    from urllib.parse import quote

    return quote(s, safe="")


def test_url_for_sqlalchemy_asyncpg_names_the_ssl_context(run_cli, home: Path, odd_ca: Path) -> None:
    """asyncpg.connect has no sslrootcert: the URL refuses to connect unchecked, stderr names the missing piece."""
    sqlalchemy = require_module("sqlalchemy")
    add(run_cli, odd_ca)
    code, out, err = run_cli("url", "odd", "--for", "sqlalchemy+asyncpg")
    assert code == ExitCode.OK
    u = sqlalchemy.engine.make_url(out.strip())
    assert (u.drivername, u.password, dict(u.query)) == ("postgresql+asyncpg", None, {"ssl": "verify-full"})
    assert f'connect_args={{"ssl": ssl.create_default_context(cafile={str(odd_ca)!r})}}' in err


@pytest.mark.parametrize("via", [False, True])
def test_url_for_node_postgres_is_its_config_object(run_cli, home: Path, odd_ca: Path, via: bool) -> None:
    """node-postgres: a config object (a connectionString would beat the password function), dialling the
    tunnel's address and checking the endpoint name through ssl.servername (issue 21)."""
    add(run_cli, odd_ca, *(["--via", "127.0.0.1:15432"] if via else []))
    code, out, err = run_cli("url", "odd", "--for", "node-postgres")
    assert (code, err) == (ExitCode.OK, "")
    assert json.loads(out) == {
        "host": "127.0.0.1" if via else SANDBOX_HOST, "port": 15432 if via else 5432, "user": ODD_USER,
        "database": ODD_DB, "ssl": {"rejectUnauthorized": True, "servername": SANDBOX_HOST},
        "sslrootcert": str(odd_ca),
    }


@pytest.mark.parametrize("client", ["asyncpg", "sqlalchemy+asyncpg", "jdbc"])
def test_url_for_a_client_without_hostaddr_refuses_a_tunnel(run_cli, home: Path, odd_ca: Path, client: str) -> None:
    """asyncpg and pgJDBC check the certificate against the address they dial: no form keeps verify-full
    through --via, so pgiam says so (exit 2) instead of printing one that fails or checks nothing."""
    add(run_cli, odd_ca, "--via", "127.0.0.1:15432")
    code, out, err = run_cli("url", "odd", "--for", client)
    assert (code, out) == (ExitCode.USAGE, "")
    assert "through its tunnel" in err and f"127.0.0.1 {SANDBOX_HOST}" in err and "--for node-postgres" in err


def test_url_for_an_unknown_client_lists_the_known_ones(run_cli, home: Path, odd_ca: Path) -> None:
    add(run_cli, odd_ca)
    code, out, err = run_cli("url", "odd", "--for", "psycopg4")
    assert (code, out) == (ExitCode.USAGE, "")
    for client in ("libpq", "sqlalchemy+psycopg", "sqlalchemy+asyncpg", "asyncpg", "node-postgres", "jdbc"):
        assert f"'{client}'" in err


@pytest.mark.parametrize(("scheme", "client"), [("postgresql+psycopg", "sqlalchemy+psycopg"),
                                                ("postgresql+asyncpg", "sqlalchemy+asyncpg")])
def test_scheme_is_a_deprecated_alias_of_for(run_cli, home: Path, odd_ca: Path, scheme: str, client: str) -> None:
    """0.2.0's --scheme keeps working for the schemes whose driver can use the URL, and says what replaces it;
    postgresql+asyncpg now gets the asyncpg form, not a URL its driver refuses (issue 21)."""
    add(run_cli, odd_ca)
    code, old, err = run_cli("url", "odd", "--scheme", scheme)
    assert code == ExitCode.OK and f"--scheme is deprecated: use --for {client}" in err
    assert old == run_cli("url", "odd", "--for", client)[1]


def test_scheme_whose_driver_cannot_use_the_url_is_refused(run_cli, home: Path, odd_ca: Path) -> None:
    add(run_cli, odd_ca)
    code, out, err = run_cli("url", "odd", "--scheme", "postgresql+pg8000")
    assert (code, out) == (ExitCode.USAGE, "") and "--for" in err


def test_url_for_a_service_on_the_systems_roots(run_cli, home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """sslrootcert=system (RDS Proxy, libpq 16+): the clients that read it as a file name get the system's
    roots their own way (node: no ssl.ca; asyncpg: an SSLContext), pgJDBC is refused with the fix (issue 21)."""
    monkeypatch.setenv("PGIAM_LIBPQ_VERSION", "16.4")
    code, _, err = run_cli("add", "px", "--host", "app.proxy-abc123.us-west-2.rds.amazonaws.com", "--user", "alice",
                           "--no-refresh")
    assert code == ExitCode.OK, err
    code, out, err = run_cli("url", "px", "--for", "node-postgres")
    assert code == ExitCode.OK and json.loads(out)["sslrootcert"] is None
    code, out, err = run_cli("url", "px", "--for", "asyncpg")
    assert code == ExitCode.OK and out.strip().endswith("?sslmode=verify-full") and "ssl.create_default_context()" in err
    code, out, err = run_cli("url", "px", "--for", "sqlalchemy+asyncpg")
    assert code == ExitCode.OK and 'connect_args={"ssl": ssl.create_default_context()}' in err
    code, out, err = run_cli("url", "px", "--for", "jdbc")
    assert (code, out) == (ExitCode.USAGE, "") and "sslrootcert=system" in err and "--sslrootcert FILE" in err
    code, out, err = run_cli("url", "px")
    assert code == ExitCode.OK and "sslrootcert=system" in out


@pytest.mark.parametrize("client", ["asyncpg", "sqlalchemy+asyncpg", "node-postgres", "jdbc"])
def test_url_for_a_client_without_require_auth_says_so(run_cli, home: Path, odd_ca: Path, client: str,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """require_auth=password (libpq 16+) has no equivalent in these clients: the form leaves it out and
    stderr says the token goes to whatever authentication the server asks for (issue 21)."""
    monkeypatch.setenv("PGIAM_LIBPQ_VERSION", "16.4")
    add(run_cli, odd_ca, "--require-auth")
    code, out, err = run_cli("url", "odd", "--for", client)
    assert code == ExitCode.OK and "require_auth" not in out
    assert "has no require_auth: it sends the token to whatever authentication the server asks for" in err
