"""pgiam.block cuts its block out of a file with str.find (issue 25); it must cut exactly as a line-by-line reading does."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from pgiam import block

BEGIN, END = "# BEGIN pgiam: test", "# END pgiam"


def _is(line: str, marker: str) -> bool:
    for ending in ("\r\n", "\n"):
        if line.endswith(ending):
            return line[: -len(ending)] == marker
    return line == marker


def reference_split(text: str) -> tuple[list[str] | None, str] | int:
    """The rule read line by line (lines end at `\\n` only): the block's lines and the foreign text, or the
    1-based line of a BEGIN line without its END line."""
    parts = text.split("\n")
    lines = [p + "\n" for p in parts[:-1]] + ([parts[-1]] if parts[-1] else [])
    foreign: list[str] = []
    found: list[str] | None = None
    i = 0
    while i < len(lines):
        if _is(lines[i], BEGIN):
            j = next((j for j in range(i + 1, len(lines)) if _is(lines[j], END) or _is(lines[j], BEGIN)), len(lines))
            if j == len(lines) or not _is(lines[j], END):
                return i + 1
            if found is None:
                found = [ln.rstrip("\r\n") for ln in lines[i + 1 : j]]
            i = j + 1
        else:
            foreign.append(lines[i])
            i += 1
    return found, "".join(foreign)


_PIECES = st.sampled_from([BEGIN, END, BEGIN + " x", " " + BEGIN, END + "\r", "# END", "a:b", "", "\r", "#", "[s]"])


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(_PIECES, st.sampled_from(["\n", "\r\n", "", "\r"])), max_size=8))
def test_split_agrees_with_the_line_by_line_rule(parts: list[tuple[str, str]]) -> None:
    """Issue 25: the find-based cut gives the same block, foreign text and damaged-line number."""
    text = "".join(p + e for p, e in parts)
    try:
        got: tuple[list[str] | None, str] | int = (lambda s: (s.block, s.foreign))(block.split(text, BEGIN, END))
    except block.Damaged as err:
        got = err.line
    assert got == reference_split(text)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(_PIECES, st.sampled_from(["\n", "\r\n", "", "\r"])), max_size=8))
def test_foreign_and_check_agree_with_split(parts: list[tuple[str, str]]) -> None:
    """Issue 25: foreign() gives split's foreign text, and check() and foreign() refuse a damaged block on
    the line split does, without cutting the block into lines."""
    text = "".join(p + e for p, e in parts)
    outcomes: list[object] = []
    for cut in (lambda: block.split(text, BEGIN, END).foreign, lambda: block.foreign(text, BEGIN, END),
                lambda: block.check(text, BEGIN, END)):
        try:
            outcomes.append(cut())
        except block.Damaged as err:
            outcomes.append(err.line)
    split, foreign, checked = outcomes
    assert foreign == split
    assert checked == (split if isinstance(split, int) else None)
