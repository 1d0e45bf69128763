"""`pgiam url NAME`: a connection URI for a service entry (libpq, SQLAlchemy), without a password.

libpq's URI form ("Connection URIs" in the libpq documentation): `postgresql://USER@HOST:PORT/DBNAME
?param=value&...`, every part percent-encoded, IPv6 literals in brackets, any connection parameter
(hostaddr, sslmode, sslrootcert, require_auth) as a query parameter. SQLAlchemy's URLs have the same
shape with a driver in the scheme (`postgresql+psycopg://`) and pass query parameters to the driver.
The password stays in ~/.pgpass, which libpq reads for a URI too.
"""

from __future__ import annotations

import argparse
from urllib.parse import quote

from pgiam.commands._common import Out, Subparsers, command
from pgiam.errors import ExitCode
from pgiam.paths import Paths

QUERY_KEYS = ("hostaddr", "sslmode", "sslrootcert", "require_auth")


def register(sub: Subparsers) -> None:
    u = command(sub, "url", "print a connection URI for a service (libpq, SQLAlchemy; no password)", """\
examples:
  psql "$(pgiam url prod)"
  pgiam url prod --scheme postgresql+psycopg    # a SQLAlchemy URL for psycopg 3""")
    u.add_argument("name", metavar="NAME")
    u.add_argument("--scheme", default="postgresql", metavar="SCHEME",
                   help="URI scheme (default: postgresql; e.g. postgresql+psycopg for SQLAlchemy)")


def render_url(keys: dict[str, str], scheme: str = "postgresql") -> str:
    """The URI for the entry `keys` (service-file keys as pgiam writes them)."""
    host = keys["host"]
    if ":" in host:
        host = f"[{host}]"  # an IPv6 literal
    url = f"{scheme}://{quote(keys['user'], safe='')}@{host}:{keys['port']}"
    if "dbname" in keys:
        url += "/" + quote(keys["dbname"], safe="")
    query = "&".join(f"{k}={quote(keys[k], safe='/')}" for k in QUERY_KEYS if k in keys)
    return f"{url}?{query}" if query else url


def run(args: argparse.Namespace, paths: Paths, out: Out) -> int:
    from pgiam.commands.env import entry_keys, load_service
    from pgiam.errors import UsageError

    if not args.scheme or not all(c.isalnum() or c in "+.-" for c in args.scheme):
        raise UsageError(f"invalid --scheme {args.scheme!r}", "give a URI scheme such as postgresql or postgresql+psycopg")
    out.print(render_url(entry_keys(paths, load_service(paths, args.name)), args.scheme))
    return ExitCode.OK
