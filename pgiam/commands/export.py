"""`pgiam export TARGET`: pgiam's services in another tool's own configuration format, on stdout.

One action per target tool; each reads the config, renders with a pure module, and writes nothing.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path

from pgiam.commands._common import Out, Subparsers, actions, command
from pgiam.errors import ExitCode
from pgiam.paths import Paths


def register(sub: Subparsers) -> None:
    ex = command(sub, "export", "print services in another tool's configuration format (pgAdmin 4, pgbouncer)", """\
examples:
  pgiam export pgadmin > servers.json        # every service; or name some: pgiam export pgadmin prod
  python3 .../pgadmin4/setup.py load-servers servers.json    # pgAdmin 4 in desktop mode
  pgiam export pgbouncer prod --ca-file /etc/pgbouncer/server-ca.pem >> /etc/pgbouncer/pgbouncer.ini""")
    targets = actions(ex)
    pg = targets.add_parser(
        "pgadmin", help="a pgAdmin 4 servers.json: verify-full, and `pgiam token NAME` as the password exec command",
        description="A pgAdmin 4 servers.json on stdout: host, port, user, database, sslmode=verify-full and "
        "sslrootcert, and a PasswordExecCommand running `pgiam token NAME` by absolute path (pgAdmin runs it "
        "through a shell and keeps the password PasswordExecExpiration seconds, less than a token has left). "
        "pgAdmin imports the password-exec fields in desktop mode only.")
    pg.add_argument("names", nargs="*", metavar="NAME", help="services to export (default: all)")
    pb = targets.add_parser(
        "pgbouncer", help="pgbouncer.ini lines: [databases] entries and verify-full server TLS",
        description="pgbouncer.ini lines on stdout: a [databases] entry per service (host, port, dbname and the "
        "IAM user, whose password `pgiam run --pgbouncer-auth-file` keeps in auth_file), and in [pgbouncer] "
        "server_tls_sslmode = verify-full, server_tls_ca_file (one file: pgbouncer has one for all databases) "
        "and, when a service is Aurora DSQL, server_lifetime below its one-hour connection limit.")
    pb.add_argument("names", nargs="*", metavar="NAME", help="services to export (default: all)")
    pb.add_argument("--ca-file", metavar="FILE", type=Path,
                    help="write the CA certificates of every exported service to FILE and name it in server_tls_ca_file "
                         "(needed when the services verify against more than one CA file)")


def run_pgadmin(args: argparse.Namespace, paths: Paths, out: Out) -> int:
    import os

    from pgiam import pgadmin, store, timer
    from pgiam.commands._common import exe
    from pgiam.commands.env import entry_keys
    from pgiam.config import load_config

    config = load_config(paths.config_file, scope=paths.scope)
    names = store.select(paths, config, args.names)
    # The variables that choose pgiam's and libpq's files, as a timer carries them: pgAdmin starts the
    # command from its own environment, not this shell's.
    env = timer.carried_env(os.environ)
    servers = [pgadmin.Server(n, entry_keys(paths, config.services[n]), [*exe(), "token", n], env) for n in names]
    out.print(json.dumps(pgadmin.render_servers(servers, config.defaults.renewal_margin), indent=2))
    return ExitCode.OK


def run_pgbouncer(args: argparse.Namespace, paths: Paths, out: Out) -> int:
    import os

    from pgiam import certs, dsql, pgbouncer, store
    from pgiam.commands.env import entry_keys
    from pgiam.config import load_config
    from pgiam.daemon import pgbouncer_users
    from pgiam.errors import FileError, UsageError
    from pgiam.fileio import atomic_write, read_bytes

    config = load_config(paths.config_file, scope=paths.scope)
    names = store.select(paths, config, args.names)
    pgbouncer_users({n: config.services[n] for n in names})  # one password per user in auth_file
    dbs, roots = [], []
    for n in names:
        svc, keys = config.services[n], entry_keys(paths, config.services[n])
        dbs.append(pgbouncer.Database(n, svc.via.addr if svc.via else svc.host, svc.dial_port,
                                      keys.get("dbname", svc.user), svc.user, svc.host, dsql.is_dsql_host(svc.host)))
        root = keys["sslrootcert"]
        roots.append((n, certs.proxy_sslrootcert(None) if root == "system" else os.path.abspath(root)))
    files = list(dict.fromkeys(path for _, path in roots))
    if args.ca_file is None:
        if len(files) > 1:
            raise UsageError(f"the services verify against {len(files)} CA files ({', '.join(files)}); "
                             "pgbouncer takes one server_tls_ca_file for all",
                             f"add --ca-file FILE: pgiam writes their certificates to FILE, e.g. "
                             f"`pgiam export pgbouncer {' '.join(args.names)}{' ' if args.names else ''}"
                             "--ca-file /etc/pgbouncer/server-ca.pem`")
        ca_file = files[0]
    else:
        pems = []
        for n, path in roots:
            data = read_bytes(Path(path), scope=paths.scope)
            if data is None or b"-----BEGIN CERTIFICATE-----" not in data:
                raise FileError(f"{n}: its CA file {path} {'is missing' if data is None else 'holds no PEM certificate'}",
                                f"run `pgiam certs update`, or point the service at its CA (`pgiam add {n} ... --sslrootcert PATH --replace`)")
            pems.append((path, data))
        ca_file = str(atomic_write(args.ca_file.absolute(), pgbouncer.merge_ca_files(pems), 0o644, scope=paths.scope))
    out.print(pgbouncer.render_ini(dbs, ca_file).rstrip("\n"))
    return ExitCode.OK


RUNNERS: dict[str, Callable[[argparse.Namespace, Paths, Out], int]] = {"pgadmin": run_pgadmin, "pgbouncer": run_pgbouncer}


def run(args: argparse.Namespace, paths: Paths, out: Out) -> int:
    return RUNNERS[args.action](args, paths, out)
