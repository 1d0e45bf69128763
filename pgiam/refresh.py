"""The refresh operation: judge each token from the files and the clock, mint what is due, write it.

Minting happens in the mint slot (pgiam.minting) and before the write lock is taken, so a slow SSO
refresh never blocks a prompt hook's write; the config is re-read under the write lock so a
concurrent `remove` is never undone. Returns a typed result; never prints.
"""

from __future__ import annotations

import contextlib
import os
import queue
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Protocol

from pgiam import freshness, minting, store
from pgiam.config import Config, Service, load_config
from pgiam.errors import ExitCode, LockedError, PgiamError, UsageError
from pgiam.fileio import atomic_write
from pgiam.paths import Paths
from pgiam.state import ServiceState


class Minted(Protocol):
    """What a minter returns (token.Minted): the token, its signing time and effective expiry."""

    @property
    def token(self) -> str: ...
    @property
    def minted_at(self) -> float: ...
    @property
    def expires_at(self) -> float: ...


Minter = Callable[[Service], Minted]


def lock_wait() -> float:
    """PGIAM_LOCK_WAIT: how long a hand-run command waits for the lock or another minter (default 10 s)."""
    raw = os.environ.get("PGIAM_LOCK_WAIT", "10")
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not 0 <= value <= 3600 or value != value:
        raise UsageError(f"PGIAM_LOCK_WAIT={raw!r} is not a number of seconds", "set PGIAM_LOCK_WAIT to a number from 0 to 3600, or unset it")
    return value


@dataclass(frozen=True)
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

    @property
    def code(self) -> ExitCode:
        failed = [o for o in self.outcomes if o.status == "failed"]
        if not failed:
            return ExitCode.OK
        if len(failed) == len(self.outcomes) and len({o.code for o in failed}) == 1:
            return failed[0].code or ExitCode.PARTIAL
        return ExitCode.PARTIAL


def _due(config: Config, snap: store.Snapshot, names: list[str], now: float,
         lead: Mapping[str, float] | None = None) -> dict[str, freshness.Verdict]:
    """The services whose token the files and the clock say is due; a recent failure backs off.

    lead: seconds before its due time a service counts as due already (`pgiam run`'s jitter)."""
    margin = config.defaults.renewal_margin
    out = {}
    for n in names:
        svc = config.services[n]
        v = store.verdict(svc, snap, now, margin)
        if not v.due and v.reason == "fresh" and lead and now >= v.due_at - lead.get(n, 0.0):
            v = freshness.Verdict(True, "renew", v.expires, v.due_at)
        if not v.due and n not in snap.sections:
            v = freshness.Verdict(True, "missing", v.expires)  # the section was deleted: rewrite it, with a new token
        st = store.state_of(svc, snap.states)
        if v.due and st is not None and st.error and st.failed_at is not None and st.failed_at <= now \
                and now < freshness.retry_at(st.failed_at, st.failures or 1) and v.reason == "renew":
            continue  # a failed refresh is retried with backoff, not at every prompt
        if v.due:
            out[n] = v
    return out


def refresh(paths: Paths, now: float, mint: Minter, names: list[str] | None = None,
            if_needed: bool = False, wait: float | None = None, lead: Mapping[str, float] | None = None) -> Result:
    """Mint tokens for `names` (all services by default; with if_needed only the due ones) and write them.

    wait: how long to wait for another minter or the write lock (None: PGIAM_LOCK_WAIT). With
    if_needed and wait 0 (hooks, timers), a mint already in progress makes this return at once.
    lead: with if_needed, seconds ahead of its due time each named service is renewed (a jitter that
    spreads a fleet's renewals before they are due, never after).
    Each file is read and parsed once; under the write lock, only a file that changed meanwhile is
    read again (issue 25).
    """
    wait = lock_wait() if wait is None else wait
    config, at = store.load(paths)
    selected = store.select(paths, config, names)
    result = Result()
    if not config.services:
        return result
    snap = store.read(paths)
    due = _due(config, snap, selected, now, lead) if if_needed else {n: freshness.Verdict(True, "renew") for n in selected}
    minted: dict[str, Minted] = {}
    failures: dict[str, PgiamError] = {}
    seen = _Seen(config, at, snap)
    if due:
        slots = _Slots(paths, wait, if_needed, now, seen)

        def early(ids: dict[str, store.Identity]) -> None:
            """Write the tokens minted so far while other identities are still at work (a hung helper holds
            only its own services); their failures are recorded once, by the last write."""
            with slots.lock, contextlib.suppress(LockedError):  # a busy lock: the last write does it
                _write(paths, slots.clock(), selected, dict(minted), {}, Result([], result.notices), 0, seen, dict(ids), [],
                       notice=False)

        for _ in range(2):  # a service that changed while it was minted is judged (and minted) again, once
            with slots.round():  # each identity's slot is held until the files are written
                ids = _mint(slots, due, mint, minted, failures, early)
                now = slots.clock()  # after waiting for another minter: the time it is now
                changed: list[str] = []
                result.outcomes = []
                _write(paths, now, selected, minted, failures, result, wait if minted or not if_needed else 0, seen,
                       ids, changed)
            if not changed:
                break
            seen.current(paths)
            margin = seen.config.defaults.renewal_margin
            for n in changed:
                minted.pop(n, None)
                failures.pop(n, None)
            due = {n: v for n in changed if n in seen.config.services
                   for v in [store.verdict(seen.config.services[n], seen.snap, now, margin)] if v.due}
            if not due:
                break
        if slots.busy:  # a background caller: the other minters write those; step aside as before (exit 6)
            raise slots.busy[0]
    elif _plan(paths, now, selected, {}, {}, Result(), seen):  # nothing minted; anything to bring in line?
        with contextlib.suppress(LockedError):  # a busy lock just means someone else is writing
            _write(paths, now, selected, minted, failures, result, 0 if if_needed else wait, seen)
    else:
        result.outcomes = [Outcome(n, "fresh", v.expires) for n in selected
                           for v in [store.verdict(config.services[n], snap, now, config.defaults.renewal_margin)]]
    return result


