"""AWS credentials resolved as the AWS CLI resolves them, with bounded time and no prompt without a terminal.

A botocore session per (profile, region, credentials file), set up like `aws --region R --profile P`:
- the service's region is the session's region, so the STS and SSO clients botocore builds to resolve
  credentials get it too (botocore takes no region from a source_profile);
- every client botocore creates gets connect/read timeouts and a retry limit (its defaults, 60 s and
  several attempts, stall a prompt for minutes on an endpoint that accepts and never answers);
- the assume-role and web-identity providers share the AWS CLI's credential cache, ~/.aws/cli/cache
  (awscli/customizations/assumerole.py attaches botocore's JSONFileCache the same way), so a role
  assumed with an MFA code by either tool serves both until it expires; SSO tokens are read from
  ~/.aws/sso/cache by botocore anyway;
- an MFA code is asked on the terminal only when stdin is one; otherwise MfaNeeded (exit 4, with a
  hint to cache the role from a terminal). A timer, cron or a prompt hook never hangs on a prompt;
- an answer that is not AWS's (an HTML page from a captive portal or a proxy, a body that is not the
  protocol's) raises awserrors.NotAws before botocore parses it, whatever the status;
- `deadline()` bounds the whole of a profile's work in one region, however the bytes arrive (a
  read timeout restarts with every byte of a slow drip); a person typing an MFA code or a
  credential_process at work stops that clock.

This is the one AWS client factory: minting (pgiam.token), `discover`, `doctor --online` and `run`
all get their sessions and clients here.
"""

from __future__ import annotations

import contextlib
import getpass
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from types import FrameType
from typing import TYPE_CHECKING, Any, TypeVar

from pgiam.awserrors import DeadlinePassed, MfaNeeded, NotAws, ProcessTimeout

if TYPE_CHECKING:
    from botocore.credentials import Credentials
    from botocore.session import Session

CONNECT_TIMEOUT = 3  # seconds
READ_TIMEOUT = 3  # seconds (STS and SSO answer in well under a second)
MAX_ATTEMPTS = 2  # one retry: 2 x 3 s plus a backoff of at most 2 s stays well under 15 s per endpoint
TIMEOUT_TEXT = f"{READ_TIMEOUT} s"
# All of one profile's work in one region: a hand-run command gives up within 15 s (with its own start).
DEADLINE = 10.0
# botocore waits for a credential_process forever; a hung helper would hold the mint slot of every
# later timer run. Generous, as a helper may wait for a browser login or a hardware key.
PROCESS_TIMEOUT = 120.0


class BoundedPopen(subprocess.Popen[bytes]):
    """What botocore's ProcessProvider runs the helper with: communicate() gives up after PROCESS_TIMEOUT."""

    def communicate(self, input: bytes | None = None, timeout: float | None = None) -> tuple[Any, Any]:
        limit = PROCESS_TIMEOUT if timeout is None else timeout
        try:
            with paused():  # the helper has its own limit (a browser login takes longer than DEADLINE)
                return super().communicate(input, limit)
        except subprocess.TimeoutExpired:
            self.kill()
            self.wait()
            for pipe in (self.stdout, self.stderr):
                if pipe is not None:
                    pipe.close()
            raise ProcessTimeout(limit) from None


def _provider(resolver: Any, method: str) -> Any:
    """The resolver's provider named `method`, or None (a botocore without it)."""
    import botocore.exceptions

    try:
        return resolver.get_provider(method)
    except botocore.exceptions.UnknownCredentialError:
        return None


def _bound_processes(resolver: Any) -> None:
    """Every credential_process botocore runs, the profile's own or a role's source profile's, is bounded.

    Through botocore's private `_popen` and `_create_process_provider`: if a botocore renames them,
    the helper just runs unbounded again, as it does in botocore itself.
    """
    process = _provider(resolver, "custom-process")
    if hasattr(process, "_popen"):
        process._popen = BoundedPopen
    builder: Any = getattr(_provider(resolver, "assume-role"), "_profile_provider_builder", None)
    if hasattr(builder, "_create_process_provider"):
        make = builder._create_process_provider

        def bounded(profile_name: str) -> Any:
            provider = make(profile_name)
            provider._popen = BoundedPopen
            return provider

        builder._create_process_provider = bounded


