"""pgiam's managed files as one store: both libpq files, the config, the state and next-due.

Reading gives a `Snapshot` (what the files say now); writing is a list of `Change`s computed by
pure merges from the config and the tokens in hand, committed all-or-nothing by fileio.write_all
under pgiam's one lock. Nothing here prints or mints.
"""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from pgiam import block, facts, freshness, pgpass, servicefile, tokeninfo
from pgiam.bulk import no_gc
from pgiam.config import Config, Service
from pgiam.errors import ConfigError, FileError
from pgiam.fileio import read_bytes, remove_stale_temps, resolve_target, write_all
from pgiam.paths import Paths
from pgiam.facts import render_next_due
from pgiam.state import ServiceState, next_due, parse_state, render_state

ENCODING = ("utf-8", "surrogateescape")  # foreign bytes round-trip exactly, even when not UTF-8

Change = tuple[Path, bytes, int]


def decode(data: bytes | None) -> str:
    return "" if data is None else data.decode(*ENCODING)


def encode(text: str) -> bytes:
    return text.encode(*ENCODING)


def no_such_service(paths: Paths, name: str) -> ConfigError:
    """The one "no service named" error."""
    return ConfigError(f"no service named {name!r} in {paths.config_file}", "see `pgiam list` for the configured services")


def select(paths: Paths, config: Config, names: Iterable[str] | None) -> list[str]:
    """The services named (all when None or empty), each checked to exist."""
    chosen = list(names or ())
    for n in chosen:
        if n not in config.services:
            raise no_such_service(paths, n)
    return chosen or list(config.services)


def key_of(svc: Service) -> pgpass.Key:
    """libpq matches ~/.pgpass on the host name (not hostaddr) and the port it dials."""
    return pgpass.Key(svc.host, str(svc.dial_port), svc.user)


def key_str(svc: Service) -> str:
    """key_of(svc) as state.json notes it: `host:port:user`."""
    return f"{svc.host}:{svc.dial_port}:{svc.user}"


Identity = tuple[str, int, int, str, str, "str | None", "str | None"]


def identity(svc: Service, config: Config) -> Identity:
    """What a token is minted for: endpoint, dialled port, user, region and the signing profile. A token
    is written only under the identity it was minted for (issue 20)."""
    return (svc.host, svc.port, svc.dial_port, svc.user, svc.region, svc.profile or config.defaults.profile,
            svc.aws_credentials_file)


def state_of(svc: Service, states: Mapping[str, ServiceState]) -> ServiceState | None:
    """The state row of `svc`, only if it was written for this service's host, port and user."""
    s = states.get(svc.name)
    return s if s is not None and s.key == key_str(svc) else None


def service_entry(svc: Service, sslrootcert: str) -> servicefile.Entry:
    """The keys libpq needs: the real endpoint in `host` (certificate and ~/.pgpass match), hostaddr for `via`."""
    names, values = _entry(svc, sslrootcert)
    return servicefile.Entry(svc.name, list(zip(names, values)))


_USUAL = ("host", "port", "user", "dbname", "sslmode", "sslrootcert")


