"""`pgiam token`: print a fresh token (the one command that prints one)."""

from __future__ import annotations

import argparse

from pgiam.commands._common import Out, Subparsers, command
from pgiam.errors import ExitCode
from pgiam.paths import Paths


def register(sub: Subparsers) -> None:
    tk = command(sub, "token", "print a fresh token on stdout (for scripts that need PGPASSWORD)", """\
examples:
  PGPASSWORD="$(pgiam token prod)" some-tool-without-libpq""")
    tk.add_argument("name", metavar="NAME")


def run(args: argparse.Namespace, paths: Paths, out: Out) -> int:
    from pgiam import store, token
    from pgiam.config import load_config

    config = load_config(paths.config_file)
    svc = config.services.get(args.name)
    if svc is None:
        raise store.no_such_service(paths, args.name)
    out.print(token.mint(svc).token)  # the one command whose job is to print a token
    return ExitCode.OK
