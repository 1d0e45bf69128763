"""Adding and removing services: build a Service from what the user gave, TLS defaults, conflicts,
and the all-or-nothing write of config, both libpq files and state. Returns results; never prints."""

from __future__ import annotations

import dataclasses
import os
import re
from dataclasses import dataclass
from pathlib import Path

from pgiam import config as cfg
from pgiam import dsql, endpoints, servicefile, store
from pgiam.config import Config, Service, load_config
from pgiam.errors import ConfigError, EnvironmentProblem, UsageError
from pgiam.fileio import mode_of, read_bytes
from pgiam.paths import Paths
from pgiam.refresh import Minted, Minter, Outcome, Result, lock_wait
from pgiam.state import ServiceState


@dataclass(frozen=True)
class ServiceArgs:
    """What the user typed for `pgiam add` (strings as given, None when not given)."""

    name: str
    host: str
    user: str
    port: str = "5432"
    dbname: str | None = None
    region: str | None = None
    profile: str | None = None
    via: str | None = None
    sslrootcert: str | None = None
    require_auth: bool = False


def build(paths: Paths, a: ServiceArgs, current: Config, notices: list[str] | None = None,
          resolve: endpoints.Resolver | None = None) -> Service:
    """Validate the arguments into a Service; the region comes from --region, the host name, or [defaults].

    A host that is not an AWS endpoint name is replaced by the first AWS name in its CNAME chain
    (said in `notices`), or refused: a token signed for any other name is refused (pgiam.endpoints).
    """
    name = cfg.check_name(a.name)
    host = endpoints.signing_name(cfg.check_host(a.host), notices if notices is not None else [], resolve)
    dbname = a.dbname if a.dbname is not None or not dsql.is_dsql_host(host) else dsql.DEFAULT_DBNAME
    region = cfg.check_region(a.region) if a.region else (cfg.infer_region(host) or current.defaults.region)
    if not region:
        raise UsageError(f"cannot tell the AWS region of {host}", "pass --region (e.g. --region us-east-1)")
    return Service(
        name=name,
        host=host,
        port=cfg.check_port(a.port),
        user=cfg.check_text("user", a.user),
        dbname=cfg.check_text("dbname", dbname) if dbname is not None else None,
        region=region,
        # The profile that signs, in order: --profile; AWS_PROFILE now, recorded so that timers (which
        # carry no AWS_PROFILE) sign with the same identity; else [defaults] profile, read live.
        profile=cfg.check_profile(profile) if (profile := a.profile or os.environ.get("AWS_PROFILE")) else None,
        via=cfg.parse_via(a.via) if a.via else None,
        sslrootcert=check_ca_file(cfg.check_path("sslrootcert", _abs(a.sslrootcert)), paths) if a.sslrootcert else None,
        require_auth=a.require_auth,
    )


