"""Every way resolving AWS credentials can fail, sorted into pgiam's exit codes with a hint that fits.

network (exit 8): timeouts, unreachable endpoints, TLS; configuration (exit 3): an unparsable
~/.aws/config, an unknown profile; credentials (exit 4): none found, SSO session expired or missing,
a failing credential_process, an MFA code needed without a terminal, expired credentials.
Nothing raised by botocore or by a credential helper leaves here as anything but a PgiamError, and
text that came from a helper is shortened and scrubbed of anything that looks like a key or token.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from pgiam.errors import AuthError, ConfigError, NetworkError, PgiamError


class MfaNeeded(Exception):
    """A role asks for an MFA code and there is no terminal to ask it on (raised by our prompter)."""


class ProcessTimeout(Exception):
    """A credential_process ran past its time limit and was killed."""

    def __init__(self, seconds: float) -> None:
        super().__init__(f"no answer within {seconds:g} s")
        self.seconds = seconds


# ---------------------------------------------------------------- scrubbing helper output

_SECRET_PATTERNS = [
    # Access key ids (AKIA long-term, ASIA temporary, and the other IAM unique-id prefixes):
    # https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_identifiers.html#identifiers-unique-ids
    re.compile(r"\b(?:AKIA|ASIA|AROA|AIDA|ABIA|ACCA|AGPA|AIPA|ANPA|ANVA|APKA|ASCA)[A-Z0-9]{12,}"),
]
# Secret access keys are 40 characters of base64; session tokens and JWTs are long base64(url) runs.
# Both are random, so they mix upper case, lower case and digits, which file paths and words seldom do.
_RANDOM_RUNS = [
    re.compile(r"(?<![A-Za-z0-9/+=])[A-Za-z0-9/+=]{40}(?![A-Za-z0-9/+=])"),
    re.compile(r"[A-Za-z0-9+=_-]{32,}"),
]
MAX_DETAIL = 200


def _redact_random(m: re.Match[str]) -> str:
    s = m.group(0)
    mixed = any(c.isupper() for c in s) and any(c.islower() for c in s) and any(c.isdigit() for c in s)
    return "[redacted]" if mixed else s


def scrub(text: str, limit: int = MAX_DETAIL) -> str:
    """One line, at most `limit` characters, with key- and token-like runs replaced by [redacted]."""
    for pat in _SECRET_PATTERNS:
        text = pat.sub("[redacted]", text)
    for pat in _RANDOM_RUNS:
        text = pat.sub(_redact_random, text)
    text = " ".join("".join(c if c.isprintable() else " " for c in text).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


# ---------------------------------------------------------------- where a profile's credentials come from


@dataclass(frozen=True)
class Source:
    """How a profile gets its credentials, for a hint that fits (only SSO profiles get `aws sso login`)."""

    kind: str  # sso, process, assume-role, web-identity, static, login, env, unknown
    profile: str  # the profile as the user names it ("default" when none is configured)
    mfa: bool = False  # an assume-role profile with mfa_serial
    sso_profile: str | None = None  # the profile to `aws sso login` with (an SSO source of a role)
    process_profile: str | None = None  # the profile whose credential_process runs (maybe a source)


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


def source_of(profiles: dict[str, dict[str, Any]], profile: str, env_keys: bool) -> Source:
    """Classify `profile` from botocore's merged view of ~/.aws/config and ~/.aws/credentials."""
    p = profiles.get(profile, {})
    kind = _kind(p)
    if kind == "unknown" and env_keys:
        return Source("env", profile)
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
    return Source(kind, profile, mfa="mfa_serial" in p, sso_profile=sso, process_profile=proc)


# ---------------------------------------------------------------- classification


