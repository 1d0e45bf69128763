"""Mint RDS IAM auth tokens; the only importer of botocore (with pgiam.awscreds), and only when a token is due.

The token is exactly what `aws rds generate-db-auth-token` prints: botocore's own
`generate_db_auth_token`, signed through botocore's credential chain (environment, shared files, SSO,
assume-role, credential_process, metadata), resolved as pgiam.awscreds sets it up. Every failure
becomes a PgiamError through pgiam.awserrors.classify.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pgiam.config import TOKEN_LIFETIME, Service
from pgiam.errors import AuthError, PgiamError

if TYPE_CHECKING:
    from botocore.credentials import Credentials, ReadOnlyCredentials
    from botocore.session import Session


@dataclass(frozen=True)
class Minted:
    token: str
    minted_at: float
    expires_at: float  # min(minted + TOKEN_LIFETIME, expiry of the temporary credentials that signed it)
    profile: str | None = None  # the AWS profile that signed (None: a source that is not a profile)
    method: str = ""  # botocore's credential provider: env, sso, assume-role, custom-process, ...
    credentials_expire: float | None = None  # expiry of the temporary credentials that signed (None: keys that never expire)
    source: str | None = None  # not a profile: environment, container, web-identity, instance

    def __repr__(self) -> str:  # never show the token, not even in a traceback's locals
        return (f"Minted(token=<{len(self.token)} chars>, minted_at={self.minted_at}, "
                f"expires_at={self.expires_at}, profile={self.profile!r}, method={self.method!r}, "
                f"credentials_expire={self.credentials_expire}, source={self.source!r})")


_SessionKey = tuple[str | None, str, str | None]
# How long a network failure stands for the other services of the same profile and region: 20 services
# behind one unreachable endpoint fail in one timeout, not twenty, and `pgiam run` tries again later.
NETWORK_FAILURE_STANDS = 60.0
# Resolved credentials are reused, without asking botocore again, while they are further than this from their
# expiry: botocore itself hands out the same frozen credentials until its advisory refresh, 15 minutes
# before expiry (botocore/credentials.py, RefreshableCredentials._advisory_refresh_timeout). Resolving per
# service cost a bounded call each (a thread of its own outside the main thread): ~0.6 s of 10,000 (issue 25).
REUSE_UNTIL_BEFORE_EXPIRY = 15 * 60.0


_IMPORTS = threading.Lock()
_loaded = False


def _load() -> None:
    """Import what minting needs, once, in one thread: pgiam.refresh mints several profiles at once in
    threads, and the first import of a package from two threads at once can deadlock on its module locks."""
    global _loaded
    if _loaded:
        return
    with _IMPORTS:
        import botocore.auth
        import botocore.client
        import botocore.config
        import botocore.credentials
        import botocore.exceptions
        import botocore.model
        import botocore.session
        import botocore.signers
        import botocore.utils  # noqa: F401

        from pgiam import awscreds, awserrors, dsql, presign, tokeninfo  # noqa: F401

        _loaded = True


class Minter:
    """Mints tokens with one botocore session per (profile, region, credentials file): 100 services cost
    about one. Each command makes its own (no process-wide cache): `pgiam run` keeps one and forgets
    its sessions on SIGHUP. Threads may call it for different sessions at once (pgiam.refresh resolves
    profiles in parallel); one session is never used by two threads at once (botocore sessions are not
    thread-safe): each thread mints the services of one session.

    retry: the command a hint tells the user to run once the cause is fixed (default `pgiam refresh NAME`).
    """

    def __init__(self, retry: str | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        self.retry = retry
        self.clock = clock
        self._sessions: dict[_SessionKey, Session] = {}
        self._failed: dict[_SessionKey, tuple[float, PgiamError]] = {}
        self._resolved: dict[_SessionKey, tuple[Any, Any]] = {}  # (awscreds.Resolved, its frozen credentials)

    def forget(self) -> None:
        """Drop every session, resolved credentials and remembered failure: a changed AWS config or profile is read again."""
        self._sessions.clear()
        self._failed.clear()
        self._resolved.clear()

    def _credentials(self, key: _SessionKey, session: Session) -> tuple[Any, Any] | None:
        """The session's resolved credentials and their frozen form: resolved once per session, again only
        when they come within REUSE_UNTIL_BEFORE_EXPIRY of their expiry (see there)."""
        from pgiam import awscreds

        cached = self._resolved.get(key)
        if cached is not None and (cached[0].expiry is None or cached[0].expiry - time.time() > REUSE_UNTIL_BEFORE_EXPIRY):
            return cached
        self._resolved.pop(key, None)
        resolved = awscreds.bounded(lambda: awscreds.resolve(session))
        if resolved is None:
            return None
        out = (resolved, resolved.credentials.get_frozen_credentials())
        self._resolved[key] = out
        return out

    def session(self, svc: Service) -> Session:
        from pgiam import awscreds

        key = (svc.profile, svc.region, svc.aws_credentials_file)
        if key not in self._sessions:
            self._sessions[key] = awscreds.new_session(svc.profile, svc.region, svc.aws_credentials_file)
        return self._sessions[key]

    def __call__(self, svc: Service) -> Minted:
        """A fresh token for `svc`, with its effective expiry; every failure becomes a PgiamError (exit 3, 4 or 8)."""
        _load()
        from pgiam import awscreds, awserrors
        from pgiam.errors import NetworkError

        key = (svc.profile, svc.region, svc.aws_credentials_file)
        failed = self._failed.get(key)
        if failed is not None and self.clock() - failed[0] < NETWORK_FAILURE_STANDS:
            raise failed[1]
        session: Session | None = None
        try:
            session = self.session(svc)
            got = self._credentials(key, session)
            resolved = got[0] if got is not None else None
            if got is not None:
                token, minted = _sign(session, got[0].credentials, svc, got[1])
        except PgiamError:
            self._resolved.pop(key, None)
            raise
        except (Exception, awserrors.DeadlinePassed) as err:  # noqa: BLE001 - botocore and helpers raise anything
            self._resolved.pop(key, None)
            if session is None or isinstance(err, awserrors.DeadlinePassed):
                self._sessions.pop(key, None)  # given up in a thread that may still use it: never again
            classified = awserrors.classify(err, context(svc, session, self.retry))
            if isinstance(classified, NetworkError):
                self._failed[key] = (self.clock(), classified)
            raise classified from None
        if resolved is None:
            ctx = context(svc, session, self.retry)
            raise AuthError(f"{svc.name}: no AWS credentials found ({ctx.source.label})",
                            f"configure them with `aws configure --profile {ctx.source.profile}` or `aws configure sso`, "
                            f"or use a profile that has them (--profile NAME), then {ctx.retry}")
        expires = minted + TOKEN_LIFETIME
        if resolved.expiry is not None:
            expires = min(expires, resolved.expiry)
        source = awserrors.NON_PROFILE_SOURCES.get(resolved.method)
        if source == "web-identity" and svc.profile:
            source = None  # a profile's web identity role: the profile signed
        profile = None if source else (svc.profile or awscreds.profile_name(session))
        return Minted(token=token, minted_at=minted, expires_at=expires, profile=profile, method=resolved.method,
                      credentials_expire=resolved.expiry, source=source)


def mint(svc: Service, retry: str | None = None) -> Minted:
    """One token with a Minter of its own (a command that mints several services shares one Minter)."""
    return Minter(retry)(svc)


def context(svc: Service, session: Session | None, retry: str | None, action: str | None = None) -> Any:
    """What awserrors needs for a message and a hint that fits this profile (or credential source)."""
    from pgiam import awscreds, awserrors

    label = svc.profile or os.environ.get("AWS_PROFILE") or "default"
    if session is not None:
        config_file, creds_file = awscreds.files(session)
        profiles = awscreds.profiles(session)
    else:
        config_file = os.path.expanduser(os.environ.get("AWS_CONFIG_FILE") or "~/.aws/config")
        creds_file = os.path.expanduser(os.environ.get("AWS_SHARED_CREDENTIALS_FILE") or "~/.aws/credentials")
        profiles = {}
    # botocore drops the environment keys only for a profile named to the session itself, not AWS_PROFILE
    env_keys = svc.profile is None and bool(os.environ.get("AWS_ACCESS_KEY_ID"))
    source = awserrors.source_of(profiles, label, env_keys, {} if svc.profile else dict(os.environ))
    return awserrors.Context(
        service=svc.name, source=source, config_file=config_file, credentials_file=creds_file,
        retry=retry or f"`pgiam refresh {svc.name}`", timeout=awscreds.TIMEOUT_TEXT, region=svc.region, action=action)


def _sign(session: Session, creds: Credentials, svc: Service,
          frozen: ReadOnlyCredentials | None = None) -> tuple[str, float]:
    """botocore's own generate_db_auth_token, step for step, and the instant it signed (epoch seconds).

    botocore's `generate_db_auth_token` (botocore/signers.py) builds this request dict, presigns it through
    the client's RequestSigner (the `choose-signer` and `before-sign` events, then `SigV4QueryAuth` over the
    frozen credentials, expiring in TOKEN_LIFETIME seconds) and strips the scheme. The same botocore pieces are called here
    directly, without the per-call event dispatch: 10,000 tokens are signed in a third of the time (issue
    25). For the usual host pgiam.presign builds the same bytes without botocore's URL round trips.
    `frozen`: `creds` frozen already (token.Minter freezes once per session while they stay valid).
    tests/unit/test_botocore_private.py and test_presign.py check the bytes against botocore's own client.
    """
    from pgiam import dsql, presign, tokeninfo

    if dsql.is_dsql_host(svc.host):  # Aurora DSQL signs differently (no port, no user): pgiam.dsql
        token, minted = dsql.sign(session, creds, svc)
        info = tokeninfo.try_decode(token)  # its own X-Amz-Date: the clock may tick over a second while botocore signs
        return token, info.signed_at if info is not None else minted
    import botocore.auth

    if frozen is None:
        frozen = creds.get_frozen_credentials()
    key, secret = frozen.access_key, frozen.secret_key
    if presign.applies(svc.host, svc.port) and key is not None and secret is not None:
        # The usual host: the standard-library presign, the same bytes (pgiam.presign; issue 25).
        now = botocore.auth.get_current_datetime()  # type: ignore[attr-defined]  # botocore's clock, as add_auth reads it
        token = presign.rds_token(svc.host, svc.port, svc.user, svc.region, key, secret, frozen.token, now, TOKEN_LIFETIME)
        return token, tokeninfo.stamp_epoch(now.strftime("%Y%m%dT%H%M%SZ"))
    from botocore.auth import SigV4QueryAuth
    from botocore.awsrequest import create_request_object, prepare_request_dict

    request_dict: dict[str, Any] = {"url_path": "/", "query_string": "", "headers": {}, "method": "GET",
                                    "body": {"Action": "connect", "DBUser": svc.user}}
    prepare_request_dict(request_dict, f"https://{svc.host}:{svc.port}")
    request = create_request_object(request_dict)
    SigV4QueryAuth(frozen, "rds-db", svc.region, expires=TOKEN_LIFETIME).add_auth(request)
    # AWSRequest.prepare(), which generate_presigned_url calls before reading request.url, returns a new
    # object and leaves request.url as add_auth wrote it: the URL is read directly.
    url: str = request.url
    # add_auth stamps the request with the one clock reading it signed with (SigV4's X-Amz-Date).
    return url[len("https://"):], tokeninfo.stamp_epoch(request.context["timestamp"])

