"""~/.pgpass as pure text: escaping, parsing by libpq's rules, merging with foreign lines (issue 2)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pgiam import pgpass
from pgiam.pgpass import Key

TOKEN = "db.cluster-abc.us-west-2.rds.amazonaws.com:5432/?Action=connect&DBUser=alice&X-Amz-Signature=ab"


def libpq_lookup(text: str, host: str, port: str, db: str, user: str) -> str | None:
    """An independent transcription of libpq's passwordFromFile matching loop (fe-connect.c)."""
    for raw in text.split("\n"):
        raw = raw[:-1] if raw.endswith("\r") else raw  # libpq strips the trailing \n and \r
        line = raw
        if not line or line.startswith("#"):
            continue
        rest = line
        ok = True
        for want in (host, port, db, user):
            # pwdfMatchesString: field equals `want` (with \ escapes) or is `*` followed by ':'
            if rest.startswith("*:"):
                rest = rest[2:]
                continue
            i = j = 0
            matched = None
            while i < len(rest):
                c = rest[i]
                if c == "\\" and i + 1 < len(rest):
                    i += 1
                    c = rest[i]
                elif c == ":":
                    matched = j == len(want)
                    rest = rest[i + 1 :]
                    break
                if j >= len(want) or want[j] != c:
                    matched = False
                    break
                i += 1
                j += 1
            if not matched:
                ok = False
                break
        if not ok:
            continue
        # password: up to the first unescaped ':', backslashes removed
        out = []
        i = 0
        while i < len(rest):
            c = rest[i]
            if c == ":":
                break
            if c == "\\" and i + 1 < len(rest):
                i += 1
                c = rest[i]
            out.append(c)
            i += 1
        return "".join(out)
    return None


@pytest.mark.parametrize(
    "field, escaped",
    [
        ("plain", "plain"),
        ("a:b", "a\\:b"),
        ("a\\b", "a\\\\b"),
        ("o'neil x", "o'neil x"),
        ("\\:", "\\\\\\:"),
        ("*", "*"),
    ],
)
def test_escape_table(field: str, escaped: str) -> None:
    assert pgpass.escape(field) == escaped


def test_token_line_is_read_back_by_libpq_rules() -> None:
    key = Key("db.example.rds.amazonaws.com", "5432", "o'ne: \\il")
    text = pgpass.merge("", {key: TOKEN})
    assert libpq_lookup(text, key.host, "5432", "anydb", key.user) == TOKEN


MERGE_CASES = [
    # (name, foreign text)
    ("empty", ""),
    ("comment and line", "# mine\nlocalhost:5432:*:me:secret\n"),
    ("crlf", "# mine\r\nlocalhost:5432:*:me:secret\r\n"),
    ("no final newline", "localhost:5432:*:me:secret"),
    ("escapes", "h\\:x:5432:*:u\\\\v:p\\:w\n"),
    ("blank lines and spaces", "\n\n  spaced:1:*:x:y  \n\n"),
    ("non-utf8 (decoded with surrogateescape)", b"h:1:*:u:\xff\xfe\n".decode("utf-8", "surrogateescape")),
    ("looks like a marker but isn't", "#BEGIN pgiam\nx:1:*:y:z\n"),
]


@pytest.mark.parametrize("name, foreign", MERGE_CASES, ids=[c[0] for c in MERGE_CASES])
def test_merge_keeps_foreign_text_and_is_idempotent(name: str, foreign: str) -> None:
    key = Key("db.example.com", "5432", "alice")
    once = pgpass.merge(foreign, {key: TOKEN})
    assert once.endswith(foreign)
    assert pgpass.foreign_text(once) == foreign
    assert pgpass.merge(once, {key: TOKEN}) == once
    assert pgpass.parse_tokens(once) == {key: TOKEN}
    # our line comes first, so libpq picks it even when a foreign line matches too
    assert once.split("\n")[1].startswith("db.example.com:5432:*:alice:")
    # removing every token gives back the foreign text byte for byte
    assert pgpass.merge(once, {}) == foreign


def test_merge_replaces_token_and_keeps_other_keys() -> None:
    a, b = Key("h1", "5432", "u"), Key("h2", "6432", "u")
    text = pgpass.merge("x:1:*:y:z\n", {a: "old", b: "tb"})
    text = pgpass.merge(text, {a: "new", b: "tb"})
    assert pgpass.parse_tokens(text) == {a: "new", b: "tb"}
    assert text.endswith("x:1:*:y:z\n")


