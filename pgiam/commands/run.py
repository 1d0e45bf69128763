"""`pgiam run`: keep tokens fresh in the foreground, for systemd (Type=notify) and Kubernetes sidecars."""

from __future__ import annotations

import argparse
from pathlib import Path

from pgiam.commands._common import Out, Subparsers, command
from pgiam.paths import Paths


def register(sub: Subparsers) -> None:
    r = command(sub, "run", "keep every service's token fresh until stopped (servers, containers)", """\
examples:
  pgiam run                        # foreground; SIGTERM stops it, SIGHUP re-reads the config
  pgiam run --once                 # one renewal pass, then exit
  pgiam run --pgbouncer-auth-file /etc/pgbouncer/userlist.txt --pgbouncer-pidfile /run/postgresql/pgbouncer.pid
  pgiam run --http :9187           # probes and metrics on http://127.0.0.1:9187/{startup,liveness,readiness,metrics}
  pgiam run --http "$POD_IP:9187"  # in a pod: kubelet probes the pod's address, not loopback

environment: PGIAM_CONFIG (config file), PGIAM_STATE_DIR (pgiam keeps a `pgiam` directory there),
PGPASSFILE and PGSERVICEFILE (the files written), NOTIFY_SOCKET and WATCHDOG_USEC (systemd).""")
    r.add_argument("--once", action="store_true", help="renew what is due once, then exit with refresh's status")
    r.add_argument("--pgbouncer-auth-file", metavar="FILE", type=Path,
                   help="keep the services' users' \"user\" \"token\" lines fresh in this pgbouncer auth_file")
    r.add_argument("--pgbouncer-pidfile", metavar="FILE", type=Path,
                   help="pgbouncer's pidfile: send it SIGHUP after each change of the auth file")
    r.add_argument("--http", metavar="HOST:PORT",
                   help="serve /startup, /liveness, /readiness and Prometheus /metrics on this address "
                        "(HOST defaults to 127.0.0.1; off unless given)")


def run(args: argparse.Namespace, paths: Paths, out: Out) -> int:
    from pgiam import daemon
    from pgiam.errors import UsageError
    from pgiam.notify import Notifier

    target = None
    if args.pgbouncer_auth_file is not None:
        from pgiam.pgbouncer import Target

        target = Target(args.pgbouncer_auth_file.absolute(),
                        args.pgbouncer_pidfile.absolute() if args.pgbouncer_pidfile else None)
    elif args.pgbouncer_pidfile is not None:
        raise UsageError("--pgbouncer-pidfile needs --pgbouncer-auth-file", "name the auth_file pgbouncer reads too")
    http = None
    if args.http is not None:
        from pgiam.health import parse_address

        if args.once:
            raise UsageError("--http needs the running loop; --once makes one pass and exits",
                             "drop --once, or drop --http")
        http = parse_address(args.http)

    from pgiam import token  # botocore itself is imported only when a token is minted

    mint = token.Minter()  # its sessions live as long as the daemon; SIGHUP makes it forget them

    def log(line: str) -> None:
        # One line per event, flushed at once: journald and `kubectl logs` see it as it happens.
        print(f"pgiam: {line}", file=out.stderr, flush=True)

    d = daemon.Daemon(paths, log, mint, Notifier(), daemon.Options(once=args.once, pgbouncer=target, http=http))
    return d.run()  # nothing is printed on stdout: the log is stderr's
