"""The offline checks that need no network: libpq, environment, files, token.

The rules are libpq's (PostgreSQL documentation, "The Password File", "The Connection Service
File", "Environment Variables"; src/interfaces/libpq/fe-connect.c): first matching ~/.pgpass line
wins, `*` is a wildcard only as a whole field, the first section of a name wins, an unknown key in a
section is a hard error, and conninfo > service file > environment.
"""

from __future__ import annotations

import os
import pwd
import re
import stat
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from pgiam import block, facts, pgpass, servicefile, tokeninfo
from pgiam.config import Service, infer_region
from pgiam.doctor import Check, fail, ok, warn
from pgiam.dsql import is_dsql_host
from pgiam.freshness import CLOCK_TOLERANCE
from pgiam.libpq import LibpqVersion, truncates_pgpass

# Every connection keyword of libpq's PQconninfoOptions (fe-connect.c) with the first major release
# that knows it (9 = every libpq pgiam could meet), and the release that dropped it. A service-file
# key missing here, or newer than the libpq in use, makes libpq fail the whole section with
# "syntax error in service file".
KNOWN_KEYS: Mapping[str, int] = {
    "host": 9, "hostaddr": 9, "port": 9, "dbname": 9, "user": 9, "password": 9, "connect_timeout": 9,
    "client_encoding": 9, "options": 9, "application_name": 9, "fallback_application_name": 9,
    "keepalives": 9, "keepalives_idle": 9, "keepalives_interval": 9, "keepalives_count": 9,
    "sslmode": 9, "sslcompression": 9, "sslcert": 9, "sslkey": 9, "sslrootcert": 9, "sslcrl": 9,
    "requirepeer": 9, "krbsrvname": 9, "gsslib": 9, "replication": 9, "tty": 9, "authtype": 9,
    "requiressl": 9,
    "passfile": 10, "target_session_attrs": 10,
    "gssencmode": 12, "tcp_user_timeout": 12,
    "channel_binding": 13, "ssl_min_protocol_version": 13, "ssl_max_protocol_version": 13, "sslpassword": 13,
    "sslsni": 14, "sslcrldir": 14,
    "gssdelegation": 16, "require_auth": 16, "sslcertmode": 16, "load_balance_hosts": 16,
    "sslnegotiation": 17,
    "sslkeylogfile": 18, "min_protocol_version": 18, "max_protocol_version": 18, "oauth_issuer": 18,
    "oauth_client_id": 18, "oauth_client_secret": 18, "oauth_scope": 18,
}
REMOVED_IN: Mapping[str, int] = {"tty": 14, "authtype": 14, "requiressl": 12}

# ---------------------------------------------------------------- the files as libpq reads them


@dataclass(frozen=True)
class Section:
    """The section libpq finds for a name: where, whether it is pgiam's, and its keys with line numbers."""

    path: Path
    line: int
    managed: bool
    keys: tuple[tuple[str, str, int], ...]  # (key, value, line)

    def get(self, key: str) -> str | None:
        """The first value of `key` (libpq keeps the first of a duplicate key)."""
        return next((v for k, v, _ in self.keys if k == key), None)


def find_section(path: Path, text: str, name: str) -> Section | None:
    """The first `[name]` section of `text`, read the way libpq's parseServiceFile does."""
    all_lines = block.lines(text)
    rng = block.marked_range(all_lines, servicefile.BEGIN_LINE, servicefile.END_LINE)
    found: Section | None = None
    keys: list[tuple[str, str, int]] = []
    for i, raw in enumerate(all_lines, start=1):
        line = raw.rstrip("\r\n").strip(" \t\r\n\f\v")
        if not line or line.startswith("#"):
            continue
        if line.startswith("["):
            if found is not None:
                break
            if "]" in line and line[1 : line.index("]")] == name:
                found = Section(path, i, bool(rng and rng[0] <= i <= rng[1]), ())
            continue
        if found is not None:
            k, sep, v = line.partition("=")
            keys.append((k, v, i) if sep else (line, "", i))
    if found is None:
        return None
    return Section(found.path, found.line, found.managed, tuple(keys))


def _raw_fields(line: str) -> list[tuple[str, bool]]:
    """A ~/.pgpass line as (unescaped field, is-wildcard) pairs; libpq's `*` wildcard is a bare `*` field."""
    out: list[tuple[str, bool]] = []
    cur: list[str] = []
    raw: list[str] = []
    i = 0
    while i < len(line):
        c = line[i]
        if c == "\\" and i + 1 < len(line):
            cur.append(line[i + 1])
            raw.append(line[i : i + 2])
            i += 2
            continue
        if c == ":" and len(out) < 4:
            out.append(("".join(cur), "".join(raw) == "*"))
            cur, raw = [], []
        else:
            cur.append(c)
            raw.append(c)
        i += 1
    out.append(("".join(cur), "".join(raw) == "*"))
    return out


