"""The one token decoder: what a token says about itself, without ever quoting it."""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Callable
from unittest import mock

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pgiam import tokeninfo
from tests.conftest import botocore_session

SIGNED = dt.datetime(2026, 11, 30, 12, 0, 0, tzinfo=dt.timezone.utc)


@functools.lru_cache(maxsize=None)
def rds_token(host: str = "db.cluster-abc.us-west-2.rds.amazonaws.com", port: int = 5432, user: str = "alice",
              region: str = "us-west-2", session_token: str | None = None) -> str:
    """A token signed by botocore itself (dummy keys, a frozen clock)."""
    s = botocore_session()
    s.set_credentials("AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", session_token)
    client = s.create_client("rds", region_name=region)
    with mock.patch("botocore.auth.get_current_datetime", return_value=SIGNED.replace(tzinfo=None)):
        token: str = client.generate_db_auth_token(host, port, user)
    return token


@functools.lru_cache(maxsize=None)  # as rds_token: a frozen clock signs the same token (a dsql client costs ~0.1 s)
def dsql_token(admin: bool) -> str:
    s = botocore_session()
    s.set_credentials("AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY")
    client = s.create_client("dsql", region_name="us-east-1")
    host = "abc123.dsql.us-east-1.on.aws"
    with mock.patch("botocore.auth.get_current_datetime", return_value=SIGNED.replace(tzinfo=None)):
        if admin:
            return str(client.generate_db_connect_admin_auth_token(host, "us-east-1"))
        return str(client.generate_db_connect_auth_token(host, "us-east-1"))


def test_rds_token_facts() -> None:
    info = tokeninfo.decode(rds_token())
    assert (info.host, info.port, info.region, info.service, info.action, info.user) == (
        "db.cluster-abc.us-west-2.rds.amazonaws.com", 5432, "us-west-2", "rds-db", "connect", "alice")
    assert info.signed_at == SIGNED.timestamp()
    assert info.lifetime == 900 and info.expires == SIGNED.timestamp() + 900
    assert info.session_token is False
    assert tokeninfo.decode(rds_token(session_token="FwoGZXIvYXdzEXAMPLE")).session_token is True


def test_a_user_that_needs_escaping_round_trips() -> None:
    assert tokeninfo.decode(rds_token(user="o'brien@x y")).user == "o'brien@x y"


@pytest.mark.parametrize("admin, action", [(True, "DbConnectAdmin"), (False, "DbConnect")])
def test_dsql_token_facts(admin: bool, action: str) -> None:
    info = tokeninfo.decode(dsql_token(admin))
    assert (info.host, info.port, info.region, info.service, info.action, info.user) == (
        "abc123.dsql.us-east-1.on.aws", None, "us-east-1", "dsql", action, None)
    assert info.signed_at == SIGNED.timestamp()


@pytest.mark.parametrize("bad", [
    "", "hunter2", "host:5432/?Action=connect", "[::1/?X-Amz-Algorithm=AWS4-HMAC-SHA256", "host:99999/?a=b",
    "with space/?X-Amz-Algorithm=AWS4-HMAC-SHA256",
])
def test_malformed_tokens_are_refused_without_quoting_them(bad: str) -> None:
    with pytest.raises(tokeninfo.TokenDecodeError) as err:
        tokeninfo.decode(bad)
    if bad:
        assert bad not in str(err.value)
    assert tokeninfo.try_decode(bad) is None


def test_a_cut_or_doubled_parameter_is_refused() -> None:
    token = rds_token()
    cut = token.replace("X-Amz-Date=", "X-Amz-Dote=")
    doubled = token + "&X-Amz-Expires=900"
    for bad in (cut, doubled, token.split("&X-Amz-Signature")[0] + "&X-Amz-Credential=x"):
        assert tokeninfo.try_decode(bad) is None


@given(st.text(max_size=300))
def test_try_decode_never_raises(text: str) -> None:
    info = tokeninfo.try_decode(text)
    assert info is None or info.host


@given(st.integers(min_value=0, max_value=len("db.cluster-abc.us-west-2.rds.amazonaws.com:5432/?")), st.text(max_size=5))
def test_damaged_real_tokens_never_raise(at: int, junk: str) -> None:
    token = rds_token()
    tokeninfo.try_decode(token[:at] + junk + token[at:])


def _read(decoder: Callable[[str], tokeninfo.TokenInfo], text: str) -> tokeninfo.TokenInfo | None:
    try:
        return decoder(text)
    except tokeninfo.TokenDecodeError:
        return None


_EDITS = st.lists(st.tuples(st.integers(min_value=0, max_value=2000), st.integers(min_value=0, max_value=3),
                            st.text(alphabet="&=%+/:[]?#xX5 Z0T-.%2F\u00a0", max_size=4)), max_size=3)


@settings(max_examples=150, deadline=None)
@given(st.sampled_from(["rds", "rds-session", "rds-odd-user", "dsql"]), _EDITS)
def test_the_one_match_reading_agrees_with_the_general_reading(kind: str, edits: list[tuple[int, int, str]]) -> None:
    """Issue 25: botocore's layout is read by one compiled match; on real tokens and damaged ones, it must
    say exactly what the general urllib reading says (or take the general path itself)."""
    token = {"rds": lambda: rds_token(), "rds-session": lambda: rds_token(session_token="FwoG/ZXIv+YXdz=EXAMPLE"),
             "rds-odd-user": lambda: rds_token(user="o'brien@x y%+"), "dsql": lambda: dsql_token(False)}[kind]()
    for at, cut, junk in edits:
        at %= len(token) + 1
        token = token[:at] + junk + token[at + cut:]
    assert _read(tokeninfo.decode, token) == _read(tokeninfo._decode_general, token)


def test_real_tokens_take_the_one_match_reading() -> None:
    """Issue 25: the tokens botocore writes (RDS with and without a session token, DSQL) are read by the
    compiled match, not by the slower general path."""
    for token in (rds_token(), rds_token(session_token="FwoG/ZXIv+YXdz=EXAMPLE"), rds_token(user="o'brien@x y"),
                  dsql_token(True), dsql_token(False)):
        assert tokeninfo._CANONICAL.fullmatch(token) is not None
        assert tokeninfo.decode(token) == tokeninfo._decode_general(token)
