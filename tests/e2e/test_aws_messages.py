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


# ---------------------------------------------------------------- issue 24 item 1: the MFA hint works as written


def test_the_mfa_hint_runs_as_printed_with_the_aws_cli_and_then_refresh_works(tmp_path: Path, sts: CountingProxy) -> None:
    """Issue 24 (item 1): for a region-less MFA role, the hint's command, run exactly as printed by the real
    AWS CLI in a terminal (no AWS_DEFAULT_REGION), caches the role, and the next `pgiam refresh` succeeds."""
    import re
    import shlex

    from tests.e2e.test_credentials import MFA_CODE, run_in_pty
    from tests.tools import require_tool

    require_tool("aws", "awscli")
    w = aws_world(tmp_path, sts.url)
    add(w, "prod", "--profile", "mfarole", "--no-refresh")  # the service's region comes from the host
    p = w.pgiam("refresh", "prod", check=False)
    assert p.returncode == 4, p.stderr
    m = re.search(r"run `(aws sts get-caller-identity [^`]*)`", p.stderr)
    assert m is not None, p.stderr
    assert m.group(1) == "aws sts get-caller-identity --profile mfarole --region us-west-2"
    assert m.group(1) in notice(w)  # the prompt notice says the same
    assert "AWS_DEFAULT_REGION" not in w.env and "AWS_REGION" not in w.env
    code, out = run_in_pty(w, shlex.split(m.group(1)), MFA_CODE)
    assert code == 0, out
    assert sts.count() == 1
    assert w.pgiam("refresh", "prod").returncode == 0
    assert sts.count() == 1, sts.actions  # the role the CLI cached served pgiam


# ---------------------------------------------------------------- issue 24 item 2: container credentials


def _container_endpoint(status: int = 200) -> tuple[object, str]:
    """A loopback ECS/EKS container credentials endpoint (botocore allows loopback FULL_URIs)."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    later = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 3600))
    body = json.dumps({"AccessKeyId": "ASIAPGIAMCONTAINER01", "SecretAccessKey": "containerSecret/ExampleOnly0123456789ab",
                       "Token": "container-session-token", "Expiration": later}).encode()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    srv = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv, f"http://127.0.0.1:{srv.server_address[1]}/creds"


def test_container_credentials_are_named_as_the_container_in_status_json(tmp_path: Path) -> None:
    """Issue 24 (item 2): a token signed with AWS_CONTAINER_CREDENTIALS_FULL_URI says `signed_by: container`,
    not "default"."""
    from tests.e2e.test_credentials import closed_port  # noqa: F401 - same module family

    srv, url = _container_endpoint()
    try:
        w = aws_world(tmp_path)
        w.env["AWS_CONTAINER_CREDENTIALS_FULL_URI"] = url
        add(w, "k2")
        st = json.loads(w.pgiam("status", "--json").stdout)["services"][0]
        assert st["signed_by"] == "container", st
        assert "container" in w.pgiam("status").stdout
    finally:
        srv.shutdown()  # type: ignore[attr-defined]


def test_an_unreachable_container_endpoint_is_network_named_as_the_container(tmp_path: Path) -> None:
    """Issue 24 (item 2): exit 8 (not 4), the message names the container credentials (not "profile default"),
    no `--profile default` hint, and `pgiam run` says the service name once."""
    from tests.e2e.test_credentials import closed_port

    w = aws_world(tmp_path)
    w.env["AWS_CONTAINER_CREDENTIALS_FULL_URI"] = f"http://127.0.0.1:{closed_port()}/creds"
    add(w, "k2", "--no-refresh")
    p = w.pgiam("refresh", "k2", check=False)
    assert p.returncode == 8, p.stderr
    assert "could not get AWS credentials for the container credentials (AWS_CONTAINER_CREDENTIALS_FULL_URI)" in p.stderr
    assert "profile default" not in p.stderr and "--profile default" not in p.stderr
    assert "check the network" in p.stderr
    r = w.pgiam("run", "--once", check=False)
    assert r.returncode == 8, r.stderr
    assert "pgiam: k2: could not get AWS credentials for the container credentials" in r.stderr, r.stderr
    assert "k2: k2:" not in r.stderr


# ---------------------------------------------------------------- issue 24 item 3: sources a timer will not have


def test_add_warns_about_credential_source_environment(tmp_path: Path, sts: CountingProxy) -> None:
    """Issue 24 (item 3): a role profile with `credential_source = Environment` signs at add (keys in this
    shell), but a timer has no such keys: add warns, naming the profile and the fix."""
    w = aws_world(tmp_path, sts.url)
    with (w.home / ".aws" / "config").open("a") as f:
        f.write("\n[profile envrole]\nrole_arn = arn:aws:iam::123456789012:role/db\ncredential_source = Environment\n"
                "region = us-west-2\n")
    env = dict(w.env, AWS_ACCESS_KEY_ID="AKIAPGIAMENVIRONMENT", AWS_SECRET_ACCESS_KEY="envSecret/ExampleOnly0123456789abcdefgh")
    p = add(w, "prod", "--profile", "envrole", env=env)
    assert "credential_source = Environment" in p.stderr and "timers" in p.stderr, p.stderr
    assert "profile envrole" in p.stderr
    # another database user: one ~/.pgpass line per host, port and user signs with one profile (issue 20)
    quiet = add(w, "other", "--profile", "dbrole", "--user", "bob")
    assert "timers" not in quiet.stderr, quiet.stderr


def test_discover_add_warns_about_keys_only_in_the_environment(tmp_path: Path, moto_url: str) -> None:
    """Issue 24 (item 3): `discover --add` with keys only in AWS_ACCESS_KEY_ID warns, as `add` does."""
    import boto3

    from tests.awsfake import DUMMY_KEY_ID, DUMMY_SECRET, env_for, reset

    reset(moto_url)
    rds = boto3.client("rds", endpoint_url=moto_url, region_name="us-east-1", aws_access_key_id=DUMMY_KEY_ID,
                       aws_secret_access_key=DUMMY_SECRET)
    rds.create_db_instance(DBInstanceIdentifier="pg-iam", Engine="postgres", DBInstanceClass="db.t3.micro",
                           AllocatedStorage=20, MasterUsername="admin", MasterUserPassword="password123",
                           EnableIAMDatabaseAuthentication=True)
    w = aws_world(tmp_path)
    env = dict(w.env, **env_for(moto_url))
    bundle = w.home / ".local" / "share" / "pgiam" / "certs"
    bundle.mkdir(parents=True)
    (bundle / "rds-aws.pem").write_text("-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n")  # no download
    p = w.pgiam("discover", "--region", "us-east-1", "--add", "--user", "alice", env=env, check=False)
    assert p.returncode == 0, p.stderr
    assert "AWS_ACCESS_KEY_ID" in p.stderr and "timers" in p.stderr, p.stderr
    assert "aws configure --profile NAME" in p.stderr
