"""The command line: parse, call one command module, return its exit code.

The only place that catches PgiamError and picks an exit code for it; the command modules in
pgiam.commands parse their own arguments and render their typed reports.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
from collections.abc import Iterator, Sequence
from types import FrameType
from typing import NoReturn, TextIO

from pgiam import __version__
from pgiam.commands._common import Out
from pgiam.errors import ExitCode, PgiamError, UsageError
from pgiam.paths import Paths

__all__ = ["Out", "build_parser", "main"]

EPILOG_MAIN = """\
examples:
  pgiam add prod --host db.cluster-abc.us-west-2.rds.amazonaws.com --user alice --dbname app
  psql service=prod
  pgiam refresh --if-needed        # renew tokens that are due
  eval "$(pgiam hook bash)"        # keep tokens fresh from your prompt
  pgiam sandbox up                 # try it all locally, no AWS account needed

exit status: 0 ok, 1 some services failed, 2 usage, 3 config, 4 AWS credentials,
5 file read/write, 6 lock busy, 7 environment (PostgreSQL/libpq/systemd), 8 network,
70 internal error, 130 interrupted. See man pgiam.
"""


class _Parser(argparse.ArgumentParser):
    """argparse that raises instead of exiting, so main() owns the exit code."""

    def error(self, message: str) -> NoReturn:
        where = self.prog.removeprefix("pgiam").strip()
        raise UsageError(f"{where}: {message}" if where else message, f"see `{self.prog} --help`")


def build_parser() -> argparse.ArgumentParser:
    from pgiam import commands

    p = _Parser(
        prog="pgiam",
        description="IAM auth tokens in ~/.pgpass and verify-full entries in ~/.pg_service.conf, "
        "so `psql service=NAME` connects to AWS RDS, Aurora and RDS Proxy with IAM authentication.",
        epilog=EPILOG_MAIN,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--version", action="version", version=f"pgiam {__version__}")
    p.add_argument("--debug", action="store_true",
                   help="show tracebacks for unexpected errors (accepted anywhere on the command line)")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    for module in commands.modules():
        module.register(sub)
    return p


def _parse(parser: argparse.ArgumentParser, argv: list[str]) -> argparse.Namespace:
    """parse_args, except that --debug is accepted anywhere on the command line: the bug hint says
    "run the command again with --debug", and people add it at the end (`pgiam discover ... --debug`)."""
    args, extra = parser.parse_known_args(argv)
    unknown = [a for a in extra if a != "--debug"]
    if unknown:
        parser.error(f"unrecognized arguments: {' '.join(unknown)}")  # what parse_args says
    args.debug = args.debug or len(extra) > len(unknown)
    return args


def _run(args: argparse.Namespace, paths: Paths, out: Out) -> int:
    from pgiam import commands

    for module in commands.modules():
        if module.__name__.rsplit(".", 1)[-1].rstrip("_") == args.command:
            return int(module.run(args, paths, out))
    raise AssertionError(f"no module for command {args.command}")


_NO_FILES = ("completion", "hook")  # commands that only print a script: no file of the user's is read or written


def _recover(paths: Paths, out: Out, quiet: bool) -> None:
    """Every command first undoes a change that a killed pgiam left half-done (pgiam.store.recover)."""
    from pgiam import store

    put_back = store.recover(paths)
    if put_back and not quiet:
        out.note("a pgiam process was killed in the middle of a change; pgiam undid it and put back "
                 + ", ".join(str(p) for p in put_back))


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


@contextlib.contextmanager
def _signals_interrupt() -> Iterator[None]:
    """SIGTERM and SIGHUP end a one-shot command the way Ctrl-C does: through the rollbacks."""
    old = {s: signal.signal(s, _interrupt) for s in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, h)


def main(argv: Sequence[str] | None = None, stdout: TextIO | None = None, stderr: TextIO | None = None) -> int:
    """Run pgiam; return the exit code. The one place that catches PgiamError."""
    out = Out(stdout or sys.stdout, stderr or sys.stderr)
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    try:
        old = os.umask(0o077)  # pgiam's own files and directories are private whatever the caller's umask
        try:
            with _signals_interrupt():
                # argparse prints --help and --version to sys.stdout itself: point it at our streams.
                with contextlib.redirect_stdout(out.stdout), contextlib.redirect_stderr(out.stderr):
                    args = _parse(build_parser(), argv)
                paths = Paths.from_env()
                if args.command not in _NO_FILES:
                    from pgiam.fileio import refuse_foreign_home

                    refuse_foreign_home(paths.home, [paths.config_file, paths.state_dir, paths.data_dir, paths.pgpass,
                                                     paths.service_file], argv)
                if args.command != "completion":
                    # Every other command reads pgiam's own directories (`hook` the config, and its script
                    # trusts next-due): one another user owns or may write could hold a planted next-due,
                    # state or token index, so reads refuse it as writes do (after the home check, whose
                    # hint names sudo).
                    paths.check_own_dirs()
                if args.command not in _NO_FILES:
                    _recover(paths, out, quiet=bool(getattr(args, "quiet", False)))
                code = _run(args, paths, out)
                out.flush()
                return code
        finally:
            os.umask(old)
    except BrokenPipeError:
        return _closed_stdout(out)
    except PgiamError as err:
        with contextlib.suppress(BrokenPipeError, OSError, ValueError):
            out.error(err)
            if debug:
                import traceback

                traceback.print_exc(file=out.stderr)
        return int(err.code)
    except KeyboardInterrupt:
        with contextlib.suppress(OSError, ValueError):
            out.note("interrupted")
        return int(ExitCode.INTERRUPTED)
    except SystemExit as exc:  # --help / --version
        return int(exc.code or 0) if isinstance(exc.code, int) else 0
    except Exception as exc:
        # A bug. No traceback without --debug: one line, and the way to get the details; exit 70 either way.
        if debug:
            import traceback

            traceback.print_exc(file=out.stderr)
        out.note(f"unexpected error ({type(exc).__name__}); this is a bug in pgiam")
        if not debug:
            print("hint: run the command again with --debug and report the traceback", file=out.stderr)
        return int(ExitCode.BUG)
    finally:
        with contextlib.suppress(BrokenPipeError, OSError, ValueError, PgiamError):  # PgiamError: OutputError
            out.flush()  # a last partial line, redacted


def _closed_stdout(out: Out) -> int:
    """`pgiam status | head -0`: the reader left. End quietly, as cat does, with SIGPIPE's status."""
    if out.raw_stdout is sys.stdout:
        # Python would complain about the unflushable buffer at exit: point stdout at /dev/null.
        with contextlib.suppress(OSError):
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            os.close(devnull)
    return 128 + signal.SIGPIPE