@dataclass
class _Seen:
    """The config and the files as this refresh read them, passed down instead of read again."""

    config: Config
    at: store.Stamp  # config.toml's stamp when it was read
    snap: store.Snapshot

    def current(self, paths: Paths) -> None:
        """Under the write lock: read again only what changed since it was read (a concurrent add/remove)."""
        self.config, self.at = store.reload(paths, self.config, self.at)
        self.snap = store.reread(paths, self.snap)


class _Slots:
    """The mint slots one refresh holds (pgiam.minting), one per credential identity, and what waiting for
    one means: the files and the clock judged again for that identity's services (issue 20).

    The slots of a round are taken one after another in the order of their files, all within one wait,
    and held until the round's write: two pgiams that need the same slots never hold one each while
    waiting for the other's (a lock order; taken in parallel, they did)."""

    def __init__(self, paths: Paths, wait: float, if_needed: bool, now: float, seen: _Seen) -> None:
        self.paths, self.wait, self.if_needed, self.now, self.seen = paths, wait, if_needed, now, seen
        self.started, self.since = time.monotonic(), time.time()
        self.held = contextlib.ExitStack()
        self.waited = False
        self.busy: list[minting.MintBusy] = []  # slots another pgiam held when this caller does not wait
        self.lock = threading.Lock()  # guards `seen` across the identities' threads

    @contextlib.contextmanager
    def round(self) -> Iterator[None]:
        """Release the slots taken in the block when it ends (after the round's write)."""
        with contextlib.ExitStack() as self.held:
            yield

    def take(self, key: minting.SlotKey, names: list[str], failures: dict[str, PgiamError], until: float) -> list[str]:
        """Hold `key`'s slot, waiting until the monotonic `until` at most; return which of `names` are still to
        be minted (all, unless another minter had it)."""
        waited = self.held.enter_context(minting.slot(self.paths, key, self.wait, until))
        with self.lock:
            if not waited:
                return names
            self.waited = True
            # another pgiam minted for this identity meanwhile: judge the files and the clock again
            self.seen.current(self.paths)
            now = self.now + time.monotonic() - self.started
            again = _after_wait(self.seen.config, self.seen.snap, {n: freshness.Verdict(True, "renew") for n in names},
                                now, self.if_needed, self.since, failures)
            return list(again)

    def clock(self) -> float:
        """The refresh's `now`, moved on by the time spent when a slot had to be waited for."""
        return self.now + time.monotonic() - self.started if self.waited else self.now


class _Held(LockedError):
    """Another pgiam holds an identity's slot (and this caller does not wait, or waited in vain): the minter
    at work writes its services. Neither counted as a failure in the state nor shown at the next prompt;
    reported (exit class 6) when other identities were minted, and for a caller that does not wait, the
    refresh raises MintBusy once the others are written."""


EARLY = 2.0  # seconds after an identity finished while others still run: its tokens are written then


