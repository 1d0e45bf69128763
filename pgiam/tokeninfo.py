"""Decode an RDS or Aurora DSQL IAM token without ever exposing it; pure str -> TokenInfo.

A token is a presigned SigV4 GET with the scheme stripped (botocore `generate_db_auth_token`,
`generate_db_connect_auth_token`): `HOST[:PORT]/?Action=...&X-Amz-Credential=KEY/DATE/REGION/SERVICE/
aws4_request&X-Amz-Date=YYYYMMDDTHHMMSSZ&X-Amz-Expires=N&...&X-Amz-Signature=...` (AWS SigV4 "query
string authentication"). Nothing here keeps the signature, the session token or the key id.
"""

from __future__ import annotations

import datetime
import functools
import re
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit


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


_SPACE = re.compile(r"\s")  # the characters str.isspace() accepts (both use Py_UNICODE_ISSPACE)
_STAMP = re.compile(r"(\d{4})(\d\d)(\d\d)T(\d\d)(\d\d)(\d\d)Z")  # SigV4's X-Amz-Date, %Y%m%dT%H%M%SZ
_EPOCH = datetime.datetime(1970, 1, 1)
# The exact layout botocore writes (the query parameters sorted, as in SigV4's canonical query string):
# a token in this shape is read with one match; anything else takes the general path below, which
# gives the same answer for it (tests/unit/test_tokeninfo.py checks that they agree).
_V = r"[^&#\s]*"  # a value only checked for presence
_CANONICAL = re.compile(
    r"(?P<host>[A-Za-z0-9.-]+)(?::(?P<port>[0-9]{1,5}))?/\?Action=(?P<action>[A-Za-z]+)(?:&DBUser=(?P<user>[^&#=\s]*))?"
    r"&X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=[A-Za-z0-9]+%2F(?P<day>[0-9]{8})%2F(?P<region>[a-z0-9-]+)"
    r"%2F(?P<service>[a-z-]+)%2Faws4_request&X-Amz-Date=(?P<date>(?P=day)T[0-9]{6}Z)&X-Amz-Expires=(?P<expires>[0-9]{1,9})"
    rf"&X-Amz-SignedHeaders={_V}(?P<session>&X-Amz-Security-Token={_V})?&X-Amz-Signature={_V}")


def _query(query: str) -> dict[str, list[str]]:
    """urllib.parse.parse_qs(query, keep_blank_values=True), without its per-call overhead."""
    q: dict[str, list[str]] = {}
    for pair in query.split("&"):
        if pair:
            name, _, value = pair.partition("=")
            q.setdefault(unquote(name.replace("+", " ")), []).append(unquote(value.replace("+", " ")))
    return q


@functools.lru_cache(maxsize=1024)  # the tokens of one refresh share a few stamps
def stamp_epoch(stamp: str) -> float:
    """X-Amz-Date as epoch seconds; ValueError unless it is a real UTC instant written in full."""
    m = _STAMP.fullmatch(stamp)
    if m is None:
        raise ValueError(stamp)
    year, month, day, hour, minute, second = map(int, m.groups())
    return (datetime.datetime(year, month, day, hour, minute, second) - _EPOCH).total_seconds()


def decode(token: str) -> TokenInfo:
    """Parse `token`; raise TokenDecodeError (without the token in the message) when it is not one.

    One match of compiled code for botocore's own layout (issue 25: `status` decodes every token of
    a 10,000-service file).
    """
    m = _CANONICAL.fullmatch(token)
    if m is not None and (m["port"] is None or int(m["port"]) <= 65535) and int(m["expires"]) > 0:
        try:
            signed_at = stamp_epoch(m["date"])
        except ValueError:
            raise TokenDecodeError("not an IAM token: bad X-Amz-Date or X-Amz-Expires") from None
        port, user = m["port"], m["user"]
        if user is not None and ("%" in user or "+" in user):
            user = unquote(user.replace("+", " "))
        return TokenInfo(
            host=m["host"].lower(), port=None if port is None else int(port), region=m["region"],
            service=m["service"], action=m["action"], user=user, signed_at=signed_at,
            lifetime=int(m["expires"]), session_token=m["session"] is not None,
        )
    return _decode_general(token)


def _decode_general(token: str) -> TokenInfo:
    """Any presigned URL: urllib's reading of the host, port and query."""
    if not token or _SPACE.search(token):
        raise TokenDecodeError("not an IAM token: empty or contains whitespace")
    try:
        parts = urlsplit("https://" + token)  # raises ValueError itself for an unbalanced "[" (IPv6 syntax)
        host = parts.hostname or ""
        port = parts.port
    except ValueError:
        raise TokenDecodeError("not an IAM token: bad host or port") from None
    q = _query(parts.query)

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
        signed_at = stamp_epoch(stamp)
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
