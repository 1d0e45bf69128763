"""`pgiam token` is byte-identical to `aws rds generate-db-auth-token` at the same instant (issue 2), and
pgiam shares the AWS CLI's assumed-role cache (issue 12)."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.e2e.conftest import World, make_world
from tests.tools import require_tool

pytestmark = pytest.mark.e2e

HOST = "db.cluster-abc123.us-west-2.rds.amazonaws.com"
USER = "o'ne: \\il"


def _date(token: str) -> str:
    m = re.search(r"X-Amz-Date=(\w+)", token)
    assert m, "not a presigned token"
    return m.group(1)


def token_pairs(w: World, cli_args: list[str], tries: int = 8) -> list[tuple[str, str]]:
    """(pgiam token, aws rds generate-db-auth-token) pairs; tokens have one-second resolution.

    Both tools sign just before they exit, and the CLI starts much slower (more so on a loaded machine):
    start the CLI, then start pgiam late by how much longer the CLI took last time, so most pairs sign
    in the same second.
    """
    aws = require_tool("aws")
    lag = 0.0
    pairs = []
    for _ in range(tries):
        t0 = time.monotonic()
        theirs = subprocess.Popen([aws, "rds", "generate-db-auth-token", *cli_args], env=w.env,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        time.sleep(max(lag, 0.0))
        t1 = time.monotonic()
        ours = subprocess.Popen([sys.executable, "-m", "pgiam", "token", "prod"], env=w.env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        mine, my_err = ours.communicate(timeout=120)
        ours_took = time.monotonic() - t1
        cli, cli_err = theirs.communicate(timeout=120)
        theirs_took = time.monotonic() - t0
        assert ours.returncode == 0, my_err
        assert theirs.returncode == 0, cli_err
        pairs.append((mine.strip(), cli.strip()))
        lag = theirs_took - ours_took
    return pairs


def test_pgiam_token_equals_the_aws_cli(tmp_path: Path) -> None:
    w = make_world(tmp_path / "home")
    w.env.update(AWS_ACCESS_KEY_ID="AKIAPGIAMTESTEXAMPLE", AWS_SECRET_ACCESS_KEY="pgiamTestSecretKey/ExampleOnly0123456789ab")
    ca = tmp_path / "ca.pem"
    ca.write_text("unused\n")
    w.pgiam("add", "prod", "--host", HOST, "--user", USER, "--sslrootcert", str(ca), "--no-refresh")
    pairs = token_pairs(w, ["--hostname", HOST, "--port", "5432", "--region", "us-west-2", "--username", USER])
    same = [(mine, cli) for mine, cli in pairs if _date(mine) == _date(cli)]
    assert same, [(_date(m), _date(c)) for m, c in pairs]
    for mine, cli in same:
        assert mine == cli


def test_an_assumed_role_is_shared_with_the_aws_cli(tmp_path: Path, moto_url: str) -> None:
    """pgiam and the AWS CLI share ~/.aws/cli/cache, so a role assumed by one signs for the other.

    moto hands out new random credentials at every AssumeRole: the same X-Amz-Security-Token in both
    tools' tokens proves one assumed session. The profile has no region: pgiam hands the service's
    region to STS, as the CLI's --region does.
    """
    w = make_world(tmp_path / "home")
    (w.home / ".aws").mkdir()
    (w.home / ".aws" / "config").write_text(
        "[profile dbrole]\nrole_arn = arn:aws:iam::123456789012:role/db\nsource_profile = src\n")
    (w.home / ".aws" / "credentials").write_text(
        "[src]\naws_access_key_id = AKIAPGIAMSOURCEKEY01\naws_secret_access_key = pgiamSourceSecret/ExampleOnly0123456789ab\n")
    w.env["AWS_ENDPOINT_URL_STS"] = moto_url
    ca = tmp_path / "ca.pem"
    ca.write_text("unused\n")
    w.pgiam("add", "prod", "--host", HOST, "--user", "alice", "--profile", "dbrole", "--sslrootcert", str(ca))
    cache = w.home / ".aws" / "cli" / "cache"
    assert len(list(cache.glob("*.json"))) == 1
    pairs = token_pairs(w, ["--hostname", HOST, "--port", "5432", "--region", "us-west-2", "--username", "alice",
                            "--profile", "dbrole"], tries=3)
    session = {re.search(r"X-Amz-Security-Token=([^&]+)", t).group(1) for pair in pairs for t in pair}  # type: ignore[union-attr]
    assert len(session) == 1  # one assumed-role session served every token of both tools
    assert len(list(cache.glob("*.json"))) == 1
    same = [(mine, cli) for mine, cli in pairs if _date(mine) == _date(cli)]
    for mine, cli in same:
        assert mine == cli
