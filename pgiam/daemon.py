"""`pgiam run`: keep every service's token fresh until stopped (systemd services, Kubernetes sidecars).

Each cycle is one `refresh --if-needed` (pgiam.refresh, through the mint slot), so the daemon, the
prompt hooks and the timers follow the same freshness rule and never mint twice. Between cycles the
daemon sleeps until the next service is due (pgiam.freshness.due_at, which renews a token whose
credentials live shorter than the margin half-way through its life, and never sooner than
MIN_INTERVAL after it was signed), less a jitter drawn for each token: renewals of many services or
of the pods of one rollout spread over the window before they are due (at most a fifth of the
margin in force, at most MAX_JITTER), never after it, so no token is renewed later than the rule
says. Failures back off (freshness.retry_at). It never spins: every sleep is at least MIN_SLEEP.

Signals only set flags (the self-pipe wakes the sleep), so a SIGTERM arriving during a write lets
the write finish; the loop then exits 0. SIGHUP re-reads the config. Every event is one line on
stderr; a token is never logged.
"""

from __future__ import annotations

import contextlib
import os
import random
import select
import signal
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from types import FrameType
from typing import TYPE_CHECKING

from pgiam import freshness, health, pgpass, refresh, store, tokeninfo
from pgiam.config import Config, Service, load_config
from pgiam.errors import ConfigError, LockedError, PgiamError
from pgiam.fileio import read_bytes
from pgiam.notify import Notifier
from pgiam.paths import Paths

if TYPE_CHECKING:
    from pgiam.pgbouncer import Target

MIN_SLEEP = 1.0  # never wake more often than this, whatever the schedule says
MAX_SLEEP = 300.0  # re-judge the files at least this often (a clock step, a file edited by hand)
MAX_JITTER = 60.0  # renew up to this many seconds before due_at, and at most a fifth of the margin in force
BUSY_RETRY = 5.0  # another pgiam holds the mint slot or the lock
LOCK_WAIT = 30.0  # how long one cycle waits for another minter or the write lock
CERTS_EVERY = 7 * 24 * 3600.0  # managed CA bundles are checked weekly
CERTS_RETRY = 3600.0  # after a failed bundle download


@dataclass
class Options:
    once: bool = False
    pgbouncer: "Target | None" = None  # keep this pgbouncer auth file in step, and reload pgbouncer
    http: tuple[str, int] | None = None  # serve the probes and metrics (pgiam.health) on this address


@dataclass
class _Flags:
    stop: str | None = None  # the signal's name
    reload: bool = False


