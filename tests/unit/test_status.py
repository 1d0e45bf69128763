"""pgiam.status directly (issue 22: it was reached only through the CLI): each service's token judged from
the files and a given clock, the failure pgiam noted, and `status --check`'s lines."""

from __future__ import annotations

from pathlib import Path

import pytest

from pgiam import status, store
from pgiam.config import load_config
from pgiam.errors import ConfigError
from pgiam.paths import Paths
from pgiam.state import ServiceState
from tests.conftest import SANDBOX_HOST
from tests.unit.test_store import T0, sign

CONFIG = f"""\
# mine
[services.prod]
host = "{SANDBOX_HOST}"
user = "alice"
profile = "dev"
sslrootcert = "/ca.pem"

[services.other]
host = "{SANDBOX_HOST}"
port = 6432
user = "bob"
sslrootcert = "/ca.pem"
"""


@pytest.fixture
def paths(home: Path) -> Paths:
    """prod holds a token signed at T0 (noted as signed by profile dev); other has none and a noted failure."""
    p = Paths.from_env()
    p.config_file.parent.mkdir(parents=True)
    p.config_file.write_text(CONFIG)
    cfg = load_config(p.config_file, scope=p.scope)
    prod, other = cfg.services["prod"], cfg.services["other"]
    rows = {"prod": ServiceState(store.key_str(prod), minted=T0, expires=T0 + 900, profile="dev"),
            "other": ServiceState(store.key_str(other), error="other: the AWS SSO session of profile x is missing or expired",
                                  hint="run `aws sso login --profile x`, then `pgiam refresh other`", failed_at=T0 - 5,
                                  code=4, failures=1)}
    changes = store.plan_libpq(p, cfg, {store.key_of(prod): sign(prod)}, []) + store.plan_state(p, cfg, rows, T0)
    store.commit(p, changes, cfg)
    return p


@pytest.mark.parametrize(("due", "reason", "expires", "label"), [
    (False, "fresh", T0 + 900, "fresh"),
    (True, "renew", T0 + 900, "due"),
    (True, "renew", T0 - 1, "expired"),
    (True, "renew", T0, "expired"),  # expiring now is expired
    (True, "missing", None, "missing"),
    (True, "malformed", None, "invalid"),
    (True, "mismatch", T0 + 900, "invalid"),
    (True, "future", T0 + 900, "invalid"),
])
def test_token_label(due: bool, reason: str, expires: float | None, label: str) -> None:
    assert status.token_label(due, reason, expires, T0) == label


def test_report_of_each_service_at_a_given_clock(paths: Paths) -> None:
    rows = {r.service.name: r for r in status.report(paths, T0 + 100).services}
    assert list(rows) == ["prod", "other"]  # the config's order
    prod, other = rows["prod"], rows["other"]
    assert (prod.token, prod.reason, prod.expires, prod.seconds_left, prod.signed_by) == (
        "fresh", "token valid", T0 + 900, 800, "dev")
    assert (prod.error, prod.hint, prod.error_code, prod.failed_at) == (None, None, None, None)
    assert (other.token, other.reason, other.expires, other.seconds_left) == (
        "missing", "no token in the password file", None, None)
    assert (other.error_code, other.failed_at, other.signed_by) == (4, T0 - 5, None)
    assert other.hint == "run `aws sso login --profile x`, then `pgiam refresh other`"


@pytest.mark.parametrize(("offset", "token", "left"), [(599, "fresh", 301), (600, "due", 300), (900, "expired", 0),
                                                       (5000, "expired", 0)])
def test_report_follows_the_clock(paths: Paths, offset: int, token: str, left: int) -> None:
    (prod,) = status.report(paths, T0 + offset, ["prod"]).services
    assert (prod.token, prod.seconds_left) == (token, left)


def test_report_reads_only(paths: Paths, home: Path) -> None:
    before = {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in home.rglob("*") if p.is_file()}
    status.report(paths, T0 + 5000)
    assert {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in home.rglob("*") if p.is_file()} == before


def test_report_of_an_unknown_name_is_a_config_error(paths: Paths) -> None:
    with pytest.raises(ConfigError) as caught:
        status.report(paths, T0, ["prod", "nope"])
    assert caught.value.message == f"no service named 'nope' in {paths.config_file}"


def test_report_of_a_token_signed_for_other_settings_is_invalid(paths: Paths) -> None:
    """A hand-edited region: the token in the file is for us-west-2, the service now says us-east-1."""
    paths.config_file.write_text(CONFIG.replace('user = "alice"', 'user = "alice"\nregion = "us-east-1"'))
    (prod,) = status.report(paths, T0 + 100, ["prod"]).services
    assert (prod.token, prod.reason, prod.expires, prod.seconds_left) == (
        "invalid", "the token in the password file is for another host, port, user or region", None, None)


def test_check_failures_names_what_would_not_serve_a_login(paths: Paths) -> None:
    report = status.report(paths, T0 + 100)
    assert status.check_failures(report, T0 + 100, 0) == [
        "other: missing: no token in the password file",
        "other: last refresh failed: other: the AWS SSO session of profile x is missing or expired"]
    (prod,) = status.report(paths, T0 + 700, ["prod"]).services
    from pgiam.reports import StatusReport

    assert status.check_failures(StatusReport((prod,)), T0 + 700, 120) == []
    assert status.check_failures(StatusReport((prod,)), T0 + 700, 300) == [
        "prod: token valid for 200 s, less than --min-left 300"]
    (late,) = status.report(paths, T0 + 960, ["prod"]).services
    assert status.check_failures(StatusReport((late,)), T0 + 960, 0) == ["prod: token expired 60 s ago"]
