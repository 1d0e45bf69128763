"""`pgiam timer install|remove|status`: refresh tokens from a systemd user timer, cron or launchd."""

from __future__ import annotations

import argparse
import os

from pgiam.commands._common import Out, Subparsers, actions, command, exe
from pgiam.errors import ExitCode
from pgiam.paths import Paths


def register(sub: Subparsers) -> None:
    tm = command(sub, "timer", "refresh tokens from a systemd user timer, cron or launchd", """\
examples:
  pgiam timer install              # launchd on macOS; else systemd when reachable, else cron
  pgiam timer install --cron --every 3m
  pgiam timer status
  pgiam timer remove

--every may not exceed the renewal margin minus 30 s (4m with the default 300 s margin),
else a token could expire between two runs; the default is that longest safe interval.""")
    tms = actions(tm)
    ti = tms.add_parser("install", help="install the timer (default: launchd on macOS, else systemd when reachable, "
                                        "else cron)")
    g = ti.add_mutually_exclusive_group()
    g.add_argument("--systemd", dest="method", action="store_const", const="systemd", help="a systemd user timer")
    g.add_argument("--cron", dest="method", action="store_const", const="cron", help="a line in your crontab")
    g.add_argument("--launchd", dest="method", action="store_const", const="launchd",
                   help="a macOS LaunchAgent in ~/Library/LaunchAgents")
    ti.add_argument("--every", default=None,
                    help="how often, in whole minutes (default: the longest the renewal margin allows, 4m at 300 s)")
    ti.add_argument("--no-enable", action="store_true", help="write the units but do not enable them")
    trm = tms.add_parser("remove", help="remove the timer")
    g = trm.add_mutually_exclusive_group()
    g.add_argument("--systemd", dest="method", action="store_const", const="systemd", help="only the systemd units")
    g.add_argument("--cron", dest="method", action="store_const", const="cron", help="only the crontab line")
    g.add_argument("--launchd", dest="method", action="store_const", const="launchd", help="only the LaunchAgent")
    ts = tms.add_parser("status", help="is a timer installed, and is it active")
    ts.add_argument("--json", action="store_true", help="machine-readable output (see JSON OUTPUT in man pgiam)")


def run(args: argparse.Namespace, paths: Paths, out: Out) -> int:
    from pgiam import timer

    if args.action == "install":
        from pgiam.config import load_config

        margin = load_config(paths.config_file, scope=paths.scope).defaults.renewal_margin
        every = None if args.every is None else timer.parse_every(args.every)
        res = timer.install(paths, method=args.method, every=every, margin=margin,
                            enable=not args.no_enable, exe=exe(), env=os.environ)
        minutes = res.every // 60
        if res.method == "systemd":
            state = "enabled and started" if res.enabled else "written, not enabled"
            out.print(f"systemd user timer every {minutes} min: {state}")
            for f in res.files:
                out.print(f"  {f}")
        elif res.method == "launchd":
            state = "loaded" if res.enabled else "written, not loaded"
            out.print(f"LaunchAgent every {minutes} min: {state}")
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

    st = timer.status(paths)
    if args.json:
        out.json(st.to_json())
        return ExitCode.OK
    sd, cron, agent = st.systemd, st.cron, st.launchd
    units = [name for name, present in sd.units.items() if present]
    line = "systemd: " + (", ".join(units) if units else "no units")
    if sd.manager_reachable:
        line += f" (enabled: {sd.enabled or 'no'}, active: {sd.active or 'no'})"
    else:
        line += " (no user manager reachable)"
    out.print(line)
    if not cron.available:
        out.print("cron: no crontab command")
    else:
        out.print("cron: " + (cron.line or cron.error or "no pgiam line"))
    if agent.installed:
        shown = f" every {agent.every // 60} min" if agent.every else ""
        loaded = (f"loaded in {agent.loaded}" if agent.loaded else "not loaded") if agent.launchctl \
            else "no launchctl command"
        out.print(f"launchd: {agent.plist}{shown} ({loaded})" + (f": {agent.error}" if agent.error else ""))
    elif agent.loaded:
        out.print(f"launchd: loaded in {agent.loaded}, but {agent.plist} is gone (pgiam timer remove unloads it)")
    else:
        out.print("launchd: no LaunchAgent")
    return ExitCode.OK
