"""`pgiam doctor`: one line per check from the shell to the server, and the fix for each failure."""

from __future__ import annotations

import argparse
import time

from pgiam.commands._common import Out, Subparsers, command
from pgiam.errors import ExitCode
from pgiam.paths import Paths


def register(sub: Subparsers) -> None:
    d = command(sub, "doctor", "check each service from the shell to the server; name what is broken and its fix", """\
checks, in order: libpq, environment, files, token, credentials, network and TLS, login;
with --online also STS (identity, clock skew), the RDS resource (IAM on, resource id, port, CA)
and an IAM policy simulation for rds-db:connect.
exit status: 0 when no check failed (warnings don't fail), 8 when --online could not reach AWS, 1 otherwise.
examples:
  pgiam doctor
  pgiam doctor prod --online
  pgiam doctor --python ./venv/bin/python""")
    d.add_argument("names", nargs="*", metavar="NAME", help="services to check (default: all)")
    d.add_argument("--online", action="store_true", help="also ask AWS: STS, RDS describe calls, IAM policy simulation")
    d.add_argument("--python", metavar="PATH", help="also report the libpq inside that interpreter's psycopg/psycopg2")
    d.add_argument("--json", action="store_true", help="machine-readable output (see JSON OUTPUT in man pgiam)")


def run(args: argparse.Namespace, paths: Paths, out: Out) -> int:
    from pgiam.doctor import FAIL
    from pgiam.doctor.walk import diagnose

    report = diagnose(paths, args.names, time.time(), online=args.online, python=args.python)
    if args.json:
        out.json(report.to_json())
    else:
        rows = [("-", c) for c in report.checks] + [(s.name, c) for s in report.services for c in s.checks]
        for name, c in rows:
            line = f"{c.status:<4}  {name}  {c.id}: {c.message}"
            if c.fix and c.status != "ok":
                line += f"  (fix: {c.fix})"
            out.print(line)
        bad = sum(c.status == FAIL for _, c in rows)
        out.print(f"{bad} check(s) failed" if bad else "no check failed")
    return report.exit_code