def test_unterminated_block_is_treated_as_foreign() -> None:
    broken = "# BEGIN pgiam: half a block\nh:1:*:u:p\n"
    merged = pgpass.merge(broken, {Key("h", "2", "u"): "t"})
    assert merged.endswith(broken)
    assert pgpass.parse_tokens(merged) == {Key("h", "2", "u"): "t"}


fields = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\r\n\x00"), min_size=1, max_size=40)


@given(host=fields, user=fields, token=fields)
def test_escaping_round_trips_through_libpq_rules(host: str, user: str, token: str) -> None:
    """Property: whatever the host, user and token, libpq reads back exactly our token."""
    text = pgpass.merge("", {Key(host, "5432", user): token})
    assert libpq_lookup(text, host, "5432", "db", user) == token
    assert pgpass.parse_tokens(text) == {Key(host, "5432", user): token}


foreign_text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=300)


@given(foreign=foreign_text, token=fields)
def test_merge_property_foreign_preserved_idempotent(foreign: str, token: str) -> None:
    if "# BEGIN pgiam" in foreign or "# END pgiam" in foreign:
        return
    k = Key("h", "5432", "u")
    once = pgpass.merge(foreign, {k: token})
    assert pgpass.foreign_text(once) == foreign
    assert pgpass.merge(once, {k: token}) == once


@given(st.lists(st.text(alphabet="ab:\\*#\r\0é", max_size=14), max_size=6))
def test_parse_tokens_reads_each_line_as_split_fields_does(lines: list[str]) -> None:
    """Issue 25: token lines are read by one compiled match per line; each key and token must be what
    split_fields (the field-by-field reading of libpq's rule) gives, the first line of a key winning (the
    usual line, whose only escapes are `\\:`, by string methods; a NUL in a line takes the general path)."""
    text = "".join(f"{ln}\n" for ln in [pgpass.BEGIN_LINE, *lines, pgpass.END_LINE])
    expected: dict[Key, str] = {}
    for line in (ln.rstrip("\r") for ln in lines):
        fields = pgpass.split_fields(line)
        if line and not line.startswith("#") and len(fields) == 5:
            expected.setdefault(Key(fields[0], fields[1], fields[3]), fields[4])
    assert pgpass.parse_tokens(text) == expected


@given(st.text(alphabet="ab#:\\*é", max_size=6), st.text(alphabet="5#:\\*", max_size=4),
       st.text(alphabet="ab#:\\*é ", max_size=6), st.text(alphabet="ab:\\", max_size=8))
def test_render_line_shortcut_writes_what_the_field_by_field_rendering_writes(host: str, port: str, user: str,
                                                                              tok: str) -> None:
    """Issue 25: a key with nothing to escape is written by one f-string; every key must come out as the
    field-by-field rendering (each key field escaped, `*` as `\\*`, a leading `#` escaped) writes it."""
    h = pgpass._literal(host)
    h = "\\" + h if h.startswith("#") else h
    expected = ":".join([h, pgpass._literal(port), "*", pgpass._literal(user), pgpass.escape(tok)])
    assert pgpass.render_line(Key(host, port, user), tok) == expected


def _full(text: str, new: dict[Key, str], keep: set[Key]) -> str:
    """What `refresh` writes without the shortcut (pgiam.store.plan_libpq): every kept token, the new ones
    replacing theirs, each line rendered anew."""
    current = pgpass.parse_tokens(text)
    return pgpass.merge(text, {k: new.get(k) or current[k] for k in keep if k in new or k in current})


_keys = st.builds(Key, st.text(alphabet="ab.#*:\\é", max_size=3), st.sampled_from(["5432", "1", "*", ""]),
                  st.text(alphabet="ab*:\\", max_size=2))
_tokens = st.text(alphabet="ab:\\/?=&\0", max_size=6)


@settings(max_examples=200)
@given(old=st.dictionaries(_keys, _tokens, max_size=5), new=st.dictionaries(_keys, _tokens, max_size=3),
       drop=st.sets(st.integers(0, 5), max_size=2), extra=st.lists(st.text(alphabet="ab:*\\#\r", max_size=8), max_size=2),
       at=st.integers(0, 6), swap=st.booleans(), foreign=st.sampled_from(["", "x:1:*:y:z\n", "# mine\r\n", "tail"]))
