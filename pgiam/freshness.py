"""The freshness rule: when a token is due, judged from the token itself and the clock; pure.

Shared by `refresh --if-needed`, the next-due file the prompt hooks and the fast path read,
`pgiam token`, `pgiam status --check`, `pgiam doctor` and `pgiam run`. pgiam's own notes (the state
file) only add what a token cannot say about itself: the expiry of the temporary credentials that
signed it (a token is refused once they expire, AWS RDS user guide, "IAM database authentication").
"""

from __future__ import annotations

from dataclasses import dataclass

from pgiam.facts import CLOCK_TOLERANCE as CLOCK_TOLERANCE
from pgiam.facts import MIN_INTERVAL as MIN_INTERVAL
from pgiam.facts import TOKEN_LIFETIME as TOKEN_LIFETIME
from pgiam.facts import next_due_limit
from pgiam.tokeninfo import TokenInfo
RETRY_AFTER = 60  # first wait after a failed refresh; doubled per consecutive failure
MAX_RETRY_AFTER = 600


def due_at(signed_at: float, expires: float, margin: int) -> float:
    """When a token signed at `signed_at`, valid until `expires`, needs renewing.

    `expires - min(margin, life / 2)`: a token whose credentials live shorter than the margin is
    renewed half-way through its life, not at once; never earlier than MIN_INTERVAL after signing.
    """
    life = max(0.0, expires - signed_at)
    return max(expires - min(float(margin), life / 2), signed_at + MIN_INTERVAL)


@dataclass(frozen=True)
class Verdict:
    """Whether a service's token is due, why, and the times that decided it."""

    due: bool
    reason: str  # "fresh", "missing", "malformed", "mismatch", "future", "renew"
    expires: float | None = None  # effective expiry of the token in the file
    due_at: float = 0.0  # when it becomes due (0: now)

    @property
    def message(self) -> str:
        return REASONS[self.reason]


REASONS = {
    "fresh": "token valid",
    "missing": "no token in the password file",
    "malformed": "the password file's token line is not an IAM token",
    "mismatch": "the token in the password file is for another host, port, user or region",
    "future": "the token is dated ahead of this machine's clock (was the clock stepped back?)",
    "renew": "the token is within the renewal margin or expired",
}


def judge(now: float, info: TokenInfo | None, *, host: str, port: int | None, user: str | None,
          region: str, margin: int, credentials_expire: float | None = None,
          malformed: bool = False, max_lifetime: int = TOKEN_LIFETIME) -> Verdict:
    """Judge the token found in the password file for the endpoint `host:port` and `user`.

    `info` is None when no token line exists (or `malformed` when one exists but does not decode).
    `credentials_expire` is the expiry of the credentials that signed this very token, when known.
    A token for other settings, dated ahead of `now`, or claiming a longer life than any token
    gets, is due at once: the clock and the file are the truth, not pgiam's notes.
    """
    if info is None:
        return Verdict(True, "malformed" if malformed else "missing")
    if (info.host != host.lower().rstrip(".") or info.port != port or info.region != region
            or (user is not None and info.user != user)):
        return Verdict(True, "mismatch", info.expires)
    expires = info.expires if credentials_expire is None else min(info.expires, credentials_expire)
    if info.signed_at > now + CLOCK_TOLERANCE or info.lifetime > max_lifetime:
        return Verdict(True, "future", expires)
    at = due_at(info.signed_at, expires, margin)
    if now >= at:
        return Verdict(True, "renew", expires, at)
    return Verdict(False, "fresh", expires, at)


def retry_at(failed_at: float, failures: int) -> float:
    """When to try again after `failures` consecutive failed refreshes (exponential, capped)."""
    wait: float = min(RETRY_AFTER * 2 ** max(0, min(failures, 16) - 1), MAX_RETRY_AFTER)
    return failed_at + wait


def next_due_bound(now: float, due: float, margin: int) -> float:
    """A next-due is never written further ahead than a token signed now becomes due (a later retry
    after failures is checked again then): readers believe nothing beyond that, plus the clock
    tolerance (pgiam.facts.next_due_limit)."""
    return min(due, now + next_due_limit(margin) - CLOCK_TOLERANCE)
