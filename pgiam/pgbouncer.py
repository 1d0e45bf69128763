"""pgbouncer's auth_file: keep one `"user" "token"` line per IAM user fresh, and reload pgbouncer.

pgbouncer has no IAM support; it logs in to the server with the password its auth_file gives for
the user (pgbouncer(5), "Authentication file format": `"username" "password"`, a double quote
inside a field written as two). The same file also serves client logins, so the user's own lines
stay byte for byte; pgiam owns only the lines between two `;` comment markers (a `#` line makes
pgbouncer 1.18 call the file broken; `;` comments are accepted). The block goes first in the file,
so the user's bytes after it are never touched, not even a missing final newline.

pgbouncer re-reads the file only on a reload (from 1.17, "Remove automatic auth_file reload",
pgbouncer changelog): pgiam sends SIGHUP to the pid in pgbouncer's pidfile after each change.
Password length: pgbouncer 1.17+ keeps up to 2047 bytes (MAX_PASSWORD 2048 with its NUL);
1.16 kept 995, older releases 127 or 159, and an RDS token is 350 to 1,900 bytes.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import shutil
import signal
import stat
import subprocess
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from pgiam.errors import ConfigError, EnvironmentProblem, FileError
from pgiam.fileio import TMP_MARK, Scope, read_bytes, resolve_target

BEGIN = "; pgiam:begin (lines up to pgiam:end are rewritten by `pgiam run`; put your own lines below)"
END = "; pgiam:end"
MAX_PASSWORD = 2047  # pgbouncer 1.17+ (2048 was "too long" with Debian's 1.18)
MAX_BEFORE_1_17 = 995  # pgbouncer 1.16


def quote(field: str) -> str:
    """A field as pgbouncer reads it: in double quotes, a double quote doubled."""
    return '"' + field.replace('"', '""') + '"'


def _first_field(line: str) -> str | None:
    """The user name of a `"user" "password"` line (None for comments, blanks and other text)."""
    m = re.match(r'\s*"((?:[^"]|"")*)"', line)
    return m.group(1).replace('""', '"') if m else None


def _split(text: str) -> tuple[list[str], list[str], list[str]]:
    """(lines before pgiam's block, the block's lines, lines after it), each with its line ending."""
    lines = text.splitlines(keepends=True)
    stripped = [ln.rstrip("\r\n") for ln in lines]
    if BEGIN in stripped:
        b = stripped.index(BEGIN)
        e = next((i for i in range(b + 1, len(stripped)) if stripped[i] == END), None)
        if e is None:
            raise ConfigError("pgiam's block in the pgbouncer auth file has no end marker",
                              f"restore the line {END!r} after pgiam's lines, or delete pgiam's lines and its begin marker")
        return lines[:b], lines[b + 1:e], lines[e + 1:]
    return [], [], lines


def own_users(text: str) -> list[str]:
    """The user names of the lines outside pgiam's block (the user's own)."""
    before, _, after = _split(text)
    return [u for u in (_first_field(ln) for ln in before + after) if u is not None]


def merge(text: str, passwords: Mapping[str, str], path: Path | str = "the auth file") -> str:
    """`text` with pgiam's block holding exactly `passwords` (user -> password); other bytes kept.

    A user who has a line of their own is refused: pgbouncer would take one of the two, and which
    one is not pgiam's to decide.
    """
    before, _, after = _split(text)
    clash = sorted(set(passwords) & set(own_users(text)))
    if clash:
        raise ConfigError(f"{path} already has a line of its own for user {clash[0]!r}, which pgiam keeps fresh",
                          f"delete that line from {path} (pgiam writes the user's line between its ; markers)")
    if not passwords and not before and not after and not text:
        return ""
    block = [BEGIN + "\n"] + [f"{quote(u)} {quote(p)}\n" for u, p in sorted(passwords.items())] + [END + "\n"]
    if before and not before[-1].endswith("\n"):
        before[-1] += "\n"  # only reachable when the file was edited above the block
    return "".join(before + block + after)


def check_lengths(passwords: Mapping[str, str], limit: int) -> list[str]:
    """Users whose password pgbouncer would refuse as too long."""
    return sorted(u for u, p in passwords.items() if len(p.encode()) > limit)


def parse_version(text: str) -> tuple[int, int] | None:
    """(major, minor) from `pgbouncer --version` ("PgBouncer 1.18.0 ...")."""
    m = re.search(r"PgBouncer (\d+)\.(\d+)", text)
    return (int(m.group(1)), int(m.group(2))) if m else None


def password_limit(version: tuple[int, int] | None) -> int:
    """The longest password (bytes) a pgbouncer of `version` keeps; unknown versions are taken as 1.17+."""
    if version is None or version >= (1, 17):
        return MAX_PASSWORD
    if version >= (1, 16):
        return MAX_BEFORE_1_17
    return 127


def probe_version(binary: str | None = None) -> tuple[int, int] | None:
    """The installed pgbouncer's version, when one is on PATH (a sidecar may have none)."""
    exe = binary or shutil.which("pgbouncer")
    if not exe:
        return None
    try:
        p = subprocess.run([exe, "--version"], capture_output=True, text=True, timeout=10, stdin=subprocess.DEVNULL)
    except (OSError, subprocess.SubprocessError):
        return None
    return parse_version(p.stdout + p.stderr)


