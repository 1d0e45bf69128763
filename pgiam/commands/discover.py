"""`pgiam discover`: list the PostgreSQL endpoints of an account (and add the IAM-enabled ones)."""

from __future__ import annotations

import argparse
import dataclasses
import time
from typing import TYPE_CHECKING

from pgiam.commands._common import Out, Subparsers, command, warn_timer_gap
from pgiam.errors import ExitCode, UsageError
from pgiam.paths import Paths

if TYPE_CHECKING:
    from pgiam.discover import DiscoverReport


def register(sub: Subparsers) -> None:
    d = command(sub, "discover", "list the account's PostgreSQL endpoints: instances, clusters, proxies, DSQL", """\
examples:
  pgiam discover --region eu-west-1
  pgiam discover --profile prod --profile staging --region us-east-1 --region eu-west-1 --json
  pgiam discover --region eu-west-1 --add --user alice --prefix prod-""")
    d.add_argument("--profile", action="append", default=[], help="AWS profile to scan (repeatable; default: the default chain)")
    d.add_argument("--region", action="append", default=[], help="region to scan (repeatable; default: the profile's region)")
    d.add_argument("--json", action="store_true", help="machine-readable output (see JSON OUTPUT in man pgiam)")
    d.add_argument("--prefix", default="", help="put this before every suggested service name")
    d.add_argument("--add", action="store_true", help="add every IAM-enabled endpoint as a service (all or nothing)")
    d.add_argument("--user", help="with --add: the database user of the new services")
    d.add_argument("--dbname", help="with --add: the database name of the new services")
    d.add_argument("--replace", action="store_true", help="with --add: replace services of the same name")


def run(args: argparse.Namespace, paths: Paths, out: Out) -> int:
    from pgiam import config as cfg
    from pgiam import discover, token
    from pgiam.config import Service

    if not args.add and (args.user or args.dbname or args.replace):
        raise UsageError("--user, --dbname and --replace go with --add", "add --add to create the services")
    if args.add and not args.user:
        raise UsageError("--add needs --user", "give the database user: pgiam discover ... --add --user NAME")
    profiles: list[str | None] = [cfg.check_profile(p) for p in args.profile] or [None]
    regions = [cfg.check_region(r) for r in args.region]
    if args.prefix:
        cfg.check_name(args.prefix)
    tty = out.stderr.isatty()

    def progress(done: int, total: int, what: str) -> None:  # one line on a terminal, rewritten in place
        if tty and total > 1:
            end = "\r\033[K" if done == total else ""
            print(f"\r\033[Kpgiam: scanned {done}/{total} ({what}){end}", end="", file=out.stderr, flush=True)

    report = discover.discover(profiles, regions, prefix=args.prefix, progress=progress)
    notices: list[str] = []
    if args.add:
        minter = token.Minter(retry="run the same `pgiam discover ... --add` again")
        signed: dict[str | None, token.Minted] = {}  # the profile of each added service, and what signed for it

        def mint(s: Service) -> token.Minted:
            signed[s.profile] = m = minter(s)
            return m

        svcs = discover.add_endpoints(paths, report, args.user, args.dbname, args.replace, time.time(), mint, notices,
                                      again=rerun_with_replace(args))
        report = dataclasses.replace(report, added=tuple(s.name for s in svcs))
    if args.json:
        out.json(report.to_json())
    else:
        _table(out, report)
    for w in report.warnings:
        out.note(f"warning: {w}")
    for hint in dict.fromkeys(w.hint for w in report.warnings if w.hint):  # each next step once
        print(f"hint: {hint}", file=out.stderr)
    for n in notices:
        out.note(n)
    for profile, m in signed.items() if args.add else ():
        warn_timer_gap(out, [s.name for s in svcs if s.profile == profile], profile, m.method,
                       "pgiam discover ... --add --replace --profile NAME")
    if report.added and not args.json:
        out.print(f"added {len(report.added)} service(s): {', '.join(report.added)}",
                  f"connect with: psql service={report.added[0]}")
    return report.exit_code


def rerun_with_replace(args: argparse.Namespace) -> str:
    """This `discover --add` command line with --replace (and without --json), as a shell would take it."""
    import shlex

    argv = ["pgiam", "discover"]
    for p in args.profile:
        argv += ["--profile", p]
    for r in args.region:
        argv += ["--region", r]
    if args.prefix:
        argv += ["--prefix", args.prefix]
    argv += ["--add", "--user", args.user]
    if args.dbname:
        argv += ["--dbname", args.dbname]
    return shlex.join([*argv, "--replace"])


def _table(out: Out, report: DiscoverReport) -> None:
    """One aligned row per endpoint; the policy resource shown with USER where the user name goes."""
    if not report.endpoints:
        out.print("no PostgreSQL endpoints found")
        return
    head = ("NAME", "KIND", "IAM", "HOST", "PORT", "REGION", "PROFILE", "POLICY RESOURCE")
    rows = [tuple(_cell(c) for c in (
        e.name, e.kind, "on" if e.iam else "off", e.host, str(e.port), e.region, e.profile or "-",
        (e.resource_arn + "USER" if e.resource_arn and e.kind != "dsql" else e.resource_arn) or "-"))
        for e in report.endpoints]
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head) - 1)]
    for r in [head, *rows]:
        out.print("  ".join(c.ljust(w) for c, w in zip(r, widths)) + "  " + r[-1])


def _cell(text: str) -> str:
    """A table cell from an AWS answer, on one line and inert on a terminal: control characters (escape
    sequences, newlines) shown escaped, as Python writes them (issue 20)."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)