def test_merge_some_writes_what_merge_writes(old: dict[Key, str], new: dict[Key, str], drop: set[int],
                                             extra: list[str], at: int, swap: bool, foreign: str) -> None:
    """Issue 25: `refresh NAME` rewrites only the new tokens' lines of a block that is exactly as merge writes
    it. Whenever that shortcut answers, it must be byte for byte what merging every kept token writes, for
    blocks merge wrote and blocks it did not (extra lines, two lines swapped, keys no longer configured)."""
    text = pgpass.merge(foreign, old)
    lines = text.split("\n")
    if extra:
        lines[1 + at % max(1, len(old)) : 1] = extra
    if swap and len(old) > 1:
        lines[1], lines[2] = lines[2], lines[1]
    text = "\n".join(lines)
    keep = {k for i, k in enumerate(sorted({*old, *new})) if i not in drop}
    fast = pgpass.merge_some(text, new, keep)
    if fast is not None:
        assert fast == _full(text, new, keep)


@settings(max_examples=100)
@given(old=st.dictionaries(st.builds(Key, st.text(alphabet="ab.-é", min_size=1, max_size=4), st.sampled_from(["5432", "6432"]),
                                     st.text(alphabet="ab", min_size=1, max_size=2)), _tokens.filter(lambda t: "\\" not in t),
                           min_size=1, max_size=6),
       new=st.dictionaries(st.builds(Key, st.sampled_from(["a", "b.c", "zz"]), st.just("5432"), st.just("a")),
                           st.text(alphabet="ab:\\", min_size=1, max_size=6), max_size=2),
       foreign=st.sampled_from(["", "x:1:*:y:z\n", "# mine\n"]))
def test_merge_some_answers_for_a_block_merge_wrote(old: dict[Key, str], new: dict[Key, str], foreign: str) -> None:
    """Issue 25: the shortcut is taken for the block refresh writes (plain keys, tokens without `\\`), new
    keys inserted in order and old ones replaced; it is what merging every token writes."""
    text = pgpass.merge(foreign, old)
    keep = {*old, *new}
    assert pgpass.merge_some(text, new, keep) == _full(text, new, keep)


A, B, C = Key("a", "5432", "u"), Key("b", "5432", "u"), Key("c", "5432", "u")
PLAIN = pgpass.merge("x:1:*:y:z\n", {A: "ta:1", C: "tc:3"})


@pytest.mark.parametrize("name, text, new, keep", [
    ("block merge did not write: keys out of order", PLAIN.replace("a:5432", "d:5432"), {B: "n"}, {A, B, C, Key("d", "5432", "u")}),
    ("a key twice", PLAIN.replace("c:5432", "a:5432"), {B: "n"}, {A, B, C}),
    ("a key no longer configured", PLAIN, {B: "n"}, {B, C}),
    ("a comment line in the block", PLAIN.replace("\nc:", "\n# note\nc:"), {B: "n"}, {A, B, C}),
    ("a token with an unescaped colon", PLAIN.replace("tc\\:3", "tc:3"), {B: "n"}, {A, B, C}),
    ("a token with an escaped backslash", PLAIN.replace("tc\\:3", "tc\\\\3"), {B: "n"}, {A, B, C}),
    ("a database other than *", PLAIN.replace("c:5432:*:", "c:5432:app:"), {B: "n"}, {A, B, C}),
    ("CR line ends", PLAIN.replace("\n", "\r\n"), {B: "n"}, {A, B, C}),
    ("the block below foreign lines", "mine:1:*:u:p\n" + PLAIN, {B: "n"}, {A, B, C}),
    ("a second copy of the block", PLAIN + PLAIN, {B: "n"}, {A, B, C}),
    ("an empty new token", PLAIN, {B: ""}, {A, B, C}),
])
def test_merge_some_declines_what_it_cannot_splice(name: str, text: str, new: dict[Key, str], keep: set[Key]) -> None:
    """Issue 25: a block merge would rewrite otherwise is left to merge (None), never spliced."""
    assert pgpass.merge_some(text, new, keep) is None


def test_merge_some_replaces_and_inserts_lines_in_place() -> None:
    """Issue 25: B's line goes between A's and C's, A's token is replaced, the foreign line is kept."""
    out = pgpass.merge_some(PLAIN, {B: "tb:2", A: "ta:9"}, {A, B, C})
    assert out == "\n".join([pgpass.BEGIN_LINE, "a:5432:*:u:ta\\:9", "b:5432:*:u:tb\\:2", "c:5432:*:u:tc\\:3",
                             pgpass.END_LINE, "x:1:*:y:z\n"])
