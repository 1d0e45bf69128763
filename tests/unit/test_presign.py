"""pgiam.presign mints, byte for byte, what botocore's own RDS client's generate_db_auth_token mints (issue 25).

botocore is the oracle: a real `rds` client over the same credentials, at the same frozen clock
(botocore.auth.get_current_datetime, which SigV4 reads). A second test changes the presigner's source,
one string at a time, and requires the first comparison to catch every change.
"""

from __future__ import annotations

import ast
import datetime
import functools
import inspect
import types
from typing import Any
from unittest import mock

import botocore.auth
from botocore.credentials import Credentials
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pgiam import presign, token, tokeninfo
from pgiam.config import Service
from pgiam.facts import TOKEN_LIFETIME
from tests.conftest import botocore_session

_label = st.from_regex(r"[a-z0-9](?:[a-z0-9-]{0,8}[a-z0-9])?", fullmatch=True)
hosts = st.lists(_label, min_size=1, max_size=5).map(".".join)
users = st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=40)
regions = st.from_regex(r"[a-z]{2}(?:-[a-z]{1,9}){1,2}-[1-9]", fullmatch=True)
ports = st.integers(1, 65535).filter(lambda p: p != 443)
times = st.datetimes(datetime.datetime(2000, 1, 1), datetime.datetime(2099, 12, 31))
access_keys = st.from_regex(r"(?:AKIA|ASIA)[A-Z0-9]{16}", fullmatch=True)
secrets_ = st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=48)
session_tokens = st.none() | st.text(st.characters(blacklist_categories=("Cs",)), max_size=120)


@functools.lru_cache(maxsize=1)
def _rds_client() -> object:
    s = botocore_session()
    s.set_credentials("AKIAUNUSEDUNUSEDUNUS", "unused")
    return s.create_client("rds", region_name="us-east-1")


@functools.cache
def _session() -> Any:
    """The session token._sign is handed (it reads only its credentials for RDS hosts): one for all examples."""
    s = botocore_session()
    s.set_credentials("AKIAPGIAMTESTEXAMPLE", "pgiamTestSecretKey/ExampleOnly0123456789ab", "IQoJ/b3Jp+Z2lu=")
    return s


def _client(access_key: str, secret: str, session_token: str | None) -> object:
    """One real RDS client (creating one per example takes most of a second), its signer given these credentials."""
    client = _rds_client()
    client._request_signer._credentials = Credentials(access_key, secret, session_token)  # type: ignore[attr-defined]
    return client


def botocore_token(host: str, port: int, user: str, region: str, key: str, secret: str, session_token: str | None,
                   now: datetime.datetime) -> str:
    """The oracle: botocore's RDS client's generate_db_auth_token at the clock `now`."""
    with mock.patch.object(botocore.auth, "get_current_datetime", lambda *a, **k: now):
        out: str = _client(key, secret, session_token).generate_db_auth_token(  # type: ignore[attr-defined]
            host, port, user, Region=region)
    return out


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(host=hosts, port=ports, user=users, region=regions, now=times, key=access_keys, secret=secrets_,
       session_token=session_tokens)
def test_presign_is_botocores_generate_db_auth_token(host: str, port: int, user: str, region: str,
                                                     now: datetime.datetime, key: str, secret: str,
                                                     session_token: str | None) -> None:
    """Any user (unicode, `:`, `&`, `=`, `%`, spaces), host, port, region, instant, static or session credentials."""
    now = now.replace(microsecond=0)
    assert presign.applies(host, port)
    ours = presign.rds_token(host, port, user, region, key, secret, session_token, now, TOKEN_LIFETIME)
    assert ours == botocore_token(host, port, user, region, key, secret, session_token, now)


@settings(max_examples=60, deadline=None)
@given(host=st.sampled_from(["DB.Cluster-abc.us-west-2.rds.amazonaws.com", "db.example.com", "[::1]", "10.0.0.7",
                             "db_x.example.com"]),
       port=st.sampled_from([443, 5432, 1]), user=users, now=times)
