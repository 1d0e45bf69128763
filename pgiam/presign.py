"""The RDS IAM token as a SigV4 query-string presign, in the standard library (issue 25).

botocore's `generate_db_auth_token` presigns `GET https://HOST:PORT/?Action=connect&DBUser=USER` for the
signing name `rds-db`, expiring in facts.TOKEN_LIFETIME seconds, and strips the scheme. Its SigV4QueryAuth splits, parses and
re-encodes the URL several times per token (0.16-0.2 ms each, about 2 s of a 10,000-service refresh);
the same bytes are built here directly, with the derived signing key kept per day, region and secret.
The algorithm is AWS's "Authenticating Requests: Using Query Parameters (AWS Signature Version 4)"
(https://docs.aws.amazon.com/AmazonS3/latest/API/sigv4-query-string-auth.html) and "Create a signed AWS
API request" (https://docs.aws.amazon.com/IAM/latest/UserGuide/create-signed-request.html).

Only for a host botocore would write unchanged in the Host header (a lower-case DNS name) and a port
that is not https's default; anything else goes through botocore (pgiam.token). Credentials are always
botocore's. tests/unit/test_presign.py holds this to botocore's own generate_db_auth_token, byte for byte.
"""

from __future__ import annotations

import datetime
import hashlib
import hmac
import re
from urllib.parse import quote

ALGORITHM = "AWS4-HMAC-SHA256"
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()  # the payload hash of a GET with no body
_SAFE = "-_.~"  # SigV4's unreserved characters besides letters and digits (botocore.utils.SAFE_CHARS)
_PLAIN_HOST = re.compile(r"[a-z0-9](?:[a-z0-9-]*[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]*[a-z0-9])?)*")
_KEYS: dict[tuple[str, str, str, str], bytes] = {}


def applies(host: str, port: int) -> bool:
    """Is this a host and port the presigner below signs exactly as botocore does?"""
    return port != 443 and 0 < port < 65536 and _PLAIN_HOST.fullmatch(host) is not None


def _signing_key(secret: str, day: str, region: str, service: str) -> bytes:
    key = (secret, day, region, service)
    found = _KEYS.get(key)
    if found is None:
        k = hmac.digest(f"AWS4{secret}".encode(), day.encode(), "sha256")
        for part in (region, service, "aws4_request"):
            k = hmac.digest(k, part.encode(), "sha256")
        if len(_KEYS) > 64:
            _KEYS.clear()
        found = _KEYS[key] = k
    return found


def rds_token(host: str, port: int, user: str, region: str, access_key: str, secret_key: str,
              session_token: str | None, now: datetime.datetime, expires: int) -> str:
    """`HOST:PORT/?Action=connect&DBUser=…&X-Amz-…&X-Amz-Signature=…`, signed at `now` (UTC, naive)."""
    stamp = now.strftime("%Y%m%dT%H%M%SZ")
    scope = f"{stamp[:8]}/{region}/rds-db/aws4_request"
    params = [("Action", "connect"), ("DBUser", quote(user.encode(), safe=_SAFE)),
              ("X-Amz-Algorithm", ALGORITHM), ("X-Amz-Credential", quote(f"{access_key}/{scope}".encode(), safe=_SAFE)),
              ("X-Amz-Date", stamp), ("X-Amz-Expires", str(expires)), ("X-Amz-SignedHeaders", "host")]
    if session_token is not None:
        params.append(("X-Amz-Security-Token", quote(session_token.encode(), safe=_SAFE)))
    query = "&".join(f"{k}={v}" for k, v in params)
    canonical = "\n".join(["GET", "/", "&".join(f"{k}={v}" for k, v in sorted(params)),
                           f"host:{host}:{port}\n", "host", EMPTY_SHA256])
    to_sign = "\n".join([ALGORITHM, stamp, scope, hashlib.sha256(canonical.encode()).hexdigest()])
    signature = hmac.new(_signing_key(secret_key, stamp[:8], region, "rds-db"), to_sign.encode(), "sha256").hexdigest()
    return f"{host}:{port}/?{query}&X-Amz-Signature={signature}"