@dataclass(frozen=True)
class PgpassMatch:
    line: int
    managed: bool
    text_fields: tuple[str, str, str, str]  # host, port, database, user as written (wildcards as *)


def first_match(text: str, host: str, port: str, dbname: str, user: str) -> PgpassMatch | None:
    """The first ~/.pgpass line libpq's passwordFromFile would take for these values."""
    all_lines = block.lines(text)
    rng = block.marked_range(all_lines, pgpass.BEGIN_LINE, pgpass.END_LINE)
    for i, raw in enumerate(all_lines, start=1):
        line = raw.rstrip("\n")
        if line.endswith("\r"):
            line = line[:-1]
        if not line or line.startswith("#"):
            continue
        fields = _raw_fields(line)
        if len(fields) < 5:
            continue
        wanted = (host, port, dbname, user)
        if all(wild or val == want for (val, wild), want in zip(fields[:4], wanted)):
            shown = tuple("*" if wild else val for val, wild in fields[:4])
            return PgpassMatch(i, bool(rng and rng[0] <= i <= rng[1]), shown)  # type: ignore[arg-type]
    return None


# ---------------------------------------------------------------- libpq


def check_libpq(v: LibpqVersion | None) -> list[Check]:
    if v is None:
        return [warn("libpq.version", "cannot tell which libpq psql uses (no libpq.so, pg_config or psql found)",
                     "install postgresql-client, or set PGIAM_LIBPQ_VERSION to the version your client uses")]
    if truncates_pgpass(v):
        return [fail("libpq.version", f"libpq {v.describe()} reads at most 319 bytes of a ~/.pgpass line; "
                     "an IAM token is 350 to 1,900 bytes, so the server gets a cut token",
                     "upgrade libpq (postgresql-client) to 13 or newer (or 12.5+, 11.10+)")]
    return [ok("libpq.version", f"libpq {v.describe()} reads long ~/.pgpass lines")]


def check_keys(name: str, sec: Section, v: LibpqVersion | None) -> list[Check]:
    """Keys of the section that this libpq rejects ("syntax error in service file")."""
    out: list[Check] = []
    where = f"{sec.path} line"
    fix_managed = f"`pgiam refresh {name}` rewrites pgiam's section from its config"
    for key, value, line in sec.keys:
        fix = fix_managed if sec.managed else f"remove line {line} of {sec.path}"
        if key == "service":
            out.append(fail("libpq.keys", f"{where} {line}: `service=` inside a section is an error for libpq", fix))
            continue
        needs = KNOWN_KEYS.get(key)
        if needs is None:
            out.append(fail("libpq.keys", f"{where} {line}: libpq knows no key {key!r}: every connection to "
                            f"service {name} fails with \"syntax error in service file\"", fix))
            continue
        gone = REMOVED_IN.get(key)
        if v is not None and (v.major < needs or (gone is not None and v.major >= gone)):
            why = f"needs libpq {needs}+" if v.major < needs else f"was removed in libpq {gone}"
            hint = fix
            if sec.managed and key == "require_auth":  # the one version-gated key pgiam writes from its config
                hint = f"upgrade libpq to {needs}+, or `pgiam add {name} --replace …` without --require-auth"
            out.append(fail("libpq.keys", f"{where} {line}: key {key} {why}, psql uses libpq {v}: "
                            f"\"syntax error in service file\"", hint))
            continue
        if key == "sslrootcert" and value == "system" and v is not None and v.major < 16:
            out.append(fail("libpq.keys", f"{where} {line}: sslrootcert=system needs libpq 16+; libpq {v} reads "
                            "it as a file named \"system\"",
                            f"upgrade libpq to 16+, or `pgiam add {name} --replace … --sslrootcert FILE`"))
    if not out:
        what = f"libpq {v}" if v is not None else "libpq"
        out.append(ok("libpq.keys", f"every key of [{name}] ({len(sec.keys)}) is known to {what}"))
    return out


# ---------------------------------------------------------------- environment


# Values libpq takes from the environment only when the entry lacks them (conninfo > service file >
# environment); those that can still break an IAM login through a pgiam entry.
# (variable, key, first libpq that reads the variable): an older libpq ignores it.
_BREAKING_ENV = {
    "PGHOSTADDR": ("hostaddr", 9),
    "PGCHANNELBINDING": ("channel_binding", 13),
    "PGGSSENCMODE": ("gssencmode", 12),
    "PGREQUIREAUTH": ("require_auth", 16),
}
_HARMLESS_ENV = ("PGHOST", "PGPORT", "PGUSER", "PGDATABASE", "PGSSLMODE", "PGSSLROOTCERT", "PGSERVICE")


