"""`pgiam sandbox up|down|status`: a local PostgreSQL that checks IAM tokens like RDS."""

from __future__ import annotations

import argparse

from pgiam.commands._common import Out, Subparsers, actions, command
from pgiam.errors import ExitCode
from pgiam.paths import Paths


def register(sub: Subparsers) -> None:
    sb = command(sub, "sandbox", "a local PostgreSQL that checks IAM tokens like RDS (no AWS account needed)", """\
examples:
  pgiam sandbox up && psql service=sandbox -c 'select current_user'
  pgiam sandbox status
  pgiam sandbox down""")
    sbs = actions(sb)
    up = sbs.add_parser("up", help="start the sandbox and add the `sandbox` service")
    up.add_argument("--port", help="local TCP port for PostgreSQL (default: a free one)")
    sbs.add_parser("down", help="stop the sandbox and remove the `sandbox` service")
    st = sbs.add_parser("status", help="what runs where")
    st.add_argument("--json", action="store_true", help="machine-readable output (see JSON OUTPUT in man pgiam)")


def run(args: argparse.Namespace, paths: Paths, out: Out) -> int:
    from pgiam.sandbox import service

    if args.action == "up":
        from pgiam.config import check_port

        res = service.up(paths, check_port(args.port) if args.port else None)
        for n in res.notices:
            out.note(n)
        out.print(f"sandbox up: PostgreSQL on 127.0.0.1:{res.local_port}, checking IAM tokens for {res.endpoint_host}")
        out.print("try: psql service=sandbox")
        out.print("other clients: `pgiam url sandbox --for CLIENT` and the README's Clients section")
        return ExitCode.OK
    if args.action == "down":
        gone = service.down(paths)
        out.print({(True, True): "sandbox stopped and the `sandbox` service removed",
                   (True, False): "sandbox stopped; there was no `sandbox` service",
                   (False, True): "no sandbox was running; `sandbox` service removed",
                   (False, False): "no sandbox was running and no `sandbox` service: nothing to remove"}[gone.stopped, gone.removed])
        return ExitCode.OK
    from pgiam.reports import SandboxReport
    from pgiam.sandbox import cluster

    details = dict(cluster.status(paths))
    report = SandboxReport(bool(details.pop("running")), details)
    if args.json:
        out.json(report.to_json())
        return ExitCode.OK
    out.print(f"running: {report.running}")
    for k, v in report.details.items():
        if v is not None:  # not running, not set up, or a file that is not there: not named
            out.print(f"{k}: {v}")
    return ExitCode.OK
