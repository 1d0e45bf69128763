"""The one scrubber at pgiam's output boundary: keys, secrets, session tokens and IAM auth tokens become [redacted].

Every line pgiam prints (pgiam.commands._common.Out wraps both streams), every JSON string, the
prompt notice, the state file's error texts and `pgiam run`'s log pass through `redact`. Exempt only
what exists to carry the token: `pgiam token`'s stdout (Out.secret) and the Python password API.
Standard library only: the fast path may import it.

What counts as a secret, by shape:
- access key ids, AKIA (long-term), ASIA (temporary) and the other IAM unique-id prefixes (IAM user
  guide, "IAM identifiers", unique ID prefixes);
- an IAM auth token (RDS `generate_db_auth_token`, DSQL): a presigned URL, recognised by its
  `X-Amz-Credential=` / `X-Amz-Signature=` / `X-Amz-Security-Token=` query parameters, removed whole;
- secret access keys (40 characters of base64) and session tokens or JWTs (long base64url runs):
  random, so they mix upper case, lower case and digits, which paths, names and words seldom do.
"""

from __future__ import annotations

import re
from typing import IO, Any

REDACTED = "[redacted]"
MAX_DETAIL = 200

_KEY_ID = re.compile(r"\b(?:AKIA|ASIA|AROA|AIDA|ABIA|ACCA|AGPA|AIPA|ANPA|ANVA|APKA|ASCA)[A-Z0-9]{12,}")
# A presigned URL: everything from its start (up to whitespace or a quote) to its end.
_PRESIGNED = re.compile(r"""[^\s"'<>]*X-Amz-(?:Credential|Signature|Security-Token)=[^\s"'<>]*""", re.IGNORECASE)
_RANDOM_RUNS = (
    re.compile(r"(?<![A-Za-z0-9/+=])[A-Za-z0-9/+=]{40}(?![A-Za-z0-9/+=])"),  # a secret access key
    re.compile(r"[A-Za-z0-9+/=]{100,}"),  # a whole session token (hundreds of base64 characters, `/` included)
    re.compile(r"[A-Za-z0-9+=]{32,}"),  # a piece of one, and other long base64 runs (a path has `/`, `.`, `-`)
)
_JWT = re.compile(r"eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}(?:\.[A-Za-z0-9_-]*)?")  # web identity, OIDC
# Not `_` nor `-` in a run: IAM names joined with them (AWSReservedSSO_AdministratorAccess_0123abcd...) stay.


def _redact_random(m: re.Match[str]) -> str:
    s = m.group(0)
    mixed = any(c.isupper() for c in s) and any(c.islower() for c in s) and any(c.isdigit() for c in s)
    return REDACTED if mixed else s


_KEY_PREFIXES = ("AKIA", "ASIA", "AROA", "AIDA", "ABIA", "ACCA", "AGPA", "AIPA", "ANPA", "ANVA", "APKA", "ASCA")  # of _KEY_ID
_RUN = str.maketrans(dict.fromkeys("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=", "a"))


def _may_hold_secret(text: str) -> bool:
    """False only when no pattern below can match: a literal each needs, or a run of 32 or more base64
    characters (which every _RANDOM_RUNS match lies in), looked for by str methods. The patterns scan
    every position; on the 10,000 lines of `pgiam list` they cost more than the command (issue 25)."""
    return ("x-amz-" in text.lower() or "eyJ" in text or any(p in text for p in _KEY_PREFIXES)
            or "a" * 32 in text.translate(_RUN))


def redact(text: str) -> str:
    """`text` with every key-, secret- and token-shaped run replaced by [redacted]; layout kept."""
    return _redact_all(text) if _may_hold_secret(text) else text


def _redact_all(text: str) -> str:
    text = _PRESIGNED.sub(REDACTED, text)
    text = _KEY_ID.sub(REDACTED, text)
    text = _JWT.sub(REDACTED, text)
    for pat in _RANDOM_RUNS:
        text = pat.sub(_redact_random, text)
    return text


def scrub(text: str, limit: int = MAX_DETAIL) -> str:
    """Text from outside pgiam (a helper's stderr, an answer body) for a one-line message: redacted,
    control characters and line breaks made spaces, at most `limit` characters."""
    text = redact(text)
    text = " ".join("".join(c if c.isprintable() else " " for c in text).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def redact_json(obj: Any) -> Any:
    """A JSON-able value with every string (keys included) redacted."""
    if isinstance(obj, str):
        return redact(obj)
    if isinstance(obj, dict):
        return {redact(k) if isinstance(k, str) else k: redact_json(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [redact_json(v) for v in obj]
    return obj


class RedactingStream:
    """A text stream that redacts each line before it reaches `raw` (pgiam's stdout or stderr).

    Whole lines are redacted, so a secret written in pieces by one print() is still seen whole; a
    partial line goes out on flush() (a progress line rewritten in place).
    """

    def __init__(self, raw: IO[str]) -> None:
        self.raw = raw
        self._pending = ""

    def write(self, s: str) -> int:
        self._pending += s
        if "\n" in self._pending:
            done, _, self._pending = self._pending.rpartition("\n")
            self.raw.write(redact(done + "\n"))
        return len(s)

    def flush(self) -> None:
        if self._pending:
            text, self._pending = self._pending, ""
            self.raw.write(redact(text))
        self.raw.flush()

    def isatty(self) -> bool:
        return bool(self.raw.isatty())

    def fileno(self) -> int:
        return int(self.raw.fileno())

    def writable(self) -> bool:
        return True

    def __getattr__(self, name: str) -> Any:  # encoding, errors, closed ... of the real stream
        if name == "buffer":  # raw bytes would pass the scrubber by: there is none
            raise AttributeError(name)
        return getattr(self.raw, name)
