"""Parse, render and merge ~/.pgpass text; pure str -> str, no disk.

libpq's rules (FACTS.md): `host:port:database:user:password`, first matching
line wins, `\\` escapes the next character in every field, `*` is a wildcard
only as a whole field, `#` in column 0 starts a comment, no trimming.
"""

from __future__ import annotations

import operator
import re
from bisect import bisect_left
from collections.abc import Mapping
from typing import NamedTuple

from pgiam import block, facts

# The marker lines are BEGIN_LINE and END_LINE exactly (pgiam.block).
WHAT = "the password file"  # named in a damaged-block error; pgiam.store names the path
BEGIN_LINE = facts.PGPASS_BEGIN
END_LINE = facts.END


class Key(NamedTuple):
    """What libpq matches a token line on: the host name, the port it dials, the user."""

    host: str
    port: str
    user: str


def escape(field: str) -> str:
    """Escape a field for ~/.pgpass: `\\` and `:` get a backslash (every RDS token holds a `:`)."""
    return field.replace("\\", "\\\\").replace(":", "\\:")


_PIECE = re.compile(r"\\(.)|:|[^\\:]+|\\", re.S)  # an escape, a separator, a plain run, a lone final `\`


def split_fields(line: str) -> list[str]:
    """Split one ~/.pgpass line into its unescaped fields, the way libpq reads it."""
    fields: list[str] = []
    cur: list[str] = []
    for m in _PIECE.finditer(line):
        if m.group(1) is not None:
            cur.append(m.group(1))
        elif m.group() == ":":
            if len(fields) == 4:  # the password ends at the first unescaped `:`
                break
            fields.append("".join(cur))
            cur = []
        else:
            cur.append(m.group())
    fields.append("".join(cur))
    return fields


def _literal(field: str) -> str:
    """A key field that libpq compares literally: a whole-field `*` would be a wildcard, so write `\\*`."""
    return "\\*" if field == "*" else escape(field)


def render_line(key: Key, token: str) -> str:
    """One token line; the database is `*` because a token is not database-specific."""
    probe = key.host + key.port + key.user
    if "\\" not in probe and ":" not in probe and "*" not in probe and not key.host.startswith("#"):
        return f"{key.host}:{key.port}:*:{key.user}:{escape(token)}"  # nothing to escape in the key (issue 25)
    host = _literal(key.host)
    if host.startswith("#"):
        host = "\\" + host  # only `#` in column 0 starts a comment; `\\#` still matches "#"
    return ":".join([host, _literal(key.port), "*", _literal(key.user), escape(token)])


_FIELD = r"([^\\:]*(?:\\.[^\\:]*)*)"  # a field with its escapes, up to the next unescaped `:`
# Five fields as split_fields reads them (the password may end in a lone `\`), in one compiled match.
_LINE = re.compile(":".join([_FIELD] * 5) + r"(\\?)", re.S)
_ESCAPE = re.compile(r"\\(.)", re.S)


def _unescape(field: str) -> str:
    return _ESCAPE.sub(r"\1", field) if "\\" in field else field


def parse_tokens(text: str) -> dict[Key, str]:
    """The tokens in pgiam's block, by key (the first line of a key wins, as in libpq)."""
    lines = block.split(text, BEGIN_LINE, END_LINE, WHAT).block or []
    out: dict[Key, str] = {}
    for line in lines:
        if not line or line.startswith("#"):
            continue
        if line.count("\\") == line.count("\\:") and "\0" not in line:
            # The usual line (issue 25): every `\` escapes a `:` (a token's one `:`), so the fields are the
            # pieces between the other colons, read by C string methods rather than the regex below.
            fields = line.replace("\\:", "\0").split(":", 5)
            if len(fields) >= 5:
                host, port, user = fields[0], fields[1], fields[3]
                if "\0" in host or "\0" in port or "\0" in user:
                    host, port, user = host.replace("\0", ":"), port.replace("\0", ":"), user.replace("\0", ":")
                out.setdefault(Key(host, port, user), fields[4].replace("\0", ":"))
            continue
        m = _LINE.match(line)
        if m is not None:
            host, port, _db, user, password, lone = m.groups()
            out.setdefault(Key(_unescape(host), _unescape(port), _unescape(user)), _unescape(password) + lone)
    return out