def cli_cache_dir() -> str | None:
    """The AWS CLI's credential cache directory, or None when there is no home to put it in."""
    home = os.path.expanduser("~")
    if home == "~" or not os.path.isdir(home):
        return None
    return os.path.join(home, ".aws", "cli", "cache")


def prompt_mfa(prompt: str) -> str:
    """botocore's MFA prompter, but only with a terminal on stdin; getpass itself would open /dev/tty
    even for a background job (and stop it with SIGTTIN) or read a code from a pipe."""
    if not sys.stdin or not sys.stdin.isatty():
        raise MfaNeeded(prompt)
    try:  # a terminal on stdin but none controlling us (the detached child of `refresh --wait`)
        os.close(os.open("/dev/tty", os.O_RDWR | os.O_NOCTTY))
    except OSError:
        raise MfaNeeded(prompt) from None
    with paused(), _PROMPT:  # a person types: their time is not the network's; one prompt at a time
        return getpass.getpass(prompt)


_PROMPT = threading.Lock()  # profiles resolve in parallel threads: their MFA prompts take turns


# ---------------------------------------------------------------- the total deadline


@contextlib.contextmanager
def deadline(seconds: float = DEADLINE) -> Iterator[None]:
    """Raise awserrors.DeadlinePassed in the block once `seconds` have passed, even inside a socket read.

    A SIGALRM timer (its handler raises; PEP 475: a system call a handler interrupts by raising
    is not retried). Only the main thread receives signals: elsewhere the block runs with the
    clients' own timeouts alone (discover's scans bound their threads themselves). A process that
    uses SIGALRM itself (an application calling pgiam.password) keeps its alarm: no deadline then.
    """
    if threading.current_thread() is not threading.main_thread() or seconds <= 0 \
            or signal.getsignal(signal.SIGALRM) not in (signal.SIG_DFL, None) \
            or signal.getitimer(signal.ITIMER_REAL)[0] > 0:
        yield
        return

    def expired(signum: int, frame: FrameType | None) -> None:
        raise DeadlinePassed(seconds)

    expired.pgiam_deadline = True  # type: ignore[attr-defined]  # what paused() looks for

    old = signal.signal(signal.SIGALRM, expired)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


T = TypeVar("T")


class _Budget:
    """bounded()'s clock for work in a thread of its own: the time left, stopped while paused()."""

    def __init__(self, seconds: float) -> None:
        self.end = time.monotonic() + seconds
        self.stopped: float | None = None
        self._lock = threading.Lock()

    def left(self) -> float | None:
        """Seconds left; None while paused (a person or a credential helper at work)."""
        with self._lock:
            return None if self.stopped is not None else self.end - time.monotonic()

    @contextlib.contextmanager
    def paused(self) -> Iterator[None]:
        with self._lock:
            outer = self.stopped is not None
            if not outer:
                self.stopped = time.monotonic()
        try:
            yield
        finally:
            with self._lock:
                if not outer and self.stopped is not None:
                    self.end += time.monotonic() - self.stopped
                    self.stopped = None


_local = threading.local()  # .budget: the _Budget of bounded()'s work thread


def bounded(work: Callable[[], T], seconds: float = DEADLINE) -> T:
    """work(), raising awserrors.DeadlinePassed once `seconds` have passed (paused() time not counted).

    In the main thread: deadline() (a signal interrupts the work). In any other thread (profiles resolve
    in parallel), where no signal reaches: the work runs in a daemon thread of its own, which is given up
    at the deadline and left to end with its sockets' own timeouts; the caller must not use what that
    work used (token.Minter forgets the session).
    """
    if threading.current_thread() is threading.main_thread():
        with deadline(seconds):
            return work()
    budget = _Budget(seconds)
    box: list[tuple[bool, Any]] = []
    done = threading.Event()

    def run() -> None:
        _local.budget = budget
        try:
            box.append((True, work()))
        except BaseException as err:  # noqa: BLE001 - handed to the caller as it is
            box.append((False, err))
        finally:
            done.set()

    threading.Thread(target=run, daemon=True, name="pgiam credentials").start()
    while True:
        left = budget.left()
        if done.wait(0.2 if left is None else max(0.0, min(left, 1.0))):
            break
        left = budget.left()
        if left is not None and left <= 0 and not done.is_set():
            raise DeadlinePassed(seconds)
    ok, value = box[0]
    if ok:
        return value  # type: ignore[no-any-return]
    raise value


