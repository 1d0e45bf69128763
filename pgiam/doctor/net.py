"""Network, TLS and the real login, for one service entry.

TLS is checked the way libpq's sslmode=verify-full does (PostgreSQL documentation, "SSL Support"):
the chain against `sslrootcert`, the server name against `host` (never `hostaddr`). The handshake
starts with PostgreSQL's SSLRequest (protocol documentation, "SSL Session Encryption"): the 8-byte
message 80877103, answered by one byte `S`.
"""

from __future__ import annotations

import socket
import ssl
import struct
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from pgiam.config import Service
from pgiam.doctor import FAIL, Check, fail, ok, warn

TIMEOUT = 5.0
SSL_REQUEST = struct.pack("!ii", 8, 80877103)
CA_WINDOW = 90 * 86400


@dataclass(frozen=True)
class Target:
    """What libpq dials for an entry: the name for TLS and ~/.pgpass, the address and port it connects to."""

    host: str
    hostaddr: str | None
    port: int
    sslrootcert: str | None


Resolver = Callable[[str], tuple[str, list[str], list[str]]]


def check_dns(svc: Service, t: Target, resolve: Resolver = socket.gethostbyname_ex) -> tuple[list[Check], list[str]]:
    """(checks, addresses to dial); `resolve` answers like socket.gethostbyname_ex (canonical name, aliases, addresses)."""
    if t.hostaddr:
        return [ok("net.dns", f"hostaddr {t.hostaddr}: no DNS lookup; {t.host} is still what TLS and "
                   "~/.pgpass match")], [t.hostaddr]
    try:
        canonical, aliases, addrs = resolve(t.host)
    except (OSError, UnicodeError) as err:
        return [fail("net.dns", f"{t.host} does not resolve ({err})",
                     "check the name, your VPN and DNS; for a tunnel use `pgiam add … --via 127.0.0.1:PORT`")], []
    if canonical.lower().rstrip(".") != t.host.lower().rstrip("."):
        aws = canonical.endswith((".rds.amazonaws.com", ".rds.amazonaws.com.cn", ".on.aws"))
        msg = f"{t.host} is an alias (CNAME) of {canonical}"
        if aws:
            return [fail("net.dns", msg + ": RDS checks the token against the AWS name, and the server "
                         "certificate names it too",
                         f"pgiam add {svc.name} --replace --host {canonical} --user {svc.user}")], addrs
        return [warn("net.dns", msg, None)], addrs
    return [ok("net.dns", f"{t.host} resolves to {', '.join(addrs)}")], addrs


def check_tcp(svc: Service, t: Target, addrs: Sequence[str]) -> tuple[list[Check], str | None]:
    last = ""
    for addr in addrs:
        try:
            with socket.create_connection((addr, t.port), timeout=TIMEOUT):
                return [ok("net.tcp", f"TCP {addr}:{t.port} accepts connections")], addr
        except OSError as err:
            last = f"{addr}:{t.port}: {err.strerror or err}"
    if not addrs:
        return [], None
    fix = ("is the database (or your tunnel/port forward on that port) running? "
           + ("`pgiam sandbox up`" if svc.name == "sandbox" else "check security groups and the tunnel"))
    return [fail("net.tcp", f"cannot connect to {last}", fix)], None


def _subject(name: object) -> str:
    parts = {}
    for rdn in name or ():  # type: ignore[attr-defined]
        for k, v in rdn:
            parts[k] = v
    return str(parts.get("commonName") or parts.get("organizationName") or "?")


def check_tls(svc: Service, t: Target, addr: str, paths_managed: bool, now: float) -> list[Check]:
    update = "pgiam certs update"
    root = t.sslrootcert
    ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    if root in (None, "system"):
        ctx.load_default_certs()
    else:
        if not Path(root).is_file():
            return [fail("tls.ca", f"the entry's sslrootcert {root} does not exist", update)]
        try:
            ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=root)
        except (ssl.SSLError, OSError) as err:
            return [fail("tls.ca", f"sslrootcert {root} is not a usable CA bundle ({err})", update)]
    ctx.check_hostname = True
    try:
        raw = socket.create_connection((addr, t.port), timeout=TIMEOUT)
    except OSError as err:
        return [fail("tls.handshake", f"cannot connect to {addr}:{t.port}: {err}")]
    with raw:
        try:
            raw.sendall(SSL_REQUEST)
            answer = raw.recv(1)
        except OSError as err:
            return [fail("tls.handshake", f"{addr}:{t.port} dropped the SSLRequest ({err}): not a PostgreSQL server?")]
        if answer != b"S":
            return [fail("tls.handshake", f"{addr}:{t.port} refuses TLS (answered {answer!r} to the SSLRequest)",
                         "the server must allow TLS: RDS always does; check the port")]
        try:
            with ctx.wrap_socket(raw, server_hostname=t.host) as tls:
                cert = tls.getpeercert() or {}
        except ssl.SSLCertVerificationError as err:
            msg = err.verify_message or str(err)
            if "match" in msg.lower() or "hostname" in msg.lower():
                return [fail("tls.handshake", f"the server certificate does not name {t.host} ({msg}); libpq says "
                             f"\"server certificate for … does not match host name\"",
                             f"use the endpoint name as --host (`pgiam add {svc.name} --replace --host ENDPOINT "
                             "… --via 127.0.0.1:PORT` for a tunnel)")]
            return [fail("tls.handshake", f"certificate verify failed against {root or 'the system store'} ({msg}): "
                         "the CA that signed the server certificate is not in the bundle",
                         f"{update}; for RDS Proxy use the system store (libpq 16+ sslrootcert=system)")]
        except (ssl.SSLError, OSError) as err:
            return [fail("tls.handshake", f"TLS handshake with {addr}:{t.port} failed: {err}")]
    issuer = _subject(cert.get("issuer"))
    not_after = cert.get("notAfter")
    expiry = ssl.cert_time_to_seconds(str(not_after)) if not_after else None
    out = [ok("tls.handshake", f"verify-full ok: certificate for {t.host} issued by {issuer}"
              + (f", valid until {time.strftime('%Y-%m-%d', time.gmtime(expiry))}" if expiry else ""))]
    if expiry is not None and expiry - now < 30 * 86400:
        out[0] = warn("tls.handshake", out[0].message + f": the server certificate expires in "
                      f"{int((expiry - now) // 86400)} days", "rotate the server certificate (RDS: modify the CA)")
    if root not in (None, "system"):
        out += _ca_expiry(root, issuer, now, paths_managed)
    return out


