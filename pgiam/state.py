"""pgiam's state file (no tokens in it) and the one-number "next due" file for shell hooks; pure."""

from __future__ import annotations

import json
import math
import operator
from dataclasses import dataclass, fields
from json.encoder import encode_basestring_ascii

from pgiam import freshness
from pgiam.facts import CLOCK_TOLERANCE


@dataclass(frozen=True, slots=True)  # slots: one row per service, 10,000 of them at scale (issue 25)
class ServiceState:
    """What pgiam remembers of one service: the token it wrote and the last failure."""

    key: str  # "host:port:user" the token was written for; a changed service is due at once
    minted: float | None = None  # the token's signing time (its X-Amz-Date)
    expires: float | None = None  # effective expiry: min(signed + lifetime, credentials' expiry)
    error: str | None = None
    hint: str | None = None
    failed_at: float | None = None
    code: int | None = None  # the exit code of the last failure
    failures: int = 0  # consecutive failed refreshes, for the retry backoff
    profile: str | None = None  # the AWS profile that signed (None: botocore's default chain)
    source: str | None = None  # a source that is not a profile: environment, container, web-identity, instance


_FIELDS = {f.name for f in fields(ServiceState)}
_NAMES = tuple(sorted(_FIELDS))
_values = operator.attrgetter(*_NAMES)  # a row's values in key order, in one C call
_in_order = operator.itemgetter(*(f.name for f in fields(ServiceState)))  # a row's fields in ServiceState's order


def parse_state(data: bytes | None) -> dict[str, ServiceState]:
    """The per-service state; an unreadable file counts as empty (everything becomes due)."""
    if not data:
        return {}
    try:
        raw = json.loads(data)
        entries = raw.get("services", {})
        try:  # rows with every field, as render_state writes them: built by position (issue 25)
            states = {name: ServiceState(*_in_order(entry)) for name, entry in entries.items()}
        except KeyError:  # a field missing: its default
            # Unknown keys (a newer pgiam) are dropped rather than making the whole file unreadable.
            states = {name: ServiceState(**(entry if entry.keys() <= _FIELDS else {k: v for k, v in entry.items() if k in _FIELDS}))
                      for name, entry in entries.items()}
    except (ValueError, TypeError, AttributeError, RecursionError):
        return {}
    # A hand-edited or damaged file with `"expires": "soon"` must not crash the prompt hook later.
    if all(_well_typed(s) for s in states.values()):
        return states
    return {}


def _num(v: object) -> bool:
    return v is None or (isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v))


def _txt(v: object) -> bool:
    return v is None or isinstance(v, str)


def _well_typed(s: ServiceState) -> bool:
    return (isinstance(s.key, str) and _num(s.minted) and _num(s.expires) and _num(s.failed_at)
            and _txt(s.error) and _txt(s.hint) and _txt(s.profile) and _txt(s.source) and _num(s.code)
            and isinstance(s.failures, int) and not isinstance(s.failures, bool))


_ENCODER = json.JSONEncoder(sort_keys=True)
_quote = encode_basestring_ascii  # json.dumps of a str, without its per-call setup


def render_state(states: dict[str, ServiceState]) -> bytes:
    """state.json, one service per line (valid JSON for any reader; names are plain, see config.check_name).

    An error's text and hint pass pgiam.scrub: they may quote a credential helper's output."""
    names = sorted(states)
    rows = _encode_rows([_redacted(dict(zip(_NAMES, _values(states[n])))) for n in names])
    body = "{\n" + ",\n".join(f"    {_quote(n)}: {r}" for n, r in zip(names, rows)) + "\n  }" if rows else "{}"
    return f'{{\n  "services": {body},\n  "version": 1\n}}\n'.encode()


def _encode_rows(rows: list[dict[str, object]]) -> list[str]:
    """Each row as compact JSON. One call of json's C encoder for all of them, cut between rows: one call
    per row (or an indented dump, which takes json's pure-Python path) cost more than a 10,000-service
    refresh itself (issue 25). The cut `}, {"<first key>": ` cannot occur inside a JSON string (a `"` in
    a string is escaped, and the closing quote is followed by `,` or `}`); if the count is off anyway, rows
    are encoded one by one."""
    if not rows:
        return []
    head = f"{{{_quote(min(rows[0]))}: "  # how every row starts, its keys being sorted
    parts = _ENCODER.encode(rows)[1:-1].split("}, " + head)
    if len(parts) != len(rows):  # a row with other keys: no cut before it
        return [_ENCODER.encode(r) for r in rows]
    if len(parts) == 1:
        return parts
    return [parts[0] + "}", *(head + p + "}" for p in parts[1:-1]), head + parts[-1]]


def _redacted(row: dict[str, object]) -> dict[str, object]:
    """The row with its error and hint redacted (only failing services have any: the common row is free)."""
    if not (row.get("error") or row.get("hint")):
        return row
    from pgiam.scrub import redact

    return {k: redact(v) if k in ("error", "hint") and isinstance(v, str) else v for k, v in row.items()}


def due_at(s: ServiceState | None, margin: int) -> float:
    """When this service's token needs renewing by pgiam's notes (0: now); failures back off."""
    at = 0.0
    if s is not None and s.minted is not None and s.expires is not None:
        at = freshness.due_at(s.minted, s.expires, margin)
    if s is not None and s.error and s.failed_at is not None:
        at = max(at, freshness.retry_at(s.failed_at, s.failures or 1))
    return at


def next_due(states: dict[str, ServiceState], names: list[str], margin: int, now: float) -> int | None:
    """The earliest renewal instant over `names`, as a whole epoch second (None: no services).

    Never further ahead of `now` than a token signed now becomes due (freshness.next_due_bound).
    """
    times = [due_at(states.get(n), margin) for n in names]
    if not times:
        return None
    # A token signed at S shows the clock had reached S: a `now` read before a slow mint (a loaded machine)
    # would otherwise bound next-due a second or more early, and the next check would rewrite it. Never
    # beyond the clock tolerance: a token dated further ahead is the clock stepping back, which the bound
    # is there to catch.
    signed = [s.minted for n in names if (s := states.get(n)) is not None and s.minted is not None]
    now = max([now, *(min(t, now + CLOCK_TOLERANCE) for t in signed)])
    return math.floor(freshness.next_due_bound(now, min(times), margin))
