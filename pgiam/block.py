"""The marked block pgiam owns at the top of a foreign file; pure str -> str.

Both libpq files are shared with their owner. pgiam keeps its lines in one block
at the very top (libpq takes the first matching ~/.pgpass line and the first
section of a name), and everything outside the block is the user's, kept byte for
byte. Files are decoded with `surrogateescape`, so non-UTF-8 bytes round-trip.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Split:
    """A file cut into pgiam's block (None when absent) and the foreign text around it."""

    block: list[str] | None  # the lines between the markers, without line endings
    foreign: str  # everything else, exactly as it was


def split(text: str, begin: str, end: str) -> Split:
    """Cut every well-formed block out of `text`; the first one is pgiam's."""
    lines = text.splitlines(keepends=True)
    foreign: list[str] = []
    block: list[str] | None = None
    i = 0
    while i < len(lines):
        if _is_marker(lines[i], begin):
            j = i + 1
            while j < len(lines) and not _is_marker(lines[j], end) and not _is_marker(lines[j], begin):
                j += 1
            if j < len(lines) and _is_marker(lines[j], end):
                if block is None:
                    block = [ln.rstrip("\r\n") for ln in lines[i + 1 : j]]
                i = j + 1
                continue
        # A BEGIN without its END is not ours to interpret: keep it as foreign text.
        foreign.append(lines[i])
        i += 1
    return Split(block, "".join(foreign))


def _is_marker(line: str, marker: str) -> bool:
    return line.rstrip("\r\n").startswith(marker)


def join(block_lines: list[str], foreign: str, begin_line: str, end_line: str) -> str:
    """Put pgiam's block (if it has lines) on top of the foreign text."""
    if not block_lines:
        return foreign
    return "".join(f"{ln}\n" for ln in [begin_line, *block_lines, end_line]) + foreign