@contextlib.contextmanager
def paused() -> Iterator[None]:
    """Stop deadline()'s (or bounded()'s) clock for the block (a prompt, a credential helper); a no-op without one."""
    budget: _Budget | None = getattr(_local, "budget", None)
    if budget is not None:
        with budget.paused():
            yield
        return
    if threading.current_thread() is not threading.main_thread() \
            or not getattr(signal.getsignal(signal.SIGALRM), "pgiam_deadline", False):
        yield
        return
    left, _ = signal.setitimer(signal.ITIMER_REAL, 0)
    try:
        yield
    finally:
        if left > 0:
            signal.setitimer(signal.ITIMER_REAL, left)


# ---------------------------------------------------------------- answers that are not AWS's

_TITLE = re.compile(rb"<title[^>]*>([^<]{1,120})", re.IGNORECASE)


def check_answer(**kwargs: Any) -> None:
    """botocore's `before-parse` event: refuse a body no AWS endpoint sends, before botocore parses it.

    AWS answers the query protocol (STS, RDS, IAM) with XML named after the operation
    (`<GetCallerIdentityResponse>`, `<ErrorResponse>`), the JSON protocols (DSQL, SSO) with JSON;
    never with an HTML page, which is what captive portals and proxies send, with any status.
    """
    operation_model: Any = kwargs["operation_model"]
    response_dict: dict[str, Any] = kwargs["response_dict"]
    body = response_dict.get("body")
    if not isinstance(body, bytes):  # a streamed body: not one pgiam asks for
        return
    op = f"{operation_model.service_model.endpoint_prefix}:{operation_model.name}"
    head = body.lstrip()[:512].lower()
    if head.startswith((b"<!doctype html", b"<html")) or b"<html" in head[:100]:
        title = _TITLE.search(body[:4096])
        what = f"an HTML page titled {title.group(1).decode('utf-8', 'replace').strip()!r}" if title else "an HTML page"
        raise NotAws(op, f"{what}, HTTP {response_dict.get('status_code', '?')}")
    status = int(response_dict.get("status_code") or 0)
    if not 200 <= status < 300:
        return  # an error answer: botocore's parser says what AWS said, or raises ResponseParserError
    protocol = operation_model.metadata.get("protocol", "")
    if protocol == "query" and f"<{operation_model.name}Response".encode() not in body[:4096]:
        raise NotAws(op, f"no {operation_model.name}Response in the HTTP {status} answer")
    if protocol in ("json", "rest-json") and body.strip():
        try:
            json.loads(body)
        except ValueError:
            raise NotAws(op, f"the HTTP {status} answer is not JSON") from None


def new_session(profile: str | None, region: str, credentials_file: str | None = None) -> Session:
    """A botocore session for `profile` in `region` with bounded clients, the CLI's cache and our prompter."""
    import botocore.config
    import botocore.credentials
    import botocore.session
    from botocore.utils import JSONFileCache

    session = botocore.session.Session(profile=profile)
    session.register("before-parse", check_answer)  # before any client exists: they all copy it
    session.set_config_variable("region", region)
    session.set_default_client_config(botocore.config.Config(
        connect_timeout=CONNECT_TIMEOUT, read_timeout=READ_TIMEOUT,
        retries={"total_max_attempts": MAX_ATTEMPTS, "mode": "standard"},
    ))
    if credentials_file:
        # The sandbox signs with its own static key pair: use botocore's shared-file provider alone,
        # so the user's AWS environment can neither leak into nor break the sandbox.
        provider = botocore.credentials.SharedCredentialProvider(
            creds_filename=credentials_file, profile_name=profile or "default"
        )
        session.register_component("credential_provider", botocore.credentials.CredentialResolver([provider]))
        return session
    resolver = botocore.credentials.create_credential_resolver(session, region_name=region)
    cache_dir = cli_cache_dir()
    for method in ("assume-role", "assume-role-with-web-identity"):
        p = _provider(resolver, method)
        if p is None:
            continue
        if cache_dir is not None:
            p.cache = JSONFileCache(cache_dir)  # public attribute, as awscli sets it
        if method == "assume-role" and hasattr(p, "_prompter"):
            p._prompter = prompt_mfa  # private, but the only way in: botocore builds the fetcher from it
    _bound_processes(resolver)
    session.register_component("credential_provider", resolver)
    return session


