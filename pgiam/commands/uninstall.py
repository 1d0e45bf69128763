"""`pgiam uninstall [--yes]`: undo everything pgiam wrote (shows the plan without --yes)."""

from __future__ import annotations

import argparse

from pgiam.commands._common import Out, Subparsers, command
from pgiam.errors import ExitCode
from pgiam.paths import Paths


def register(sub: Subparsers) -> None:
    u = command(sub, "uninstall", "undo everything pgiam wrote: timers, its blocks in both libpq files, its "
                                  "directories", """\
Without --yes nothing changes: pgiam prints what it would remove and exits 0.

examples:
  pgiam uninstall           # show what would be removed
  pgiam uninstall --yes     # remove it
  pipx uninstall pgiam      # then the program, its man page and completions""")
    u.add_argument("--yes", action="store_true", help="really remove (without it, only show what would go)")


def run(args: argparse.Namespace, paths: Paths, out: Out) -> int:
    from pgiam import uninstall

    plan = uninstall.plan(paths)
    hooks = [f"  {line}" for line in plan.hook_lines]
    if not args.yes:
        if plan.empty:
            out.print("pgiam has nothing installed here")
        else:
            out.print("pgiam uninstall --yes would remove:")
            out.print(*(f"  {t}" for t in plan.timers))
            if plan.sandbox:
                out.print(f"  the sandbox ({paths.sandbox_dir})")
            out.print(*(f"  pgiam's block in {p} (the rest of the file is kept)" for p in plan.libpq))
            out.print(*(f"  {d}" for d in plan.directories))
        if hooks:
            out.print("and you delete the prompt hook from your shell startup file:", *hooks)
        if not plan.empty:
            out.note("nothing changed: run `pgiam uninstall --yes` to remove it")
        return ExitCode.OK
    result = uninstall.run(paths)
    out.print(*(f"removed {r}" for r in result.removed) if result.removed else ["pgiam had nothing installed here"])
    for n in result.notes:
        out.note(n)
    if hooks:
        out.note("delete the prompt hook from your shell startup file (pgiam does not edit it):")
        out.print(*hooks)
    return ExitCode.OK
