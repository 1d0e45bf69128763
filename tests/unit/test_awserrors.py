"""pgiam.awserrors.classify directly (issue 22: it was reached only through the CLI): what botocore or a
credential helper raises -> pgiam's error class and exit code (3 config, 4 credentials, 8 network), never
anything else, every hint ending in the retry command, helper text scrubbed. Real botocore exceptions."""

from __future__ import annotations

import json

import botocore.exceptions as bx
import pytest

from pgiam.awserrors import Context, MfaNeeded, ProcessTimeout, Source, classify
from pgiam.errors import AuthError, ConfigError, ExitCode, NetworkError, PgiamError

RETRY = "`pgiam refresh prod`"
STS = "https://sts.us-west-2.amazonaws.com"
SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"  # 40 characters of mixed base64, as a secret key


def ctx(kind: str = "static", **kw: object) -> Context:
    return Context("prod", Source(kind, "dev", **kw), "/home/u/.aws/config", "/home/u/.aws/credentials", RETRY, "3 s")  # type: ignore[arg-type]


def client_error(code: str, status: int, message: str = "m") -> bx.ClientError:
    return bx.ClientError({"Error": {"Code": code, "Message": message}, "ResponseMetadata": {"HTTPStatusCode": status}},
                          "AssumeRole")


CASES: list[tuple[str, BaseException, Context, ExitCode]] = [
    # no terminal for an MFA code, a helper that hangs
    ("mfa needed", MfaNeeded("Enter MFA code: "), ctx("assume-role", mfa=True), ExitCode.AUTH),
    ("mfa refresh", bx.RefreshWithMFAUnsupportedError(), ctx("assume-role", mfa=True), ExitCode.AUTH),
    ("process timeout", ProcessTimeout(120), ctx("process", process_profile="dev"), ExitCode.AUTH),
    # network
    ("connect timeout", bx.ConnectTimeoutError(endpoint_url=STS), ctx(), ExitCode.NETWORK),
    ("read timeout", bx.ReadTimeoutError(endpoint_url=STS), ctx(), ExitCode.NETWORK),
    ("tls", bx.SSLError(endpoint_url=STS, error="certificate verify failed"), ctx(), ExitCode.NETWORK),
    ("unreachable", bx.EndpointConnectionError(endpoint_url=STS), ctx(), ExitCode.NETWORK),
    ("closed", bx.ConnectionClosedError(endpoint_url=STS), ctx(), ExitCode.NETWORK),
    ("proxy", bx.ProxyConnectionError(proxy_url="http://127.0.0.1:3128", error="refused"), ctx(), ExitCode.NETWORK),
    ("throttled", client_error("Throttling", 400), ctx(), ExitCode.NETWORK),
    ("aws 500", client_error("InternalError", 500), ctx(), ExitCode.NETWORK),
    ("proxy 503", client_error("Whatever", 503), ctx(), ExitCode.NETWORK),
    # configuration
    ("no profile", bx.ProfileNotFound(profile="dev"), ctx(), ExitCode.CONFIG),
    ("bad config", bx.ConfigParseError(path="/home/u/.aws/config"), ctx(), ExitCode.CONFIG),
    ("partial keys", bx.PartialCredentialsError(provider="env", cred_var="AWS_SECRET_ACCESS_KEY"), ctx(), ExitCode.CONFIG),
    ("no region", bx.NoRegionError(), ctx("assume-role"), ExitCode.CONFIG),
    ("bad region", bx.InvalidRegionError(region_name="us west"), ctx(), ExitCode.CONFIG),
    ("invalid config", bx.InvalidConfigError(error_msg="bad"), ctx(), ExitCode.CONFIG),
    # credentials
    ("sso token", bx.SSOTokenLoadError(error_msg="no cached token"), ctx("sso", sso_profile="dev"), ExitCode.AUTH),
    ("sso expired", bx.UnauthorizedSSOTokenError(), ctx("sso", sso_profile="dev"), ExitCode.AUTH),
    ("sso refresh", bx.TokenRetrievalError(provider="sso", error_msg="expired"), ctx("sso", sso_profile="dev"), ExitCode.AUTH),
    ("no credentials", bx.NoCredentialsError(), ctx("unknown"), ExitCode.AUTH),
    ("expired token", client_error("ExpiredToken", 403), ctx(), ExitCode.AUTH),
    ("access denied", client_error("AccessDenied", 403), ctx(), ExitCode.AUTH),
    ("helper failed", bx.CredentialRetrievalError(provider="custom-process", error_msg="exit 1"),
     ctx("process", process_profile="dev"), ExitCode.AUTH),
    ("helper json", json.JSONDecodeError("Expecting value", "oops", 0), ctx("process", process_profile="dev"), ExitCode.AUTH),
    ("helper missing", FileNotFoundError(2, "No such file or directory", "/opt/helper"),
     ctx("process", process_profile="dev"), ExitCode.AUTH),
    ("helper stale", RuntimeError("Credentials were refreshed, but the refreshed credentials are still expired."),
     ctx("process", process_profile="dev"), ExitCode.AUTH),
    ("stale", RuntimeError("Credentials were refreshed, but the refreshed credentials are still expired."), ctx(),
     ExitCode.AUTH),
    ("prompt without terminal", EOFError(), ctx("assume-role", mfa=True), ExitCode.AUTH),
    ("anything else", LookupError("odd"), ctx(), ExitCode.AUTH),
]
CLASSES = {ExitCode.AUTH: AuthError, ExitCode.CONFIG: ConfigError, ExitCode.NETWORK: NetworkError}


@pytest.mark.parametrize(("err", "context", "code"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_each_failure_has_its_class_and_exit_code(err: BaseException, context: Context, code: ExitCode) -> None:
    got = classify(err, context)
    assert (type(got), got.code) == (CLASSES[code], code)
    assert got.message.startswith("prod: ")  # the service it happened to
    assert got.hint is not None and got.hint.endswith(RETRY)  # the next step, then the retry


def test_a_pgiam_error_passes_through_unchanged() -> None:
    mine = NetworkError("prod: cannot reach x", "fix it")
    assert classify(mine, ctx()) is mine


@pytest.mark.parametrize("err", [
    bx.CredentialRetrievalError(provider="custom-process", error_msg=f"bad key {SECRET} for AKIAIOSFODNN7EXAMPLE"),
    ValueError(f"unexpected output {SECRET}"),
    client_error("AccessDenied", 403, f"key AKIAIOSFODNN7EXAMPLE secret {SECRET}"),
], ids=["helper error", "helper output", "aws message"])
def test_helper_and_aws_text_is_scrubbed(err: BaseException) -> None:
    got = classify(err, ctx("process", process_profile="dev"))
    assert isinstance(got, PgiamError) and "[redacted]" in got.message
    for secret in (SECRET, "AKIAIOSFODNN7EXAMPLE"):
        assert secret not in got.message and secret not in (got.hint or "")


def test_a_long_helper_message_is_one_short_line() -> None:
    got = classify(bx.CredentialRetrievalError(provider="custom-process", error_msg="line\n" * 500),
                   ctx("process", process_profile="dev"))
    assert "\n" not in got.message and len(got.message) < 400
