"""pgiam.services directly (issue 22: it was reached only through the CLI): building a Service from what was
typed, conflicts, and the all-or-nothing add / add_all / remove. The minter is the edge faked here: it returns
a real botocore token (tests/unit/test_store.sign) or fails."""

from __future__ import annotations

from pathlib import Path

import pytest

from pgiam import pgpass, services, servicefile, store, token
from pgiam.config import Config, Defaults, Service, Via, load_config
from pgiam.errors import AuthError, ConfigError, ExitCode, UsageError
from pgiam.paths import Paths
from pgiam.state import parse_state
from tests.conftest import SANDBOX_HOST
from tests.unit.test_store import T0, sign

EMPTY = Config(Path("/nonexistent/config.toml"))


@pytest.fixture
def paths(home: Path) -> Paths:
    return Paths.from_env()


def minter(svc: Service) -> token.Minted:
    return token.Minted(sign(svc), T0, T0 + 900, profile=svc.profile, method="env")


def refusing(svc: Service) -> token.Minted:
    raise AuthError(f"{svc.name}: no AWS credentials found", "configure them")


def args(name: str = "prod", **kw: str) -> services.ServiceArgs:
    return services.ServiceArgs(name=name, host=kw.pop("host", SANDBOX_HOST), user=kw.pop("user", "alice"), **kw)  # type: ignore[arg-type]


def files(home: Path) -> dict[Path, bytes]:
    return {p: p.read_bytes() for p in home.rglob("*") if p.is_file() and p.name != "lock"}


# ---------------------------------------------------------------- build