def client(session: Session, service: str, region: str) -> Any:
    """A client of `service` in `region` from a session of new_session (its bounded default config)."""
    return session.create_client(service, region_name=region)


@dataclass(frozen=True)
class Resolved:
    """Credentials ready to sign, where they came from and when they stop working."""

    credentials: Credentials
    method: str  # botocore's name for the provider: env, sso, assume-role, custom-process, ...
    expiry: float | None  # epoch seconds, None for long-term keys


def resolve(session: Session) -> Resolved | None:
    """Resolve (and if needed refresh) the session's credentials; None when the chain found none.

    Raises whatever botocore or a credential helper raises: pgiam.awserrors.classify sorts it.
    """
    creds = session.get_credentials()
    if creds is None:
        return None
    creds.get_frozen_credentials()  # refreshes SSO / assume-role / process credentials when needed
    expiry: Any = getattr(creds, "_expiry_time", None)
    return Resolved(creds, str(getattr(creds, "method", "") or ""), expiry.timestamp() if expiry is not None else None)


def profile_name(session: Session) -> str:
    """The profile botocore uses: the session's, else AWS_PROFILE, else default."""
    return str(session.get_config_variable("profile") or "default")


def files(session: Session) -> tuple[str, str]:
    """~/.aws/config and ~/.aws/credentials as this session reads them (AWS_CONFIG_FILE and friends)."""
    return (os.path.expanduser(str(session.get_config_variable("config_file"))),
            os.path.expanduser(str(session.get_config_variable("credentials_file"))))


def profiles(session: Session) -> dict[str, dict[str, Any]]:
    """Every profile of the config and credentials files ({} when they cannot be read)."""
    try:
        raw: Any = session.full_config.get("profiles", {})
    except Exception:  # noqa: BLE001 - an unparsable file is reported by the resolution itself
        return {}
    return raw if isinstance(raw, dict) else {}


def timer_gap(profile: str | None, method: str | None, env: dict[str, str]) -> tuple[str, str] | None:
    """Why a timer, cron or another shell could not sign as this command just did: (what, the fix), or None.

    Keys in this shell's AWS_ACCESS_KEY_ID (botocore's `env` provider), or a role profile whose
    `credential_source = Environment` takes its source keys from there (AWS CLI user guide,
    "Using IAM roles": credential_source)."""
    if method == "env" or (method is None and not profile and env.get("AWS_ACCESS_KEY_ID")):
        return ("keys from AWS_ACCESS_KEY_ID",
                "put the keys in a profile (`aws configure --profile NAME`, or use SSO: `aws configure sso`)")
    if not profile:
        return None
    import botocore.session

    try:
        every: Any = botocore.session.Session().full_config.get("profiles", {})
    except Exception:  # noqa: BLE001 - an unparsable file is reported by the resolution itself
        return None
    name: Any = profile
    seen: set[str] = set()
    while isinstance(name, str) and name not in seen and isinstance(every, dict):
        seen.add(name)
        p = every.get(name) or {}
        if str(p.get("credential_source", "")).lower() == "environment":
            return (f"profile {name}, whose `credential_source = Environment` takes the keys of this shell",
                    f"give [profile {name}] a `source_profile` with keys of its own (`aws configure --profile NAME`, "
                    "or SSO: `aws configure sso`) instead of `credential_source = Environment`")
        name = p.get("source_profile")
    return None
