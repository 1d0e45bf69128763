"""`pgiam list`: the configured services (no refresh machinery: `list --names` feeds completion)."""

from __future__ import annotations

import argparse

from pgiam.commands._common import Out, Subparsers, command
from pgiam.errors import ExitCode
from pgiam.paths import Paths


def register(sub: Subparsers) -> None:
    ls = command(sub, "list", "list configured services")
    ls.add_argument("--json", action="store_true", help="machine-readable output (see JSON OUTPUT in man pgiam)")
    ls.add_argument("--names", action="store_true", help="service names only, one per line")


def run(args: argparse.Namespace, paths: Paths, out: Out) -> int:
    from pgiam.config import load_config
    from pgiam.reports import ListReport

    config = load_config(paths.config_file, scope=paths.scope)
    if args.names:
        out.print(*config.services)
        return ExitCode.OK
    report = ListReport(tuple(config.services.values()))
    if args.json:
        out.json(report.to_json())
    elif not report.services:
        out.print("no services yet: add one with `pgiam add NAME --host HOST --user USER`")
    else:
        out.print(*(f"{s.name}\t{s.user}@{s.host}:{s.port}{f' via {s.via}' if s.via else ''}"
                    f"{f' db={s.dbname}' if s.dbname else ''} ({s.region}, profile {s.profile or 'default'})"
                    for s in report.services))
    return ExitCode.OK
