"""Verify an RDS or Aurora DSQL IAM auth token (a presigned SigV4 URL) from the SigV4 specification alone.

This module deliberately does not import botocore: it is the independent judge
that the tokens botocore mints are checked against.
"""

from __future__ import annotations

import calendar
import hashlib
import hmac
import time
from urllib.parse import quote, unquote

ALGORITHM = "AWS4-HMAC-SHA256"
SERVICE = "rds-db"
MAX_EXPIRES = 900  # botocore hard-codes 900 s; RDS refuses anything longer
DSQL_SERVICE = "dsql"
DSQL_ADMIN = "admin"
DSQL_ADMIN_ACTION, DSQL_ACTION = "DbConnectAdmin", "DbConnect"
DSQL_MAX_EXPIRES = 604_800  # Aurora DSQL accepts tokens valid for up to one week
CLOCK_SKEW = 300  # AWS refuses a request dated more than 5 minutes in the future
# botocore's SigV4QueryAuth (the RDS presigner) does not override SigV4Auth.payload(): the URL is
# https and payload signing is on, and the Action/DBUser body is moved into the query string before
# signing (`request.data = ''`), so the canonical request ends with the SHA-256 of the EMPTY body,
# not the S3 presigner's "UNSIGNED-PAYLOAD" constant. Verified against botocore 1.43 in the tests.
EMPTY_PAYLOAD_HASH = hashlib.sha256(b"").hexdigest()
_REQUIRED = (
    "Action",
    "DBUser",
    "X-Amz-Algorithm",
    "X-Amz-Credential",
    "X-Amz-Date",
    "X-Amz-Expires",
    "X-Amz-SignedHeaders",
    "X-Amz-Signature",
)


def _uri_encode(text: str) -> str:
    """SigV4's UriEncode: every byte except the RFC 3986 unreserved characters as %XX (upper-case)."""
    return quote(text, safe="-_.~")


def _hmac(key: bytes, msg: str) -> bytes:
    return hmac.new(key, msg.encode("utf-8"), hashlib.sha256).digest()


def signing_key(secret_key: str, date: str, region: str, service: str) -> bytes:
    """The SigV4 signing key: HMAC chain over date, region, service and 'aws4_request'."""
    k_date = _hmac(("AWS4" + secret_key).encode("utf-8"), date)
    k_region = _hmac(k_date, region)
    k_service = _hmac(k_region, service)
    return _hmac(k_service, "aws4_request")


def _host_header(host: str, port: int) -> str:
    # botocore's _host_from_url: lower-case host name, port left out only when it is https's 443.
    return host.lower() if port == 443 else f"{host.lower()}:{port}"


def _parse_query(query: str) -> dict[str, str] | None:
    """Decoded query parameters, or None when a name repeats or the encoding is broken."""
    params: dict[str, str] = {}
    for pair in query.split("&"):
        if not pair:
            return None
        name, sep, value = pair.partition("=")
        if not sep:
            return None
        name, value = unquote(name, errors="strict"), unquote(value, errors="strict")
        if name in params:
            return None
        params[name] = value
    return params


def check_token(
    token: str,
    *,
    access_key: str,
    secret_key: str,
    region: str,
    host: str,
    port: int,
    user: str,
    now: float,
) -> str | None:
    """None when `token` is a valid RDS IAM token for user@host:port, else a short refusal reason."""
    return _check(token, access_key=access_key, secret_key=secret_key, region=region, host=host, port=port,
                  user=user, now=now, service=SERVICE, action="connect", max_expires=MAX_EXPIRES)


def check_dsql_token(
    token: str,
    *,
    access_key: str,
    secret_key: str,
    region: str,
    host: str,
    user: str,
    now: float,
) -> str | None:
    """None when `token` is a valid Aurora DSQL token for `user` at `host`, else a short refusal reason.

    A DSQL token (botocore `generate_db_connect[_admin]_auth_token`) signs `https://HOST/` with no port
    and no user, signing name `dsql`; the role decides the action: DbConnectAdmin for `admin`,
    DbConnect for every other role (Aurora DSQL user guide, "Generating an authentication token").
    """
    action = DSQL_ADMIN_ACTION if user == DSQL_ADMIN else DSQL_ACTION
    return _check(token, access_key=access_key, secret_key=secret_key, region=region, host=host, port=None,
                  user=None, now=now, service=DSQL_SERVICE, action=action, max_expires=DSQL_MAX_EXPIRES)


