"""pgiam's state file (no tokens in it) and the one-number "next due" file for shell hooks."""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path

from pgiam.fileio import atomic_write, read_bytes

RETRY_AFTER = 60  # seconds between attempts after a failed refresh, so hooks don't retry on every prompt


@dataclass(frozen=True)
class ServiceState:
    key: str  # "host:port:user" the token was written for; a changed service is due at once
    minted: float | None = None
    expires: float | None = None
    error: str | None = None
    hint: str | None = None
    failed_at: float | None = None


def parse_state(data: bytes | None) -> dict[str, ServiceState]:
    """The per-service state; an unreadable file counts as empty (everything becomes due)."""
    if not data:
        return {}
    try:
        raw = json.loads(data)
        states = {name: ServiceState(**entry) for name, entry in raw.get("services", {}).items()}
    except (ValueError, TypeError, AttributeError, RecursionError):
        return {}
    # A hand-edited or damaged file with `"expires": "soon"` must not crash the prompt hook later.
    if all(_well_typed(s) for s in states.values()):
        return states
    return {}


def _well_typed(s: ServiceState) -> bool:
    def num(v: object) -> bool:
        return v is None or (isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v))

    def txt(v: object) -> bool:
        return v is None or isinstance(v, str)

    return isinstance(s.key, str) and num(s.minted) and num(s.expires) and num(s.failed_at) and txt(s.error) and txt(s.hint)


def render_state(states: dict[str, ServiceState]) -> bytes:
    doc = {"version": 1, "services": {n: asdict(s) for n, s in sorted(states.items())}}
    return (json.dumps(doc, indent=2, sort_keys=True) + "\n").encode()


def load_state(path: Path) -> dict[str, ServiceState]:
    return parse_state(read_bytes(path))


def save_state(path: Path, states: dict[str, ServiceState]) -> None:
    atomic_write(path, render_state(states), 0o600)


def due_at(s: ServiceState | None, margin: int) -> float:
    """When this service's token needs renewing (0: now)."""
    if s is None or s.expires is None:
        return 0.0
    at = s.expires - margin
    if s.error and s.failed_at is not None:
        at = max(at, s.failed_at + RETRY_AFTER)
    return at


def next_due(states: dict[str, ServiceState], names: list[str], margin: int) -> int | None:
    """The earliest renewal instant over `names`, as a whole epoch second (None: no services)."""
    times = [due_at(states.get(n), margin) for n in names]
    return math.floor(min(times)) if times else None