def test_token_sign_matches_botocore_on_both_paths(host: str, port: int, user: str,
                                                    now: datetime.datetime) -> None:
    """token._sign falls back to botocore's SigV4QueryAuth where presign.applies says no (upper case, https's
    port, IPv6, `_`), presigns a DNS name or an IPv4 address itself, and both give botocore's own token and
    its signing instant."""
    assert presign.applies(host, port) == (host in ("db.example.com", "10.0.0.7") and port != 443)
    now = now.replace(microsecond=0)
    s = _session()
    svc = Service(name="p", host=host, user=user, region="us-west-2", port=port)
    with mock.patch.object(botocore.auth, "get_current_datetime", lambda *a, **k: now):
        minted, at = token._sign(s, s.get_credentials(), svc)
    assert minted == botocore_token(host, port, user, "us-west-2", "AKIAPGIAMTESTEXAMPLE",
                                    "pgiamTestSecretKey/ExampleOnly0123456789ab", "IQoJ/b3Jp+Z2lu=", now)
    assert at == tokeninfo.stamp_epoch(now.strftime("%Y%m%dT%H%M%SZ"))


CASES = [  # fixed inputs the mutation test runs: every character class the presigner treats apart
    ("db-1.cluster-abc.us-east-1.rds.amazonaws.com", 5432, "app", "us-east-1", None),
    ("db.x", 6543, "a-b_c.d~e f:g&h=i%j/k+l,m\u00e9\u4e2d", "eu-west-3", "tok/en+=="),
    ("h0", 1, "x", "ap-southeast-2", ""),
]


def _strings(tree: ast.AST) -> list[ast.Constant]:
    return [n for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str)]


def _mutants() -> list[tuple[str, types.ModuleType]]:
    """presign's module, once per string constant in rds_token and _signing_key (and ALGORITHM, _SAFE)
    with that string changed; a constant is found again in a fresh parse by its place in ast.walk's order."""
    source = inspect.getsource(presign)
    tree = ast.parse(source)
    funcs = [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name in ("rds_token", "_signing_key")]
    docstrings = [f.body[0].value for f in funcs if isinstance(f.body[0], ast.Expr)]
    targets = [n for f in funcs for n in _strings(f) if all(n is not d for d in docstrings)]
    targets += [n.value for n in tree.body if isinstance(n, ast.Assign) and isinstance(n.value, ast.Constant)
                and isinstance(n.targets[0], ast.Name) and n.targets[0].id in ("ALGORITHM", "_SAFE")]
    every = _strings(tree)
    out = []
    for target in targets:
        mutated = ast.parse(source)
        node = _strings(mutated)[next(i for i, n in enumerate(every) if n is target)]
        old = node.value
        node.value = (chr(ord(old[0]) ^ 1) + old[1:]) if old else "x"
        module = types.ModuleType("pgiam_presign_mutant")
        exec(compile(mutated, "<mutant>", "exec"), module.__dict__)  # noqa: S102 - the test's own mutant
        out.append((f"line {target.lineno}: {old!r} -> {node.value!r}", module))
    return out


def test_every_changed_string_of_the_presigner_is_caught() -> None:
    """A presigner with any one string changed (a separator, a parameter name, the algorithm, the date
    format, a safe character...) no longer matches botocore on the fixed cases: the comparison guards it."""
    now = datetime.datetime(2026, 12, 3, 20, 0, 0)
    key, secret = "AKIAPGIAMTESTEXAMPLE", "pgiamTestSecretKey/ExampleOnly0123456789ab"
    expected = [botocore_token(h, p, u, r, key, secret, t, now) for h, p, u, r, t in CASES]
    assert [presign.rds_token(h, p, u, r, key, secret, t, now, TOKEN_LIFETIME) for h, p, u, r, t in CASES] == expected
    mutants = _mutants()
    assert len(mutants) >= 25, [label for label, _ in mutants]
    survivors = []
    for label, module in mutants:
        module._KEYS.clear()
        try:
            got = [module.rds_token(h, p, u, r, key, secret, t, now, TOKEN_LIFETIME) for h, p, u, r, t in CASES]
        except Exception:  # noqa: BLE001 - a mutant that breaks is caught
            continue
        if got == expected:
            survivors.append(label)
    assert survivors == []
