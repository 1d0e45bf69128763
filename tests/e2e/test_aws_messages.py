"""Issue 19 (repros 1 and 4) and issue 24 (items 1-3): what pgiam says about AWS credentials, in every command.

- One scrubber at the output boundary: a credential helper that prints keys, a secret key, a session
  token and an RDS token when it fails; none of them reaches any command's output, JSON, the state
  file, the prompt notice or `pgiam run`'s log.
- `doctor --online` classifies credential failures as refresh does (never exit 70, never `aws sso login`
  for a profile without SSO).

Real botocore in pgiam subprocesses; STS is moto where a call must succeed; keys are dummies.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import pytest

from tests.e2e.conftest import World
from tests.e2e.test_credentials import (
    CountingProxy, HOST, LEAK_KEY, LEAK_SECRET, LEAK_TOKEN, _process_profile, _script, add, aws_world, notice, state,
    sts,  # noqa: F401 - the fixture
)

pytestmark = pytest.mark.e2e

SIGNATURE = "9f2c" * 16  # the X-Amz-Signature of a leaked RDS token: 64 hex characters
RDS_TOKEN = (f"{HOST}:5432/?Action=connect&DBUser=alice&X-Amz-Algorithm=AWS4-HMAC-SHA256"
             f"&X-Amz-Credential={LEAK_KEY}%2F20261203%2Fus-west-2%2Frds-db%2Faws4_request&X-Amz-Date=20261203T120000Z"
             f"&X-Amz-Expires=900&X-Amz-SignedHeaders=host&X-Amz-Signature={SIGNATURE}")
SECRETS = (LEAK_KEY, LEAK_SECRET, LEAK_TOKEN[:40], SIGNATURE)
LEAKY_HELPER = (f"sys.stderr.write('denied: key {LEAK_KEY} secret {LEAK_SECRET} session {LEAK_TOKEN} "
                f"last token {RDS_TOKEN}\\n'); sys.exit(1)")


def _leaky(w: World) -> None:
    _process_profile(w, "proc", _script(w, "helper.py", LEAKY_HELPER))


def _assert_clean(what: str, text: str) -> None:
    for secret in SECRETS:
        assert secret not in text, f"{what} shows {secret[:12]}…: {text}"


def test_helper_output_is_scrubbed_in_every_command_that_can_print_it(tmp_path: Path) -> None:
    """Issue 19 (repro 1): keys, secret keys, session tokens and RDS tokens from a failing credential_process
    never reach stdout, stderr, JSON, the state file, the prompt notice or `pgiam run`'s log."""
    w = aws_world(tmp_path)
    _leaky(w)
    seen = []
    a = add(w, "other", "--profile", "proc", check=False)
    assert a.returncode == 4, a.stderr
    seen.append(("add", a.stdout + a.stderr))
    add(w, "prod", "--profile", "proc", "--no-refresh")
    for argv in (["refresh"], ["refresh", "--json"], ["refresh", "--if-needed"], ["token", "prod"],
                 ["run", "--once"], ["status"], ["status", "--json"], ["status", "--check"],
                 ["status", "--check", "--json"], ["doctor", "prod"], ["doctor", "prod", "--json"],
                 ["doctor", "prod", "--online"], ["doctor", "prod", "--online", "--json"],
                 ["discover", "--profile", "proc", "--region", "us-west-2"],
                 ["discover", "--profile", "proc", "--region", "us-west-2", "--json"]):
        p = w.pgiam(*argv, check=False)
        assert p.returncode != 70, (argv, p.returncode, p.stderr)
        assert "Traceback" not in p.stderr, (argv, p.stderr)
        seen.append((" ".join(argv), p.stdout + p.stderr))
    assert "denied: key [redacted] secret [redacted]" in seen[1][1], seen[1][1]  # what the helper said, scrubbed
    seen.append(("state file", json.dumps(state(w))))
    seen.append(("notice", notice(w)))
    for what, text in seen:
        _assert_clean(what, text)


