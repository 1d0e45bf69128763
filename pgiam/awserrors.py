"""Every way resolving AWS credentials can fail, sorted into pgiam's exit codes with a hint that fits.

network (exit 8): timeouts, unreachable endpoints, TLS; configuration (exit 3): an unparsable
~/.aws/config, an unknown profile; credentials (exit 4): none found, SSO session expired or missing,
a failing credential_process, an MFA code needed without a terminal, expired credentials.
Nothing raised by botocore or by a credential helper leaves here as anything but a PgiamError, and
text that came from a helper is shortened and scrubbed of anything that looks like a key or token.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from pgiam.errors import AuthError, ConfigError, NetworkError, PgiamError
from pgiam.scrub import MAX_DETAIL, scrub

__all__ = ["MAX_DETAIL", "Context", "DeadlinePassed", "MfaNeeded", "NotAws", "ProcessTimeout", "Source",
           "classify", "name_not_found", "scrub", "source_of"]


class MfaNeeded(Exception):
    """A role asks for an MFA code and there is no terminal to ask it on (raised by our prompter)."""


class ProcessTimeout(Exception):
    """A credential_process ran past its time limit and was killed."""

    def __init__(self, seconds: float) -> None:
        super().__init__(f"no answer within {seconds:g} s")
        self.seconds = seconds


class NotAws(Exception):
    """An answer that is not AWS's: an HTML page (captive portal, proxy), or a body the protocol cannot be."""

    def __init__(self, endpoint: str, why: str) -> None:
        super().__init__(f"{endpoint}: {why}")
        self.endpoint = endpoint
        self.why = why


class DeadlinePassed(BaseException):
    """A call to AWS ran past pgiam's total time limit (an answer that arrives a byte at a time).

    A BaseException, like KeyboardInterrupt: raised from a signal handler, it must pass botocore's and
    urllib3's `except Exception` retry paths untouched."""

    def __init__(self, seconds: float) -> None:
        super().__init__(f"no complete answer within {seconds:g} s")
        self.seconds = seconds


# ---------------------------------------------------------------- where a profile's credentials come from


# botocore's own names for where credentials came from (Credentials.method) that are not a profile:
# botocore/credentials.py EnvProvider, ContainerProvider, InstanceMetadataProvider,
# AssumeRoleWithWebIdentityProvider (from AWS_WEB_IDENTITY_TOKEN_FILE and AWS_ROLE_ARN).
NON_PROFILE_SOURCES = {"env": "environment", "container-role": "container", "iam-role": "instance",
                       "assume-role-with-web-identity": "web-identity"}


@dataclass(frozen=True)
class Source:
    """How a profile gets its credentials, for a hint that fits (only SSO profiles get `aws sso login`)."""

    kind: str  # sso, process, assume-role, web-identity, static, login, env, container, env-web-identity, unknown
    profile: str  # the profile as the user names it ("default" when none is configured)
    mfa: bool = False  # an assume-role profile with mfa_serial
    sso_profile: str | None = None  # the profile to `aws sso login` with (an SSO source of a role)
    process_profile: str | None = None  # the profile whose credential_process runs (maybe a source)
    region: str | None = None  # the region the profile configures, if any
    variable: str = ""  # the environment variable that names a non-profile source

    @property
    def label(self) -> str:
        """The source as botocore names it: a profile, or environment / container / web identity credentials."""
        if self.kind == "env":
            return "the environment keys (AWS_ACCESS_KEY_ID)"
        if self.kind == "container":
            return f"the container credentials ({self.variable})"
        if self.kind == "env-web-identity":
            return "the web identity credentials (AWS_WEB_IDENTITY_TOKEN_FILE and AWS_ROLE_ARN)"
        return f"profile {self.profile}"


def _kind(p: dict[str, Any]) -> str:
    if "role_arn" in p:
        return "web-identity" if "web_identity_token_file" in p else "assume-role"
    if "sso_start_url" in p or "sso_session" in p:
        return "sso"
    if "credential_process" in p:
        return "process"
    if "login_session" in p:
        return "login"
    if "aws_access_key_id" in p:
        return "static"
    return "unknown"