def check_version(version: tuple[int, int] | None) -> None:
    """Refuse a pgbouncer that would cut IAM tokens short."""
    limit = password_limit(version)
    if limit < MAX_PASSWORD and version is not None:
        raise EnvironmentProblem(
            f"pgbouncer {version[0]}.{version[1]} keeps passwords of at most {limit} bytes; IAM tokens are "
            "350 to 1,900 bytes, so its server logins would fail",
            "upgrade pgbouncer to 1.17 or later (passwords up to 2047 bytes)")


@dataclass(frozen=True)
class Target:
    """Where pgiam keeps the users' lines, and which pgbouncer to reload."""

    auth_file: Path
    pidfile: Path | None = None

    def sync(self, passwords: Mapping[str, str], *, scope: Scope) -> bool:
        """Write pgiam's block when it differs from `passwords`; True when the file changed."""
        data = read_bytes(self.auth_file, scope=scope)
        text = "" if data is None else data.decode("utf-8", "surrogateescape")
        new = merge(text, passwords, self.auth_file)
        if new == text:
            return False
        write_shared(self.auth_file, new.encode("utf-8", "surrogateescape"), scope=scope)
        return True

    def reload(self, *, scope: Scope) -> int | None:
        """SIGHUP pgbouncer (its pidfile's pid); the pid, or None when no pidfile was given."""
        if self.pidfile is None:
            return None
        raw = read_bytes(self.pidfile, scope=scope)
        if raw is None:
            raise FileError(f"pgbouncer's pidfile {self.pidfile} does not exist; pgbouncer was not reloaded",
                            "start pgbouncer (with pidfile set in pgbouncer.ini), or fix --pgbouncer-pidfile")
        try:
            pid = int(raw.split()[0])
        except (ValueError, IndexError):
            raise FileError(f"pgbouncer's pidfile {self.pidfile} holds no process id", "fix --pgbouncer-pidfile") from None
        try:
            os.kill(pid, signal.SIGHUP)
        except ProcessLookupError:
            raise FileError(f"pgbouncer (pid {pid} from {self.pidfile}) is not running; it was not reloaded",
                            "start pgbouncer; it reads the auth file when it starts") from None
        except PermissionError:
            raise FileError(f"not allowed to signal pgbouncer (pid {pid}); it was not reloaded",
                            "run `pgiam run` as pgbouncer's own account (or root)") from None
        return pid