@dataclass(frozen=True)
class Context:
    """What a message and a hint need to know: the service, the profile, the files, the retry command."""

    service: str
    source: Source
    config_file: str  # ~/.aws/config as botocore reads it (AWS_CONFIG_FILE)
    credentials_file: str  # ~/.aws/credentials (AWS_SHARED_CREDENTIALS_FILE)
    retry: str  # a command that retries in the user's state: "`pgiam refresh prod`", or "the same `pgiam add` again"
    timeout: str  # e.g. "4 s", for "did not answer within"


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
    if s.kind == "assume-role" and s.mfa:
        return _mfa_hint(ctx)
    return (f"check the credentials of profile {s.profile} (`aws sts get-caller-identity --profile {s.profile}` "
            f"shows what AWS says), then {ctx.retry}")


def _mfa_hint(ctx: Context) -> str:
    p = ctx.source.profile
    return (f"in a terminal, run `aws sts get-caller-identity --profile {p}` and enter the MFA code: the role is "
            f"cached in ~/.aws/cli/cache, which pgiam shares, until it expires; then {ctx.retry}")


def _network_hint(ctx: Context) -> str:
    return (f"check the network (offline, VPN, proxy, captive portal?) and any AWS_ENDPOINT_URL* setting, "
            f"then {ctx.retry}")


_NETWORK_CODES = {"Throttling", "ThrottlingException", "RequestTimeout", "RequestTimeoutException",
                  "ServiceUnavailable", "InternalFailure", "InternalError"}
_EXPIRED_CODES = {"ExpiredToken", "ExpiredTokenException", "RequestExpired"}


def classify(err: BaseException, ctx: Context) -> PgiamError:
    """The PgiamError (exit 3, 4 or 8) for anything raised while resolving credentials or calling STS/SSO."""
    import botocore.exceptions as bx

    name, prof = ctx.service, ctx.source.profile
    what = f"{name}: could not get AWS credentials for profile {prof}"
    if isinstance(err, PgiamError):
        return err
    if isinstance(err, MfaNeeded) or isinstance(err, bx.RefreshWithMFAUnsupportedError):
        return AuthError(f"{name}: the role of profile {prof} needs an MFA code, and there is no terminal to ask for it",
                         _mfa_hint(ctx))
    if isinstance(err, ProcessTimeout):
        return AuthError(f"{what}: its credential_process did not finish within {err.seconds:g} s and was stopped",
                         _credentials_hint(ctx))
    # network: before the generic ones, as botocore's connection errors are BotoCoreErrors too
    if isinstance(err, (bx.ConnectTimeoutError, bx.ReadTimeoutError)):
        return NetworkError(f"{what}: {scrub(str(err.kwargs.get('endpoint_url') or 'AWS'))} did not answer within {ctx.timeout}", _network_hint(ctx))
    if isinstance(err, bx.SSLError):
        return NetworkError(f"{what}: TLS failed: {scrub(str(err))}",
                            "a proxy or captive portal may be intercepting HTTPS; " + _network_hint(ctx))
    if isinstance(err, (bx.EndpointConnectionError, bx.ConnectionClosedError, bx.ProxyConnectionError,
                        bx.ConnectionError, bx.HTTPClientError)):
        return NetworkError(f"{what}: cannot reach {scrub(str(err.kwargs.get('endpoint_url') or 'AWS'))} ({type(err).__name__})", _network_hint(ctx))
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
        return AuthError(f"{name}: no AWS credentials found (profile {prof})",
                         f"configure them with `aws configure --profile {prof}` or `aws configure sso`, "
                         f"or use a profile that has them (--profile NAME), then {ctx.retry}")
    if isinstance(err, bx.ClientError):
        code = str(err.response.get("Error", {}).get("Code", "")) or "error"
        status = int(err.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
        op = getattr(err, "operation_name", "") or "the call"
        detail = scrub(str(err.response.get("Error", {}).get("Message", "")))
        if code in _NETWORK_CODES or status >= 500:
            return NetworkError(f"{what}: AWS did not serve {op} ({code})", "AWS may be busy; " + _network_hint(ctx))
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
