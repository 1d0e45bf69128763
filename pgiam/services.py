"""Adding and removing services: build a Service from what the user gave, TLS defaults, conflicts,
and the all-or-nothing write of config, both libpq files and state. Returns results; never prints."""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path

from pgiam import config as cfg
from pgiam import servicefile, store
from pgiam.config import Config, Service, load_config
from pgiam.errors import ConfigError, EnvironmentProblem, UsageError
from pgiam.fileio import locked, read_bytes
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


def build(paths: Paths, a: ServiceArgs, current: Config) -> Service:
    """Validate the arguments into a Service; the region comes from --region, the host name, or [defaults]."""
    name = cfg.check_name(a.name)
    host = cfg.check_host(a.host)
    region = cfg.check_region(a.region) if a.region else (cfg.infer_region(host) or current.defaults.region)
    if not region:
        raise UsageError(f"cannot tell the AWS region of {host}", "pass --region (e.g. --region us-east-1)")
    return Service(
        name=name,
        host=host,
        port=cfg.check_port(a.port),
        user=cfg.check_text("user", a.user),
        dbname=cfg.check_text("dbname", a.dbname) if a.dbname is not None else None,
        region=region,
        profile=cfg.check_profile(a.profile) if a.profile else None,
        via=cfg.parse_via(a.via) if a.via else None,
        sslrootcert=cfg.check_path("sslrootcert", os.path.abspath(a.sslrootcert)) if a.sslrootcert else None,
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
    if svc.sslrootcert is None:
        if cfg.is_proxy_host(svc.host):
            root = certs.proxy_sslrootcert(version)
        else:
            root = str(certs.ensure_bundle(paths, certs.partition_for_region(svc.region)))
        svc = dataclasses.replace(svc, sslrootcert=root)
    keys = dict(store.service_entry(svc, svc.sslrootcert or "").keys)
    if version is not None:
        libpq.check_service_keys(keys, version)
    extra = sorted(set(keys) - libpq.JDBC_SAFE_KEYS)
    if extra or keys.get("sslrootcert") == "system":
        what = ", ".join(extra) or "sslrootcert=system"
        notices.append(f"{svc.name} uses {what}: JDBC clients (pgJDBC: DataGrip, IntelliJ...) cannot use this service entry")
    return svc


def check_conflicts(paths: Paths, config: Config, svc: Service, replace: bool) -> None:
    """Refuse a name the config or a foreign service-file section already uses, unless `replace`."""
    if replace:
        return
    if svc.name in config.services:
        raise ConfigError(
            f"service {svc.name!r} already exists in {paths.config_file}",
            f"use `pgiam add {svc.name} --replace ...` to change it, or `pgiam remove {svc.name}` first",
        )
    text = store.decode(read_bytes(paths.service_file))
    with store.naming(paths.service_file):
        sections = servicefile.foreign_sections(text)
    for sec in sections:
        if sec.name == svc.name:
            raise ConfigError(
                f"{paths.service_file}:{sec.line}: a section [{svc.name}] that pgiam does not manage already exists",
                f"pick another name, or pass --replace to let pgiam take over [{svc.name}] (your section is removed)",
            )


def add(paths: Paths, svc: Service, explicit_region: bool, now: float, mint: Minter | None,
        replace: bool = False, wait: float | None = None) -> Result:
    """Save `svc` in the config, write its service entry and (unless mint is None) a fresh token: all or nothing."""
    wait = lock_wait() if wait is None else wait
    check_conflicts(paths, load_config(paths.config_file), svc, replace)
    m: Minted | None = mint(svc) if mint else None  # before the lock, and before anything is written
    result = Result()
    with locked(paths.lock_file, wait):
        config = load_config(paths.config_file)
        check_conflicts(paths, config, svc, replace)
        text = _set_service_text(_config_text(paths), cfg.service_table(svc, explicit_region), svc.name)
        new_config = cfg.parse_config(text, paths.config_file)
        changes = store.plan_libpq(paths, new_config, {store.key_of(svc): m.token} if m else {}, result.notices,
                                   drop_foreign=[svc.name] if replace else [])
        states = dict(store.read(paths).states)
        if m:
            states[svc.name] = ServiceState(store.key_str(svc), m.minted_at, m.expires_at, profile=svc.profile)
            result.outcomes.append(Outcome(svc.name, "renewed", m.expires_at))
        else:
            states.pop(svc.name, None)
        changes = [(paths.config_file, text.encode(), 0o600), *changes, *store.plan_state(paths, new_config, states, now)]
        store.commit(paths, changes, new_config)
    return result


def remove(paths: Paths, name: str, now: float, wait: float | None = None) -> Result:
    """Drop `name` from the config, its service entry, and its token line unless another service shares it."""
    wait = lock_wait() if wait is None else wait
    result = Result()
    with locked(paths.lock_file, wait):
        config = load_config(paths.config_file)
        snap = store.read(paths)
        if name not in config.services and name not in snap.sections:
            raise store.no_such_service(paths, name)
        changes: list[store.Change] = []
        new_config = config
        if name in config.services:
            text = _remove_service_text(_config_text(paths), name)
            new_config = cfg.parse_config(text, paths.config_file)
            changes.append((paths.config_file, text.encode(), 0o600))
        changes += store.plan_libpq(paths, new_config, {}, result.notices)
        changes += store.plan_state(paths, new_config, snap.states, now)
        store.commit(paths, changes, new_config)
    return result


def _config_text(paths: Paths) -> str:
    data = read_bytes(paths.config_file)
    return "" if data is None else data.decode("utf-8")


def _set_service_text(text: str, table: dict[str, object], name: str) -> str:
    """Interim: config text with [services.NAME] set (rewrites the file through tomli-w)."""
    raw = cfg.parse_config(text, Path("config.toml")).raw if text else {}
    raw = dict(raw)
    raw["services"] = dict(raw.get("services", {}))
    raw["services"][name] = table
    return cfg.render_config(raw)


def _remove_service_text(text: str, name: str) -> str:
    """Interim: config text without [services.NAME]."""
    raw = dict(cfg.parse_config(text, Path("config.toml")).raw)
    raw["services"] = {k: v for k, v in raw.get("services", {}).items() if k != name}
    if not raw["services"]:
        del raw["services"]
    return cfg.render_config(raw)
