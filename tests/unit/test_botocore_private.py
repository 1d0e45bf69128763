"""Every private or version-dependent piece of botocore pgiam touches exists and takes effect (issue 22).

pgiam.awscreds reaches into botocore's credential providers (`_prompter`, `_popen`,
`_profile_provider_builder._create_process_provider`, `_expiry_time`) behind `hasattr` guards, and
pgiam.dsql signs through a stand-in client holding only `_request_signer` and
`meta.region_name` (pgiam.token presigns with botocore.auth.SigV4QueryAuth directly). A rename in botocore would make a guard skip silently (a timer gets botocore's own
getpass prompt back, a helper runs unbounded): these tests fail instead. CI runs them at the botocore
floor pyproject.toml declares too."""

from __future__ import annotations

import ast
import datetime
import re
from pathlib import Path
from typing import Any

import botocore
import botocore.auth
import botocore.credentials
import botocore.exceptions
import botocore.signers
import pytest

from pgiam import awscreds, awserrors, dsql, token
from pgiam.config import Service
from tests.conftest import botocore_session

ROOT = Path(__file__).resolve().parents[2]
AT = datetime.datetime(2026, 11, 26, 12, 0, 0)


def resolver_of(session: Any) -> Any:
    return session.get_component("credential_provider")


@pytest.fixture
def session(home: Path) -> Any:
    """A session as pgiam builds it for a profile whose role's source runs a credential_process."""
    aws = home / ".aws"
    aws.mkdir()
    (aws / "config").write_text("[profile role]\nrole_arn = arn:aws:iam::123456789012:role/r\nsource_profile = helper\n"
                                "mfa_serial = arn:aws:iam::123456789012:mfa/me\n"
                                "[profile helper]\ncredential_process = /bin/false\n")
    return awscreds.new_session("role", "us-west-2")


def test_the_mfa_prompter_is_pgiams(session: Any) -> None:
    """Without it, a timer meeting an MFA role gets botocore's getpass prompt (it reads /dev/tty) back."""
    p = resolver_of(session).get_provider("assume-role")
    assert p._prompter is awscreds.prompt_mfa
    assert isinstance(p.cache, botocore.utils.JSONFileCache)  # the AWS CLI's cache, shared


def test_every_credential_process_is_bounded(session: Any) -> None:
    """The profile's own helper and a role's source profile's helper both run through BoundedPopen."""
    resolver = resolver_of(session)
    assert resolver.get_provider("custom-process")._popen is awscreds.BoundedPopen
    builder = resolver.get_provider("assume-role")._profile_provider_builder
    assert builder._create_process_provider("helper")._popen is awscreds.BoundedPopen


def test_web_identity_shares_the_cli_cache(session: Any) -> None:
    p = resolver_of(session).get_provider("assume-role-with-web-identity")
    assert isinstance(p.cache, botocore.utils.JSONFileCache)


def test_temporary_credentials_carry_their_expiry() -> None:
    """awscreds.resolve reads the expiry of refreshable credentials from `_expiry_time`."""
    expiry = datetime.datetime(2030, 1, 2, 3, 4, 5, tzinfo=datetime.timezone.utc)
    creds = botocore.credentials.RefreshableCredentials.create_from_metadata(
        {"access_key": "AKIAPGIAMTESTEXAMPLE", "secret_key": "s" * 40, "token": "t", "expiry_time": expiry.isoformat()},
        lambda: {}, "custom-process")
    assert creds._expiry_time == expiry

    class Session:  # what resolve() asks of a session: its credentials
        def get_credentials(self) -> Any:
            return creds

    resolved = awscreds.resolve(Session())  # type: ignore[arg-type]
    assert resolved is not None and (resolved.method, resolved.expiry) == ("custom-process", expiry.timestamp())


@pytest.fixture
def frozen(monkeypatch: pytest.MonkeyPatch) -> datetime.datetime:
    """botocore's signing clock, which pgiam reads too (botocore.auth.get_current_datetime)."""
    assert callable(botocore.auth.get_current_datetime)  # type: ignore[attr-defined]
    monkeypatch.setattr(botocore.auth, "get_current_datetime", lambda *a, **k: AT)
    return AT


def static_session() -> Any:
    s = botocore_session()
    s.set_credentials("AKIAPGIAMTESTEXAMPLE", "pgiamTestSecretKey/ExampleOnly0123456789ab")
    return s