def _mint(slots: _Slots, due: Mapping[str, freshness.Verdict], mint: Minter, minted: dict[str, Minted],
          failures: dict[str, PgiamError],
          early: Callable[[dict[str, store.Identity]], None] | None = None) -> dict[str, store.Identity]:
    """Mint every due service (services sharing a line share a token); return what each was minted for.

    Each credential identity (profile, region) is minted in its own slot and, when there are several, in
    a thread of its own: a helper that hangs for one profile holds only its services, and a refresh of
    several profiles takes as long as the slowest (each is bounded by pgiam.awscreds). When identities
    are still at work EARLY seconds after one finished, early(ids) writes what is minted so far."""
    config = slots.seen.config
    first: dict[object, str] = {}  # services sharing a line share a token: one of them is minted
    groups: dict[Path, list[str]] = {}  # by slot file (profile None and "default" share one)
    keys: dict[Path, minting.SlotKey] = {}
    files: dict[minting.SlotKey, Path] = {}  # one name per identity, not per service (10,000 services, issue 25)
    for n in due:
        svc = config.services[n]
        if first.setdefault(store.key_of(svc), n) == n:
            key = minting.key_of(svc)
            f = files.get(key) or files.setdefault(key, minting.slot_file(slots.paths, key))
            groups.setdefault(f, []).append(n)
            keys.setdefault(f, key)
    ids: dict[str, store.Identity] = {}
    held: dict[str, PgiamError] = {}  # services whose slot another pgiam holds
    errors: list[BaseException] = []  # anything else a thread raised (a file error, a bug): raised here

    finished: queue.SimpleQueue[None] = queue.SimpleQueue()

    def guarded(names: list[str]) -> None:
        try:
            _mint_each(slots, names, mint, ids, minted, failures)
        except BaseException as err:  # noqa: BLE001 - raised again in the calling thread
            errors.append(err)
        finally:
            finished.put(None)

    until = time.monotonic() + slots.wait  # one wait for all the slots
    threads: list[threading.Thread] = []
    for f in sorted(groups):  # the lock order
        try:
            names = slots.take(keys[f], groups[f], failures, until)
        except LockedError as err:  # MintBusy at once, or still taken after waiting
            held.update((n, _Held(err.message, err.hint)) for n in groups[f])
            if isinstance(err, minting.MintBusy):
                slots.busy.append(err)
            continue
        if len(groups) == 1:
            _mint_each(slots, names, mint, ids, minted, failures)  # in this thread: no thread to start
        else:  # each identity in a thread of its own, started as soon as its slot is held
            threads.append(threading.Thread(target=guarded, args=(names,), daemon=True, name=f"mint {f.name}"))
            threads[-1].start()
    if threads:
        running, since = len(threads), None
        while running:
            try:
                finished.get(timeout=None if since is None or early is None else max(0.0, since + EARLY - time.monotonic()))
            except queue.Empty:
                if early is not None and not errors:
                    early(ids)
                since = None
                continue
            running -= 1
            since = time.monotonic() if since is None else since
        if errors:
            raise errors[0]
    if held and len(held) == sum(map(len, groups.values())) and not minted:
        raise slots.busy[0] if slots.busy else next(iter(held.values()))  # nothing this caller could do: exit 6
    failures.update(held)
    for n in due:  # the services that share a line with a minted one
        svc = config.services[n]
        other = first[store.key_of(svc)]
        if other != n:
            if other in ids:
                ids[n] = store.identity(svc, config)
            if other in minted:
                minted[n] = minted[other]
            elif other in failures:
                failures[n] = failures[other]
    return ids


def _mint_each(slots: _Slots, names: list[str], mint: Minter, ids: dict[str, store.Identity],
               minted: dict[str, Minted], failures: dict[str, PgiamError]) -> None:
    """Mint `names` (one identity's services, its slot held), noting what each was minted for."""
    for n in names:
        with slots.lock:  # the config as the slot's judgement left it
            cfg = slots.seen.config
        svc = cfg.services.get(n)
        if svc is None:
            continue
        ids[n] = store.identity(svc, cfg)
        try:
            minted[n] = mint(svc)
        except PgiamError as err:
            failures[n] = err


class _TheirFailure(PgiamError):
    """Another pgiam's failed attempt, read from the state while this one waited for it: reported with
    its exit class, not counted again."""


def _after_wait(config: Config, snap: store.Snapshot, due: Mapping[str, freshness.Verdict], now: float,
                if_needed: bool, since: float, failures: dict[str, PgiamError]) -> dict[str, freshness.Verdict]:
    """Having waited for another minter: what is still due. A service it renewed is not; one it failed to
    renew since `since` is that failure for a background caller (if_needed) and minted again otherwise."""
    margin = config.defaults.renewal_margin
    again: dict[str, freshness.Verdict] = {}
    for n in due:
        svc = config.services.get(n)
        if svc is None:
            continue
        v = store.verdict(svc, snap, now, margin)
        if not v.due and n in snap.sections:
            continue
        st = store.state_of(svc, snap.states)
        if if_needed and st is not None and st.error and st.failed_at is not None and st.failed_at >= since:
            err = _TheirFailure(st.error, st.hint)
            err.code = ExitCode(st.code) if st.code in set(ExitCode) else ExitCode.PARTIAL
            failures[n] = err
            continue
        again[n] = v
    return again


