"""The orchestration: add, remove and refresh services; returns results, never prints.

Every change to the two libpq files happens here, under pgiam's one lock, as a
read-merge-write of both files from the config (the source of truth) plus the
tokens in hand. Minting happens before the lock is taken, so a slow SSO refresh
never blocks a prompt hook; the config is re-read under the lock so a concurrent
`remove` is never undone.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from pgiam import config as config_mod
from pgiam import pgpass, servicefile
from pgiam.config import Config, Service, parse_config, render_config, service_table
from pgiam.errors import ConfigError, ExitCode, FileError, PgiamError
from pgiam.fileio import atomic_write, ensure_private_dir, locked, read_bytes, remove_stale_temps, resolve_target, write_all
from pgiam.paths import Paths
from pgiam.state import ServiceState, load_state, next_due, render_state, due_at, parse_state

Minter = Callable[[Service], "object"]  # token.mint: Service -> Minted(token, minted_at, expires_at)
ENCODING = ("utf-8", "surrogateescape")  # foreign bytes round-trip exactly, even when not UTF-8
LOCK_WAIT = float(os.environ.get("PGIAM_LOCK_WAIT", "10"))


@dataclass
class Outcome:
    name: str
    status: str  # "renewed", "fresh" (nothing to do), "failed"
    expires: float | None = None
    error: str | None = None
    hint: str | None = None
    code: ExitCode | None = None


@dataclass
class Result:
    outcomes: list[Outcome] = field(default_factory=list)
    notices: list[str] = field(default_factory=list)  # things the user should know (a tightened mode...)
    wrote: list[Path] = field(default_factory=list)

    @property
    def code(self) -> ExitCode:
        failed = [o for o in self.outcomes if o.status == "failed"]
        if not failed:
            return ExitCode.OK
        if len(failed) == len(self.outcomes) and len({o.code for o in failed}) == 1:
            return failed[0].code or ExitCode.PARTIAL
        return ExitCode.PARTIAL


def key_of(svc: Service) -> pgpass.Key:
    """libpq matches ~/.pgpass on the host name (not hostaddr) and the port it dials."""
    return pgpass.Key(svc.host, str(svc.dial_port), svc.user)


def key_str(svc: Service) -> str:
    k = key_of(svc)
    return f"{k.host}:{k.port}:{k.user}"


# ---------------------------------------------------------------- reading


def load_config(paths: Paths) -> Config:
    """The config, or an empty one when the file does not exist; reading creates nothing."""
    return config_mod.load_config(paths.config_file)


def _decode(data: bytes | None) -> str:
    return "" if data is None else data.decode(*ENCODING)


def _encode(text: str) -> bytes:
    return text.encode(*ENCODING)


def service_entry(svc: Service, sslrootcert: str) -> servicefile.Entry:
    """The keys libpq needs: the real endpoint in `host` (certificate and ~/.pgpass match), hostaddr for `via`."""
    keys: list[tuple[str, str]] = [("host", svc.host)]
    if svc.via:
        keys.append(("hostaddr", svc.via.addr))
    keys.append(("port", str(svc.dial_port)))
    keys.append(("user", svc.user))
    if svc.dbname:
        keys.append(("dbname", svc.dbname))
    keys.append(("sslmode", "verify-full"))
    keys.append(("sslrootcert", sslrootcert))
    if svc.require_auth:
        keys.append(("require_auth", "password"))
    return servicefile.Entry(svc.name, keys)


def default_sslrootcert(paths: Paths, svc: Service) -> str:
    """The managed bundle of the service's partition, as an absolute path."""
    from pgiam import certs

    return str(certs.bundle_path(paths, certs.partition_for_region(svc.region)))


def due_services(config: Config, states: dict[str, ServiceState], names: Iterable[str], now: float) -> list[str]:
    """Services whose token is missing, written for other settings, or within the renewal margin."""
    margin = config.defaults.renewal_margin
    out = []
    for n in names:
        s = states.get(n)
        if s is None or s.key != key_str(config.services[n]) or now >= due_at(s, margin):
            out.append(n)
    return out


# ---------------------------------------------------------------- writing (always under the lock)