def check_environment(name: str, sec: Section | None, env: Mapping[str, str], home: Path,
                      v: LibpqVersion | None) -> list[Check]:
    out: list[Check] = []
    if "PGPASSWORD" in env:
        out.append(fail("env.PGPASSWORD", "PGPASSWORD is set: libpq sends it and never reads ~/.pgpass, so "
                        "the IAM token is not used", "unset PGPASSWORD"))
    else:
        out.append(ok("env.PGPASSWORD", "PGPASSWORD is not set: libpq reads the token from the password file"))
    for var, (key, since) in _BREAKING_ENV.items():
        value = env.get(var)
        if value is None or (sec is not None and sec.get(key) is not None) or (v is not None and v.major < since):
            continue
        bad = (var == "PGHOSTADDR" or (var == "PGCHANNELBINDING" and value == "require")
               or (var == "PGGSSENCMODE" and value == "require")
               or (var == "PGREQUIREAUTH" and "password" not in value.split(",")))
        if bad:
            why = ("libpq dials that address instead of the endpoint" if var == "PGHOSTADDR"
                   else "RDS asks for a cleartext password inside TLS, which this setting refuses")
            out.append(fail("env.override", f"{var}={value} applies to service {name} (its entry has no {key}): {why}",
                            f"unset {var}"))
    seen = [f"{v_}" for v_ in _HARMLESS_ENV if v_ in env]
    if seen:
        out.append(ok("env.override", f"{', '.join(seen)} set, but the entry's own host, port, user, sslmode and "
                      "sslrootcert win for `service=" + name + "`"))
    for var, default, label, marker in (("PGPASSFILE", home / facts.PGPASS_NAME, "tokens", pgpass.BEGIN_LINE),
                                        ("PGSERVICEFILE", home / facts.SERVICEFILE_NAME, "services", servicefile.BEGIN_LINE)):
        value = env.get(var)
        if not value or Path(value) == default:
            continue
        try:
            theirs = default.read_text(errors="replace")
        except OSError:
            continue
        if marker in theirs:
            out.append(warn("env.files", f"{var}={value}, but {default} also holds pgiam's {label}: a pgiam run "
                            f"without {var} (a timer, a hook in another shell) writes there, not where libpq reads",
                            f"set {var} the same way everywhere pgiam runs, or unset it"))
    try:
        pw_home = Path(pwd.getpwuid(os.getuid()).pw_dir)
    except KeyError:
        pw_home = home
    if pw_home != home:
        unset = [f"{var}={home / name}" for var, name in (("PGPASSFILE", facts.PGPASS_NAME), ("PGSERVICEFILE", facts.SERVICEFILE_NAME))
                 if not env.get(var)]
        if not unset:  # pgJDBC and pgx read both variables too, libpq every version
            out.append(ok("env.home", f"$HOME ({home}) is not the passwd home ({pw_home}), but PGPASSFILE and "
                          "PGSERVICEFILE name the files for every client"))
            return out
        msg = (f"$HOME ({home}) is not the passwd home ({pw_home}): pgJDBC, pgx and libpq < 15 look for "
               f"~/.pgpass and ~/.pg_service.conf in {pw_home}")
        if v is not None and not v.at_least(15):
            out.append(fail("env.home", msg + f"; psql's libpq {v} is one of them", f"export {' '.join(unset)}"))
        else:
            out.append(warn("env.home", msg + " (psql's libpq reads $HOME)", f"export {' '.join(unset)}"))
    return out


# ---------------------------------------------------------------- files


def check_pgpass_file(path: Path, uid: int) -> tuple[list[Check], bool]:
    """The password file is one libpq reads: regular, the user's, no group/world bits. (checks, usable)"""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return [fail("files.pgpass", f"{path} does not exist", "pgiam refresh")], False
    except OSError as err:
        return [fail("files.pgpass", f"{path}: {err.strerror}", f"check the permissions of {path.parent}")], False
    if not stat.S_ISREG(st.st_mode):
        return [fail("files.pgpass", f"{path} is not a regular file: libpq ignores it",
                     f"move {path} away, then `pgiam refresh`")], False
    out: list[Check] = []
    usable = True
    if st.st_mode & 0o077:
        out.append(fail("files.pgpass", f"{path} has mode {stat.S_IMODE(st.st_mode):04o}: libpq warns "
                        "\"password file has group or world access\" and ignores the whole file",
                        f"chmod 600 {path} (any `pgiam refresh` also does it)"))
        usable = False
    if st.st_uid != uid:
        out.append(warn("files.pgpass", f"{path} belongs to uid {st.st_uid}, not to you (uid {uid})",
                        f"chown {uid} {path}"))
    if not out:
        out.append(ok("files.pgpass", f"{path} is a regular file, yours, mode {stat.S_IMODE(st.st_mode):04o}"))
    return out, usable


