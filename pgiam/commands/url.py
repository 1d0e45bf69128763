"""`pgiam url NAME --for CLIENT`: a service entry in the form one client accepts, keeping verify-full, no password.

- libpq's URI ("Connection URIs" in the libpq documentation): `postgresql://USER@HOST:PORT/DBNAME
  ?param=value&...`, every part percent-encoded, IPv6 literals in brackets, any connection parameter
  (hostaddr, sslmode, sslrootcert, require_auth) as a query parameter. SQLAlchemy over psycopg or
  psycopg2 takes the same URL with its driver in the scheme and hands the query to libpq, which also
  reads ~/.pgpass for it.
- asyncpg parses a DSN itself: it knows sslmode and sslrootcert but not hostaddr or require_auth
  (any other query key is sent to the server as a setting: "unrecognized configuration parameter"),
  and it checks the certificate against the host it dials. Through SQLAlchemy every query key becomes
  a keyword of `asyncpg.connect`, which has no `sslrootcert`: the CA goes in an `ssl` SSLContext in
  `connect_args`; `ssl=verify-full` in the URL keeps a forgotten context from falling back to
  asyncpg's default (`prefer`, no check).
- node-postgres takes no service file, and a `connectionString` beats a `password` function: its
  config object is printed as JSON, with the CA file named beside it (`ssl.ca` wants the PEM bytes),
  and `ssl.servername` the endpoint name, which node checks the certificate against.
- pgJDBC: `jdbc:postgresql://HOST:PORT/DB?user=...&sslmode=verify-full&sslrootcert=...` (pgJDBC's
  "Connecting to the Database" documentation); it checks the certificate against the URL's host.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from urllib.parse import quote

from pgiam.commands._common import Out, Subparsers, command
from pgiam.errors import ExitCode, UsageError
from pgiam.paths import Paths

QUERY_KEYS = ("hostaddr", "sslmode", "sslrootcert", "require_auth")
# --for CLIENT: the libpq family first, then the clients that parse a URL or config themselves.
SCHEMES = {"libpq": "postgresql", "sqlalchemy+psycopg": "postgresql+psycopg",
           "sqlalchemy+psycopg2": "postgresql+psycopg2"}
CLIENTS = (*SCHEMES, "sqlalchemy+asyncpg", "asyncpg", "node-postgres", "jdbc")
# The old --scheme values, each an alias of one client (deprecated in 0.3.0).
LEGACY_SCHEMES = {**{v: k for k, v in SCHEMES.items()}, "postgresql+asyncpg": "sqlalchemy+asyncpg"}


def register(sub: Subparsers) -> None:
    u = command(sub, "url", "print a service's connection URL or config for one client (no password)", """\
Every form keeps verify-full (the CA file and the host-name check) and holds no token: clients that
read ~/.pgpass find it there, the others take `pgiam token NAME` or pgiam.password() as their password
callback (README: Clients). Notes on stderr say what a form cannot carry by itself.