@dataclass
class Daemon:
    paths: Paths
    log: Callable[[str], None]
    mint: refresh.Minter
    notifier: Notifier = field(default_factory=Notifier)
    options: Options = field(default_factory=Options)
    clock: Callable[[], float] = time.time
    rng: random.Random = field(default_factory=random.Random)

    def __post_init__(self) -> None:
        self.flags = _Flags()
        self.ready = False
        self.jitter: dict[str, tuple[float, float]] = {}  # service -> (its token's signing time, fraction drawn for it)
        self.lead: dict[str, float] = {}  # service -> seconds before its due time the next renewal happens
        self.failures = 0  # consecutive cycles that failed as a whole (config, files)
        self.wake = 0.0
        self.certs_due: dict[str, float] = {}
        self.last_watchdog = 0.0
        self.reload_pending = False
        # What the probes and metrics report (pgiam.health): names, times and counts, never a token.
        self.started = self.clock()
        self.passes = 0
        self.mints: dict[tuple[str, str], int] = {}  # (service, result class) -> count
        self.last_success: dict[str, float] = {}
        self.credentials: dict[pgpass.Key, float | None] = {}  # endpoint key -> expiry of the signing credentials
        self.services_view: tuple[health.ServiceView, ...] = ()
        self.started_ok = False
        self.view = health.View(self.started, pass_bound())
        self.http: health.Server | None = None

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> Config:
        """Check what the loop needs before it starts: an invalid config is an exit, not a loop of errors."""
        config = load_config(self.paths.config_file, scope=self.paths.scope)
        if not config.services:
            raise ConfigError(f"{self.paths.config_file} has no services: `pgiam run` has nothing to keep fresh",
                              "add one with `pgiam add NAME --host ... --user ...`, or point PGIAM_CONFIG at a config with [services.NAME]")
        if self.options.pgbouncer is not None:
            from pgiam import pgbouncer

            pgbouncer.check_version(pgbouncer.probe_version())
            users = pgbouncer_passwords(config, store.read(self.paths))  # users shared by two endpoints: refuse now
            data = read_bytes(self.options.pgbouncer.auth_file, scope=self.paths.scope)  # a user's own line for an IAM user: refuse now
            pgbouncer.merge("" if data is None else data.decode("utf-8", "surrogateescape"),
                            {svc.user: users.get(svc.user, "") for svc in config.services.values()},
                            self.options.pgbouncer.auth_file)
        return config

    def run(self) -> int:
        """The loop; returns the exit code (0 after SIGTERM)."""
        config = self.start()
        self.log(f"starting: {len(config.services)} service(s) from {self.paths.config_file}, "
                 f"password file {self.paths.pgpass}, service file {self.paths.service_file}")
        if self.options.once:
            return int(self.cycle())
        if self.options.http is not None:
            self.http = health.Server(self.options.http, lambda: self.view, self.clock)
            host, port = self.http.address
            self.log(f"serving /startup, /liveness, /readiness and /metrics on http://"
                     + (f"[{host}]:{port}" if ":" in host else f"{host}:{port}"))
        try:
            with _signal_pipe(self.flags) as wakeup:
                while self.flags.stop is None:
                    if self.flags.reload:
                        self.flags.reload = False
                        self.reload()
                    self.cycle()
                    self.sleep(wakeup)
        finally:
            if self.http is not None:
                self.http.close()
        self.log(f"stopping ({self.flags.stop}); the files are complete")
        self.notifier.stopping(f"stopping ({self.flags.stop})")
        return 130 if self.flags.stop == "SIGINT" else 0

    def reload(self) -> None:
        """SIGHUP: re-read the config (each cycle reads it anyway) and forget cached AWS sessions."""
        forget = getattr(self.mint, "forget", None)
        if forget is not None:
            forget()  # a changed AWS config or profile is read again (token.Minter's sessions)
        try:
            config = load_config(self.paths.config_file, scope=self.paths.scope)
        except PgiamError as err:
            self.log(f"reload: {err.message}; fix it (hint: {err.hint}); renewals fail until then")
            return
        self.jitter.clear()
        self.lead.clear()
        self.log(f"reloaded {self.paths.config_file}: {len(config.services)} service(s)")

    # ------------------------------------------------------------------ one cycle

    def cycle(self) -> int:
        """One pass: renew what is due, keep pgbouncer's file in step, check the CA bundles, schedule the
        next wake; then publish what the probes and metrics report."""
        try:
            return self._cycle()
        finally:
            self.passes += 1
            end = self.clock()
            next_pass = min(max(self.wake, end + MIN_SLEEP), end + MAX_SLEEP)  # as sleep() will wait
            self.view = health.View(self.started, pass_bound(), self.services_view, self.passes, end,
                                    next_pass, self.started_ok, dict(self.mints))

    def _mint(self, svc: Service) -> refresh.Minted:
        """The minter, noting the expiry of the credentials that signed (for pgiam_credentials_seconds_left)."""
        m = self.mint(svc)
        self.credentials[store.key_of(svc)] = getattr(m, "credentials_expire", None)
        return m

    def _cycle(self) -> int:
        now = self.clock()
        try:
            self.certs(load_config(self.paths.config_file, scope=self.paths.scope), now)  # a missing bundle first: libpq needs it too
            result = refresh.refresh(self.paths, now, self._mint, if_needed=True, wait=LOCK_WAIT, lead=self.lead)
        except LockedError as err:
            self.log(f"{err.message}; trying again in {BUSY_RETRY:g} s")
            self.wake = now + BUSY_RETRY
            return int(err.code)
        except PgiamError as err:
            self.failures += 1
            self.wake = freshness.retry_at(now, self.failures)
            self.log(f"{err.message} (hint: {err.hint}); trying again in {int(self.wake - now)} s" if err.hint
                     else f"{err.message}; trying again in {int(self.wake - now)} s")
            self.notifier.status(f"failing: {err.message}")
            return int(err.code)
        self.failures = 0
        for n in result.notices:
            self.log(n)
        for o in result.outcomes:
            if o.status == "renewed":
                left = int((o.expires or now) - self.clock())
                self.log(f"{o.name}: renewed, valid for {left} s (until {_utc(o.expires)})")
                self.mints[(o.name, "ok")] = self.mints.get((o.name, "ok"), 0) + 1
                self.last_success[o.name] = self.clock()
            elif o.status == "failed":
                error = o.error or "failed"  # minting errors start with the service's name: say it once
                self.log((error if error.startswith(f"{o.name}: ") else f"{o.name}: {error}")
                         + (f" (hint: {o.hint})" if o.hint else ""))
                key = (o.name, health.result_class(o.code))
                self.mints[key] = self.mints.get(key, 0) + 1
        try:
            config = load_config(self.paths.config_file, scope=self.paths.scope)
            snap = store.read(self.paths)
        except PgiamError as err:
            self.log(err.message)
            self.wake = now + freshness.RETRY_AFTER
            return int(err.code)
        bouncer = self.pgbouncer(config, snap)
        status = self.schedule(config, snap, now)
        self.observe(config, snap)
        if result.code == 0 and not self.ready and config.services:
            self.ready = True
            self.notifier.ready(status)
            self.log(f"ready: {status}")
        else:
            self.notifier.status(status)
        return int(result.code) or bouncer

    def schedule(self, config: Config, snap: store.Snapshot, now: float) -> str:
        """Set self.wake to the next instant a service needs work; return a STATUS= line."""
        margin = config.defaults.renewal_margin
        wakes: list[tuple[float, str]] = []
        failing = []
        for n, svc in config.services.items():
            v = store.verdict(svc, snap, now, margin)
            st = store.state_of(svc, snap.states)
            if st is not None and st.error and st.failed_at is not None:
                failing.append(n)
            if v.due:
                if st is not None and st.error and st.failed_at is not None:
                    at = freshness.retry_at(st.failed_at, st.failures or 1)
                else:
                    at = now + BUSY_RETRY  # due, yet not minted (another minter had the slot)
            else:
                at = v.due_at - self.lead_for(n, v, snap.tokens.get(store.key_of(svc)))
            wakes.append((at, n))
        at, name = min(wakes) if wakes else (now + MAX_SLEEP, "")
        self.wake = min([at, *self.certs_due.values()])
        fresh = len(config.services) - len(failing)
        text = f"{fresh} of {len(config.services)} service(s) fresh"
        if failing:
            text += f"; failing: {', '.join(sorted(failing))}"
        if name:
            text += f"; next: {name} in {max(0, int(at - now))} s"
        return text

    def observe(self, config: Config, snap: store.Snapshot) -> None:
        """What each service's files say after this pass, for the probes and metrics."""
        now = self.clock()
        views = []
        for n, svc in config.services.items():
            v = store.verdict(svc, snap, now, config.defaults.renewal_margin)
            st = store.state_of(svc, snap.states)
            expires = v.expires if v.reason in ("fresh", "renew") else None
            creds = self.credentials.get(store.key_of(svc))
            views.append(health.ServiceView(
                n, expires, creds, self.last_success.get(n),
                st.code if st is not None and st.error and st.code else None))
        self.services_view = tuple(views)
        if views and all(s.expires is not None and s.expires > now for s in views):
            self.started_ok = True

    def lead_for(self, name: str, v: freshness.Verdict, token: str | None) -> float:
        """How many seconds before its due time this service's token is renewed (0 when unknown).

        A fraction drawn afresh for each token (so pods started together drift apart, rather than
        keeping one offset) of a window that is a fifth of the margin in force, at most MAX_JITTER,
        and never reaching back to MIN_INTERVAL after the signing: spread before due, never after.
        """
        info = tokeninfo.try_decode(token)
        if info is None or v.expires is None:
            self.lead.pop(name, None)
            return 0.0
        drawn = self.jitter.get(name)
        if drawn is None or drawn[0] != info.signed_at:
            drawn = (info.signed_at, self.rng.random())
            self.jitter[name] = drawn
        window = min(MAX_JITTER, max(0.0, v.expires - v.due_at) / 5)
        lead = max(0.0, min(drawn[1] * window, v.due_at - (info.signed_at + freshness.MIN_INTERVAL)))
        self.lead[name] = lead
        return lead

    def sleep(self, wakeup: int) -> None:
        """Wait until the next wake, a signal, or the next watchdog ping; never less than MIN_SLEEP."""
        interval = self.notifier.watchdog_interval
        deadline = max(self.wake, self.clock() + MIN_SLEEP)
        deadline = min(deadline, self.clock() + MAX_SLEEP)
        while self.flags.stop is None and not self.flags.reload:
            now = self.clock()
            if interval is not None and now - self.last_watchdog >= interval:
                self.notifier.watchdog()
                self.last_watchdog = now
            left = deadline - now
            if left <= 0:
                return
            timeout = left if interval is None else min(left, max(0.1, self.last_watchdog + interval - now))
            with contextlib.suppress(InterruptedError):
                ready, _, _ = select.select([wakeup], [], [], timeout)
                if ready:
                    with contextlib.suppress(BlockingIOError):
                        os.read(wakeup, 512)

    # ------------------------------------------------------------------ side duties

    def pgbouncer(self, config: Config, snap: store.Snapshot) -> int:
        """Bring pgbouncer's auth file in line with the password file; reload pgbouncer if it changed.

        Returns 0, or the exit code of what failed (logged; the token renewal goes on)."""
        if self.options.pgbouncer is None:
            return 0
        from pgiam import pgbouncer

        target = self.options.pgbouncer
        try:
            passwords = pgbouncer_passwords(config, snap)
            long = pgbouncer.check_lengths(passwords, pgbouncer.MAX_PASSWORD)
            for user in long:
                self.log(f"pgbouncer: the token for {user!r} is longer than {pgbouncer.MAX_PASSWORD} bytes, "
                         "which pgbouncer refuses; left out")
                passwords.pop(user)
            changed = target.sync(passwords, scope=self.paths.scope)
            if not changed and not self.reload_pending:
                return 0
            self.reload_pending = True  # until pgbouncer has been told: a failed reload is tried again
            pid = target.reload(scope=self.paths.scope)
            self.reload_pending = False
        except PgiamError as err:
            self.log(f"pgbouncer: {err.message}" + (f" (hint: {err.hint})" if err.hint else ""))
            return int(err.code)
        users = ", ".join(sorted(passwords)) or "none"
        self.log(f"pgbouncer: {'wrote' if changed else 'kept'} {target.auth_file} (users: {users})"
                 + (f"; reloaded pid {pid}" if pid else "; no pidfile given, not reloaded"))
        return 0

    def certs(self, config: Config, now: float) -> None:
        """Check the managed CA bundles the services use, weekly; a failure is logged and retried hourly."""
        from pgiam import certs

        for part in managed_partitions(self.paths, config):
            path = certs.bundle_path(self.paths, part)
            if part not in self.certs_due:
                try:
                    self.certs_due[part] = os.stat(path).st_mtime + CERTS_EVERY
                except OSError:
                    self.certs_due[part] = now  # missing: fetch it now
            if now < self.certs_due[part]:
                continue
            try:
                res = certs.update(self.paths, part)
            except PgiamError as err:
                self.certs_due[part] = now + CERTS_RETRY
                self.log(f"CA bundle {path}: {err.message}; keeping the current one, trying again in {int(CERTS_RETRY)} s")
                continue
            self.certs_due[part] = now + CERTS_EVERY
            self.log(f"CA bundle {path}: {'updated' if res.changed else 'unchanged'} ({res.ca_count} CAs)")