def with_tls_defaults(paths: Paths, svc: Service, notices: list[str]) -> Service:
    """Fill in sslrootcert (managed bundle, or the public roots for RDS Proxy) and gate keys on the libpq version."""
    from pgiam import certs, libpq

    version = libpq.detect()
    if version is not None and libpq.truncates_pgpass(version):
        raise EnvironmentProblem(
            f"the installed libpq {version} cuts ~/.pgpass lines at 320 bytes, and IAM tokens are longer",
            "upgrade libpq to 13 or later (or 12.5 / 11.10 / 10.15 and newer minor releases)",
        )
    if dsql.is_dsql_host(svc.host):
        dsql.check_libpq(version, svc.name)
    if svc.sslrootcert is None:
        if cfg.is_proxy_host(svc.host) or dsql.is_dsql_host(svc.host):  # public Amazon roots
            root = certs.proxy_sslrootcert(version)
        else:
            root = str(certs.ensure_bundle(paths, certs.partition_for_region(svc.region)))
        svc = dataclasses.replace(svc, sslrootcert=root)
    keys = dict(store.service_entry(svc, svc.sslrootcert or "").keys)
    if version is not None:
        libpq.check_service_keys(keys, version)
    extra = sorted(set(keys) - libpq.JDBC_SAFE_KEYS)
    if extra or keys.get("sslrootcert") == "system":
        system = keys.get("sslrootcert") == "system"
        what = ", ".join(extra + (["sslrootcert=system"] if system else []))
        sent = [k for k in extra if k != "hostaddr"]
        harm = (["pgJDBC (DBeaver, DataGrip, IntelliJ) cannot use this service entry"]
                + (["pgx v4 sends hostaddr to the server (FATAL) and asyncpg ignores it"] if "hostaddr" in extra else [])
                + ([f"pgx v4 sends {', '.join(sent)} to the server (FATAL)"] if sent else [])
                + (["pgx v4 and asyncpg read sslrootcert=system as a file name"] if system else []))
        notices.append(
            f"{svc.name} uses {what}: " + "; ".join(harm) + f"; for these clients take the settings from `pgiam env"
            f" {svc.name}` and the password from `pgiam token {svc.name}`"
            + (" with a CA file instead of system" if system else "")
            + (", dialling the tunnel's address but checking the certificate against the host name" if "hostaddr" in extra else "")
            + " (README: Clients)")
    return svc


def _abs(path: str) -> str:
    """An absolute path, except libpq 16's keyword `system` (the OS trust store)."""
    return path if path == "system" else os.path.abspath(path)


def check_ca_file(path: str, paths: Paths) -> str:
    """An --sslrootcert that exists and holds a PEM certificate (libpq would fail every connection otherwise)."""
    if path == "system":
        return path
    head = read_bytes(Path(path), scope=paths.scope)  # FIFO-safe; a directory or unreadable file is a FileError
    if head is None:
        raise UsageError(f"sslrootcert {path} does not exist", "give the CA bundle file that signed the server's certificate")
    # OpenSSL's PEM reader (used by libpq's SSL_CTX_load_verify_locations) takes these three labels.
    if not re.search(rb"-----BEGIN (X509 |TRUSTED )?CERTIFICATE-----.*?-----END (X509 |TRUSTED )?CERTIFICATE-----", head, re.S):
        raise UsageError(f"sslrootcert {path} holds no PEM certificate", "give a PEM CA bundle (-----BEGIN CERTIFICATE----- ...)")
    return path


def check_conflicts(paths: Paths, config: Config, svc: Service, replace: bool, again: str | None = None) -> None:
    """Refuse a name the config or a foreign service-file section already uses, unless `replace`.
    `again`: the command that would replace it (`pgiam discover ... --replace`), when not `pgiam add`'s.
    A second service on the same ~/.pgpass line that would sign with another identity is always refused."""
    check_shared_line(config, svc)
    if replace:
        return
    if svc.name in config.services:
        raise ConfigError(
            f"service {svc.name!r} already exists in {paths.config_file}",
            (f"run `{again}` to replace it" if again else f"use `pgiam add {svc.name} --replace ...` to change it")
            + f", or `pgiam remove {svc.name}` first",
        )
    text = store.decode(read_bytes(paths.service_file, scope=paths.scope))
    with store.naming(paths.service_file):
        sections = servicefile.foreign_sections(text)
    for sec in sections:
        if sec.name == svc.name:
            raise ConfigError(
                f"{paths.service_file}:{sec.line}: a section [{svc.name}] that pgiam does not manage already exists",
                f"pick another name, or pass --replace to let pgiam take over [{svc.name}] (your section is removed)",
            )


