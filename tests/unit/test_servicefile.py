"""pg_service.conf as pure text: pgiam's sections, foreign bytes kept, conflicts found (issue 2)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pgiam import servicefile
from pgiam.servicefile import Entry

PROD = Entry("prod", [("host", "db.example.com"), ("port", "5432"), ("user", "alice"), ("sslmode", "verify-full"), ("sslrootcert", "/ca.pem")])


def libpq_section(text: str, name: str) -> dict[str, str] | None:
    """An independent transcription of libpq's parseServiceFile for one section (first wins)."""
    found = False
    out: dict[str, str] = {}
    for raw in text.split("\n"):
        line = raw.strip(" \t\r\f\v")  # leading and (libpq 13+) trailing whitespace
        if not line or line.startswith("#"):
            continue
        if line.startswith("["):
            if found:
                return out
            found = line[1 : 1 + len(name)] == name and line[1 + len(name) : 2 + len(name)] == "]"
            continue
        if found:
            key, sep, val = line.partition("=")
            if not sep:
                raise ValueError(f"syntax error: {line!r}")
            out.setdefault(key, val)
    return out if found else None


FOREIGN = [
    ("empty", ""),
    ("section", "[mine]\nhost=localhost\n"),
    ("crlf", "# c\r\n[mine]\r\nhost=x\r\n"),
    ("no final newline", "[mine]\nhost=x"),
    ("odd spacing and comments", "\n  # note \n[mine]  trailing\n host = broken \n\n"),
    ("bad section libpq would reject", "[weird\nnot a key\n"),
]


@pytest.mark.parametrize("name, foreign", FOREIGN, ids=[f[0] for f in FOREIGN])
def test_merge_keeps_foreign_bytes(name: str, foreign: str) -> None:
    once = servicefile.merge(foreign, [PROD])
    assert once.endswith(foreign)
    assert servicefile.merge(once, [PROD]) == once
    assert servicefile.merge(once, []) == foreign
    assert servicefile.managed_names(once) == ["prod"]
    assert libpq_section(once, "prod") == dict(PROD.keys)


def test_keys_have_no_spaces_and_section_is_marked() -> None:
    text = servicefile.merge("", [PROD])
    lines = text.splitlines()
    i = lines.index("[prod]")
    assert "managed by pgiam" in lines[i - 1]
    assert "host=db.example.com" in lines
    assert all(" = " not in ln for ln in lines if "=" in ln and not ln.startswith("#"))


def test_foreign_sections_found_with_line_numbers() -> None:
    text = servicefile.merge("# c\n[a]\nhost=x\n\n  [prod]\nport=1\n", [Entry("b", [("host", "y")])])
    secs = servicefile.foreign_sections(text)
    assert [(s.name, s.line) for s in secs] == [("a", 2), ("prod", 5)]


def test_drop_foreign_removes_only_that_section() -> None:
    foreign = "# mine\n[prod]\nhost=old\nport=1\n# next\n[other]\nhost=z\n"
    merged = servicefile.merge(foreign, [PROD], drop_foreign=["prod"])
    assert servicefile.foreign_sections(merged)[0].name == "other"
    assert merged.endswith("# mine\n# next\n[other]\nhost=z\n")
    assert libpq_section(merged, "prod") == dict(PROD.keys)


@given(st.text(st.characters(blacklist_categories=("Cs",)), max_size=300))
def test_property_foreign_preserved_and_idempotent(foreign: str) -> None:
    if "# BEGIN pgiam" in foreign or "# END pgiam" in foreign:
        return
    once = servicefile.merge(foreign, [PROD])
    assert once.endswith(foreign)
    assert servicefile.merge(once, [PROD]) == once
    assert servicefile.merge(once, []) == foreign


@pytest.mark.parametrize("length", [servicefile.OLD_LINE_MAX + 1, 1100])
def test_a_header_line_too_long_for_libpq_is_kept_out_of_our_last_section(length: int) -> None:
    """libpq checks a line's length before it looks for a `[`: a foreign first line `[local]xxx…` longer
    than libpq allows is not a header that ends pgiam's last section but an error while reading it, so
    the guard section goes between them (found by tests/reliability/test_properties.py on a fresh machine)."""
    foreign = "[local]" + "x" * (length - len("[local]")) + "\nhost=h\n"
    merged = servicefile.merge(foreign, [PROD])
    block, _, rest = merged.partition(servicefile.END_LINE)
    assert rest.endswith(foreign)
    assert f"[{servicefile.GUARD_NAME}]" in block.splitlines()