def pass_bound() -> float:
    """How long one pass may take: a credential helper's bound plus the wait for the mint slot or lock."""
    from pgiam.awscreds import PROCESS_TIMEOUT

    return PROCESS_TIMEOUT + LOCK_WAIT


def managed_partitions(paths: Paths, config: Config) -> list[str]:
    """Partitions whose managed bundle (not a user's own sslrootcert) some service verifies against."""
    from pgiam import certs

    parts = set()
    for svc in config.services.values():
        part = certs.partition_for_region(svc.region)
        if svc.sslrootcert is None or os.path.abspath(svc.sslrootcert) == str(certs.bundle_path(paths, part)):
            parts.add(part)
    return sorted(parts)


def pgbouncer_users(services: Mapping[str, Service]) -> dict[str, Service]:
    """user -> the service whose token is that user's password; one user signing for two endpoints is
    refused (pgbouncer keeps one password per user name)."""
    owner: dict[str, Service] = {}
    for n, svc in sorted(services.items()):
        other = owner.get(svc.user)
        if other is not None and store.key_of(other) != store.key_of(svc):
            raise ConfigError(
                f"services {other.name!r} and {n!r} both log in as {svc.user!r} to different endpoints; "
                "pgbouncer's auth file holds one password per user",
                "run one `pgiam run --pgbouncer-auth-file` per pgbouncer, each with a config (PGIAM_CONFIG) of its own endpoints")
        owner[svc.user] = svc
    return owner