def _plan(paths: Paths, now: float, selected: list[str], minted: dict[str, Minted],
          failures: dict[str, PgiamError], result: Result, seen: _Seen, ids: dict[str, store.Identity] | None = None,
          changed: list[str] | None = None) -> list[store.Change]:
    """Every write that brings the files in line with the config, the new tokens and the failures.

    A token is written only under the service identity it was minted for (`ids`): one whose service
    changed meanwhile (`pgiam add --replace`, an edited config.toml) is dropped and named in `changed`."""
    config, snap = seen.config, seen.snap
    margin = config.defaults.renewal_margin
    if ids is not None:
        moved = [n for n in minted if n in config.services and store.identity(config.services[n], config) != ids.get(n)]
        minted = {n: m for n, m in minted.items() if n not in moved}
        if changed is not None:
            changed += moved
    tokens = {store.key_of(config.services[n]): m.token for n, m in minted.items() if n in config.services}
    changes = store.plan_libpq(paths, config, tokens, result.notices, snap=snap)
    # The notes of every service are brought in line with the files by a refresh of all of them (and by
    # every `--if-needed`); `refresh NAME` decodes and notes only the tokens it was asked about (issue 25).
    everything = set(selected) >= config.services.keys()
    states: dict[str, ServiceState] = {} if everything else {n: st for n, st in snap.states.items() if n in config.services}
    for n in config.services if everything else [n for n in selected if n in config.services]:
        if n in minted:
            continue  # its row is the new token's, below
        svc = config.services[n]
        info = snap.info(svc)  # decoded once for both
        st = store.reconcile(svc, snap, store.verdict(svc, snap, now, margin, info), info)
        if st is not None:
            states[n] = st
        else:
            states.pop(n, None)
    for n in selected:
        chosen = config.services.get(n)
        if chosen is None:
            continue
        svc = chosen
        old = states.get(n)
        if n in minted:
            m = minted[n]
            states[n] = ServiceState(store.key_str(svc), m.minted_at, m.expires_at,
                                     profile=getattr(m, "profile", svc.profile),  # the profile that signed
                                     source=getattr(m, "source", None))  # or the container, environment...
            result.outcomes.append(Outcome(n, "renewed", m.expires_at))
        elif n in failures and isinstance(failures[n], (_TheirFailure, _Held)):
            err = failures[n]
            result.outcomes.append(Outcome(n, "failed", old.expires if old else None, err.message, err.hint, err.code))
        elif n in failures:
            err = failures[n]
            base = old or ServiceState(store.key_str(svc))
            states[n] = replace(base, error=err.message, hint=err.hint, failed_at=now, code=int(err.code),
                                failures=(base.failures if base.error else 0) + 1)
            result.outcomes.append(Outcome(n, "failed", base.expires, err.message, err.hint, err.code))
        else:
            result.outcomes.append(Outcome(n, "fresh", old.expires if old else None))
    return changes + store.plan_state(paths, config, states, now, force=bool(changes), snap=snap)


def _write(paths: Paths, now: float, selected: list[str], minted: dict[str, Minted],
           failures: dict[str, PgiamError], result: Result, wait: float, seen: _Seen,
           ids: dict[str, store.Identity] | None = None, changed: list[str] | None = None, notice: bool = True) -> None:
    """Under the write lock: merge the new tokens, reconcile the state with the files, save all at once."""
    with store.lock(paths, wait):
        seen.current(paths)
        changes = _plan(paths, now, selected, minted, failures, result, seen, ids, changed)
        store.commit(paths, changes, seen.config)
        if notice:
            set_notice(paths, [o for o in result.outcomes if o.status == "failed" and not isinstance(failures.get(o.name), _Held)],
                       clear=not failures and len(selected) == len(seen.config.services))


def set_notice(paths: Paths, failures: list[Outcome], clear: bool = False) -> None:
    """One line for the next prompt when a refresh failed, of any kind; removed after a full success."""
    if failures:
        o = failures[0]
        write_notice(paths, f"pgiam: {o.error}" + (f"; {o.hint}" if o.hint else ""))
    elif clear:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(paths.notice_file)


def write_notice(paths: Paths, line: str) -> None:
    """Write the prompt notice: one line, redacted, control characters removed (the hooks print it raw)."""
    from pgiam.scrub import redact

    clean = "".join(c if c.isprintable() else " " for c in redact(line))[:500]
    atomic_write(paths.notice_file, (clean + "\n").encode(), 0o600, scope=paths.scope)


def status(paths: Paths, now: float) -> tuple[Config, store.Snapshot]:
    """Config and the files, for `pgiam status`; reads only."""
    return load_config(paths.config_file, scope=paths.scope), store.read(paths)
