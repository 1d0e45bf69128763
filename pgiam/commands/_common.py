"""What the command modules share: the output object, the subparser factory, time formatting."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Any, Protocol, TextIO, cast

from pgiam.errors import FileError, PgiamError


class Out:
    """Where commands print; tests capture both streams.

    Both streams pass pgiam.scrub's redactor, line by line, whatever writes to them (a print, argparse,
    a traceback with --debug, `pgiam run`'s log): no key, secret or token reaches a terminal or a log.
    Only `secret()` writes past it, for `pgiam token`, whose purpose is the token.
    """

    def __init__(self, stdout: TextIO, stderr: TextIO) -> None:
        from pgiam.scrub import RedactingStream

        self.raw_stdout = stdout
        self._secret_out = _Reported(stdout, "standard output")
        self.stdout: TextIO = RedactingStream(cast(TextIO, self._secret_out))  # type: ignore[assignment]
        self.stderr: TextIO = RedactingStream(cast(TextIO, _Reported(stderr, "standard error")))  # type: ignore[assignment]

    def secret(self, line: str) -> None:
        """The token itself, unredacted: `pgiam token` only."""
        self.stdout.flush()
        print(line, file=self._secret_out)

    def flush(self) -> None:
        for stream in (self.stdout, self.stderr):
            stream.flush()

    def print(self, *lines: str) -> None:
        """Each line, newline-terminated, in one write (10,000 services are one call, not 10,000)."""
        if lines:
            self.stdout.write("".join(f"{line}\n" for line in lines))

    def note(self, line: str) -> None:
        print(f"pgiam: {line}", file=self.stderr)

    def error(self, err: PgiamError) -> None:
        print(f"pgiam: {err.message}", file=self.stderr)
        if err.hint:
            print(f"hint: {err.hint}", file=self.stderr)

    def json(self, obj: Any) -> None:
        from pgiam.scrub import redact_json

        print(json.dumps(redact_json(obj), indent=2, sort_keys=True), file=self.stdout)


class OutputError(FileError):
    """A standard stream that cannot be written (EIO from a terminal that went away, a full disk behind a
    redirect): not a bug, and whatever the command changed is done; only its report is lost."""


class _Reported:
    """A standard stream whose write failures are OutputError (exit 5), not exit 70. A closed pipe stays
    BrokenPipeError: cli.main ends quietly then, as cat does."""

    def __init__(self, raw: TextIO, name: str) -> None:
        self.raw, self.name = raw, name

    def _failed(self, err: OSError) -> OutputError:
        return OutputError(f"cannot write to {self.name}: {err.strerror or err}",
                           "whatever the command changed is done (see `pgiam status`); check where the output goes "
                           "(a terminal that closed, a full disk behind a redirect) and run it again for the report")

    def write(self, s: str) -> int:
        try:
            return self.raw.write(s)
        except BrokenPipeError:
            raise
        except OSError as err:
            raise self._failed(err) from None

    def flush(self) -> None:
        try:
            self.raw.flush()
        except BrokenPipeError:
            raise
        except OSError as err:
            raise self._failed(err) from None

    def __getattr__(self, name: str) -> Any:  # isatty, fileno, encoding ... of the real stream
        return getattr(self.raw, name)


class Subparsers(Protocol):
    def add_parser(self, name: str, **kwargs: Any) -> argparse.ArgumentParser: ...


def command(sub: Subparsers, name: str, help: str, epilog: str | None = None) -> argparse.ArgumentParser:
    """A subcommand parser whose description is its help line and whose epilog keeps its layout."""
    return sub.add_parser(name, help=help, description=help, epilog=epilog,
                          formatter_class=argparse.RawDescriptionHelpFormatter)


def actions(p: argparse.ArgumentParser) -> Subparsers:
    """A required ACTION level under `p` (sandbox, timer, certs)."""
    s = p.add_subparsers(dest="action", metavar="ACTION", parser_class=type(p))
    s.required = True
    return s


def exe() -> list[str]:
    """How to run this pgiam again from a timer or hook: the absolute script path, else python -m pgiam."""
    arg0 = sys.argv[0] if sys.argv else ""
    if os.path.basename(arg0) == "pgiam" and os.path.isfile(arg0):
        return [os.path.abspath(arg0)]
    return [sys.executable, "-m", "pgiam"]


def left(expires: float | None, now: float) -> str:
    if expires is None:
        return "no token"
    secs = int(expires - now)
    if secs <= 0:
        return "expired"
    return f"{secs // 60} min {secs % 60:02d} s left"


def clock(ts: float | None) -> str:
    return time.strftime("%H:%M:%S", time.localtime(ts)) if ts else "-"


def warn_timer_gap(out: Out, names: list[str], profile: str | None, method: str | None, again: str) -> None:
    """Warn when the credentials that signed (or would sign) `names` are ones a timer will not have;
    `again` is the command that redoes it with a profile."""
    from pgiam import awscreds

    gap = awscreds.timer_gap(profile, method, dict(os.environ))
    if gap is None:
        return
    what, fix = gap
    out.note(f"{', '.join(names)} {'is' if len(names) == 1 else 'are'} signed with {what}: timers, cron and other "
             "shells do not have them, so their refreshes will fail")
    print(f"hint: {fix}, then `{again}`", file=out.stderr)
