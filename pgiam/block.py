"""The marked block pgiam owns at the top of a foreign file; pure str -> str.

Both libpq files are shared with their owner. pgiam keeps its lines in one block
at the very top (libpq takes the first matching ~/.pgpass line and the first
section of a name), and everything outside the block is the user's, kept byte for
byte. Files are decoded with `surrogateescape`, so non-UTF-8 bytes round-trip.

Only the exact marker lines pgiam writes are markers (a line ending of `\\n` or
`\\r\\n` aside): a user's own `# BEGIN pgiam tokens from my laptop` … `# END pgiam …`
is foreign text like any other. A BEGIN line pgiam wrote whose END line is gone
cannot be cut safely (pgiam cannot tell where its lines stop and the user's
start), so it is refused with `Damaged`, and nothing is written.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from pgiam.errors import ConfigError


@dataclass(frozen=True)
class Split:
    """A file cut into pgiam's block (None when absent) and the foreign text around it."""

    block: list[str] | None  # the lines between the markers, without line endings
    foreign: str  # everything else, exactly as it was


class Damaged(ConfigError):
    """pgiam's BEGIN line without its END line: refused, nothing written."""

    def __init__(self, what: str, line: int, end_line: str) -> None:
        self.what, self.line, self.end_line = what, line, end_line
        super().__init__(
            f"{what}, line {line}: pgiam's block starts here but its end line `{end_line}` is missing",
            f"put the line `{end_line}` back after pgiam's last line, or delete pgiam's lines including "
            "the BEGIN line; then run the command again",
        )

    def at(self, path: object) -> ConfigError:
        """The same error naming the file."""
        return Damaged(str(path), self.line, self.end_line)


def lines(text: str) -> list[str]:
    """Lines with their endings, split on `\n` only, as libpq's fgets does (str.splitlines also splits on \x1c, \x85...)."""
    parts = text.split("\n")
    out = [p + "\n" for p in parts[:-1]]
    if parts[-1]:
        out.append(parts[-1])
    return out


def split(text: str, begin_line: str, end_line: str, what: str = "the file") -> Split:
    """Cut pgiam's block(s) out of `text`: the first is pgiam's, later copies are dropped.

    Raises Damaged for a BEGIN line with no END line before the next BEGIN line or the end of the text.
    The markers are found with str.find, not by looking at every line: a ~/.pgpass of 10,000 tokens
    is cut in one pass of C code (issue 25).
    """
    foreign: list[str] = []
    block: list[str] | None = None
    pos = 0
    for begin, end in _spans(text, begin_line, end_line, what):
        foreign.append(text[pos:begin[0]])
        if block is None:
            # Every line between the markers ends with "\n"; "\r\n" endings lose their "\r" too.
            inner = text[begin[1] : end[0]].split("\n")[:-1]
            block = [ln.rstrip("\r") for ln in inner] if "\r" in text else inner
        pos = end[1]
    foreign.append(text[pos:])
    return Split(block, "".join(foreign))


def foreign(text: str, begin_line: str, end_line: str, what: str = "the file") -> str:
    """split(...).foreign, without cutting the block into lines (a merge writes its own)."""
    parts: list[str] = []
    pos = 0
    for begin, end in _spans(text, begin_line, end_line, what):
        parts.append(text[pos : begin[0]])
        pos = end[1]
    parts.append(text[pos:])
    return "".join(parts)


def check(text: str, begin_line: str, end_line: str, what: str = "the file") -> None:
    """Raise Damaged where split() would, without cutting anything (a read that parses the lines later)."""
    for _ in _spans(text, begin_line, end_line, what):
        pass


def _spans(text: str, begin_line: str, end_line: str, what: str) -> Iterator[tuple[tuple[int, int], tuple[int, int]]]:
    """The spans of each block's BEGIN and END lines, in order; Damaged for a BEGIN line without its END line."""
    pos = 0
    while (begin := _find_line(text, begin_line, pos)) is not None:
        end = _find_line(text, end_line, begin[1])
        again = _find_line(text, begin_line, begin[1])
        if end is None or (again is not None and again[0] < end[0]):
            raise Damaged(what, text.count("\n", 0, begin[0]) + 1, end_line)
        yield begin, end
        pos = end[1]


def _find_line(text: str, marker: str, start: int) -> tuple[int, int] | None:
    """Span (with its line ending) of the first line at or after `start` (a line start) that is exactly `marker`."""
    i = text.find(marker, start)
    while i != -1:
        j = i + len(marker)
        if i == start or text[i - 1] == "\n":
            if j == len(text):
                return i, j
            if text[j] == "\n":
                return i, j + 1
            if text.startswith("\r\n", j):
                return i, j + 2
        i = text.find(marker, i + 1)
    return None


def marked_range(all_lines: list[str], begin_line: str, end_line: str) -> tuple[int, int] | None:
    """1-based first and last line of pgiam's block (markers included) in `lines(text)`, or None."""
    for i, line in enumerate(all_lines):
        if _is(line, begin_line):
            for j in range(i + 1, len(all_lines)):
                if _is(all_lines[j], end_line):
                    return i + 1, j + 1
                if _is(all_lines[j], begin_line):
                    return None
            return None
    return None


def _is(line: str, marker: str) -> bool:
    """Is `line` exactly the marker line (with `\\n`, `\\r\\n` or no line ending)?"""
    if line.endswith("\r\n"):
        line = line[:-2]
    elif line.endswith("\n"):
        line = line[:-1]
    return line == marker


def join(block_lines: list[str], foreign: str, begin_line: str, end_line: str) -> str:
    """Put pgiam's block (if it has lines) on top of the foreign text."""
    if not block_lines:
        return foreign
    return "\n".join([begin_line, *block_lines, end_line, foreign])  # one join: no second copy of a large block
