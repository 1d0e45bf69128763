"""Parse, render and merge pg_service.conf text; pure str -> str, no disk.

libpq's rules (FACTS.md): `[name]` (case-sensitive, text after `]` ignored),
`key=value` split at the first `=` with no trimming, whole-line `#` comments,
leading (and from 13, trailing) whitespace of a line stripped, an unknown key is
a hard error, the first section of a name wins.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from pgiam import block, facts

# The marker lines are BEGIN_LINE and END_LINE exactly (pgiam.block).
WHAT = "the service file"  # named in a damaged-block error; pgiam.store names the path
BEGIN_LINE = facts.SERVICEFILE_BEGIN
END_LINE = facts.END
# libpq ends a section only at the next `[` line, so lines the user keeps above their first section would
# be read as part of pgiam's last one (an unknown key there fails it). This header closes the block then.
GUARD_NAME = "pgiam:end"
GUARD_LINES = [
    "# keeps your lines below out of the services above (libpq reads a section up to the next [header])",
    f"[{GUARD_NAME}]",
]
OLD_LINE_MAX = 253  # libpq 13 refuses longer lines read while looking for a section (FACTS.md)


@dataclass(frozen=True)
class Section:
    """A section as libpq would see it: name, 1-based header line, and character span in the text."""

    name: str
    line: int
    start: int
    end: int


@dataclass(frozen=True)
class Entry:
    """One service pgiam writes: its name and ordered key=value pairs."""

    name: str
    keys: Sequence[tuple[str, str]]


def render_section(entry: Entry) -> list[str]:
    """The lines of one managed section, marked as pgiam's."""
    lines = [f"# [{entry.name}] managed by pgiam: `pgiam remove {entry.name}` deletes it", f"[{entry.name}]"]
    lines += [f"{k}={v}" for k, v in entry.keys]  # no spaces: libpq does not trim around `=`
    return lines


def section_format(names: Sequence[str]) -> Callable[[str, Sequence[str]], str]:
    """render_section of an entry with these key names, joined, as a function of the name and the values:
    one %-format per section instead of a list of lines (10,000 sections, issue 25)."""
    marks = [f"\0{i}\0" for i in range(len(names) + 1)]
    text = "\n".join(render_section(Entry(marks[0], [(k, marks[i + 1]) for i, k in enumerate(names)])))
    order: list[int] = []  # which of name and values each %s takes (the name is in the comment and the header)

    def field(m: re.Match[str]) -> str:
        order.append(int(m[1]))
        return "%s"

    template = re.sub("\0([0-9]+)\0", field, text.replace("%", "%%"))
    pick = operator.itemgetter(*order)
    return lambda name, values: template % pick((name, *values))


def foreign_sections(text: str) -> list[Section]:
    """Every section header outside pgiam's block, with the span of its key lines."""
    foreign = block.foreign(text, BEGIN_LINE, END_LINE, WHAT)
    return _sections(foreign)


def _sections(text: str) -> list[Section]:
    out: list[Section] = []
    pos = 0
    current: tuple[str, int, int] | None = None
    last_content_end = 0
    for lineno, raw in enumerate(block.lines(text), start=1):
        stripped = raw.strip(" \t\r\n\f\v")  # C isspace(), not Python's wider notion
        if stripped.startswith("[") and "]" in stripped:
            if current:
                out.append(Section(current[0], current[1], current[2], last_content_end))
            current = (stripped[1 : stripped.index("]")], lineno, pos)
            last_content_end = pos + len(raw)
        elif stripped and not stripped.startswith("#") and current:
            last_content_end = pos + len(raw)
        pos += len(raw)
    if current:
        out.append(Section(current[0], current[1], current[2], last_content_end))
    return out


def managed_names(text: str) -> list[str]:
    """Names of the sections inside pgiam's block."""
    lines = block.split(text, BEGIN_LINE, END_LINE, WHAT).block or []
    stripped = [ln.strip(" \t\r\n\f\v") for ln in lines if "[" in ln]  # only a line with `[` can be a header
    names = [s[1 : s.index("]")] for s in stripped if s.startswith("[") and "]" in s]
    return [n for n in names if n != GUARD_NAME]


def _needs_guard(foreign: str) -> bool:
    """Would libpq read any of the user's lines above their first section as part of ours?"""
    for raw in block.lines(foreign):
        body = raw.rstrip("\r\n")
        if len(body) > OLD_LINE_MAX:  # libpq checks the length first: even a `[` line that long is an error
            return True
        s = body.strip(" \t\r\n\f\v")
        if s.startswith("["):
            return False
        if s and not s.startswith("#"):
            return True
    return False


def merge(text: str, entries: Iterable[Entry | str], drop_foreign: Iterable[str] = ()) -> str:
    """`text` with pgiam's block holding exactly `entries` (each an Entry, or its render_section lines already
    joined); foreign sections named in `drop_foreign` removed."""
    foreign = block.foreign(text, BEGIN_LINE, END_LINE, WHAT)
    drop = set(drop_foreign)
    if drop:
        # Remove from the end so earlier spans stay valid; comments and blank lines around stay.
        for sec in reversed(_sections(foreign)):
            if sec.name in drop:
                foreign = foreign[: sec.start] + foreign[sec.end :]
    # One string per section (a blank line between them), not one per line: 10,000 services stay a few
    # megabytes (issue 25).
    lines: list[str] = []
    for entry in entries:
        if lines:
            lines.append("")
        lines.append(entry if isinstance(entry, str) else "\n".join(render_section(entry)))
    if lines and _needs_guard(foreign):
        lines += ["", "\n".join(GUARD_LINES)]
    return block.join(lines, foreign, BEGIN_LINE, END_LINE)
