"""Typed errors, one subclass per exit code; only pgiam.cli prints them."""

from __future__ import annotations

import enum


class ExitCode(enum.IntEnum):
    """Every exit status pgiam returns (listed in man/pgiam.1, EXIT STATUS)."""

    OK = 0
    PARTIAL = 1  # some services refreshed, some failed
    USAGE = 2  # bad command line or bad argument value (argparse uses 2 too)
    CONFIG = 3  # config file unreadable/invalid, or a conflict with an existing entry
    AUTH = 4  # AWS credentials missing or expired
    FILE = 5  # a file could not be read or written
    LOCKED = 6  # another pgiam holds the lock
    ENVIRONMENT = 7  # something outside pgiam is missing (PostgreSQL server, libpq too old, systemd...)
    NETWORK = 8  # a download failed or did not verify, or AWS could not be reached (offline, timeout, TLS)
    BUG = 70  # an unexpected error (EX_SOFTWARE); --debug shows the traceback
    INTERRUPTED = 130


class PgiamError(Exception):
    """A documented failure: message, optional hint, exit code."""

    code: ExitCode = ExitCode.CONFIG

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint


class UsageError(PgiamError):
    code = ExitCode.USAGE


class ConfigError(PgiamError):
    code = ExitCode.CONFIG


class AuthError(PgiamError):
    code = ExitCode.AUTH


class FileError(PgiamError):
    code = ExitCode.FILE


class LockedError(PgiamError):
    code = ExitCode.LOCKED


class EnvironmentProblem(PgiamError):
    code = ExitCode.ENVIRONMENT


class NetworkError(PgiamError):
    code = ExitCode.NETWORK