@pytest.mark.parametrize("session_token", [None, "IQoJb3JpZ2luX2VjEPGIAMTEST//////////wEaCXVzLWVhc3QtMSJHMEUCIQ+/="])
@pytest.mark.parametrize("user", ["alice", "it's a:b\\c d", "us\u00e9r+1@x/y=z&w"])
def test_the_fast_presign_mints_what_botocores_client_mints(frozen: datetime.datetime, user: str,
                                                            session_token: str | None) -> None:
    """token._sign presigns with botocore's SigV4QueryAuth directly (no RequestSigner, no events; issue 25):
    byte for byte the token of a real RDS client's generate_db_auth_token, same frozen credentials and clock."""
    s = botocore_session()
    s.set_credentials("AKIAPGIAMTESTEXAMPLE", "pgiamTestSecretKey/ExampleOnly0123456789ab", session_token)
    svc = Service(name="p", host="db.cluster-abc.us-west-2.rds.amazonaws.com", user=user, region="us-west-2", port=6543)
    minted, at = token._sign(s, s.get_credentials(), svc)
    real = s.create_client("rds", region_name="eu-west-1").generate_db_auth_token(svc.host, 6543, user, Region="us-west-2")
    assert ("X-Amz-Security-Token=" in real) == (session_token is not None)
    assert (minted, at) == (real, datetime.datetime(2026, 11, 26, 12, 0, 0, tzinfo=datetime.timezone.utc).timestamp())


@pytest.mark.parametrize("user", ["admin", "app"])
def test_the_dsql_stand_in_client_mints_what_botocores_client_mints(frozen: datetime.datetime, user: str) -> None:
    s = static_session()
    svc = Service(name="d", host="abcdefghijklmnopqrstuvwxyz.dsql.us-east-1.on.aws", user=user, region="us-east-1")
    minted, _ = dsql.sign(s, s.get_credentials(), svc)
    client = s.create_client("dsql", region_name="us-east-1")
    fn = client.generate_db_connect_admin_auth_token if user == "admin" else client.generate_db_connect_auth_token
    expires_in = int(re.search(r"X-Amz-Expires=(\d+)", minted)[1])  # type: ignore[index]  # pgiam's choice, 900 today
    assert minted == fn(svc.host, "us-east-1", expires_in)


def test_every_botocore_exception_pgiam_names_exists() -> None:
    """`bx.Name` / `botocore.exceptions.Name` anywhere in pgiam: at the floor a missing one is an
    AttributeError (exit 70) the first time classify reaches that line."""
    used: set[tuple[str, str]] = set()
    for src in (ROOT / "pgiam").rglob("*.py"):
        text = src.read_text()
        for alias in {"botocore.exceptions", *re.findall(r"import botocore\.exceptions as (\w+)", text)}:
            used |= {(src.name, n) for n in re.findall(rf"\b{re.escape(alias)}\.([A-Z]\w+)", text)}
    assert ("awserrors.py", "NoCredentialsError") in used  # the scan sees awserrors' `bx.` names
    missing = sorted(f"{f}: {n}" for f, n in used if not hasattr(botocore.exceptions, n))
    assert not missing, f"botocore {botocore.__version__} lacks {missing}"


def test_the_credential_providers_pgiam_asks_for_exist(session: Any) -> None:
    for method in ("custom-process", "assume-role", "assume-role-with-web-identity"):
        assert awscreds._provider(resolver_of(session), method) is not None, method


def test_classify_reaches_its_last_line_on_this_botocore() -> None:
    """An error no earlier branch takes walks every isinstance check of classify: each botocore name exists."""
    ctx = awserrors.Context("p", awserrors.Source("static", "default"), "/c", "/k", "`pgiam refresh p`", "3 s")
    assert type(awserrors.classify(LookupError("x"), ctx)).__name__ == "AuthError"


def test_the_private_names_are_the_ones_listed_here() -> None:
    """The `_name` attributes pgiam's AWS modules read on botocore objects are those the tests above check:
    a new one added to the code without a test here fails."""
    checked = {"_prompter", "_popen", "_profile_provider_builder", "_create_process_provider", "_expiry_time",
               "_request_signer"}
    seen: set[str] = set()
    for name in ("awscreds.py", "token.py", "dsql.py"):
        tree = ast.parse((ROOT / "pgiam" / name).read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__"):
                if not (isinstance(node.value, ast.Name) and node.value.id in ("self", "cls")):
                    seen.add(node.attr)
            elif isinstance(node, ast.Call) and getattr(node.func, "id", "") in ("getattr", "hasattr") and len(node.args) > 1:
                arg = node.args[1]
                if isinstance(arg, ast.Constant) and isinstance(arg.value, str) and arg.value.startswith("_"):
                    seen.add(arg.value)
            elif isinstance(node, ast.keyword) and node.arg and node.arg.startswith("_"):
                seen.add(node.arg)
    pgiam_own = {n for n in seen if n in ("_SESSIONS", "_provider", "_bound_processes", "_sign", "_epoch", "_context")}
    assert seen - pgiam_own == checked, sorted(seen - pgiam_own)
