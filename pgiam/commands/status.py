"""`pgiam status`: token expiry and the last error per service, read from the files themselves."""

from __future__ import annotations

import argparse
import time

from pgiam.commands._common import Out, Subparsers, clock, command, left
from pgiam.errors import ExitCode
from pgiam.paths import Paths


def register(sub: Subparsers) -> None:
    st = command(sub, "status", "token expiry and last error per service")
    st.add_argument("names", nargs="*", metavar="NAME", help="services to show (default: all)")
    st.add_argument("--json", action="store_true", help="machine-readable output (see JSON OUTPUT in man pgiam)")
    st.add_argument("--check", action="store_true",
                    help="print nothing (but --json) on success; exit 1 with one line per failing service on stderr when a token "
                    "is missing, invalid, expired, valid for less than --min-left, or its last refresh failed")
    st.add_argument("--min-left", type=int, default=0, metavar="SECONDS",
                    help="with --check: seconds each token must still be valid (default 0: valid now)")


def run(args: argparse.Namespace, paths: Paths, out: Out) -> int:
    from pgiam import status

    now = time.time()
    report = status.report(paths, now, args.names)
    if args.check:
        if args.min_left < 0:
            from pgiam.errors import UsageError

            raise UsageError(f"--min-left {args.min_left} is negative", "give a number of seconds, 0 or more")
        failures = status.check_failures(report, now, args.min_left)
        for line in failures:
            print(f"pgiam: {line}", file=out.stderr)
        if args.json:
            out.json(report.to_json())
        return ExitCode.PARTIAL if failures else ExitCode.OK
    if args.json:
        out.json(report.to_json())
        return ExitCode.OK
    if not report.services:
        out.print("no services yet: add one with `pgiam add NAME --host HOST --user USER`")
    lines = []
    for r in report.services:
        s = r.service
        line = f"{s.name}\t{s.user}@{s.host}:{s.port}\t{_signer(s.profile, r.signed_by)}\t"
        if r.token in ("missing", "invalid"):
            line += f"{r.token}: {r.reason}"
        else:
            line += f"expires {clock(r.expires)} ({left(r.expires, now)})"
        if r.error:
            line += f"\tlast error: {r.error}"
        lines.append(line)
    out.print(*lines)  # one write
    return ExitCode.OK


def _signer(profile: str | None, signed_by: str | None) -> str:
    """`profile NAME`, or the credential source as botocore names it (`container credentials`)."""
    from pgiam.awserrors import NON_PROFILE_SOURCES

    if not profile and signed_by in NON_PROFILE_SOURCES.values():
        return f"{signed_by} credentials"
    return f"profile {profile or signed_by or 'default'}"
