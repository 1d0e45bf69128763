"""Run the checks for each selected service, in the order a connection meets them."""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterable, Mapping
from pathlib import Path

from pgiam import store, tokeninfo
from pgiam.config import Service, load_config
from pgiam.doctor import Check, DoctorReport, ServiceDiagnosis, fail, ok, warn
from pgiam.doctor import creds, local, net
from pgiam.errors import EnvironmentProblem
from pgiam.libpq import LibpqVersion, detect
from pgiam.paths import Paths


def _lock_check(paths: Paths) -> list[Check]:
    """Is a pgiam holding the lock now (a refresh running, or stuck)? Reading creates nothing."""
    try:
        fd = os.open(paths.lock_file, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return []
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            raw = os.pread(fd, 32, 0).strip()
            pid = raw.decode() if raw.isdigit() else "?"
            return [warn("pgiam.lock", f"another pgiam (pid {pid}) holds {paths.lock_file}: a refresh is running, and "
                         "pgiam commands that write exit 6 until it ends",
                         f"wait for it, or check it with `ps -p {pid}`")]
        return [ok("pgiam.lock", "no pgiam holds the lock")]
    finally:
        os.close(fd)


def diagnose(paths: Paths, names: Iterable[str] | None, now: float, *, env: Mapping[str, str] | None = None,
             online: bool = False, python: str | None = None) -> DoctorReport:
    env = dict(os.environ if env is None else env)
    config = load_config(paths.config_file, scope=paths.scope)
    chosen = store.select(paths, config, names)
    top: list[Check] = []
    v: LibpqVersion | None
    try:
        v = detect(env)
    except EnvironmentProblem as err:
        v = None
        top.append(fail("libpq.version", err.message, err.hint))
    if not top:
        top += local.check_libpq(v)
    if python:
        from pgiam.doctor import pyclient

        top += pyclient.check_python(python)
    top += _lock_check(paths)
    if not chosen:
        top.append(warn("services", f"no services in {paths.config_file}", "pgiam add NAME --host HOST --user USER"))
    snap = store.read(paths)
    rows = [ServiceDiagnosis(n, tuple(_one(paths, config.services[n], snap, v, env, now, online))) for n in chosen]
    return DoctorReport(tuple(top), tuple(rows))


def _one(paths: Paths, svc: Service, snap: store.Snapshot, v: LibpqVersion | None, env: Mapping[str, str],
         now: float, online: bool) -> list[Check]:
    out: list[Check] = []
    sec = local.find_section(paths.service_file, snap.service_text, svc.name)
    out += local.check_section(svc.name, sec, paths.service_file)
    if sec is not None:
        out += local.check_keys(svc.name, sec, v)
    out += local.check_environment(svc.name, sec, env, paths.home, v)
    file_checks, usable = local.check_pgpass_file(paths.pgpass, os.getuid())
    out += file_checks
    host = (sec.get("host") if sec else None) or svc.host
    port = (sec.get("port") if sec else None) or str(svc.dial_port)
    user = (sec.get("user") if sec else None) or svc.user
    dbname = (sec.get("dbname") if sec else None) or svc.dbname or user  # libpq's default dbname is the user
    if usable:
        out += local.check_pgpass_line(svc.name, snap.pgpass_text, paths.pgpass, host, port, dbname, user)
    token = snap.tokens.get(store.key_of(svc))
    st = store.state_of(svc, snap.states)
    info = tokeninfo.try_decode(token)
    creds_expire = st.expires if st is not None and info is not None and st.minted == info.signed_at else None
    out += local.check_token(svc, token, now, creds_expire)
    out += creds.check_credentials(svc, env, paths.home, now)
    sslroot = (sec.get("sslrootcert") if sec else None) or svc.sslrootcert
    try:
        dial_port = int(port)
    except ValueError:
        dial_port = svc.dial_port
    target = net.Target(host, (sec.get("hostaddr") if sec else None) or (svc.via.addr if svc.via else None),
                        dial_port, sslroot)
    dns, addrs = net.check_dns(svc, target)
    out += dns
    tcp, addr = net.check_tcp(svc, target, addrs)
    out += tcp
    if addr is not None:
        managed = sslroot is not None and Path(sslroot).is_relative_to(paths.certs_dir)
        out += net.check_tls(svc, target, addr, managed, now)
        out.append(net.login_check(svc, net.try_login(svc.name, env), out))
    if online:
        from pgiam.doctor import online as onl

        out += onl.check_online(svc, sslroot)
    return out