def pgbouncer_passwords(config: Config, snap: store.Snapshot) -> dict[str, str]:
    """user -> token, from the password file (pgbouncer_users decides whose)."""
    out: dict[str, str] = {}
    for user, svc in pgbouncer_users(config.services).items():
        token = snap.tokens.get(store.key_of(svc))
        if token is not None:
            out[user] = token
    return out


def _utc(ts: float | None) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts)) if ts else "-"


@contextlib.contextmanager
def _signal_pipe(flags: _Flags) -> Iterator[int]:
    """SIGTERM/SIGINT set flags.stop, SIGHUP flags.reload; each also writes to the returned fd (wakes select)."""
    r, w = os.pipe()
    os.set_blocking(r, False)
    os.set_blocking(w, False)

    def stop(signum: int, frame: FrameType | None) -> None:
        flags.stop = signal.Signals(signum).name

    def hup(signum: int, frame: FrameType | None) -> None:
        flags.reload = True

    old_fd = signal.set_wakeup_fd(w, warn_on_full_buffer=False)
    old = {s: signal.signal(s, h) for s, h in ((signal.SIGTERM, stop), (signal.SIGINT, stop), (signal.SIGHUP, hup))}
    try:
        yield r
    finally:
        for s, h in old.items():
            signal.signal(s, h)
        signal.set_wakeup_fd(old_fd)
        os.close(r)
        os.close(w)