def _entry(svc: Service, sslrootcert: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """service_entry's key names and their values."""
    via, dbname, password = svc.via, svc.dbname, svc.require_auth
    if via is None and dbname and not password:  # the usual entry, without the general case's unpacking
        return _USUAL, (svc.host, str(svc.port), svc.user, dbname, "verify-full", sslrootcert)
    names = ("host", *(("hostaddr",) if via else ()), "port", "user", *(("dbname",) if dbname else ()),
             "sslmode", "sslrootcert", *(("require_auth",) if password else ()))
    values = (svc.host, *((via.addr,) if via else ()), str(svc.dial_port), svc.user, *((dbname,) if dbname else ()),
              "verify-full", sslrootcert, *(("password",) if password else ()))
    return names, values


def _sections(paths: Paths, config: Config) -> Iterator[str]:
    """Each service's section, in name order, as servicefile.render_section writes its service_entry: one
    format per set of key names (servicefile.section_format), one call per service (issue 25: 10,000)."""
    bundles: dict[str, str] = {}  # one path per partition, not one computation per service
    formats: dict[tuple[str, ...], Callable[[str, Sequence[str]], str]] = {}
    for _, svc in sorted(config.services.items()):
        names, values = _entry(svc, svc.sslrootcert or _bundle(paths, svc, bundles))
        render = formats.get(names) or formats.setdefault(names, servicefile.section_format(names))
        yield render(svc.name, values)


def default_sslrootcert(paths: Paths, svc: Service) -> str:
    """The managed bundle of the service's partition, as an absolute path."""
    from pgiam import certs

    return str(certs.bundle_path(paths, certs.partition_for_region(svc.region)))


Stamp = list[int] | None  # a file's identity as pgiam.facts.config_stamp takes it; None when it is absent


def stamp(path: Path) -> Stamp:
    """What tells that a file changed since it was read (an atomic replace changes the inode, an edit in
    place the size or the mtime): the identity the token index already uses for the config."""
    return facts.config_stamp(str(path))


@dataclass(frozen=True)
class Snapshot:
    """What the files say right now: each read and parsed once per command (issue 25), then passed down."""

    pgpass_text: str
    service_text: str
    parsed_tokens: dict[pgpass.Key, str] | None  # None: parsed from pgpass_text when first asked for
    parsed_sections: frozenset[str] | None  # likewise, from service_text
    states: dict[str, ServiceState]
    state_data: bytes | None = None  # state.json as read, to tell whether a new one changes anything
    pgpass_exists: bool = False
    service_file_exists: bool = False
    stamps: tuple[Stamp, ...] = ()  # of ~/.pgpass, the service file and state.json, taken before reading them
    decoded: dict[pgpass.Key, tokeninfo.TokenInfo | None] = field(default_factory=dict, compare=False, repr=False)

    @property
    def tokens(self) -> dict[pgpass.Key, str]:
        """The tokens in pgiam's block of the password file, by key: parsed when first asked for (`refresh
        NAME` rewrites one line without reading the others, issue 25)."""
        if self.parsed_tokens is None:
            object.__setattr__(self, "parsed_tokens", pgpass.parse_tokens(self.pgpass_text))  # a cache
        assert self.parsed_tokens is not None
        return self.parsed_tokens

    @property
    def sections(self) -> frozenset[str]:
        """Names of pgiam's sections in the service file, read when first asked for."""
        if self.parsed_sections is None:
            object.__setattr__(self, "parsed_sections", frozenset(servicefile.managed_names(self.service_text)))
        assert self.parsed_sections is not None
        return self.parsed_sections

    def info(self, svc: Service) -> tokeninfo.TokenInfo | None:
        """The decoded token the password file holds for `svc`: tokens are decoded only for the services a
        command asks about, each once (issue 25)."""
        return self.info_at(key_of(svc))

    def info_at(self, k: pgpass.Key) -> tokeninfo.TokenInfo | None:
        """info() by the password file's key."""
        if k not in self.decoded:
            self.decoded[k] = tokeninfo.try_decode(self.tokens.get(k))
        return self.decoded[k]


@contextlib.contextmanager
def naming(path: Path) -> Iterator[None]:
    """A damaged pgiam block (BEGIN line without END line) reported with the file's path."""
    try:
        yield
    except block.Damaged as err:
        raise err.at(path) from None


def _stamps(paths: Paths) -> tuple[Stamp, ...]:
    return stamp(paths.pgpass), stamp(paths.service_file), stamp(paths.state_file)


@no_gc
def read(paths: Paths) -> Snapshot:
    stamps = _stamps(paths)  # before reading: a change made while reading shows as a changed stamp later
    pg_data = read_bytes(paths.pgpass, scope=paths.scope)
    sv_data = read_bytes(paths.service_file, scope=paths.scope)
    state_data = read_bytes(paths.state_file, scope=paths.scope)
    pg, sv = decode(pg_data), decode(sv_data)
    # A damaged block is refused here, before anything is minted; the lines are parsed when asked for.
    with naming(paths.pgpass):
        block.check(pg, pgpass.BEGIN_LINE, pgpass.END_LINE, pgpass.WHAT)
    with naming(paths.service_file):
        block.check(sv, servicefile.BEGIN_LINE, servicefile.END_LINE, servicefile.WHAT)
    return Snapshot(pg, sv, None, None, parse_state(state_data), state_data, pg_data is not None,
                    sv_data is not None, stamps)


def reread(paths: Paths, snap: Snapshot) -> Snapshot:
    """`snap` while no file changed since it was read (the usual case: nothing is read twice), else a new read.

    Called under the write lock: another pgiam may have written while this one was minting.
    """
    return snap if _stamps(paths) == snap.stamps else read(paths)


def load(paths: Paths) -> tuple[Config, Stamp]:
    """The config, with the stamp it was read at."""
    from pgiam.config import load_config

    at = stamp(paths.config_file)
    return load_config(paths.config_file, scope=paths.scope), at


def reload(paths: Paths, config: Config, at: Stamp) -> tuple[Config, Stamp]:
    """`config` again while config.toml is unchanged since `at`, else the file read anew (a concurrent
    `add` or `remove` must never be undone)."""
    return (config, at) if stamp(paths.config_file) == at else load(paths)


def verdict(svc: Service, snap: Snapshot, now: float, margin: int,
            info: tokeninfo.TokenInfo | None = None) -> freshness.Verdict:
    """The freshness rule applied to the token the password file holds for `svc` (`info`: that token
    already decoded, None to decode it here)."""
    k = key_of(svc)
    token = snap.tokens.get(k)
    if info is None:
        info = snap.info_at(k)
    st = state_of(svc, snap.states)
    # pgiam's note of the credentials' expiry applies only to the very token it wrote.
    creds = st.expires if st is not None and info is not None and st.minted == info.signed_at else None
    port = None if info is not None and info.service == "dsql" else svc.port
    user = None if info is not None and info.service == "dsql" else svc.user
    return freshness.judge(now, info, host=svc.host, port=port, user=user, region=svc.region, margin=margin,
                           credentials_expire=creds, malformed=token is not None and info is None)


def reconcile(svc: Service, snap: Snapshot, v: freshness.Verdict,
              info: tokeninfo.TokenInfo | None = None) -> ServiceState | None:
    """A state row that agrees with the file: a token pgiam did not note (a restored backup) is noted,
    and a token that is gone or unusable is forgotten; failures are kept. (`info`: as for verdict.)"""
    st = state_of(svc, snap.states)
    if info is None:
        info = snap.info(svc)
    if info is None or v.reason in ("mismatch", "future"):
        return replace(st, minted=None, expires=None) if st is not None else None
    if st is not None and st.minted == info.signed_at:
        return st
    return replace(st or ServiceState(key_str(svc)), minted=info.signed_at, expires=v.expires)


@no_gc
def plan_libpq(paths: Paths, config: Config, new_tokens: Mapping[pgpass.Key, str], notices: list[str],
               drop_foreign: Iterable[str] = (), snap: Snapshot | None = None) -> list[Change]:
    """The writes that bring pgiam's blocks in both libpq files in line with `config` and the tokens.

    `snap`: the files as this command read them (read here when not given).
    """
    for p in (paths.pgpass, paths.service_file, paths.state_file, paths.config_file, paths.next_due_file):
        remove_stale_temps(p, scope=paths.scope)
    if snap is None:
        snap = read(paths)
    changes: list[Change] = []
    text = snap.pgpass_text
    wanted = {key_of(s) for s in config.services.values()}
    with naming(paths.pgpass):
        # The lines of the new tokens rewritten in place when the block is as merge writes it (issue 25)...
        new_text = pgpass.merge_some(text, new_tokens, wanted)
        tokens: Mapping[pgpass.Key, str] = new_tokens
        if new_text is None:  # ...else every line written anew
            current = snap.tokens
            tokens = {k: new_tokens.get(k) or current[k] for k in wanted if k in new_tokens or k in current}
            new_text = pgpass.merge(text, tokens)
    loose = False
    if snap.pgpass_exists:
        st = os.stat(resolve_target(paths.pgpass, scope=paths.scope))
        if not stat.S_ISREG(st.st_mode):
            raise FileError(f"{paths.pgpass} is not a regular file", f"point PGPASSFILE at a regular file, or move {paths.pgpass} away")
        loose = bool(st.st_mode & 0o077)
        if st.st_nlink > 1:
            # A rename replaces one name only: the file's other hard links keep the old contents.
            notices.append(f"{paths.pgpass} has {st.st_nlink - 1} other hard link(s); pgiam replaces the file, so "
                           "those names keep the old tokens (use a symlink to share it)")
    if new_text != text or loose or (not snap.pgpass_exists and tokens):
        changes.append((paths.pgpass, encode(new_text), 0o600))
        if loose:
            notices.append(f"{paths.pgpass} was readable by group/others (libpq ignores such a file); pgiam made it 0600")
    text = snap.service_text
    with naming(paths.service_file):
        new_text = servicefile.merge(text, _sections(paths, config), drop_foreign)
    if new_text != text:
        exists = snap.service_file_exists
        mode = stat.S_IMODE(os.stat(resolve_target(paths.service_file, scope=paths.scope)).st_mode) if exists else 0o600
        if exists and (n := os.stat(resolve_target(paths.service_file, scope=paths.scope)).st_nlink) > 1:
            notices.append(f"{paths.service_file} has {n - 1} other hard link(s); pgiam replaces the file, so "
                           "those names keep the old entries (use a symlink to share it)")
        changes.append((paths.service_file, encode(new_text), mode))
    return changes


def _bundle(paths: Paths, svc: Service, known: dict[str, str]) -> str:
    """default_sslrootcert, remembered per region in `known`."""
    if svc.region not in known:
        known[svc.region] = default_sslrootcert(paths, svc)
    return known[svc.region]


@no_gc
def plan_state(paths: Paths, config: Config, states: Mapping[str, ServiceState], now: float,
               force: bool = False, snap: Snapshot | None = None) -> list[Change]:
    """state.json and next-due for `states` (rows of removed services dropped), when they change.

    next-due is rewritten whenever anything else is written (`force`), and whenever it is older than
    the config or either libpq file: its mtime tells the fast path (pgiam.entry) and the prompt
    hooks that pgiam judged those files after their last change.
    """
    kept = {n: s for n, s in states.items() if n in config.services}
    changes: list[Change] = []
    new = render_state(kept)
    if (snap.state_data if snap is not None else read_bytes(paths.state_file, scope=paths.scope)) != new:
        changes.append((paths.state_file, new, 0o600))
    due = next_due(kept, list(config.services), config.defaults.renewal_margin, now)
    if due is not None:
        data = render_next_due(due, config.defaults.renewal_margin)
        if force or changes or read_bytes(paths.next_due_file, scope=paths.scope) != data or _stale(paths):
            changes.append((paths.next_due_file, data, 0o600))
    return changes


def _stale(paths: Paths) -> bool:
    """Is next-due missing, or not newer than the config and both libpq files?"""
    try:
        due = os.stat(paths.next_due_file).st_mtime_ns
    except OSError:
        return True
    for p in (paths.config_file, paths.pgpass, paths.service_file):
        try:
            if os.stat(p).st_mtime_ns > due:  # the same clock tick counts as older, as in pgiam.entry
                return True
        except FileNotFoundError:
            continue
    return False


def commit(paths: Paths, changes: list[Change], config: Config) -> list[Path]:
    """Write all changes or none (fileio.write_all rolls back, and its journal lets the next command
    undo a commit cut by a kill), creating pgiam's directories first. Call holding the lock."""
    from pgiam.fileio import ensure_private_dir, no_interrupts

    if not changes and config.services:
        return []
    ensure_private_dir(paths.state_dir, scope=paths.scope)  # the journal lives there
    if any(p == paths.config_file for p, _, _ in changes):
        ensure_private_dir(paths.config_dir, scope=paths.scope)
    with no_interrupts():  # the writes, a rollback and the next-due removal are never cut in half
        extra: list[tuple[Path, bytes | None, int]] = []
        if not config.services:  # no services: nothing is ever due, and the hooks stay silent
            extra.append((paths.next_due_file, None, 0o600))
        return write_all([*changes, *extra], journal=paths.journal_file, scope=paths.scope)


def _beside(paths: Paths) -> list[Path]:
    """The files next to which a killed pgiam may leave temp files (some hold tokens)."""
    from pgiam.fileio import MARKER

    return [paths.pgpass, paths.service_file, paths.config_file, paths.state_file, paths.next_due_file,
            paths.notice_file, paths.token_index, *(d / MARKER for d in [*paths.own_dirs, paths.mint_dir])]


def recover(paths: Paths) -> list[Path]:
    """Undo a commit a killed pgiam left half-done and remove the temp files dead writers left behind;
    every command does this first. Returns the files put back. Takes the lock only when there is
    something to do; a busy lock leaves it to its holder (whose `lock` does it)."""
    from pgiam.errors import LockedError
    from pgiam.fileio import stale_temps

    if not os.path.isdir(paths.state_dir):
        return []  # the lock lives there, and so would a journal: nothing write_all left
    if not os.path.lexists(paths.journal_file) and not any(stale_temps(p, scope=paths.scope) for p in [*_beside(paths), paths.journal_file]):
        return []
    try:
        with lock(paths, 0) as put_back:
            return put_back
    except LockedError:
        return []


@contextlib.contextmanager
def lock(paths: Paths, wait: float) -> Iterator[list[Path]]:
    """Hold pgiam's one lock, having first undone a commit a killed pgiam left half-done (the files
    put back are yielded)."""
    from pgiam.fileio import locked, recover as undo

    with locked(paths.lock_file, wait, scope=paths.scope):
        yield undo(paths.journal_file, _beside(paths), scope=paths.scope)