def write_shared(path: Path, data: bytes, *, scope: Scope) -> None:
    """Replace `path` atomically, keeping its owner, group and mode minus any bits for others.

    pgbouncer runs as its own account: the file must stay readable by it and by nobody else.
    fileio.atomic_write gives the new file pgiam's own group; here the temp file gets the old
    file's owner (root only) and group before the first byte, so no one else can read it even briefly.
    A new file is 0600: run pgiam as pgbouncer's account, or create the file with the group you want.
    """
    target = resolve_target(path, scope=scope)
    try:
        st: os.stat_result | None = os.stat(target)
    except FileNotFoundError:
        st = None
    except OSError as err:
        raise FileError(f"cannot write {path}: {err.strerror}", f"check {target.parent}") from None
    if st is not None and not stat.S_ISREG(st.st_mode):
        raise FileError(f"{path} is not a regular file; pgiam will not replace it", f"move {path} out of the way")
    mode = stat.S_IMODE(st.st_mode) & 0o640 | 0o600 if st is not None else 0o600
    tmp = target.parent / f".{target.name}{TMP_MARK}{os.getpid()}-{time.monotonic_ns()}"
    fd = -1
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        if st is not None and os.geteuid() != 0 and st.st_uid != os.geteuid():
            raise FileError(f"{path} belongs to uid {st.st_uid}; pgiam (uid {os.geteuid()}) would take it over",
                            "run `pgiam run` as the file's owner (pgbouncer's account), or chown the file to pgiam's account")
        if st is not None and (st.st_uid, st.st_gid) != (os.geteuid(), os.getegid()):
            try:
                os.fchown(fd, st.st_uid if os.geteuid() == 0 else -1, st.st_gid)
            except PermissionError:
                raise FileError(
                    f"cannot give the new {path} its group (gid {st.st_gid}): pgiam is not a member",
                    "run `pgiam run` as pgbouncer's account, or add pgiam's account to the file's group") from None
        os.fchmod(fd, mode)
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        os.fsync(fd)
        os.close(fd)
        fd = -1
        os.replace(tmp, target)
        dfd = os.open(target.parent, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    except OSError as err:
        hint = (f"check that {target.parent} is writable by pgiam's account" if err.errno in (errno.EACCES, errno.EPERM, errno.EROFS)
                else "fix the file system problem above")
        raise FileError(f"cannot write {path}: {err.strerror}", hint) from None
    finally:
        if fd >= 0:
            os.close(fd)
        with contextlib.suppress(OSError):
            os.unlink(tmp)


# ---------------------------------------------------------------- `pgiam export pgbouncer`: pgbouncer.ini lines

DSQL_SERVER_LIFETIME = 3000  # s: below Aurora DSQL's one-hour connection limit (its user guide, "Quotas and limits")
_BARE_NAME = re.compile(r"[_0-9A-Za-z]+")


@dataclass(frozen=True)
class Database:
    """One service as a [databases] entry: where pgbouncer dials, and as whom it logs in."""

    name: str
    host: str  # the host pgbouncer connects to and verifies: the endpoint, or the tunnel's address (no hostaddr)
    port: int
    dbname: str
    user: str  # forced server user; its password (the token) comes from auth_file
    endpoint: str  # the endpoint name the token is signed for
    dsql: bool = False


def quote_name(name: str) -> str:
    """A [databases] key: bare when only `_0-9A-Za-z`, else an SQL-quoted identifier (pgbouncer(5), [databases])."""
    return name if _BARE_NAME.fullmatch(name) else '"' + name.replace('"', '""') + '"'


def quote_value(value: str) -> str:
    """A connection-string value as pgbouncer's loader.c reads it: bare up to a space, or in single quotes with
    a quote doubled (cstr_get_value / cstr_unquote_value); a backslash means nothing."""
    return value if value and " " not in value and not value.startswith("'") else "'" + value.replace("'", "''") + "'"


def render_ini(dbs: list[Database], ca_file: str) -> str:
    """The [databases] lines and the [pgbouncer] TLS settings for `dbs`; pure.

    pgbouncer 1.18 has one server_tls_* and one server_lifetime for all databases, so the CA file must hold
    every service's CA, and server_lifetime is lowered for all when any database is Aurora DSQL.
    """
    out = ["; pgbouncer settings for pgiam's services (from `pgiam export pgbouncer`; see pgbouncer(5)).",
           "; Server logins use IAM tokens: keep them fresh in auth_file with",
           ";   pgiam run --pgbouncer-auth-file AUTH_FILE --pgbouncer-pidfile PGBOUNCER_PIDFILE",
           "; and give clients their own lines in that file (auth_type md5 or scram-sha-256).",
           "[databases]"]
    for d in dbs:
        if d.host != d.endpoint:
            out.append(f"; {d.name}: through {d.host}:{d.port} for {d.endpoint}: pgbouncer has no hostaddr, so verify-full "
                       f"checks the certificate against {d.host} (an IP address SAN), or map {d.endpoint} to {d.host} "
                       f"in /etc/hosts and write host={d.endpoint}")
        keys = [("host", d.host), ("port", str(d.port)), ("dbname", d.dbname), ("user", d.user)]
        out.append(f"{quote_name(d.name)} = " + " ".join(f"{k}={quote_value(v)}" for k, v in keys))
    out += ["", "[pgbouncer]", "server_tls_sslmode = verify-full", f"server_tls_ca_file = {ca_file}"]
    dsql = [d.name for d in dbs if d.dsql]
    if dsql:
        out.append(f"; Aurora DSQL ends every connection after one hour ({', '.join(dsql)}): retire idle server "
                   "connections before that")
        out.append(f"server_lifetime = {DSQL_SERVER_LIFETIME}")
    return "\n".join(out) + "\n"


def merge_ca_files(pems: list[tuple[str, bytes]]) -> bytes:
    """One CA file from several (path, bytes), each file once, in order; each file's certificates kept as they are."""
    seen: set[bytes] = set()
    parts = []
    for path, data in pems:
        if data in seen:
            continue
        seen.add(data)
        parts.append(f"# {path}\n".encode() + data.rstrip(b"\n") + b"\n")
    return b"".join(parts)
