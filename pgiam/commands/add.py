"""`pgiam add`: save a service, write its entry and a fresh token."""

from __future__ import annotations

import argparse
import dataclasses
import time

from pgiam.commands._common import Out, Subparsers, command, warn_timer_gap
from pgiam.config import Service
from pgiam.errors import ExitCode
from pgiam.paths import Paths


def register(sub: Subparsers) -> None:
    a = command(sub, "add", "add a service: config, service-file entry and a fresh token", """\
examples:
  pgiam add prod --host db.cluster-abc.us-west-2.rds.amazonaws.com --user alice --dbname app
  pgiam add prod --host db.cluster-abc.us-west-2.rds.amazonaws.com --user alice --via 127.0.0.1:15432
  pgiam add prod --replace --host ... --user alice --profile prod-sso""")
    a.add_argument("name", metavar="NAME", help="service name for `psql service=NAME`")
    a.add_argument("--host", required=True, help="the endpoint's DNS name (cluster, instance, proxy or DSQL endpoint; a CNAME is followed to it)")
    a.add_argument("--port", default="5432", help="the endpoint's port (default 5432)")
    a.add_argument("--user", required=True, help="database user (granted rds_iam)")
    a.add_argument("--dbname", help="database name (default: libpq's, the user name)")
    a.add_argument("--region", help="AWS region (default: from the host name, else [defaults] region)")
    a.add_argument("--profile", help="AWS profile that signs the tokens")
    a.add_argument("--via", metavar="ADDR:PORT", help="connect through a tunnel or port forward at ADDR:PORT")
    a.add_argument("--sslrootcert", metavar="PATH", help="CA file to verify the server (default: the managed RDS bundle)")
    a.add_argument("--require-auth", action="store_true", help="libpq 16+: send the token only to a server asking for a password")
    a.add_argument("--replace", action="store_true", help="replace an existing service or take over a section of that name")
    a.add_argument("--no-refresh", action="store_true", help="do not mint a token now")


def run(args: argparse.Namespace, paths: Paths, out: Out) -> int:
    from pgiam import services, token
    from pgiam.config import load_config

    a = services.ServiceArgs(
        name=args.name, host=args.host, user=args.user, port=args.port, dbname=args.dbname, region=args.region,
        profile=args.profile, via=args.via, sslrootcert=args.sslrootcert, require_auth=args.require_auth,
    )
    current = load_config(paths.config_file, scope=paths.scope)
    notices: list[str] = []
    svc = services.build(paths, a, current, notices)  # a CNAME host becomes its AWS name, said in notices
    services.check_conflicts(paths, current, svc, args.replace)  # before any download
    svc = services.with_tls_defaults(paths, svc, notices)
    signed: list[token.Minted] = []

    def mint(s: Service) -> token.Minted:
        # [defaults] profile signs when no profile was given, as it will at every refresh; a failed add
        # saves nothing, so its hint must not say `pgiam refresh NAME`.
        m = token.mint(dataclasses.replace(s, profile=s.profile or current.defaults.profile),
                       retry="run the same `pgiam add` again")
        signed.append(m)
        return m

    result = services.add(paths, svc, explicit_region=bool(args.region), now=time.time(),
                          mint=None if args.no_refresh else mint, replace=args.replace)
    for n in notices + result.notices:
        out.note(n)
    warn_timer_gap(out, [svc.name], svc.profile or current.defaults.profile, signed[0].method if signed else None,
                   f"pgiam add {svc.name} --replace --profile NAME ...")
    via = f" via {svc.via}" if svc.via else ""
    out.print(f"added {svc.name}: {svc.user}@{svc.host}:{svc.port}{via}, sslmode=verify-full")
    if args.no_refresh:
        out.print(f"no token yet: run `pgiam refresh {svc.name}` before connecting")
    out.print(f"connect with: psql service={svc.name}")
    return ExitCode.OK