def _check(token: str, *, access_key: str, secret_key: str, region: str, host: str, port: int | None,
           user: str | None, now: float, service: str, action: str, max_expires: int) -> str | None:
    """The SigV4 presigned-URL check shared by both token kinds; `port` and `user` are None for DSQL."""
    # A token is `HOST[:PORT]/?query` (botocore strips the `https://`).
    authority, sep, query = token.partition("/?")
    if not sep or not query or "#" in query:
        return "malformed token: not HOST:PORT/?query" if port is not None else "malformed token: not HOST/?query"
    try:
        params = _parse_query(query)
    except UnicodeDecodeError:
        params = None
    if params is None:
        return "malformed token: bad query string"
    required = [n for n in _REQUIRED if user is not None or n != "DBUser"]
    missing = [name for name in required if name not in params]
    if missing:
        return f"malformed token: missing {', '.join(missing)}"
    extra = set(params) - set(required) - {"X-Amz-Security-Token"}
    if extra:
        return "malformed token: unexpected query parameters"

    if params["X-Amz-Algorithm"] != ALGORITHM:
        return "unsupported signing algorithm"
    if params["Action"] != action:
        return f"wrong action (expected {action})"
    if params["X-Amz-SignedHeaders"] != "host":
        return "signed headers must be exactly 'host'"
    cred = params["X-Amz-Credential"].split("/")
    if len(cred) != 5:
        return "malformed credential scope"
    cred_key, cred_date, cred_region, cred_service, cred_term = cred
    if not hmac.compare_digest(cred_key.encode(), access_key.encode()):
        return "signed with an unknown access key"
    if cred_region != region:
        return f"signed for region {cred_region!r}, expected {region!r}"
    if cred_service != service:
        return f"signed for service {cred_service!r}, expected {service!r}"
    if cred_term != "aws4_request":
        return "malformed credential scope terminator"
    if port is None:
        if authority.lower() != host.lower():
            return f"signed for host {authority!r}, expected {host!r} (without a port)"
    elif authority.lower() != f"{host.lower()}:{port}":
        claimed_host, _, claimed_port = authority.rpartition(":")
        if claimed_host.lower() == host.lower():
            return f"signed for port {claimed_port}, expected {port}"
        return f"signed for host {claimed_host or authority!r}, expected {host!r}"
    if user is not None and params["DBUser"] != user:
        return "signed for another database user"

    amz_date = params["X-Amz-Date"]
    try:
        signed_at = _parse_amz_date(amz_date)
        expires = int(params["X-Amz-Expires"])
    except ValueError:
        return "malformed X-Amz-Date or X-Amz-Expires"
    if amz_date[:8] != cred_date:
        return "credential scope date differs from X-Amz-Date"
    if not 0 < expires <= max_expires:
        return f"X-Amz-Expires {expires} outside 1..{max_expires}"
    if signed_at > now + CLOCK_SKEW:
        return "token dated in the future"
    if now > signed_at + expires:
        return f"token expired {int(now - signed_at - expires)} s ago"

    # Canonical request (SigV4 spec): method, URI path, canonical query string (every parameter but
    # the signature, UriEncoded, sorted by encoded name), canonical headers + blank line, signed
    # headers, payload hash.
    canonical_query = "&".join(
        sorted(f"{_uri_encode(k)}={_uri_encode(v)}" for k, v in params.items() if k != "X-Amz-Signature")
    )
    host_header = host.lower() if port is None else _host_header(host, port)
    canonical_request = "\n".join(
        ["GET", "/", canonical_query, f"host:{host_header}", "", "host", EMPTY_PAYLOAD_HASH]
    )
    scope = f"{cred_date}/{cred_region}/{cred_service}/aws4_request"
    string_to_sign = "\n".join(
        [ALGORITHM, amz_date, scope, hashlib.sha256(canonical_request.encode("utf-8")).hexdigest()]
    )
    expected = hmac.new(
        signing_key(secret_key, cred_date, cred_region, cred_service), string_to_sign.encode("utf-8"), hashlib.sha256
    ).hexdigest()
    if not hmac.compare_digest(expected.encode(), params["X-Amz-Signature"].encode("utf-8", "replace")):
        return "signature does not match"
    return None


def signed_stamp(token: str) -> str | None:
    """The X-Amz-Date of a token (the instant it was signed: not a secret), or None when it has none."""
    try:
        params = _parse_query(token.partition("/?")[2])
    except UnicodeDecodeError:
        return None
    return params.get("X-Amz-Date") if params else None


def _parse_amz_date(value: str) -> float:
    """Epoch seconds of a SigV4 basic-format UTC timestamp (YYYYMMDDTHHMMSSZ)."""
    if len(value) != 16 or value[8] != "T" or value[15] != "Z" or not (value[:8] + value[9:15]).isdigit():
        raise ValueError(value)
    parsed = time.strptime(value, "%Y%m%dT%H%M%SZ")
    return float(calendar.timegm(parsed))