examples:
  psql "$(pgiam url prod)"
  pgiam url prod --for sqlalchemy+psycopg     # create_engine(URL)
  pgiam url prod --for asyncpg                # asyncpg.connect(DSN, password=...)
  pgiam url prod --for node-postgres          # JSON for new pg.Client({...})
  pgiam url prod --for jdbc""")
    u.add_argument("name", metavar="NAME")
    u.add_argument("--for", dest="client", choices=CLIENTS, metavar="CLIENT",
                   help=f"the client: {', '.join(CLIENTS)} (default: libpq)")
    u.add_argument("--scheme", metavar="SCHEME",
                   help=f"deprecated alias of --for: {', '.join(LEGACY_SCHEMES)}")


@dataclass(frozen=True)
class Form:
    """What `pgiam url` prints on stdout, and the notes for stderr."""

    text: str
    notes: tuple[str, ...] = ()


def render_url(keys: dict[str, str], scheme: str = "postgresql", query_keys: tuple[str, ...] = QUERY_KEYS,
               extra: tuple[tuple[str, str], ...] = ()) -> str:
    """The URI for the entry `keys` (service-file keys as pgiam writes them)."""
    url = f"{scheme}://{quote(keys['user'], safe='')}@{_host(keys['host'])}:{keys['port']}"
    if "dbname" in keys:
        url += "/" + quote(keys["dbname"], safe="")
    pairs = [(k, keys[k]) for k in query_keys if k in keys] + list(extra)
    query = "&".join(f"{k}={quote(v, safe='/')}" for k, v in pairs)
    return f"{url}?{query}" if query else url


def _host(host: str) -> str:
    return f"[{host}]" if ":" in host else host  # an IPv6 literal


def _no_tunnel(name: str, client: str, keys: dict[str, str]) -> UsageError:
    return UsageError(
        f"{client} cannot use service {name!r} through its tunnel: it checks the certificate against the "
        f"address it dials, and has no hostaddr to dial {keys['hostaddr']} while checking {keys['host']}",
        f"make {keys['host']} resolve to {keys['hostaddr']} (a line `{keys['hostaddr']} {keys['host']}` in /etc/hosts) "
        f"and give {client} host {keys['host']} and port {keys['port']}; or use node-postgres "
        f"(`pgiam url {name} --for node-postgres`) or a libpq client (`pgiam url {name}`)")


def _require_auth_note(client: str, keys: dict[str, str]) -> tuple[str, ...]:
    if "require_auth" not in keys:
        return ()
    return (f"{client} has no require_auth: it sends the token to whatever authentication the server asks for",)


def render(name: str, client: str, keys: dict[str, str]) -> Form:
    """The form of entry `keys` (service `name`) for `client`; UsageError where that client cannot connect."""
    system = keys.get("sslrootcert") == "system"
    ca = keys.get("sslrootcert", "")
    if client in SCHEMES:
        return Form(render_url(keys, SCHEMES[client]))
    if client == "asyncpg":
        if "hostaddr" in keys:
            raise _no_tunnel(name, client, keys)
        notes = _require_auth_note(client, keys)
        if system:
            notes += ("asyncpg reads sslrootcert=system as a file name: pass ssl=ssl.create_default_context() "
                      "(the system's roots) to asyncpg.connect instead of the DSN's sslmode",)
            return Form(render_url(keys, "postgresql", ("sslmode",)), notes)
        return Form(render_url(keys, "postgresql", ("sslmode", "sslrootcert")), notes)
    if client == "sqlalchemy+asyncpg":
        if "hostaddr" in keys:
            raise _no_tunnel(name, client, keys)
        context = "ssl.create_default_context()" if system else f"ssl.create_default_context(cafile={ca!r})"
        notes = (f"SQLAlchemy+asyncpg: the URL cannot carry the CA file; add connect_args={{\"ssl\": {context}}} "
                 "to create_async_engine (the URL's ssl=verify-full refuses to connect without it)",
                 *_require_auth_note(client, keys))
        return Form(render_url(keys, "postgresql+asyncpg", (), (("ssl", "verify-full"),)), notes)
    if client == "node-postgres":
        tunnel = "hostaddr" in keys
        config: dict[str, object] = {
            # Through a tunnel: dial its address and check the certificate against the endpoint name.
            "host": keys["hostaddr"] if tunnel else keys["host"],
            "port": int(keys["port"]),
            "user": keys["user"],
            "database": keys.get("dbname", keys["user"]),
            "ssl": {"rejectUnauthorized": True, "servername": keys["host"]},
            # Not a pg option: the recipe reads this file into ssl.ca (null: Node's own roots).
            "sslrootcert": None if system else ca,
        }
        return Form(json.dumps(config, indent=2), _require_auth_note(client, keys))
    if client == "jdbc":
        if "hostaddr" in keys:
            raise _no_tunnel(name, "pgJDBC", keys)
        if system:
            raise UsageError(f"pgJDBC reads sslrootcert=system of service {name!r} as a file name",
                             f"give the service a CA file: `pgiam add {name} --replace --sslrootcert FILE ...`")
        url = f"jdbc:postgresql://{_host(keys['host'])}:{keys['port']}/{quote(keys.get('dbname', keys['user']), safe='')}"
        query = [("user", keys["user"]), ("sslmode", keys["sslmode"]), ("sslrootcert", ca)]
        return Form(url + "?" + "&".join(f"{k}={quote(v, safe='/')}" for k, v in query),
                    _require_auth_note("pgJDBC", keys))
    raise AssertionError(f"no form for client {client}")


def client_of(args: argparse.Namespace) -> tuple[str, tuple[str, ...]]:
    """The client `--for` or the deprecated `--scheme` names, and a note for the latter."""
    if args.scheme is None:
        return args.client or "libpq", ()
    if args.client is not None:
        raise UsageError("--scheme and --for exclude each other", "give only --for CLIENT")
    client = LEGACY_SCHEMES.get(args.scheme)
    if client is None:
        raise UsageError(f"invalid --scheme {args.scheme!r} (choose from {', '.join(LEGACY_SCHEMES)})",
                         f"give --for CLIENT, one of {', '.join(CLIENTS)}")
    return client, (f"--scheme is deprecated: use --for {client}",)


def run(args: argparse.Namespace, paths: Paths, out: Out) -> int:
    from pgiam.commands.env import entry_keys, load_service

    client, notes = client_of(args)
    form = render(args.name, client, entry_keys(paths, load_service(paths, args.name)))
    for note in (*notes, *form.notes):
        out.note(note)
    out.print(form.text)
    return ExitCode.OK