def _plan(paths: Paths, config: Config, new_tokens: dict[pgpass.Key, str], result: Result,
          drop_foreign: Iterable[str] = ()) -> list[tuple[Path, bytes, int]]:
    """The writes that bring pgiam's blocks in both libpq files in line with `config` and the tokens."""
    for p in (paths.pgpass, paths.service_file, paths.state_file, paths.config_file, paths.next_due_file):
        remove_stale_temps(p)
    changes: list[tuple[Path, bytes, int]] = []
    # ~/.pgpass
    data = read_bytes(paths.pgpass)
    text = _decode(data)
    current = pgpass.parse_tokens(text)
    wanted = {key_of(s) for s in config.services.values()}
    tokens = {k: new_tokens.get(k) or current[k] for k in wanted if k in new_tokens or k in current}
    new_text = pgpass.merge(text, tokens)
    loose = False
    if data is not None:
        st = os.stat(resolve_target(paths.pgpass))
        if not stat.S_ISREG(st.st_mode):
            raise FileError(f"{paths.pgpass} is not a regular file", f"move {paths.pgpass} out of the way")
        loose = bool(st.st_mode & 0o077)
    if new_text != text or loose or (data is None and tokens):
        changes.append((paths.pgpass, _encode(new_text), 0o600))
        if loose:
            result.notices.append(
                f"{paths.pgpass} was readable by group/others (libpq ignores such a file); pgiam made it 0600"
            )
    # ~/.pg_service.conf
    data = read_bytes(paths.service_file)
    text = _decode(data)
    entries = [
        service_entry(s, s.sslrootcert or default_sslrootcert(paths, s))
        for _, s in sorted(config.services.items())
    ]
    new_text = servicefile.merge(text, entries, drop_foreign)
    if new_text != text:
        mode = stat.S_IMODE(os.stat(resolve_target(paths.service_file)).st_mode) if data is not None else 0o600
        changes.append((paths.service_file, _encode(new_text), mode))
    return changes


def _commit(changes: list[tuple[Path, bytes, int]], result: Result) -> None:
    result.wrote += write_all(changes)


def _save_state(paths: Paths, config: Config, states: dict[str, ServiceState], now: float) -> None:
    states = {n: s for n, s in states.items() if n in config.services}
    ensure_private_dir(paths.state_dir)
    new = render_state(states)
    if read_bytes(paths.state_file) != new:
        atomic_write(paths.state_file, new, 0o600)
    due = next_due(states, list(config.services), config.defaults.renewal_margin)
    if due is None:
        try:
            os.unlink(paths.next_due_file)
        except FileNotFoundError:
            pass
        return
    # Always rewritten, even when unchanged: its mtime tells the fast path (pgiam.entry) that it is
    # at least as new as the config.
    atomic_write(paths.next_due_file, f"{due}\n".encode(), 0o600)


def _set_notice(paths: Paths, failures: list[Outcome]) -> None:
    """One line for the next prompt when a refresh failed for credentials; gone after a success."""
    auth = [o for o in failures if o.code == ExitCode.AUTH]
    if auth:
        o = auth[0]
        line = f"pgiam: {o.error}" + (f"; {o.hint}" if o.hint else "")
        atomic_write(paths.notice_file, (line.replace("\n", " ") + "\n").encode(), 0o600)
    elif not failures:
        try:
            os.unlink(paths.notice_file)
        except FileNotFoundError:
            pass


# ---------------------------------------------------------------- operations


def refresh(paths: Paths, now: float, mint: Minter, names: list[str] | None = None,
            if_needed: bool = False, wait: float = LOCK_WAIT) -> Result:
    """Mint tokens for `names` (all services by default; with if_needed only the due ones) and write them."""
    config = load_config(paths)
    selected = list(names) if names else list(config.services)
    for n in selected:
        if n not in config.services:
            raise ConfigError(f"no service named {n!r} in {paths.config_file}", "see `pgiam list` for the configured services")
    states = load_state(paths.state_file) if if_needed else {}
    due = due_services(config, states, selected, now) if if_needed else selected
    result = Result()
    if not due:  # the fast path: nothing minted, nothing written, botocore never imported
        result.outcomes = [Outcome(n, "fresh", states[n].expires) for n in selected]
        return result
    minted: dict[pgpass.Key, object] = {}
    failures: dict[pgpass.Key, PgiamError] = {}
    for n in due:
        svc = config.services[n]
        k = key_of(svc)
        if k in minted or k in failures:  # services sharing a line share a token
            continue
        try:
            minted[k] = mint(svc)
        except PgiamError as err:
            failures[k] = err
    with locked(paths.lock_file, 0 if if_needed else wait):
        config = load_config(paths)  # a concurrent add/remove may have changed it while we minted
        _commit(_plan(paths, config, {k: m.token for k, m in minted.items()}, result), result)
        states = load_state(paths.state_file)
        for n in due:
            svc = config.services.get(n)
            if svc is None:
                continue
            k = key_of(svc)
            old = states.get(n)
            if k in minted:
                m = minted[k]
                states[n] = ServiceState(key_str(svc), m.minted_at, m.expires_at)
                result.outcomes.append(Outcome(n, "renewed", m.expires_at))
            elif k in failures:
                err = failures[k]
                states[n] = ServiceState(
                    key_str(svc),
                    old.minted if old and old.key == key_str(svc) else None,
                    old.expires if old and old.key == key_str(svc) else None,
                    err.message, err.hint, now,
                )
                result.outcomes.append(Outcome(n, "failed", states[n].expires, err.message, err.hint, err.code))
        for n in selected:
            if n not in due and n in config.services and n in states:
                result.outcomes.append(Outcome(n, "fresh", states[n].expires))
        _save_state(paths, config, states, now)
        _set_notice(paths, [o for o in result.outcomes if o.status == "failed"])
    return result


