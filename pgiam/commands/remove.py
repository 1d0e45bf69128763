"""`pgiam remove`: drop a service from the config and both libpq files."""

from __future__ import annotations

import argparse
import time

from pgiam.commands._common import Out, Subparsers, command
from pgiam.errors import ExitCode
from pgiam.paths import Paths


def register(sub: Subparsers) -> None:
    r = command(sub, "remove", "remove a service: config, service-file entry and its token line", """\
examples:
  pgiam remove prod""")
    r.add_argument("name", metavar="NAME")


def run(args: argparse.Namespace, paths: Paths, out: Out) -> int:
    from pgiam import services

    result = services.remove(paths, args.name, time.time())
    for n in result.notices:
        out.note(n)
    out.print(f"removed {args.name}")
    return ExitCode.OK