def check_section(name: str, sec: Section | None, service_file: Path) -> list[Check]:
    if sec is None:
        return [fail("files.service", f"no section [{name}] in {service_file}: libpq finds no service {name}",
                     f"pgiam refresh {name}")]
    if not sec.managed:
        return [fail("files.service", f"{service_file} line {sec.line}: a section [{name}] outside pgiam's block "
                     "comes first, and libpq uses the first one",
                     f"remove or rename the section at line {sec.line} of {service_file}")]
    return [ok("files.service", f"libpq finds pgiam's [{name}] at {service_file} line {sec.line}")]


def check_pgpass_line(name: str, text: str, path: Path, host: str, port: str, dbname: str, user: str) -> list[Check]:
    m = first_match(text, host, port, dbname, user)
    what = f"{host}:{port}:{dbname}:{user}"
    if m is None:
        return [fail("files.pgpass_line", f"no line of {path} matches {what}", f"pgiam refresh {name}")]
    if not m.managed:
        return [fail("files.pgpass_line", f"{path} line {m.line} ({':'.join(m.text_fields)}:…, not pgiam's) is the "
                     f"first to match {what}: libpq sends its password, not pgiam's token",
                     f"delete line {m.line} of {path}, or move it below pgiam's block")]
    return [ok("files.pgpass_line", f"the first line of {path} matching {what} is pgiam's (line {m.line})")]


# ---------------------------------------------------------------- token


def check_token(svc: Service, token: str | None, now: float, credentials_expire: float | None) -> list[Check]:
    """What the token in the password file says about itself, against the entry; never shows the token."""
    refresh = f"pgiam refresh {svc.name}"
    if token is None:
        return [fail("token.present", f"no token for {svc.name} in pgiam's block of the password file", refresh)]
    try:
        info = tokeninfo.decode(token)
    except tokeninfo.TokenDecodeError as err:
        return [fail("token.present", f"the token line of {svc.name} is {err}", refresh)]
    out: list[Check] = []
    dsql = info.service == "dsql"
    want_host = svc.host.lower().rstrip(".")
    host_region = infer_region(svc.host)  # config's parser, the one add and the config file use
    if info.host != want_host or (not dsql and info.port != svc.port):
        where = f"{info.host}:{info.port}" if info.port else info.host
        via = f" (libpq dials {svc.via}, but the token names the endpoint)" if svc.via else ""
        out.append(fail("token.endpoint", f"the token is signed for {where}, the entry's endpoint is "
                        f"{svc.host}:{svc.port}{via}: the server refuses it", refresh))
    else:
        out.append(ok("token.endpoint", f"signed for {svc.host}:{svc.port}"))
    want_service = "dsql" if is_dsql_host(want_host) else "rds-db"
    if host_region is not None and svc.region != host_region:
        out.append(fail("token.scope", f"the service's region is {svc.region} but the host name says {host_region}",
                        f"pgiam add {svc.name} --replace --host {svc.host} --user {svc.user} --region {host_region}"))
    elif info.region != svc.region or info.service != want_service:
        out.append(fail("token.scope", f"the token's scope is {info.region}/{info.service}, the endpoint needs "
                        f"{svc.region}/{want_service}", refresh))
    else:
        out.append(ok("token.scope", f"scope {info.region}/{info.service} matches the endpoint"))
    if not dsql:
        if info.user != svc.user:
            out.append(fail("token.user", f"the token is for user {info.user!r}, the entry logs in as {svc.user!r}", refresh))
        else:
            out.append(ok("token.user", f"for user {svc.user}"))
    expires = info.expires if credentials_expire is None else min(info.expires, credentials_expire)
    if info.signed_at > now + CLOCK_TOLERANCE:
        out.append(fail("token.time", f"the token is dated {int(info.signed_at - now)} s ahead of this machine's clock: "
                        "either the clock was stepped back or it was signed on a machine whose clock runs ahead",
                        f"check the clock (timedatectl; sync it with NTP), then {refresh}"))
    elif expires <= now:
        by = " (the credentials that signed it expired first)" if expires < info.expires else ""
        out.append(fail("token.time", f"the token expired {int(now - expires)} s ago{by}",
                        f"{refresh}; keep tokens fresh with `pgiam hook SHELL` or `pgiam timer install`"))
    elif expires - now < 60:
        out.append(warn("token.time", f"the token expires in {int(expires - now)} s", refresh))
    else:
        out.append(ok("token.time", f"valid for {int(expires - now)} s more"))
    return out