# The start of a block line as render_line writes a key with nothing to escape (no `\\`, `:` or `*` in host,
# port or user, no `#` first), at the start of a line: `host:port:*:user:`, then the token.
_PLAIN_KEY = re.compile(r"(?m)^([^\\:*\n#][^\\:*\n]*):([^\\:*\n]*):\*:([^\\:*\n]*):.*\n")


def merge_some(text: str, new: Mapping[Key, str], keep: set[Key] | frozenset[Key]) -> str | None:
    """What merge(text, tokens) returns, where tokens are the block's tokens whose key is in `keep`, updated
    by the tokens of `new` whose key is in `keep`; computed by rewriting only the lines of `new` (issue 25:
    `refresh NAME` among 10,000 services). None when the block is not exactly what merge writes (not at the
    top, another copy below, a line merge would write otherwise, keys out of order or not in `keep`, CR line
    ends): then call merge."""
    head, tail = BEGIN_LINE + "\n", "\n" + END_LINE + "\n"
    if not text.startswith(head) or "\r" in text or not all(new.values()):
        return None
    end = text.find(tail, len(head) - 1)
    if end == -1 or text.find(BEGIN_LINE, end) != -1:
        return None
    inner = text[len(head) : end + 1]  # the block's lines, each with its "\n"
    keys = _PLAIN_KEY.findall(inner)  # (host, port, user) of each line that starts as render_line writes it
    lines, escaped = inner.count("\n"), inner.count("\\:")
    # Every line matched, and its token written as escape() writes one with no `\\` in it: each `\\` escapes a
    # `:` and every other `:` is one of the line's four separators (an unescaped one would end the password).
    if len(keys) != lines or inner.count("\\") != escaped or inner.count(":") - escaped != 4 * lines:
        return None
    if not all(map(operator.lt, keys, keys[1:])) or not keep.issuperset(keys):
        return None  # not sorted, a key twice, or a token merge would drop
    pieces, pos = [head], 0
    for k in sorted(k for k in new if k in keep):  # each line written at its place in the old block, in order
        i = bisect_left(keys, k)
        at = _line_at(inner, keys[i], pos) if i < len(keys) else len(inner)
        pieces += [inner[pos:at], render_line(k, new[k]), "\n"]
        pos = inner.index("\n", at) + 1 if i < len(keys) and keys[i] == k else at  # replaced, or inserted before
    pieces += [inner[pos:], text[end + 1 :]]
    return "".join(pieces)


def _line_at(inner: str, key: tuple[str, str, str], start: int) -> int:
    """Offset of the line of `key` at or after the line start `start`, in a block of plain lines (each key
    once; a token holds no newline): one pass over the block for all the new tokens, in key order."""
    prefix = f"{key[0]}:{key[1]}:*:{key[2]}:"
    return start if inner.startswith(prefix, start) else inner.index("\n" + prefix, start) + 1


def merge(text: str, tokens: Mapping[Key, str]) -> str:
    """`text` with pgiam's block replaced by exactly `tokens` (at the top); foreign bytes untouched."""
    foreign = block.foreign(text, BEGIN_LINE, END_LINE, WHAT)
    lines = [render_line(k, tokens[k]) for k in sorted(tokens)]
    return block.join(lines, foreign, BEGIN_LINE, END_LINE)


def foreign_text(text: str) -> str:
    """Everything outside pgiam's block, exactly."""
    return block.foreign(text, BEGIN_LINE, END_LINE, WHAT)
