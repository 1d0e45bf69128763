"""Aurora DSQL endpoints: their name shape, defaults, the libpq they need, and their tokens.

A DSQL endpoint is `<cluster id>.dsql.<region>.on.aws`, port 5432, database `postgres`, admin role
`admin` (Aurora DSQL user guide, "Connecting to Aurora DSQL clusters"). Its token is botocore's
`generate_db_connect_admin_auth_token` for `admin` and `generate_db_connect_auth_token` for any
other role: a presigned SigV4 GET of `https://HOST/` (no port, no user) with signing name `dsql`.
botocore is imported lazily, only when a token is minted.
"""

from __future__ import annotations

import re
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

from pgiam.errors import EnvironmentProblem
from pgiam.facts import DSQL_EXPIRES_IN

if TYPE_CHECKING:
    from pgiam.config import Service
    from pgiam.libpq import LibpqVersion

ADMIN = "admin"  # DSQL's built-in role; it signs with the DbConnectAdmin action
DEFAULT_DBNAME = "postgres"  # the one database a DSQL cluster has
SNI_LIBPQ = 14  # DSQL routes on the TLS SNI name; libpq sends SNI from 14 on (`sslsni`)

_HOST_RE = re.compile(r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?\.dsql(-fips)?\.([a-z]{2}(-[a-z]+)+-\d+)\.on\.aws\.?$")


def is_dsql_host(host: str) -> bool:
    """True for `<id>.dsql.<region>.on.aws` (and the `dsql-fips` variant)."""
    return _HOST_RE.match(host.lower()) is not None


def region_of(host: str) -> str | None:
    """The region in a DSQL endpoint name, or None when `host` is not one."""
    m = _HOST_RE.match(host.lower())
    return m.group(3) if m else None


def host_for(cluster_id: str, region: str) -> str:
    """The endpoint name of a DSQL cluster, built from its identifier and region."""
    return f"{cluster_id.lower()}.dsql.{region}.on.aws"


def check_libpq(version: LibpqVersion | None, name: str) -> None:
    """Refuse a libpq that cannot send the TLS SNI name DSQL needs (libpq < 14)."""
    if version is not None and version.major < SNI_LIBPQ:
        raise EnvironmentProblem(
            f"{name}: Aurora DSQL needs the TLS server name (SNI), which libpq sends from 14 on; psql uses libpq {version.describe()}",
            "upgrade libpq to 14 or later (postgresql-client)",
        )


def sign(session: Any, creds: Any, svc: Service) -> tuple[str, float]:
    """botocore's own DSQL token for `svc` and the instant it was signed (epoch seconds)."""
    import calendar

    import botocore.auth
    import botocore.signers
    from botocore.model import ServiceId

    admin = svc.user == ADMIN
    fn = getattr(botocore.signers,
                 "dsql_generate_db_connect_admin_auth_token" if admin else "dsql_generate_db_connect_auth_token", None)
    if fn is None:
        import botocore

        raise EnvironmentProblem(
            f"{svc.name}: botocore {botocore.__version__} cannot sign Aurora DSQL tokens",
            "upgrade boto3/botocore (DSQL signing arrived in botocore 1.35.90)",
        )
    signer = botocore.signers.RequestSigner(
        ServiceId("dsql"), svc.region, "dsql", "v4", creds, session.get_component("event_emitter")
    )
    client_like = SimpleNamespace(_request_signer=signer, meta=SimpleNamespace(region_name=svc.region))
    minted = botocore.auth.get_current_datetime()  # type: ignore[attr-defined]  # botocore-stubs lack it
    token: str = fn(client_like, svc.host, Region=svc.region, ExpiresIn=DSQL_EXPIRES_IN)
    return token, float(calendar.timegm(minted.utctimetuple()))
