"""`pgiam refresh`: mint fresh tokens into ~/.pgpass (all, some, or only the due ones)."""

from __future__ import annotations

import argparse
import time
from typing import Any

from pgiam.commands._common import Out, Subparsers, clock, command, left
from pgiam.errors import ExitCode, LockedError, PgiamError
from pgiam.paths import Paths


def register(sub: Subparsers) -> None:
    rf = command(sub, "refresh", "mint fresh tokens into ~/.pgpass", """\
examples:
  pgiam refresh                    # every service
  pgiam refresh prod               # one service
  pgiam refresh --if-needed --quiet   # for timers and hooks: only tokens near expiry""")
    rf.add_argument("names", nargs="*", metavar="NAME", help="services to refresh (default: all)")
    rf.add_argument("--if-needed", action="store_true", help="only tokens that are due; never waits for another pgiam")
    rf.add_argument("--wait", type=float, metavar="SECONDS",
                    help="return after at most SECONDS; a refresh still running goes on in the background")
    rf.add_argument("--quiet", action="store_true", help="print nothing on success")
    rf.add_argument("--json", action="store_true", help="machine-readable output (see JSON OUTPUT in man pgiam)")


def run(args: argparse.Namespace, paths: Paths, out: Out) -> int:
    from pgiam import refresh
    from pgiam.reports import RefreshRecord, RefreshReport, seconds_left

    if args.wait is not None:
        from pgiam import background

        if not 0 < args.wait <= 3600:
            from pgiam.errors import UsageError

            raise UsageError(f"--wait {args.wait:g} is out of range", "give seconds from 0.1 to 3600, e.g. --wait 3")
        done, code = background.run_bounded(args.wait)
        if not done:  # the parent: the refresh goes on in a detached child
            if not args.quiet:
                out.note(f"still refreshing after {args.wait:g} s; it goes on in the background (see `pgiam status`)")
            return code
        # the child (or a refresh that finished): fall through and do the work

    minters: list[Any] = []  # one token.Minter for the whole command, made when a token is really due

    def mint(svc):  # type: ignore[no-untyped-def]
        if not minters:
            from pgiam import token  # imported only when a token is really due

            minters.append(token.Minter())
        return minters[0](svc)

    try:
        # Hooks and timers never wait for another minter; a caller that bounded its wait has a
        # background child that may (the expired-token prompt needs the new token).
        wait = 0.0 if args.if_needed and args.wait is None else None
        result = refresh.refresh(paths, time.time(), mint, args.names or None, if_needed=args.if_needed, wait=wait)
    except LockedError:
        if args.if_needed and args.quiet:
            return ExitCode.LOCKED  # a hook or timer: someone else is refreshing right now, stay silent
        raise
    except PgiamError as err:
        if args.if_needed:  # a hook or timer: the next prompt must say why tokens are not renewed
            _notice(paths, err)
        raise
    for n in result.notices:
        out.note(n)
    now = time.time()
    if args.json:
        out.json(RefreshReport(tuple(
            RefreshRecord(o.name, o.status, o.expires, seconds_left(o.expires, now), o.error, o.hint,
                          int(o.code) if o.code is not None else None)
            for o in result.outcomes), int(result.code)).to_json())
    for o in result.outcomes:
        if o.status == "failed":
            print(f"pgiam: {o.error}", file=out.stderr)
            if o.hint:
                print(f"hint: {o.hint}", file=out.stderr)
        elif not args.quiet and not args.json:
            verb = "renewed" if o.status == "renewed" else "still fresh"
            out.print(f"{o.name}: {verb}, valid until {clock(o.expires)} ({left(o.expires, now)})")
    if not result.outcomes and not args.quiet and not args.json:
        out.print("no services to refresh: add one with `pgiam add`")
    return result.code


def _notice(paths: Paths, err: PgiamError) -> None:
    """Best effort: a failure before any service was tried (config, files, lock) still reaches the prompt."""
    import contextlib

    from pgiam import refresh

    with contextlib.suppress(Exception):
        refresh.write_notice(paths, f"pgiam: {err.message}" + (f"; {err.hint}" if err.hint else ""))