def source_of(profiles: dict[str, dict[str, Any]], profile: str, env_keys: bool,
              env: dict[str, str] | None = None) -> Source:
    """Classify `profile` from botocore's merged view of ~/.aws/config and ~/.aws/credentials.

    A profile with nothing configured falls through botocore's chain to the environment: keys
    (env_keys), web identity variables, then container credentials."""
    p = profiles.get(profile, {})
    kind = _kind(p)
    env = env or {}
    if kind == "unknown" and env_keys:
        return Source("env", profile)
    if kind == "unknown" and env.get("AWS_WEB_IDENTITY_TOKEN_FILE") and env.get("AWS_ROLE_ARN"):
        return Source("env-web-identity", profile)
    if kind == "unknown":
        for var in ("AWS_CONTAINER_CREDENTIALS_FULL_URI", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI"):
            if env.get(var):
                return Source("container", profile, variable=var)
    sso = profile if kind == "sso" else None
    proc = profile if kind == "process" else None
    seen = {profile}
    cur = p
    while _kind(cur) == "assume-role" and cur.get("source_profile") and cur["source_profile"] not in seen:
        name = str(cur["source_profile"])
        seen.add(name)
        cur = profiles.get(name, {})
        if _kind(cur) == "sso":
            sso = name
        elif _kind(cur) == "process":
            proc = name
    return Source(kind, profile, mfa="mfa_serial" in p, sso_profile=sso, process_profile=proc,
                  region=str(p["region"]) if p.get("region") else None)


# ---------------------------------------------------------------- classification


def name_not_found(err: BaseException) -> bool:
    """The endpoint's host name does not resolve (socket.gaierror under botocore's EndpointConnectionError)."""
    import socket

    import botocore.exceptions as bx

    if not isinstance(err, bx.EndpointConnectionError):
        return False
    seen: BaseException | None = err
    for _ in range(10):
        if seen is None:
            return False
        if isinstance(seen, socket.gaierror):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


@dataclass(frozen=True)
class Context:
    """What a message and a hint need to know: the service, the profile, the files, the retry command."""

    service: str
    source: Source
    config_file: str  # ~/.aws/config as botocore reads it (AWS_CONFIG_FILE)
    credentials_file: str  # ~/.aws/credentials (AWS_SHARED_CREDENTIALS_FILE)
    retry: str  # a command that retries in the user's state: "`pgiam refresh prod`", or "the same `pgiam add` again"
    timeout: str  # e.g. "4 s", for "did not answer within"
    region: str | None = None  # the service's region (a hint's `--region` for a profile without one)
    action: str | None = None  # what failed, when it is not getting credentials: "rds:DescribeDBInstances in us-east-1"


def _sso_login(ctx: Context) -> str:
    prof = ctx.source.sso_profile or ctx.source.profile
    return f"run `aws sso login --profile {prof}`, then {ctx.retry}"


def _credentials_hint(ctx: Context) -> str:
    """The next step for 'these credentials do not work', by where the profile gets them."""
    s = ctx.source
    if s.sso_profile:
        return _sso_login(ctx)
    if s.process_profile:
        return (f"run the credential_process of profile {s.process_profile} by hand "
                f"(`aws configure get credential_process --profile {s.process_profile}`) and fix what it reports, "
                f"then {ctx.retry}")
    if s.kind == "env":
        return ("renew AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY / AWS_SESSION_TOKEN in this shell, then "
                f"{ctx.retry}; timers and other shells do not have them: a profile (`aws configure --profile NAME`, "
                "given to `pgiam add` as --profile NAME) works everywhere")
    if s.kind == "login":
        return f"run `aws login --profile {s.profile}`, then {ctx.retry}"
    if s.kind == "container":
        return (f"check the container's task role or pod identity and that {s.variable} is reachable from here, "
                f"then {ctx.retry}")
    if s.kind == "env-web-identity":
        return (f"check that AWS_WEB_IDENTITY_TOKEN_FILE names a current token and that AWS_ROLE_ARN trusts it, "
                f"then {ctx.retry}")
    if s.kind == "assume-role" and s.mfa:
        return _mfa_hint(ctx)
    return (f"check the credentials of profile {s.profile} (`aws sts get-caller-identity --profile {s.profile}"
            f"{_region_flag(ctx)}` shows what AWS says), then {ctx.retry}")


def _region_flag(ctx: Context) -> str:
    """` --region R` when the profile names no region: the AWS CLI takes none from a source profile and
    fails with "You must specify a region" (botocore NoRegionError) without it."""
    return f" --region {ctx.region}" if ctx.region and not ctx.source.region else ""


def _mfa_hint(ctx: Context) -> str:
    p = ctx.source.profile
    return (f"in a terminal, run `aws sts get-caller-identity --profile {p}{_region_flag(ctx)}` and enter the MFA code: the role is "
            f"cached in ~/.aws/cli/cache, which pgiam shares, until it expires; then {ctx.retry}")


def _network_hint(ctx: Context) -> str:
    return (f"check the network (offline, VPN, proxy, captive portal?) and any AWS_ENDPOINT_URL* setting, "
            f"then {ctx.retry}")


def _not_aws_hint(ctx: Context) -> str:
    return ("something other than AWS answered: a captive portal (sign in to the network in a browser) or a proxy "
            "(check HTTPS_PROXY / NO_PROXY and the proxy's status); " + _network_hint(ctx))


def _endpoint(err: Any) -> str:
    return scrub(str(getattr(err, "kwargs", {}).get("endpoint_url") or getattr(err, "endpoint", "") or "AWS"))


def _is_connection_failure(text: str) -> bool:
    """A credential provider's own HTTP call (container, instance metadata) that reached nothing."""
    t = text.lower()
    return any(w in t for w in ("could not connect", "timed out", "timeout", "connection was closed",
                                "connection refused", "connection reset", "not aws's"))


_NETWORK_CODES = {"Throttling", "ThrottlingException", "RequestTimeout", "RequestTimeoutException",
                  "ServiceUnavailable", "InternalFailure", "InternalError"}
_EXPIRED_CODES = {"ExpiredToken", "ExpiredTokenException", "RequestExpired"}


def classify(err: BaseException, ctx: Context) -> PgiamError:
    """The PgiamError (exit 3, 4 or 8) for anything raised while resolving credentials or calling AWS.

    The one classifier of every command that talks to AWS (add, refresh, token, run, discover,
    doctor --online): an answer that is not AWS's, a timeout or an unreachable endpoint is a network
    failure (8), whatever the call was."""
    import botocore.exceptions as bx
    from botocore.parsers import ResponseParserError

    name, prof = ctx.service, ctx.source.profile
    what = f"{name}: {ctx.action}" if ctx.action else f"{name}: could not get AWS credentials for {ctx.source.label}"
    if isinstance(err, PgiamError):
        return err
    if isinstance(err, MfaNeeded) or isinstance(err, bx.RefreshWithMFAUnsupportedError):
        return AuthError(f"{name}: the role of profile {prof} needs an MFA code, and there is no terminal to ask for it",
                         _mfa_hint(ctx))
    if isinstance(err, ProcessTimeout):
        return AuthError(f"{what}: its credential_process did not finish within {err.seconds:g} s and was stopped",
                         _credentials_hint(ctx))
    # network: before the generic ones, as botocore's connection errors are BotoCoreErrors too
    if isinstance(err, NotAws):
        return NetworkError(f"{what}: the answer from {scrub(err.endpoint)} is not AWS's ({scrub(err.why)})",
                            _not_aws_hint(ctx))
    if isinstance(err, ResponseParserError):
        return NetworkError(f"{what}: the answer is not AWS's (it does not parse as the AWS protocol)",
                            _not_aws_hint(ctx))
    if isinstance(err, DeadlinePassed):
        return NetworkError(f"{what}: no complete answer within {err.seconds:g} s", _not_aws_hint(ctx))
    if isinstance(err, (bx.ConnectTimeoutError, bx.ReadTimeoutError)):
        return NetworkError(f"{what}: {_endpoint(err)} did not answer within {ctx.timeout}", _network_hint(ctx))
    if isinstance(err, bx.SSLError):
        return NetworkError(f"{what}: TLS failed: {scrub(str(err))}",
                            "a proxy or captive portal may be intercepting HTTPS; " + _network_hint(ctx))
    if isinstance(err, (bx.EndpointConnectionError, bx.ConnectionClosedError, bx.ProxyConnectionError,
                        bx.ConnectionError, bx.HTTPClientError)):
        return NetworkError(f"{what}: cannot reach {_endpoint(err)} ({type(err).__name__})", _network_hint(ctx))
    if isinstance(err, bx.CredentialRetrievalError) and str(err.kwargs.get("provider", "")) in ("container-role", "iam-role") \
            and _is_connection_failure(str(err.kwargs.get("error_msg", ""))):
        return NetworkError(f"{what}: {scrub(str(err.kwargs.get('error_msg', '')))}", _network_hint(ctx))
    # configuration
    if isinstance(err, bx.ProfileNotFound):
        return ConfigError(f"{name}: AWS profile {prof!r} is not in {ctx.config_file} or {ctx.credentials_file}",
                           f"`aws configure list-profiles` lists the profiles; add [profile {prof}] to {ctx.config_file}, "
                           f"or use another profile (--profile NAME), then {ctx.retry}")
    if isinstance(err, bx.ConfigParseError):
        path = err.kwargs.get("path") or ctx.config_file
        return ConfigError(f"{name}: cannot parse the AWS config file {path}",
                           f"fix the syntax of {path} (`aws configure list --profile {prof}` shows the same error), then {ctx.retry}")
    if isinstance(err, (bx.InvalidConfigError, bx.PartialCredentialsError, bx.UnknownCredentialError,
                        bx.NoRegionError, bx.InvalidRegionError, bx.UnknownEndpointError)):
        return ConfigError(f"{name}: profile {prof} in {ctx.config_file}: {scrub(str(err))}",
                           f"fix [profile {prof}] in {ctx.config_file} (or {ctx.credentials_file}), then {ctx.retry}")
    # credentials
    if isinstance(err, (bx.SSOTokenLoadError, bx.UnauthorizedSSOTokenError, bx.TokenRetrievalError, bx.SSOError)):
        sso = ctx.source.sso_profile or prof
        return AuthError(f"{name}: the AWS SSO session of profile {sso} is missing or expired", _sso_login(ctx))
    # LoginError (`aws login` sessions) is newer than the botocore floor in pyproject.toml: 1.40.2 lacks it.
    login_error: Any = getattr(bx, "LoginError", None)
    if login_error is not None and isinstance(err, login_error):
        return AuthError(f"{name}: the AWS login session of profile {prof} is missing or expired",
                         f"run `aws login --profile {prof}`, then {ctx.retry}")
    if isinstance(err, bx.NoCredentialsError):
        return AuthError(f"{name}: no AWS credentials found ({ctx.source.label})",
                         f"configure them with `aws configure --profile {prof}` or `aws configure sso`, "
                         f"or use a profile that has them (--profile NAME), then {ctx.retry}")
    if isinstance(err, bx.ClientError):
        code = str(err.response.get("Error", {}).get("Code", "")) or "error"
        status = int(err.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
        op = getattr(err, "operation_name", "") or "the call"
        detail = scrub(str(err.response.get("Error", {}).get("Message", "")))
        if code in _NETWORK_CODES or status >= 500:
            return NetworkError(f"{what}: AWS did not serve {op} ({code})",
                                "AWS may be busy, or a proxy answered for it; " + _network_hint(ctx))
        if code in _EXPIRED_CODES:
            return AuthError(f"{what}: the credentials have expired ({op}: {code})", _credentials_hint(ctx))
        return AuthError(f"{what}: AWS refused {op}: {code}" + (f": {detail}" if detail else ""), _credentials_hint(ctx))
    if isinstance(err, bx.CredentialRetrievalError):
        provider = str(err.kwargs.get("provider", ""))
        detail = scrub(str(err.kwargs.get("error_msg", "")))
        if provider == "custom-process" or ctx.source.process_profile:
            return AuthError(f"{what}: its credential_process failed: {detail or 'no output'}", _credentials_hint(ctx))
        return AuthError(f"{what}: {provider or 'the provider'} failed: {detail}", _credentials_hint(ctx))
    if ctx.source.process_profile and isinstance(err, (json.JSONDecodeError, FileNotFoundError, PermissionError, RuntimeError,
                                                       ValueError, KeyError, OSError)):
        if isinstance(err, json.JSONDecodeError):
            why = "its credential_process did not print JSON"
        elif isinstance(err, (FileNotFoundError, PermissionError)):
            why = f"its credential_process cannot be run ({scrub(err.strerror or type(err).__name__)}: {scrub(str(err.filename))})"
        elif isinstance(err, RuntimeError) and "expired" in str(err):
            why = "its credential_process returned credentials that are already expired (Expiration in the past)"
        else:
            why = f"its credential_process output is not usable ({type(err).__name__}: {scrub(str(err))})"
        return AuthError(f"{what}: {why}", _credentials_hint(ctx))
    if isinstance(err, RuntimeError) and "expired" in str(err):
        return AuthError(f"{what}: the credentials are expired", _credentials_hint(ctx))
    if isinstance(err, EOFError):  # a prompt that found no terminal, outside our prompter
        return AuthError(f"{what}: botocore asked for input and there is no terminal", _mfa_hint(ctx))
    return AuthError(f"{what}: {type(err).__name__}: {scrub(str(err))}", _credentials_hint(ctx))
