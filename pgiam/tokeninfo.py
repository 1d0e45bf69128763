"""Decode an RDS or Aurora DSQL IAM token without ever exposing it; pure str -> TokenInfo.

A token is a presigned SigV4 GET with the scheme stripped (botocore `generate_db_auth_token`,
`generate_db_connect_auth_token`): `HOST[:PORT]/?Action=...&X-Amz-Credential=KEY/DATE/REGION/SERVICE/
aws4_request&X-Amz-Date=YYYYMMDDTHHMMSSZ&X-Amz-Expires=N&...&X-Amz-Signature=...` (AWS SigV4 "query
string authentication"). Nothing here keeps the signature, the session token or the key id.
"""

from __future__ import annotations

import calendar
import time
from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit


class TokenDecodeError(ValueError):
    """Not a presigned SigV4 token; the message never quotes the token."""


@dataclass(frozen=True)
class TokenInfo:
    """What a token says about itself: where and for whom it is valid, and when."""

    host: str
    port: int | None  # None for DSQL (no port in the signed URL)
    region: str
    service: str  # signing name: "rds-db" or "dsql"
    action: str  # "connect", "DbConnect", "DbConnectAdmin"
    user: str | None  # DBUser (RDS); None for DSQL
    signed_at: float  # X-Amz-Date as epoch seconds
    lifetime: int  # X-Amz-Expires
    session_token: bool  # signed with temporary credentials (X-Amz-Security-Token present)

    @property
    def expires(self) -> float:
        """The instant the signature stops being accepted (temporary credentials may end it sooner)."""
        return self.signed_at + self.lifetime


def decode(token: str) -> TokenInfo:
    """Parse `token`; raise TokenDecodeError (without the token in the message) when it is not one."""
    if not token or any(c.isspace() for c in token):
        raise TokenDecodeError("not an IAM token: empty or contains whitespace")
    try:
        parts = urlsplit("https://" + token)  # raises ValueError itself for an unbalanced "[" (IPv6 syntax)
        host = parts.hostname or ""
        port = parts.port
    except ValueError:
        raise TokenDecodeError("not an IAM token: bad host or port") from None
    q = parse_qs(parts.query, keep_blank_values=True)

    def one(key: str) -> str:
        values = q.get(key)
        if not values or len(values) != 1:
            raise TokenDecodeError(f"not an IAM token: {key} missing or repeated")
        return values[0]

    if one("X-Amz-Algorithm") != "AWS4-HMAC-SHA256" or not host:
        raise TokenDecodeError("not an IAM token: not a SigV4 presigned URL")
    scope = one("X-Amz-Credential").split("/")
    if len(scope) != 5 or scope[4] != "aws4_request":
        raise TokenDecodeError("not an IAM token: bad credential scope")
    _key_id, day, region, service, _ = scope
    stamp = one("X-Amz-Date")
    try:
        signed_at = float(calendar.timegm(time.strptime(stamp, "%Y%m%dT%H%M%SZ")))
        lifetime = int(one("X-Amz-Expires"), 10)
    except ValueError:
        raise TokenDecodeError("not an IAM token: bad X-Amz-Date or X-Amz-Expires") from None
    if not stamp.startswith(day) or lifetime <= 0:
        raise TokenDecodeError("not an IAM token: date and scope disagree")
    one("X-Amz-Signature")
    user = q.get("DBUser", [None])[0]
    return TokenInfo(
        host=host.lower(), port=port, region=region, service=service, action=one("Action"), user=user,
        signed_at=signed_at, lifetime=lifetime, session_token="X-Amz-Security-Token" in q,
    )


def try_decode(token: str | None) -> TokenInfo | None:
    """decode(), or None for a missing or malformed token."""
    if token is None:
        return None
    try:
        return decode(token)
    except TokenDecodeError:
        return None
