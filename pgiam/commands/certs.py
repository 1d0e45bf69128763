"""`pgiam certs update|status`: the Amazon RDS CA bundles used for verify-full."""

from __future__ import annotations

import argparse
import time

from pgiam.commands._common import Out, Subparsers, actions, command
from pgiam.errors import ExitCode
from pgiam.paths import Paths


def register(sub: Subparsers) -> None:
    from pgiam.certs import PARTITIONS

    ce = command(sub, "certs", "manage the Amazon RDS CA bundles used for verify-full", """\
examples:
  pgiam certs update                       # bundles of the partitions your services use
  pgiam certs update --partition aws-us-gov
  pgiam certs status""")
    ces = actions(ce)
    cu = ces.add_parser("update", help="download the RDS CA bundle(s) over verified HTTPS")
    cu.add_argument("--url", help="download this partition's bundle from URL instead (https only)")
    cu.add_argument("--partition", choices=list(PARTITIONS), help="which partition (default: those in use, else aws)")
    cs = ces.add_parser("status", help="managed bundles, CA counts and expiring CAs")
    cs.add_argument("--json", action="store_true", help="machine-readable output (see JSON OUTPUT in man pgiam)")


def run(args: argparse.Namespace, paths: Paths, out: Out) -> int:
    from pgiam import certs

    if args.action == "update":
        for res in certs.update_in_use(paths, args.partition, args.url):
            state = "updated" if res.changed else "unchanged"
            out.print(f"{res.partition}: {state} {res.path} ({res.ca_count} CAs, from {res.url})")
        return ExitCode.OK
    report = certs.report(paths, time.time())
    if args.json:
        out.json(report.to_json())
    elif not report.bundles:
        out.print("no managed CA bundles yet: run `pgiam certs update`")
    else:
        for b in report.bundles:
            label = b.partition or "not managed"
            use = ", in use" if b.in_use else ""
            if not b.exists:
                out.print(f"{b.path} ({label}{use}): missing")
                continue
            out.print(f"{b.path} ({label}{use}): {b.ca_count} CAs" + (f", invalid: {b.error}" if b.error else ""))
            for ca in b.expiring:
                verb = "expired" if ca.expired else "expires"
                out.print(f"  {ca.subject}: {verb} {ca.not_after}")
    for p in report.problems:
        out.note(p)
    return ExitCode.CONFIG if report.problems else ExitCode.OK
