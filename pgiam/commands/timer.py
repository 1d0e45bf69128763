"""`pgiam timer install|remove|status`: refresh tokens from a systemd user timer or cron."""

from __future__ import annotations

import argparse
import os

from pgiam.commands._common import Out, Subparsers, actions, command, exe
from pgiam.errors import ExitCode
from pgiam.paths import Paths


def register(sub: Subparsers) -> None:
    tm = command(sub, "timer", "refresh tokens from a systemd user timer or cron", """\
examples:
  pgiam timer install              # systemd user timer when reachable, else cron
  pgiam timer install --cron --every 10m
  pgiam timer status
  pgiam timer remove""")
    tms = actions(tm)
    ti = tms.add_parser("install", help="install the timer (default: systemd when reachable, else cron)")
    g = ti.add_mutually_exclusive_group()
    g.add_argument("--systemd", dest="method", action="store_const", const="systemd", help="a systemd user timer")
    g.add_argument("--cron", dest="method", action="store_const", const="cron", help="a line in your crontab")
    ti.add_argument("--every", default="5m", help="how often (default 5m)")
    ti.add_argument("--no-enable", action="store_true", help="write the units but do not enable them")
    trm = tms.add_parser("remove", help="remove the timer")
    g = trm.add_mutually_exclusive_group()
    g.add_argument("--systemd", dest="method", action="store_const", const="systemd", help="only the systemd units")
    g.add_argument("--cron", dest="method", action="store_const", const="cron", help="only the crontab line")
    ts = tms.add_parser("status", help="is a timer installed, and is it active")
    ts.add_argument("--json", action="store_true", help="machine-readable output (see JSON OUTPUT in man pgiam)")


def run(args: argparse.Namespace, paths: Paths, out: Out) -> int:
    from pgiam import timer

    if args.action == "install":
        res = timer.install(paths, method=args.method, every=timer.parse_every(args.every),
                            enable=not args.no_enable, exe=exe(), env=os.environ)
        minutes = res.every // 60
        if res.method == "systemd":
            state = "enabled and started" if res.enabled else "written, not enabled"
            out.print(f"systemd user timer every {minutes} min: {state}")
            for f in res.files:
                out.print(f"  {f}")
        else:
            out.print(f"crontab line every {minutes} min" + ("" if res.enabled else " (not installed)") + ":")
            out.print(f"  {res.cron_line}")
        for n in res.notes:
            out.note(n)
        return ExitCode.OK
    if args.action == "remove":
        rem = timer.remove(paths, method=args.method)
        out.print(*(f"removed {r}" for r in rem.removed) if rem.removed else ["no pgiam timer was installed"])
        for n in rem.notes:
            out.note(n)
        return ExitCode.OK
    from pgiam.reports import envelope

    st = timer.status(paths)
    if args.json:
        out.json(envelope("timer status", timer=st))
        return ExitCode.OK
    sd, cron = st["systemd"], st["cron"]
    units = [name for name, present in sd["units"].items() if present]
    line = "systemd: " + (", ".join(units) if units else "no units")
    if sd["manager_reachable"]:
        line += f" (enabled: {sd['enabled'] or 'no'}, active: {sd['active'] or 'no'})"
    else:
        line += " (no user manager reachable)"
    out.print(line)
    if not cron["available"]:
        out.print("cron: no crontab command")
    else:
        out.print("cron: " + (cron["line"] or cron.get("error") or "no pgiam line"))
    return ExitCode.OK
