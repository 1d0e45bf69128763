"""The fast path of `pgiam token NAME` (pgiam.entry) mirrors the shared rules it may not import: its token
decoder, freshness rule and ~/.pgpass reader agree with pgiam.tokeninfo, pgiam.freshness and pgiam.pgpass
(hypothesis properties). The callback itself, run as a process, is tested in tests/e2e/test_token_callback.py."""

from __future__ import annotations

import datetime

import botocore.auth
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pgiam import block, entry, freshness, pgpass, tokeninfo
from tests.conftest import botocore_session

FIELD = st.text(alphabet=st.sampled_from(list("ab:\\*# \r\t\x85é")), max_size=8)


def _signed(host: str, port: int, user: str, region: str, when: datetime.datetime, service: str = "rds") -> str:
    s = botocore_session()
    s.set_credentials("AKIAPGIAMTESTEXAMPLE", "secret/example")
    saved = botocore.auth.get_current_datetime
    botocore.auth.get_current_datetime = lambda *a, **k: when  # type: ignore[assignment]
    try:
        if service == "dsql":
            return s.create_client("dsql", region_name=region).generate_db_connect_auth_token(host, region)
        return s.create_client("rds", region_name=region).generate_db_auth_token(host, port, user, Region=region)
    finally:
        botocore.auth.get_current_datetime = saved  # type: ignore[assignment]


TOKENS = [
    _signed("db.cluster-a.us-west-2.rds.amazonaws.com", 5432, "alice", "us-west-2", datetime.datetime(2026, 11, 30, 12, 0, 0)),
    _signed("DB.example.com", 6543, "o'ne: \\il +x%", "eu-west-1", datetime.datetime(2026, 2, 28, 23, 59, 59)),
    _signed("abc.dsql.us-east-1.on.aws", 5432, "admin", "us-east-1", datetime.datetime(2026, 11, 30, 12, 0, 0), "dsql"),
]


@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow])
@given(base=st.sampled_from(TOKENS), cut=st.integers(0, 2000), junk=st.text(max_size=6), mode=st.sampled_from(["keep", "insert", "cut", "replace"]))
def test_fast_decoder_agrees_with_tokeninfo(base: str, cut: int, junk: str, mode: str) -> None:
    i = cut % (len(base) + 1)
    token = {"keep": base, "insert": base[:i] + junk + base[i:], "cut": base[:i], "replace": base[:i] + junk + base[i + len(junk):]}[mode]
    ref = tokeninfo.try_decode(token)
    got = entry._token_facts(token)
    if got is None:
        return  # stricter than the shared decoder is safe: the full path judges
    assert ref is not None, token
    assert got == (ref.host, ref.port, ref.user, ref.region, ref.service, ref.signed_at, ref.lifetime)


def test_fast_decoder_reads_real_tokens() -> None:
    for t in TOKENS:
        assert entry._token_facts(t) is not None


@settings(max_examples=150)
@given(base=st.sampled_from(TOKENS), offset=st.integers(-100, 1200), margin=st.integers(0, 900),
       creds=st.one_of(st.none(), st.integers(-100, 1200)), wrong=st.sampled_from(["", "host", "port", "user", "region"]))
def test_fast_freshness_agrees_with_the_shared_rule(base: str, offset: int, margin: int, creds: int | None, wrong: str) -> None:
    info = tokeninfo.decode(base)
    facts = entry._token_facts(base)
    assert facts is not None
    host, port, user, region = info.host, info.port or 5432, info.user or "admin", info.region
    host, port, user, region = {"host": ("x" + host, port, user, region), "port": (host, port + 1, user, region),
                                "user": (host, port, user + "x", region), "region": (host, port, user, "ap-south-1"),
                                "": (host, port, user, region)}[wrong]
    now = info.signed_at + offset
    cred_at = None if creds is None else info.signed_at + creds
    dsql = info.service == "dsql"
    v = freshness.judge(now, info, host=host, port=None if dsql else port, user=None if dsql else user, region=region,
                        margin=margin, credentials_expire=cred_at)
    assert entry._fresh(now, facts, host=host, port=port, user=user, region=region, margin=margin, creds=cred_at) == (not v.due)


LINE = st.one_of(
    st.builds(lambda h, p, u, t: pgpass.render_line(pgpass.Key(h, p, u), t), FIELD, FIELD, FIELD, FIELD),
    st.sampled_from([pgpass.BEGIN_LINE, pgpass.END_LINE, pgpass.BEGIN_LINE + "\r", pgpass.END_LINE + " ", "# BEGIN pgiam",
                     "", "#", "a:b:c:d:e:f", "a\\:b:1:*:u:t\\"]),
    FIELD,
)


@settings(max_examples=150)
@given(lines=st.lists(LINE, max_size=10), nl=st.sampled_from(["\n", "\r\n"]), key=st.tuples(FIELD, FIELD, FIELD))
def test_fast_pgpass_reader_agrees_with_pgpass(lines: list[str], nl: str, key: tuple[str, str, str]) -> None:
    text = nl.join(lines)
    try:
        tokens = pgpass.parse_tokens(text)
    except block.Damaged:  # the full path refuses the file; the fast path hands it over
        assert entry._pgpass_token(text, *key) is None
        return
    for k in [pgpass.Key(*key), *tokens]:
        assert entry._pgpass_token(text, k.host, k.port, k.user) == tokens.get(k)


def test_fast_pgpass_markers_are_pgpass_markers() -> None:
    assert (entry._BEGIN, entry._END) == (pgpass.BEGIN_LINE, pgpass.END_LINE)