def test_build_infers_the_region_and_validates(paths: Paths, ca_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_PROFILE", "dev")
    svc = services.build(paths, args(port="6432", dbname="app", via="127.0.0.1:15432", sslrootcert=str(ca_file)), EMPTY)
    assert svc == Service(name="prod", host=SANDBOX_HOST, user="alice", region="us-west-2", port=6432, dbname="app",
                          profile="dev", via=Via("127.0.0.1", 15432), sslrootcert=str(ca_file))
    assert svc.dial_port == 15432
    explicit = services.build(paths, args(region="eu-west-1", profile="prod-sso"), EMPTY)
    assert (explicit.region, explicit.profile) == ("eu-west-1", "prod-sso")  # --profile beats AWS_PROFILE


@pytest.mark.parametrize(("kw", "message"), [
    ({"port": "0"}, None),
    ({"user": "a\nb"}, "user 'a\\nb' contains the control character '\\n'"),
    ({"region": "Mars"}, None),
    ({"sslrootcert": "/nonexistent/ca.pem"}, "sslrootcert /nonexistent/ca.pem does not exist"),
])
def test_build_refuses_bad_input_as_usage(paths: Paths, kw: dict[str, str], message: str | None) -> None:
    with pytest.raises(UsageError) as caught:
        services.build(paths, args(**kw), EMPTY)
    assert caught.value.code == ExitCode.USAGE
    if message is not None:
        assert caught.value.message == message


def test_a_ca_file_without_a_pem_certificate_is_refused(paths: Paths, home: Path) -> None:
    der = home / "ca.der"
    der.write_bytes(b"\x30\x82\x01\x0a")
    with pytest.raises(UsageError) as caught:
        services.build(paths, args(sslrootcert=str(der)), EMPTY)
    assert caught.value.message == f"sslrootcert {der} holds no PEM certificate"


# ---------------------------------------------------------------- conflicts


def test_conflicts_with_a_service_and_with_a_foreign_section(paths: Paths, ca_file: Path) -> None:
    svc = services.build(paths, args(sslrootcert=str(ca_file)), EMPTY)
    services.add(paths, svc, False, T0, None)
    current = load_config(paths.config_file, scope=paths.scope)
    with pytest.raises(ConfigError) as caught:
        services.check_conflicts(paths, current, svc, replace=False)
    assert caught.value.hint == "use `pgiam add prod --replace ...` to change it, or `pgiam remove prod` first"
    services.check_conflicts(paths, current, svc, replace=True)
    paths.service_file.write_text("# mine\n[mine]\nhost=x\n" + paths.service_file.read_text())
    theirs = Service(name="mine", host=SANDBOX_HOST, user="u", region="us-west-2")
    with pytest.raises(ConfigError) as caught:
        services.check_conflicts(paths, current, theirs, replace=False)
    assert caught.value.message == f"{paths.service_file}:2: a section [mine] that pgiam does not manage already exists"


# ---------------------------------------------------------------- add, add_all, remove


def test_add_writes_config_entry_token_and_state(paths: Paths, ca_file: Path) -> None:
    svc = services.build(paths, args(sslrootcert=str(ca_file), profile="dev"), EMPTY)
    result = services.add(paths, svc, False, T0, minter)
    assert [(o.name, o.status, o.expires) for o in result.outcomes] == [("prod", "renewed", T0 + 900)]
    assert load_config(paths.config_file, scope=paths.scope).services["prod"] == svc
    assert pgpass.parse_tokens(paths.pgpass.read_text()) == {store.key_of(svc): sign(svc)}
    assert servicefile.managed_names(paths.service_file.read_text()) == ["prod"]
    row = parse_state(paths.state_file.read_bytes())["prod"]
    assert (row.key, row.minted, row.expires, row.profile) == (store.key_str(svc), T0, T0 + 900, "dev")
    assert "region" not in paths.config_file.read_text()  # inferred from the host name: not written


def test_a_failed_mint_writes_nothing(paths: Paths, home: Path, ca_file: Path) -> None:
    before = files(home)
    svc = services.build(paths, args(sslrootcert=str(ca_file)), EMPTY)
    with pytest.raises(AuthError):
        services.add(paths, svc, False, T0, refusing)
    assert files(home) == before


def test_add_all_is_all_or_nothing(paths: Paths, home: Path, ca_file: Path) -> None:
    one = services.build(paths, args("one", sslrootcert=str(ca_file)), EMPTY)
    services.add(paths, one, False, T0, None)
    before = files(home)
    two = services.build(paths, args("two", user="bob", sslrootcert=str(ca_file)), EMPTY)
    with pytest.raises(ConfigError):
        services.add_all(paths, [(two, False), (one, False)], T0, minter)  # `one` is taken
    assert files(home) == before
    services.add_all(paths, [(two, False), (one, False)], T0, minter, replace=True)
    assert sorted(load_config(paths.config_file, scope=paths.scope).services) == ["one", "two"]
    assert len(pgpass.parse_tokens(paths.pgpass.read_text())) == 2


def test_remove_keeps_a_token_line_another_service_shares(paths: Paths, ca_file: Path) -> None:
    """Two services for the same host, port and user share one ~/.pgpass line (libpq matches the first)."""
    a = services.build(paths, args("a", sslrootcert=str(ca_file)), EMPTY)
    b = services.build(paths, args("b", dbname="other", sslrootcert=str(ca_file)), EMPTY)
    services.add_all(paths, [(a, False), (b, False)], T0, minter)
    services.remove(paths, "a", T0)
    assert list(load_config(paths.config_file, scope=paths.scope).services) == ["b"]
    assert servicefile.managed_names(paths.service_file.read_text()) == ["b"]
    assert list(pgpass.parse_tokens(paths.pgpass.read_text())) == [store.key_of(b)]
    services.remove(paths, "b", T0)
    assert pgpass.parse_tokens(paths.pgpass.read_text()) == {}
    assert not paths.next_due_file.exists() and parse_state(paths.state_file.read_bytes()) == {}
    with pytest.raises(ConfigError) as caught:
        services.remove(paths, "b", T0)
    assert caught.value.message == f"no service named 'b' in {paths.config_file}"


def test_a_dsql_host_gets_its_region_from_the_name_and_the_postgres_database(paths: Paths) -> None:
    cfg = Config(Path("/nonexistent/config.toml"), Defaults(region="ap-south-1"))
    svc = services.build(paths, args(host="abcdefghijklmnopqrstuvwxyz.dsql.us-east-1.on.aws", user="admin"), cfg)
    assert (svc.region, svc.dbname, svc.port) == ("us-east-1", "postgres", 5432)  # the name beats [defaults]
