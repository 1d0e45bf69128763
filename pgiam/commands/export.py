"""`pgiam export TARGET`: pgiam's services in another tool's own configuration format, on stdout.

One action per target tool; each reads the config, renders with a pure module, and writes nothing.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable

from pgiam.commands._common import Out, Subparsers, actions, command
from pgiam.errors import ExitCode
from pgiam.paths import Paths


def register(sub: Subparsers) -> None:
    ex = command(sub, "export", "print services in another tool's configuration format (pgAdmin 4)", """\
examples:
  pgiam export pgadmin > servers.json        # every service; or name some: pgiam export pgadmin prod
  python3 .../pgadmin4/setup.py load-servers servers.json    # pgAdmin 4 in desktop mode""")
    targets = actions(ex)
    pg = targets.add_parser(
        "pgadmin", help="a pgAdmin 4 servers.json: verify-full, and `pgiam token NAME` as the password exec command",
        description="A pgAdmin 4 servers.json on stdout: host, port, user, database, sslmode=verify-full and "
        "sslrootcert, and a PasswordExecCommand running `pgiam token NAME` by absolute path (pgAdmin runs it "
        "through a shell and keeps the password PasswordExecExpiration seconds, less than a token has left). "
        "pgAdmin imports the password-exec fields in desktop mode only.")
    pg.add_argument("names", nargs="*", metavar="NAME", help="services to export (default: all)")


def run_pgadmin(args: argparse.Namespace, paths: Paths, out: Out) -> int:
    import os

    from pgiam import pgadmin, store, timer
    from pgiam.commands._common import exe
    from pgiam.commands.env import entry_keys
    from pgiam.config import load_config

    config = load_config(paths.config_file)
    names = store.select(paths, config, args.names)
    # The variables that choose pgiam's and libpq's files, as a timer carries them: pgAdmin starts the
    # command from its own environment, not this shell's.
    env = timer.carried_env(os.environ)
    servers = [pgadmin.Server(n, entry_keys(paths, config.services[n]), [*exe(), "token", n], env) for n in names]
    out.print(json.dumps(pgadmin.render_servers(servers, config.defaults.renewal_margin), indent=2))
    return ExitCode.OK


RUNNERS: dict[str, Callable[[argparse.Namespace, Paths, Out], int]] = {"pgadmin": run_pgadmin}


def run(args: argparse.Namespace, paths: Paths, out: Out) -> int:
    return RUNNERS[args.action](args, paths, out)
