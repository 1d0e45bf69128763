"""`pgiam hook SHELL`: print the prompt hook that keeps tokens fresh."""

from __future__ import annotations

import argparse

from pgiam.commands._common import Out, Subparsers, command, exe
from pgiam.errors import ExitCode
from pgiam.hooks import SHELLS
from pgiam.paths import Paths


def register(sub: Subparsers) -> None:
    hk = command(sub, "hook", "print a prompt hook that keeps tokens fresh", """\
examples:
  eval "$(pgiam hook bash)"     # in ~/.bashrc
  eval "$(pgiam hook zsh)"      # in ~/.zshrc
  pgiam hook fish | source      # in ~/.config/fish/config.fish""")
    hk.add_argument("shell", choices=list(SHELLS), metavar="SHELL", help=", ".join(SHELLS[:-1]) + " or " + SHELLS[-1])


def run(args: argparse.Namespace, paths: Paths, out: Out) -> int:
    from pgiam import hooks
    from pgiam.config import load_config

    margin = load_config(paths.config_file, scope=paths.scope).defaults.renewal_margin
    out.stdout.write(hooks.render_hook(args.shell, exe=exe(), next_due_file=paths.next_due_file,
                                       notice_file=paths.notice_file, margin=margin,
                                       # a commit journal newer than next-due: a pgiam was killed
                                       # mid-change, and the full path undoes it first
                                       watch=(paths.config_file, paths.pgpass, paths.service_file,
                                              paths.journal_file)))
    return ExitCode.OK