def check_shared_line(config: Config, svc: Service) -> None:
    """libpq reads one password per host, port and user (the first matching ~/.pgpass line): services on
    the same line share its token, so they must sign alike (same profile and region), or one of them
    would connect with a token made by the other's identity (issue 20)."""
    def signer(s: Service) -> str:
        profile = s.profile or config.defaults.profile
        return (f"profile {profile!r}" if profile else "the default credentials") + f" in {s.region}"

    for other in config.services.values():
        if other.name == svc.name or store.key_of(other) != store.key_of(svc):
            continue
        if store.identity(other, config)[4:6] != store.identity(svc, config)[4:6]:  # region and profile
            raise ConfigError(
                f"{svc.name} would share {other.name}'s ~/.pgpass line ({store.key_str(svc)}) but sign with "
                f"{signer(svc)}, and {other.name} with {signer(other)}; libpq reads one password per host, port and user",
                f"give {svc.name} the same profile and region as {other.name}, connect as another database user, "
                f"or `pgiam remove {other.name}` first")


def add(paths: Paths, svc: Service, explicit_region: bool, now: float, mint: Minter | None,
        replace: bool = False, wait: float | None = None) -> Result:
    """Save `svc` in the config, write its service entry and (unless mint is None) a fresh token: all or nothing."""
    return add_all(paths, [(svc, explicit_region)], now, mint, replace, wait)


def add_all(paths: Paths, svcs: list[tuple[Service, bool]], now: float, mint: Minter | None,
            replace: bool = False, wait: float | None = None) -> Result:
    """`add` for several services (`pgiam discover --add`): every one is written, or none."""
    wait = lock_wait() if wait is None else wait
    current = load_config(paths.config_file, scope=paths.scope)
    for svc, _ in svcs:
        check_conflicts(paths, current, svc, replace)
    # Minted before the lock, and before anything is written: one failure leaves every file as it was.
    minted: dict[str, Minted] = {svc.name: mint(svc) for svc, _ in svcs} if mint else {}
    result = Result()
    with store.lock(paths, wait):
        config = load_config(paths.config_file, scope=paths.scope)
        text = _config_text(paths)
        for svc, explicit_region in svcs:
            check_conflicts(paths, config, svc, replace)
            text = cfg.render_with_service(text, svc.name, cfg.service_table(svc, explicit_region), paths.config_file)
        new_config = cfg.parse_config(text, paths.config_file)
        tokens = {store.key_of(svc): minted[svc.name].token for svc, _ in svcs if svc.name in minted}
        changes = store.plan_libpq(paths, new_config, tokens, result.notices,
                                   drop_foreign=[svc.name for svc, _ in svcs] if replace else [])
        states = dict(store.read(paths).states)
        for svc, _ in svcs:
            m = minted.get(svc.name)
            if m:
                states[svc.name] = ServiceState(store.key_str(svc), m.minted_at, m.expires_at, 
                                                 profile=getattr(m, "profile", svc.profile),
                                                 source=getattr(m, "source", None))
                result.outcomes.append(Outcome(svc.name, "renewed", m.expires_at))
            else:
                states.pop(svc.name, None)
        changes = [(paths.config_file, text.encode(), mode_of(paths.config_file, scope=paths.scope)), *changes, *store.plan_state(paths, new_config, states, now)]
        store.commit(paths, changes, new_config)
    return result


def remove(paths: Paths, name: str, now: float, wait: float | None = None) -> Result:
    """Drop `name` from the config, its service entry, and its token line unless another service shares it."""
    wait = lock_wait() if wait is None else wait
    result = Result()
    with store.lock(paths, wait):
        config = load_config(paths.config_file, scope=paths.scope)
        snap = store.read(paths)
        if name not in config.services and name not in snap.sections:
            raise store.no_such_service(paths, name)
        changes: list[store.Change] = []
        new_config = config
        if name in config.services:
            text = cfg.render_without_service(_config_text(paths), name, paths.config_file)
            new_config = cfg.parse_config(text, paths.config_file)
            changes.append((paths.config_file, text.encode(), mode_of(paths.config_file, scope=paths.scope)))
        changes += store.plan_libpq(paths, new_config, {}, result.notices)
        changes += store.plan_state(paths, new_config, snap.states, now)
        store.commit(paths, changes, new_config)
    return result


def _config_text(paths: Paths) -> str:
    data = read_bytes(paths.config_file, scope=paths.scope)
    return "" if data is None else data.decode("utf-8")
