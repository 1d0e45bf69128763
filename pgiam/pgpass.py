"""Parse, render and merge ~/.pgpass text; pure str -> str, no disk.

libpq's rules (FACTS.md): `host:port:database:user:password`, first matching
line wins, `\\` escapes the next character in every field, `*` is a wildcard
only as a whole field, `#` in column 0 starts a comment, no trimming.
"""

from __future__ import annotations

import re
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


def merge(text: str, tokens: Mapping[Key, str]) -> str:
    """`text` with pgiam's block replaced by exactly `tokens` (at the top); foreign bytes untouched."""
    foreign = block.split(text, BEGIN_LINE, END_LINE, WHAT).foreign
    lines = [render_line(k, tokens[k]) for k in sorted(tokens)]
    return block.join(lines, foreign, BEGIN_LINE, END_LINE)


def foreign_text(text: str) -> str:
    """Everything outside pgiam's block, exactly."""
    return block.split(text, BEGIN_LINE, END_LINE, WHAT).foreign
