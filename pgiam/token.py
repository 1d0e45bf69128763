"""Mint RDS IAM auth tokens; the only importer of botocore (with pgiam.awscreds), and only when a token is due.

The token is exactly what `aws rds generate-db-auth-token` prints: botocore's own
`generate_db_auth_token`, signed through botocore's credential chain (environment, shared files, SSO,
assume-role, credential_process, metadata), resolved as pgiam.awscreds sets it up. Every failure
becomes a PgiamError through pgiam.awserrors.classify.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

from pgiam.config import TOKEN_LIFETIME, Service
from pgiam.errors import AuthError, PgiamError

if TYPE_CHECKING:
    from botocore.credentials import Credentials
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


class Minter:
    """Mints tokens with one botocore session per (profile, region, credentials file): 100 services cost
    about one. Each command makes its own (no process-wide cache): `pgiam run` keeps one and forgets
    its sessions on SIGHUP.

    retry: the command a hint tells the user to run once the cause is fixed (default `pgiam refresh NAME`).
    """

    def __init__(self, retry: str | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        self.retry = retry
        self.clock = clock
        self._sessions: dict[_SessionKey, Session] = {}
        self._failed: dict[_SessionKey, tuple[float, PgiamError]] = {}

    def forget(self) -> None:
        """Drop every session and remembered failure: a changed AWS config or profile is read again."""
        self._sessions.clear()
        self._failed.clear()

    def session(self, svc: Service) -> Session:
        from pgiam import awscreds

        key = (svc.profile, svc.region, svc.aws_credentials_file)
        if key not in self._sessions:
            self._sessions[key] = awscreds.new_session(svc.profile, svc.region, svc.aws_credentials_file)
        return self._sessions[key]

    def __call__(self, svc: Service) -> Minted:
        """A fresh token for `svc`, with its effective expiry; every failure becomes a PgiamError (exit 3, 4 or 8)."""
        from pgiam import awscreds, awserrors
        from pgiam.errors import NetworkError

        key = (svc.profile, svc.region, svc.aws_credentials_file)
        failed = self._failed.get(key)
        if failed is not None and self.clock() - failed[0] < NETWORK_FAILURE_STANDS:
            raise failed[1]
        session: Session | None = None
        try:
            session = self.session(svc)
            with awscreds.deadline():
                resolved = awscreds.resolve(session)
            if resolved is not None:
                token, minted = _sign(session, resolved.credentials, svc)
        except PgiamError:
            raise
        except (Exception, awserrors.DeadlinePassed) as err:  # noqa: BLE001 - botocore and helpers raise anything
            if session is None:
                self._sessions.pop(key, None)
            classified = awserrors.classify(err, context(svc, session, self.retry))
            if isinstance(classified, NetworkError):
                self._failed[key] = (self.clock(), classified)
            raise classified from None
        if resolved is None:
            ctx = context(svc, session, self.retry)
            raise AuthError(f"{svc.name}: no AWS credentials found ({ctx.source.label})",
                            f"configure them with `aws configure --profile {ctx.source.profile}` or `aws configure sso`, "
                            f"or use a profile that has them (--profile NAME), then {ctx.retry}")
        from pgiam import tokeninfo

        info = tokeninfo.try_decode(token)
        if info is not None:  # the token's own X-Amz-Date: the clock may tick over a second while botocore signs
            minted = info.signed_at
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


def _sign(session: Session, creds: Credentials, svc: Service) -> tuple[str, float]:
    """botocore's own generate_db_auth_token, without loading the RDS service model."""
    from pgiam import dsql

    if dsql.is_dsql_host(svc.host):  # Aurora DSQL signs differently (no port, no user): pgiam.dsql
        return dsql.sign(session, creds, svc)
    import botocore.auth
    import botocore.signers
    from botocore.model import ServiceId

    signer = botocore.signers.RequestSigner(
        ServiceId("rds"), svc.region, "rds-db", "v4", creds, session.get_component("event_emitter")
    )
    client_like: Any = SimpleNamespace(_request_signer=signer, meta=SimpleNamespace(region_name=svc.region))
    clock: Any = getattr(botocore.auth, "get_current_datetime")  # untyped in botocore-stubs
    minted = clock()
    token = str(botocore.signers.generate_db_auth_token(client_like, svc.host, svc.port, svc.user, Region=svc.region))
    # botocore signs at one-second resolution with the clock read just before; take that instant.
    return token, _epoch(minted)


def _epoch(dt: Any) -> float:
    import calendar

    return float(calendar.timegm(dt.utctimetuple()))
