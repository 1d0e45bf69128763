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


def lines(text: str) -> list[str]:
    """Lines with their endings, split on `\n` only, as libpq's fgets does (str.splitlines also splits on \x1c, \x85...)."""
    parts = text.split("\n")
    out = [p + "\n" for p in parts[:-1]]
    if parts[-1]:
        out.append(parts[-1])
    return out


def split(text: str, begin: str, end: str) -> Split:
    """Cut every well-formed block out of `text`; the first one is pgiam's."""
    all_lines = lines(text)
    foreign: list[str] = []
    block: list[str] | None = None
    i = 0
    while i < len(all_lines):
        if _is_marker(all_lines[i], begin):
            j = i + 1
            while j < len(all_lines) and not _is_marker(all_lines[j], end) and not _is_marker(all_lines[j], begin):
                j += 1
            if j < len(all_lines) and _is_marker(all_lines[j], end):
                if block is None:
                    block = [ln.rstrip("\r\n") for ln in all_lines[i + 1 : j]]
                i = j + 1
                continue
        # A BEGIN without its END is not ours to interpret: keep it as foreign text.
        foreign.append(all_lines[i])
        i += 1
    return Split(block, "".join(foreign))


def _is_marker(line: str, marker: str) -> bool:
    return line.rstrip("\r\n").startswith(marker)


def join(block_lines: list[str], foreign: str, begin_line: str, end_line: str) -> str:
    """Put pgiam's block (if it has lines) on top of the foreign text."""
    if not block_lines:
        return foreign
    return "".join(f"{ln}\n" for ln in [begin_line, *block_lines, end_line]) + foreign
