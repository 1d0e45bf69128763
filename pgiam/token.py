"""Mint RDS IAM auth tokens; the only importer of botocore, and only when a token is due.

The token is exactly what `aws rds generate-db-auth-token` prints: botocore's own
`generate_db_auth_token`, signed through botocore's credential chain
(environment, shared files, SSO, assume-role, credential_process, metadata).
"""

from __future__ import annotations

from dataclasses import dataclass
from types import SimpleNamespace

from pgiam.config import TOKEN_LIFETIME, Service
from pgiam.errors import AuthError, ConfigError


@dataclass(frozen=True)
class Minted:
    token: str
    minted_at: float
    expires_at: float  # min(minted + 900 s, expiry of the temporary credentials that signed it)

    def __repr__(self) -> str:  # never show the token, not even in a traceback's locals
        return f"Minted(token=<{len(self.token)} chars>, minted_at={self.minted_at}, expires_at={self.expires_at})"


def _profile_label(svc: Service) -> str:
    import os

    return svc.profile or os.environ.get("AWS_PROFILE") or "default"


_SESSIONS: dict[tuple[str | None, str | None], object] = {}


def _session(svc: Service):  # -> botocore.session.Session
    """One botocore session per (profile, credentials file) per process: 100 services cost about one."""
    key = (svc.profile, svc.aws_credentials_file)
    if key not in _SESSIONS:
        _SESSIONS[key] = _new_session(svc)
    return _SESSIONS[key]


def _new_session(svc: Service):  # -> botocore.session.Session
    import botocore.credentials
    import botocore.session

    session = botocore.session.Session(profile=svc.profile)
    if svc.aws_credentials_file:
        # The sandbox signs with its own static key pair: use botocore's shared-file provider alone,
        # so the user's AWS environment can neither leak into nor break the sandbox.
        provider = botocore.credentials.SharedCredentialProvider(
            creds_filename=svc.aws_credentials_file, profile_name=svc.profile or "default"
        )
        session.register_component("credential_provider", botocore.credentials.CredentialResolver([provider]))
    return session


def mint(svc: Service) -> Minted:
    """A fresh token for `svc`, with its effective expiry; credential problems become AuthError."""
    import botocore.exceptions as bx

    profile = _profile_label(svc)
    sso_hint = f"run `aws sso login --profile {profile}` (or refresh the credentials of profile {profile}), then `pgiam refresh {svc.name}`"
    try:
        session = _session(svc)
        creds = session.get_credentials()
        if creds is None:
            raise AuthError(
                f"{svc.name}: no AWS credentials found (profile {profile})",
                f"configure them with `aws configure --profile {profile}` or `aws configure sso`, "
                f"or pick a profile with `pgiam add {svc.name} --replace --profile NAME ...`",
            )
        frozen = creds.get_frozen_credentials()  # refreshes SSO / assume-role credentials when needed
        expiry = getattr(creds, "_expiry_time", None)
        token, minted = _sign(session, creds, svc)
    except bx.ProfileNotFound:
        raise ConfigError(
            f"{svc.name}: AWS profile {profile!r} not found",
            "check `aws configure list-profiles`, then fix the profile with `pgiam add --replace`",
        ) from None
    except (bx.SSOError, bx.SSOTokenLoadError, bx.UnauthorizedSSOTokenError, bx.TokenRetrievalError) as err:
        raise AuthError(f"{svc.name}: AWS SSO session for profile {profile} is missing or expired ({type(err).__name__})", sso_hint) from None
    except bx.NoCredentialsError:
        raise AuthError(f"{svc.name}: no AWS credentials found (profile {profile})", f"run `aws configure --profile {profile}` or `aws sso login --profile {profile}`") from None
    except (bx.BotoCoreError, bx.ClientError) as err:
        raise AuthError(f"{svc.name}: could not get AWS credentials for profile {profile}: {type(err).__name__}: {err}", sso_hint) from None
    del frozen
    expires = minted + TOKEN_LIFETIME
    if expiry is not None:
        expires = min(expires, expiry.timestamp())
    return Minted(token=token, minted_at=minted, expires_at=expires)


def _sign(session, creds, svc: Service) -> tuple[str, float]:
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
    client_like = SimpleNamespace(_request_signer=signer, meta=SimpleNamespace(region_name=svc.region))
    minted = botocore.auth.get_current_datetime()
    token = botocore.signers.generate_db_auth_token(client_like, svc.host, svc.port, svc.user, Region=svc.region)
    # botocore signs at one-second resolution with the clock read just before; take that instant.
    return token, _epoch(minted)


def _epoch(dt) -> float:
    import calendar

    return float(calendar.timegm(dt.utctimetuple()))

