"""Which libpq psql will use, and what that libpq can read.

The version decides two things pgiam cannot work around: whether ~/.pgpass
lines longer than 319 bytes are truncated (an IAM token is 350 to 1,900 bytes),
and which service-file keys are known (an unknown key is a hard "syntax error in
service file" for that section). Sources: libpq's fe-connect.c (PQconninfoOptions,
parseServiceFile, passwordFromFile) for each release, and the PostgreSQL release notes.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import os
import re
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from pgiam.errors import EnvironmentProblem

OVERRIDE_ENV = "PGIAM_LIBPQ_VERSION"  # for tests, and to pin the version when detection is wrong
COMMAND_TIMEOUT = 5.0


@functools.total_ordering
@dataclass(frozen=True)
class LibpqVersion:
    """A libpq release: 15.18 is major=15, minor=18; 9.6.20 is major=9, branch=6, minor=20."""

    major: int
    minor: int
    source: str = field(default="", compare=False)  # how it was found, for messages
    branch: int = 0  # the second number of a pre-10 major release ("9.6"); 0 from 10 on

    @property
    def num(self) -> int:
        """The PQlibVersion() number: 150018 for 15.18, 90620 for 9.6.20."""
        if self.major >= 10:
            return self.major * 10000 + self.minor
        return self.major * 10000 + self.branch * 100 + self.minor

    @classmethod
    def from_num(cls, num: int, source: str = "") -> LibpqVersion:
        """Decode a PQlibVersion() / server_version_num number."""
        if num >= 100000:
            return cls(num // 10000, num % 10000, source)
        # Before 10 the major release had two parts: 90620 is 9.6.20.
        return cls(num // 10000, num % 100, source, branch=(num // 100) % 100)

    @classmethod
    def parse(cls, text: str, source: str = "") -> LibpqVersion:
        """Parse "16.2", "16", "17beta1" or "9.6.20"; ValueError otherwise."""
        m = re.fullmatch(r"\s*(\d+)(?:\.(\d+))?(?:\.(\d+))?(?:(?:devel|alpha|beta|rc)\d*)?\s*", text)
        if not m:
            raise ValueError(f"not a PostgreSQL version: {text!r}")
        a, b, c = int(m[1]), int(m[2] or 0), int(m[3] or 0)
        if a >= 10:
            if m[3] is not None:
                raise ValueError(f"not a PostgreSQL version: {text!r} (from 10 on there are two numbers)")
            return cls(a, b, source)
        return cls(a, c, source, branch=b)

    def at_least(self, major: int, minor: int = 0) -> bool:
        """True when this release is `major`.`minor` or newer (major from 10 on)."""
        return self.num >= major * 10000 + minor

    def __lt__(self, other: object) -> bool:
        if not isinstance(other, LibpqVersion):
            return NotImplemented
        return self.num < other.num

    def __str__(self) -> str:
        if self.major >= 10:
            return f"{self.major}.{self.minor}"
        return f"{self.major}.{self.branch}.{self.minor}"

    def describe(self) -> str:
        """The version and where it came from, for messages."""
        return f"{self}" + (f" (from {self.source})" if self.source else "")


# --------------------------------------------------------------------------- detection

_LIB_NAMES: tuple[str, ...] = ("libpq.so.5", "libpq.5.dylib", "libpq.dll")
_VERSION_IN_OUTPUT = re.compile(r"PostgreSQL\)?\s+(\d+(?:\.\d+){0,2}(?:devel|alpha\d*|beta\d*|rc\d*)?)")


def from_ctypes(names: Sequence[str] | None = None) -> LibpqVersion | None:
    """PQlibVersion() of the shared libpq the dynamic linker finds (the one psql loads), or None."""
    candidates: list[str] = []
    found = ctypes.util.find_library("pq")
    if found:
        candidates.append(found)
    candidates.extend(names if names is not None else _LIB_NAMES)
    for name in candidates:
        try:
            lib = ctypes.CDLL(name)
            func = lib.PQlibVersion  # since 9.1
        except (OSError, AttributeError):
            continue
        func.restype = ctypes.c_int
        func.argtypes = []
        num = int(func())
        if num > 0:
            return LibpqVersion.from_num(num, f"PQlibVersion() in {name}")
    return None


def parse_version_output(text: str, source: str = "") -> LibpqVersion | None:
    """The version in `pg_config --version` / `psql --version` output, or None."""
    m = _VERSION_IN_OUTPUT.search(text)
    if not m:
        return None
    try:
        return LibpqVersion.parse(m[1], source)
    except ValueError:
        return None


def from_command(argv: Sequence[str]) -> LibpqVersion | None:
    """Run a `--version` command (no shell, short timeout) and parse its output, or None."""
    try:
        proc = subprocess.run(
            list(argv), capture_output=True, text=True, timeout=COMMAND_TIMEOUT, check=False,
            stdin=subprocess.DEVNULL,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    if proc.returncode != 0:
        return None
    return parse_version_output(proc.stdout, " ".join(argv))


def detect(env: Mapping[str, str] | None = None) -> LibpqVersion | None:
    """The libpq version psql will use: override, ctypes, `pg_config --version`, `psql --version`."""
    env = os.environ if env is None else env
    override = env.get(OVERRIDE_ENV)
    if override:
        try:
            return LibpqVersion.parse(override, OVERRIDE_ENV)
        except ValueError:
            raise EnvironmentProblem(
                f"{OVERRIDE_ENV}={override!r} is not a PostgreSQL version",
                f"set it like {OVERRIDE_ENV}=16.2, or unset it to detect the installed libpq",
            ) from None
    # pg_config and psql are fallbacks only: they may belong to another installation than the
    # shared library psql actually loads.
    return from_ctypes() or from_command(["pg_config", "--version"]) or from_command(["psql", "--version"])


# --------------------------------------------------------------------------- what a version can do

# First minor of each branch with Tom Lane's arbitrary-length .pgpass lines (his 2020-09-01 change
# to passwordFromFile in fe-connect.c, back-patched: read fe-connect.c of each minor release).
PGPASS_LONG_LINES_FROM: Mapping[tuple[int, int], int] = {
    (12, 0): 5,
    (11, 0): 10,
    (10, 0): 15,
    (9, 6): 20,
    (9, 5): 24,
}


def truncates_pgpass(v: LibpqVersion) -> bool:
    """True when this libpq cuts ~/.pgpass lines at 319 bytes (so an IAM token cannot work)."""
    if v.major >= 13:
        return False
    fixed_from = PGPASS_LONG_LINES_FROM.get((v.major, v.branch))
    if fixed_from is None:
        return True  # older than 9.5: never fixed
    return v.minor < fixed_from


# The oldest libpq major that knows each service-file key pgiam may write. 9 means "every libpq
# pgiam could meet"; a key missing here is not gated (the caller validates key names).
SERVICE_KEYS_MIN_VERSION: Mapping[str, int] = {
    "host": 9,
    "hostaddr": 9,
    "port": 9,
    "user": 9,
    "dbname": 9,
    "sslmode": 9,
    "sslrootcert": 9,
    "sslcert": 9,
    "sslkey": 9,
    "connect_timeout": 9,
    "application_name": 9,
    "options": 9,
    "passfile": 10,
    "target_session_attrs": 10,
    "gssencmode": 12,
    "tcp_user_timeout": 12,
    "channel_binding": 13,
    "ssl_min_protocol_version": 13,
    "ssl_max_protocol_version": 13,
    "sslsni": 14,
    "require_auth": 16,
    "sslcertmode": 16,
    "load_balance_hosts": 16,
    "sslnegotiation": 17,
}
# Values newer than their key: libpq 15 reads `sslrootcert=system` as a file named "system".
SERVICE_VALUES_MIN_VERSION: Mapping[tuple[str, str], int] = {("sslrootcert", "system"): 16}
# Keys libpq dropped: from 14 they are unknown, hence a syntax error.
SERVICE_KEYS_REMOVED_IN: Mapping[str, int] = {"tty": 14, "authtype": 14}

# pgJDBC reads pg_service.conf too and rejects a section holding any key it does not know.
JDBC_SAFE_KEYS: frozenset[str] = frozenset({"host", "port", "user", "dbname", "sslmode", "sslrootcert"})


def check_service_keys(keys: Mapping[str, str], v: LibpqVersion | None) -> None:
    """Raise EnvironmentProblem if this libpq would reject a key (or value) of a service entry."""
    for key, value in keys.items():
        needs = max(SERVICE_KEYS_MIN_VERSION.get(key, 0), SERVICE_VALUES_MIN_VERSION.get((key, value), 0))
        what = f"{key}={value}" if (key, value) in SERVICE_VALUES_MIN_VERSION else key
        if needs > 9 and v is None:
            raise EnvironmentProblem(
                f"service key {what} needs libpq {needs} or newer, and the installed libpq version is unknown",
                f"install libpq {needs}+ (postgresql-client), or set {OVERRIDE_ENV} to the version psql uses",
            )
        if v is not None and v.major < needs:
            raise EnvironmentProblem(
                f"service key {what} needs libpq {needs} or newer, but psql uses libpq {v.describe()}",
                f"upgrade libpq to {needs}+ (postgresql-client), or leave {key} out of the service",
            )
        removed = SERVICE_KEYS_REMOVED_IN.get(key)
        if removed is not None and v is not None and v.major >= removed:
            raise EnvironmentProblem(
                f"service key {key} was removed in libpq {removed}; psql uses libpq {v.describe()}",
                f"leave {key} out of the service",
            )
