"""`pgiam env NAME`: the libpq environment variables for a service entry, for a shell or as JSON.

For tools and libraries that read libpq's variables but not the service file. The values are the
keys pgiam writes into the entry (pgiam.store.service_entry), named as libpq's documentation names
them ("Environment Variables": PGHOST, PGHOSTADDR, PGPORT, PGUSER, PGDATABASE, PGSSLMODE,
PGSSLROOTCERT, PGREQUIREAUTH). Never the token: `pgiam token NAME` is the one command that prints one.
"""

from __future__ import annotations

import argparse
import shlex
from dataclasses import dataclass

from pgiam.commands._common import Out, Subparsers, command
from pgiam.config import Service
from pgiam.errors import ExitCode
from pgiam.paths import Paths

# service-file key -> libpq environment variable, in the order they are printed
VARIABLES = (
    ("host", "PGHOST"), ("hostaddr", "PGHOSTADDR"), ("port", "PGPORT"), ("user", "PGUSER"),
    ("dbname", "PGDATABASE"), ("sslmode", "PGSSLMODE"), ("sslrootcert", "PGSSLROOTCERT"),
    ("require_auth", "PGREQUIREAUTH"),
)


def register(sub: Subparsers) -> None:
    e = command(sub, "env", "print the PG* variables of a service (never the token)", """\
Variables the entry does not set are unset (sh, fish) or null (json), so switching services leaves
nothing stale behind. The token stays in ~/.pgpass, which libpq reads.

examples:
  eval "$(pgiam env prod)"          # bash, zsh, sh
  pgiam env prod --format fish | source
  pgiam env prod --format json""")
    e.add_argument("name", metavar="NAME")
    e.add_argument("--format", choices=("sh", "fish", "json"), default="sh", help="shell syntax or JSON (default: sh)")


def entry_keys(paths: Paths, svc: Service) -> dict[str, str]:
    """The keys of the service entry pgiam writes for `svc`, exactly as the service file holds them."""
    from pgiam import store

    return dict(store.service_entry(svc, svc.sslrootcert or store.default_sslrootcert(paths, svc)).keys)


def load_service(paths: Paths, name: str) -> Service:
    from pgiam import store
    from pgiam.config import load_config

    svc = load_config(paths.config_file, scope=paths.scope).services.get(name)
    if svc is None:
        raise store.no_such_service(paths, name)
    return svc


@dataclass(frozen=True)
class EnvReport:
    name: str
    variables: dict[str, str | None]  # every name in VARIABLES; None: not set by this entry

    def to_json(self) -> dict[str, object]:
        from pgiam.reports import envelope

        return envelope("env", name=self.name, variables=dict(self.variables))


def environment(paths: Paths, svc: Service) -> EnvReport:
    keys = entry_keys(paths, svc)
    return EnvReport(svc.name, {var: keys.get(key) for key, var in VARIABLES})


def render_sh(variables: dict[str, str | None]) -> list[str]:
    """POSIX sh: single-quoted values (shlex.quote), `unset` for the rest."""
    return [f"export {k}={shlex.quote(v)}" if v is not None else f"unset {k}" for k, v in variables.items()]


def fish_quote(value: str) -> str:
    """fish single quotes: only `\\` and `'` are special inside them (fish documentation, "Quotes")."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def render_fish(variables: dict[str, str | None]) -> list[str]:
    return [f"set -gx {k} {fish_quote(v)}" if v is not None else f"set -e {k}" for k, v in variables.items()]


def run(args: argparse.Namespace, paths: Paths, out: Out) -> int:
    report = environment(paths, load_service(paths, args.name))
    if args.format == "json":
        out.json(report.to_json())
    elif args.format == "fish":
        out.print(*render_fish(report.variables))
    else:
        out.print(*render_sh(report.variables))
    return ExitCode.OK
