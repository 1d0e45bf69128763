"""Which AWS credential source a service's profile uses, read from disk and the environment only.

botocore's chain (botocore/credentials.py `create_credential_resolver`): environment keys (only when
no profile was named explicitly), then the profile's assume-role / web identity / SSO /
credential_process / static keys, then container and instance metadata. SSO tokens are cached in
~/.aws/sso/cache/<sha1 of the sso-session name or start URL>.json with `expiresAt` (AWS CLI user
guide, "Configuring IAM Identity Center authentication").
"""

from __future__ import annotations

import configparser
import datetime
import hashlib
import json
from collections.abc import Mapping
from pathlib import Path

from pgiam.config import Service
from pgiam.doctor import Check, fail, ok, warn
from pgiam.facts import TOKEN_LIFETIME


def _read_ini(path: Path) -> configparser.RawConfigParser:
    cp = configparser.RawConfigParser()
    try:
        cp.read(path, encoding="utf-8")
    except (configparser.Error, UnicodeDecodeError):
        pass
    return cp


def _iso(ts: str) -> float | None:
    try:
        return datetime.datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp()
    except (ValueError, AttributeError):
        return None


def _left(secs: float) -> str:
    secs = int(secs)
    if secs >= 3600:
        return f"{secs // 3600} h {secs % 3600 // 60} min"
    return f"{secs // 60} min {secs % 60} s"


def check_credentials(svc: Service, env: Mapping[str, str], home: Path, now: float) -> list[Check]:
    if svc.aws_credentials_file:
        path = Path(svc.aws_credentials_file)
        if not path.is_file():
            return [fail("creds.source", f"the credentials file {path} of service {svc.name} is missing",
                         "pgiam sandbox up" if svc.name == "sandbox" else f"restore {path}")]
        return [ok("creds.source", f"static key from {path} (profile {svc.profile or 'default'})")]
    profile = svc.profile or env.get("AWS_PROFILE") or env.get("AWS_DEFAULT_PROFILE") or "default"
    login = f"aws sso login --profile {profile}"
    if not svc.profile and env.get("AWS_ACCESS_KEY_ID") and env.get("AWS_SECRET_ACCESS_KEY"):
        kind = "temporary (with AWS_SESSION_TOKEN)" if env.get("AWS_SESSION_TOKEN") else "long-term"
        return [ok("creds.source", f"environment keys ({kind}); their expiry is not on disk, `--online` checks them")]
    config = _read_ini(Path(env.get("AWS_CONFIG_FILE") or home / ".aws" / "config"))
    creds = _read_ini(Path(env.get("AWS_SHARED_CREDENTIALS_FILE") or home / ".aws" / "credentials"))
    section = "default" if profile == "default" else f"profile {profile}"
    conf = dict(config.items(section)) if config.has_section(section) else {}
    if profile == "default" and not conf and config.has_section("profile default"):
        conf = dict(config.items("profile default"))
    if "role_arn" in conf:
        src = conf.get("source_profile") or conf.get("credential_source") or "?"
        extra = " with an MFA code (asked on a terminal only)" if "mfa_serial" in conf else ""
        out = [ok("creds.source", f"profile {profile}: assume-role {conf['role_arn']} from {src}{extra}")]
        if "web_identity_token_file" in conf and not Path(conf["web_identity_token_file"]).is_file():
            out = [fail("creds.source", f"profile {profile}: web identity token file {conf['web_identity_token_file']} is missing",
                        "check the pod's service account (IRSA) or the path")]
        return out
    if "sso_session" in conf or "sso_start_url" in conf:
        return _sso(profile, conf, config, home, now, login)
    if "credential_process" in conf:
        return [ok("creds.source", f"profile {profile}: credential_process (its expiry is known once it runs; "
                   "`--online` runs it)")]
    if creds.has_section(profile) and creds.has_option(profile, "aws_access_key_id"):
        kind = "temporary (aws_session_token)" if creds.has_option(profile, "aws_session_token") else "long-term"
        return [ok("creds.source", f"profile {profile}: static {kind} keys in the shared credentials file")]
    if "aws_access_key_id" in conf:
        return [ok("creds.source", f"profile {profile}: static keys in the config file")]
    if env.get("AWS_CONTAINER_CREDENTIALS_FULL_URI") or env.get("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI"):
        return [ok("creds.source", "container credentials (ECS task role or EKS Pod Identity)")]
    if env.get("AWS_WEB_IDENTITY_TOKEN_FILE") and env.get("AWS_ROLE_ARN"):
        return [ok("creds.source", f"web identity (IRSA): {env['AWS_ROLE_ARN']}")]
    if profile != "default" and not conf and not creds.has_section(profile):
        return [fail("creds.source", f"profile {profile} is in neither the AWS config nor the credentials file",
                     f"aws configure --profile {profile} (or aws configure sso)")]
    if env.get("AWS_EC2_METADATA_DISABLED", "").lower() == "true":
        return [fail("creds.source", f"no credentials for profile {profile} on disk or in the environment, "
                     "and instance metadata is disabled", f"aws configure --profile {profile} (or aws configure sso)")]
    return [warn("creds.source", f"no credentials for profile {profile} on disk or in the environment: "
                 "botocore will ask the instance metadata service", "`pgiam doctor --online` tries them")]


def _sso(profile: str, conf: dict[str, str], config: configparser.RawConfigParser, home: Path, now: float,
         login: str) -> list[Check]:
    session = conf.get("sso_session")
    if session:
        sec = f"sso-session {session}"
        if not config.has_section(sec):
            return [fail("creds.source", f"profile {profile} names sso_session {session}, which has no "
                         f"[{sec}] section", f"aws configure sso --profile {profile}")]
        key = session
    else:
        key = conf.get("sso_start_url", "")
    out = [ok("creds.source", f"profile {profile}: IAM Identity Center (SSO" + (f" session {session})" if session else ")"))]
    cache = home / ".aws" / "sso" / "cache" / (hashlib.sha1(key.encode()).hexdigest() + ".json")
    try:
        data = json.loads(cache.read_text())
        expires = _iso(str(data.get("expiresAt", "")))
    except (OSError, ValueError, AttributeError):
        out.append(fail("creds.sso", f"no cached SSO login for profile {profile} ({cache} is missing or unreadable)", login))
        return out
    if expires is None:
        out.append(fail("creds.sso", f"the cached SSO login {cache} has no valid expiresAt", login))
    elif expires <= now:
        refreshable = bool(data.get("refreshToken")) and session
        msg = f"the SSO session of profile {profile} expired {_left(now - expires)} ago"
        if refreshable:
            out.append(warn("creds.sso", msg + " (botocore may renew it with its refresh token)", login))
        else:
            out.append(fail("creds.sso", msg, login))
    elif expires - now < TOKEN_LIFETIME:  # a token signed now would outlive the session
        out.append(warn("creds.sso", f"the SSO session of profile {profile} ends in {_left(expires - now)}", login))
    else:
        out.append(ok("creds.sso", f"the SSO session of profile {profile} has {_left(expires - now)} left"))
    return out