def add(paths: Paths, svc: Service, explicit_region: bool, now: float, mint: Minter | None,
        replace: bool = False, wait: float = LOCK_WAIT) -> Result:
    """Save `svc` in the config, write its service entry and (unless mint is None) a fresh token."""
    check_add_conflicts(paths, load_config(paths), svc, replace)
    m = mint(svc) if mint else None  # before the lock, and before anything is written
    result = Result()
    with locked(paths.lock_file, wait):
        config = load_config(paths)
        check_add_conflicts(paths, config, svc, replace)
        raw = dict(config.raw)
        raw["services"] = dict(raw.get("services", {}))
        raw["services"][svc.name] = service_table(svc, explicit_region)
        new_config = parse_config(render_config(raw), paths.config_file)
        changes = _plan(paths, new_config, {key_of(svc): m.token} if m else {}, result,
                        drop_foreign=[svc.name] if replace else [])
        ensure_private_dir(paths.config_dir)
        _commit([(paths.config_file, render_config(raw).encode(), 0o600), *changes], result)
        states = load_state(paths.state_file)
        if m:
            states[svc.name] = ServiceState(key_str(svc), m.minted_at, m.expires_at)
            result.outcomes.append(Outcome(svc.name, "renewed", m.expires_at))
        else:
            states.pop(svc.name, None)
        _save_state(paths, new_config, states, now)
    return result


def check_add_conflicts(paths: Paths, config: Config, svc: Service, replace: bool) -> None:
    """Refuse a name the config or a foreign service-file section already uses, unless `replace`."""
    if replace:
        return
    if svc.name in config.services:
        raise ConfigError(
            f"service {svc.name!r} already exists in {paths.config_file}",
            f"use `pgiam add {svc.name} --replace ...` to change it, or `pgiam remove {svc.name}` first",
        )
    text = _decode(read_bytes(paths.service_file))
    for sec in servicefile.foreign_sections(text):
        if sec.name == svc.name:
            raise ConfigError(
                f"{paths.service_file}:{sec.line}: a section [{svc.name}] that pgiam does not manage already exists",
                f"pick another name, or pass --replace to let pgiam take over [{svc.name}] (your section is removed)",
            )


def remove(paths: Paths, name: str, now: float, wait: float = LOCK_WAIT) -> Result:
    """Drop `name` from the config, its service entry, and its token line unless another service shares it."""
    result = Result()
    with locked(paths.lock_file, wait):
        config = load_config(paths)
        managed = servicefile.managed_names(_decode(read_bytes(paths.service_file)))
        if name not in config.services and name not in managed:
            raise ConfigError(f"no service named {name!r} in {paths.config_file}", "see `pgiam list` for the configured services")
        raw = dict(config.raw)
        raw["services"] = {k: v for k, v in raw.get("services", {}).items() if k != name}
        if not raw["services"]:
            del raw["services"]
        new_config = parse_config(render_config(raw), paths.config_file)
        changes = _plan(paths, new_config, {}, result)
        if config.raw != raw:
            changes.insert(0, (paths.config_file, render_config(raw).encode(), 0o600))
        _commit(changes, result)
        _save_state(paths, new_config, load_state(paths.state_file), now)
    return result


def status(paths: Paths) -> tuple[Config, dict[str, ServiceState]]:
    """Config and state, for `pgiam status` / `pgiam list`; reads only."""
    return load_config(paths), parse_state(read_bytes(paths.state_file))