def _ca_expiry(root: str, issuer: str, now: float, managed: bool) -> list[Check]:
    from pgiam import certs

    try:
        cas = certs.parse_bundle(Path(root).read_text(errors="replace"))
    except (OSError, ValueError):
        return []
    mine = [c for c in cas if c.subject == issuer]
    fix = "pgiam certs update" if managed else "download a current bundle (or let pgiam manage it: `pgiam certs update`)"
    for ca in mine:
        if ca.not_after - now < CA_WINDOW:
            return [warn("tls.ca", f"the CA {ca.subject} in {root} expires {ca.not_after_iso}", fix)]
    if mine:
        return [ok("tls.ca", f"the CA {issuer} in {root} is valid until {mine[0].not_after_iso}")]
    return [ok("tls.ca", f"{root}: {len(cas)} CA(s)")]


# ---------------------------------------------------------------- login


@dataclass(frozen=True)
class LoginResult:
    ok: bool
    error: str


def try_login(name: str, env: Mapping[str, str], psql: str = "psql") -> LoginResult:
    """`psql service=NAME -c 'select 1'` in the user's environment (libpq reads the files itself)."""
    e = dict(env)
    e.setdefault("PGCONNECT_TIMEOUT", "10")
    try:
        p = subprocess.run([psql, f"service={name}", "-XAtqc", "select 1"], env=e, capture_output=True, text=True,
                           timeout=30, stdin=subprocess.DEVNULL)
    except FileNotFoundError:
        return LoginResult(False, "psql is not installed")
    except subprocess.TimeoutExpired:
        return LoginResult(False, "psql did not finish within 30 s")
    err = " ".join(ln.strip() for ln in p.stderr.strip().splitlines() if ln.strip())
    return LoginResult(p.returncode == 0 and p.stdout.strip() == "1", err)


def login_check(svc: Service, result: LoginResult, earlier: Sequence[Check]) -> Check:
    """The login, and when it fails the causes still possible given the earlier checks, most likely first."""
    if result.ok:
        return ok("login", f"psql service={svc.name}: logged in as {svc.user}, select 1 ok")
    failed = [c for c in earlier if c.status == FAIL]
    err = result.error
    low = err.lower()
    causes: list[str] = []
    fix: str | None = None
    if "password authentication failed" in low:
        # RDS sends members of rds_iam to PAM (the token) and everyone else to password authentication
        # (AWS RDS user guide, IAM database authentication, Limitations).
        causes.append(f"the database user {svc.user} is not a member of rds_iam, so the server checks a "
                      "password instead of the token")
        fix = f"as an admin: GRANT rds_iam TO \"{svc.user}\";"
        causes += [f"{c.id}: {c.message}" for c in failed if c.id in ("env.PGPASSWORD", "files.pgpass_line")]
    elif "pam authentication failed" in low or "ldap authentication failed" in low:
        causes += [f"{c.id}: {c.message}" for c in failed]
        fix = next((c.fix for c in failed if c.fix), None)
        causes += ["the IAM policy does not allow rds-db:connect on the instance's resource id for this user "
                   "(`pgiam doctor --online` simulates it)",
                   "IAM database authentication is off on the instance or cluster",
                   "the clock of the machine that signed the token is off (`--online` measures it)"]
    elif "no password supplied" in low:
        causes += [f"{c.id}: {c.message}" for c in failed] or ["no ~/.pgpass line matched"]
        fix = next((c.fix for c in failed if c.fix), f"pgiam refresh {svc.name}")
    elif "certificate verify failed" in low or "does not match host name" in low or "root certificate" in low:
        causes += [f"{c.id}: {c.message}" for c in failed if c.id.startswith("tls")] or ["the CA bundle or host name"]
        fix = next((c.fix for c in failed if c.id.startswith("tls") and c.fix), "pgiam certs update")
    elif "syntax error in service file" in low or "definition of service" in low:
        causes += [f"{c.id}: {c.message}" for c in failed if c.id.startswith(("libpq", "files"))]
        fix = next((c.fix for c in failed if c.id.startswith(("libpq", "files")) and c.fix), f"pgiam refresh {svc.name}")
    else:
        causes += [f"{c.id}: {c.message}" for c in failed]
        fix = next((c.fix for c in failed if c.fix), None)
    more = "; ".join(causes[:4])
    return fail("login", f"psql service={svc.name} failed: {err}" + (f" -- likely: {more}" if more else ""), fix)