def test_doctor_online_names_the_helper_not_sso_and_scrubs_it(tmp_path: Path) -> None:
    """Issue 19 (repro 1): `doctor --online` for a failing credential_process: no secret in text or --json,
    the fix is the helper's (not `aws sso login` for a profile without SSO), exit 1 (a finding), not 70."""
    w = aws_world(tmp_path)
    _leaky(w)
    add(w, "prod", "--profile", "proc", "--no-refresh")
    for argv in (["doctor", "prod", "--online"], ["doctor", "prod", "--online", "--json"]):
        p = w.pgiam(*argv, check=False)
        assert p.returncode == 1, (argv, p.stdout, p.stderr)
        _assert_clean(" ".join(argv), p.stdout + p.stderr)
        assert "aws sso login" not in p.stdout
        assert "aws configure get credential_process --profile proc" in p.stdout
    report = json.loads(w.pgiam("doctor", "prod", "--online", "--json", check=False).stdout)
    ident = {c["id"]: c for c in report["services"][0]["checks"]}["online.identity"]
    assert ident["status"] == "FAIL" and "credential_process failed: denied: key [redacted]" in ident["message"]
    assert report["exit_code"] == 1


@pytest.mark.parametrize("case", ["mfa", "garbage"])
def test_doctor_online_classifies_credential_failures_like_refresh(tmp_path: Path, sts: CountingProxy, case: str) -> None:
    """Issue 19 (repro 4): an MFA role without a terminal and a helper printing non-JSON were exit 70 in
    `doctor --online`; now a FAIL online.identity with refresh's message and hint, exit 1."""
    w = aws_world(tmp_path, sts.url)
    if case == "mfa":
        add(w, "prod", "--profile", "mfarole", "--region", "us-west-2", "--no-refresh")
        expect, fix = "needs an MFA code", "aws sts get-caller-identity --profile mfarole --region us-west-2"
    else:
        _process_profile(w, "proc", _script(w, "helper.py", "print('this is not json')"))
        add(w, "prod", "--profile", "proc", "--no-refresh")
        expect, fix = "did not print JSON", "aws configure get credential_process --profile proc"
    refresh = w.pgiam("refresh", "prod", check=False)
    assert refresh.returncode == 4 and expect in refresh.stderr and fix in refresh.stderr, refresh.stderr
    p = w.pgiam("doctor", "prod", "--online", "--json", check=False)
    assert p.returncode == 1, (p.returncode, p.stderr)
    ident = {c["id"]: c for c in json.loads(p.stdout)["services"][0]["checks"]}["online.identity"]
    assert ident["status"] == "FAIL" and expect in ident["message"] and fix in ident["fix"], ident
    assert "this is a bug" not in p.stderr and "Traceback" not in p.stderr


def test_doctor_online_stops_a_helper_that_hangs(home: Path, run_cli, ca_file: Path,  # type: ignore[no-untyped-def]
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 19 (repro 4): a credential_process that never ends was exit 70 after 120 s in `doctor --online`;
    it is stopped at the limit (shortened here, in-process) and reported as refresh reports it."""
    from pgiam import awscreds

    monkeypatch.setattr(awscreds, "PROCESS_TIMEOUT", 1.0)
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    helper = home / "hang.py"
    helper.write_text(f"#!{sys.executable}\nimport time\ntime.sleep(60)\n")
    helper.chmod(0o755)
    (home / ".aws").mkdir()
    (home / ".aws" / "config").write_text(f"[profile proc]\ncredential_process = {helper}\n")
    assert run_cli("add", "prod", "--host", HOST, "--user", "alice", "--sslrootcert", str(ca_file),
                   "--profile", "proc", "--no-refresh")[0] == 0
    start = time.monotonic()
    code, out, err = run_cli("doctor", "prod", "--online", "--json")
    assert code == 1, err
    assert time.monotonic() - start < 30
    ident = {c["id"]: c for c in json.loads(out)["services"][0]["checks"]}["online.identity"]
    assert ident["status"] == "FAIL" and "did not finish within 1 s" in ident["message"], ident
