"""Issue 7: hypothesis drives the parsers and merges with arbitrary text, checked against libpq_ref."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from pgiam import block, config, pgpass, servicefile
from pgiam.errors import UsageError
from tests.reliability import libpq_ref

pytestmark = pytest.mark.reliability
SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
LINES = st.sampled_from([
    "# comment", "[local]", "  [odd]  x", "host=h", "port= 5", "orphan", "connect_timeout=1", "#", "",
    "localhost:5432:*:me:s\\:ecret", "*:*:*:*:pw", "x" * 1100, "[broken", "\udcff\udcfe latin", "a\rb", "\x00nul",
    "# BEGIN pgiam", "# END pgiam", "# BEGIN pgiam tokens copied from my laptop", "# END pgiam (laptop)",
    pgpass.BEGIN_LINE, pgpass.END_LINE, servicefile.BEGIN_LINE,
])
EOL = st.sampled_from(["\n", "\r\n", ""])
FOREIGN = st.lists(st.tuples(st.one_of(LINES, st.text(max_size=30)), EOL), max_size=12).map(
    lambda parts: "".join(a + b for a, b in parts))


def _ok(check, v):
    try:
        check(v)
        return True
    except UsageError:
        return False


USERS = st.text(min_size=1, max_size=20).filter(lambda v: _ok(lambda x: config.check_text("user", x), v) and "\0" not in v)
HOSTS = st.from_regex(r"[a-z0-9]([a-z0-9-]{0,10}[a-z0-9])?(\.[a-z0-9]{1,8}){0,3}", fullmatch=True)
TOKENS = st.text(st.characters(blacklist_characters="\n\r\0", blacklist_categories=["Cs"]), min_size=1, max_size=60)
NAMES = st.from_regex(r"[A-Za-z0-9_.@+-]{1,12}", fullmatch=True)


def b(s: str) -> bytes:
    return s.encode("utf-8", "surrogateescape")


@SETTINGS
@given(text=FOREIGN, tokens=st.dictionaries(st.tuples(HOSTS, st.integers(1, 65535).map(str), USERS), TOKENS, max_size=4))
def test_pgpass_merge(text: str, tokens: dict) -> None:
    """Foreign bytes preserved, idempotent, and libpq (reference) reads back each token, whatever the text.
    Only the exact marker lines are pgiam's; a BEGIN line without its END line is refused (issue 11)."""
    toks = {pgpass.Key(*k): v for k, v in tokens.items()}
    if _damaged(text, pgpass.BEGIN_LINE, pgpass.END_LINE):
        with pytest.raises(block.Damaged):
            pgpass.merge(text, toks)
        return
    merged = pgpass.merge(text, toks)
    assert pgpass.foreign_text(merged) == pgpass.foreign_text(text)
    if pgpass.BEGIN_LINE not in text:
        assert merged.endswith(text) and (not toks or merged != text)
    assert pgpass.merge(merged, toks) == merged
    assert pgpass.parse_tokens(merged) == toks
    for k, v in toks.items():
        assert libpq_ref.password_from_file(b(merged), b(k.host), b(k.port), b"anydb", b(k.user)) == b(v)


VALUES = st.text(min_size=1, max_size=30).filter(lambda v: _ok(lambda x: config.check_text("v", x), v) and "\0" not in v)


@SETTINGS
@given(text=FOREIGN, entries=st.dictionaries(NAMES, st.tuples(HOSTS, USERS, VALUES), max_size=4))
@example(text="[local]" + "x" * 1100, entries={"0": ("0", "0", "0")})  # found on a fresh machine: a header too long
def test_servicefile_merge(text: str, entries: dict) -> None:
    """Foreign bytes preserved, idempotent, and libpq (reference) reads exactly our keys for each service."""
    es = [servicefile.Entry(n, [("host", h), ("port", "5432"), ("user", u), ("dbname", d), ("sslmode", "verify-full")])
          for n, (h, u, d) in sorted(entries.items())]
    if _damaged(text, servicefile.BEGIN_LINE, servicefile.END_LINE):
        with pytest.raises(block.Damaged):
            servicefile.merge(text, es)
        return
    merged = servicefile.merge(text, es)
    assert block_foreign(merged) == block_foreign(text)
    if servicefile.BEGIN_LINE not in text:
        assert merged.endswith(text)
    assert servicefile.merge(merged, es) == merged
    assert servicefile.managed_names(merged) == [e.name for e in es]
    for e in es:
        assert libpq_ref.service_lookup(b(merged), b(e.name)) == {b(k): b(v) for k, v in e.keys}


@SETTINGS
@given(text=FOREIGN)
def test_parsers_never_crash(text: str) -> None:
    """Any text: the parsers return (or refuse a damaged block), and a merge with nothing of ours gives
    back the foreign text."""
    if _damaged(text, pgpass.BEGIN_LINE, pgpass.END_LINE):
        with pytest.raises(block.Damaged):
            pgpass.parse_tokens(text)
    else:
        pgpass.parse_tokens(text)
        assert pgpass.merge(text, {}) == pgpass.foreign_text(text)
    if _damaged(text, servicefile.BEGIN_LINE, servicefile.END_LINE):
        with pytest.raises(block.Damaged):
            servicefile.managed_names(text)
    else:
        servicefile.managed_names(text)
        servicefile.foreign_sections(text)
        assert servicefile.merge(text, []) == block_foreign(text)


def block_foreign(text: str) -> str:
    return block.split(text, servicefile.BEGIN_LINE, servicefile.END_LINE).foreign


def _damaged(text: str, begin: str, end: str) -> bool:
    """An independent reading: is some exact BEGIN line not followed by its END line before the next BEGIN?"""
    open_ = False
    for raw in text.split("\n"):
        line = raw[:-1] if raw.endswith("\r") else raw
        if line == begin:
            if open_:
                return True
            open_ = True
        elif line == end:
            open_ = False
    return open_
