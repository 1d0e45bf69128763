"""`pgiam token` is byte-identical to `aws rds generate-db-auth-token` at the same instant (issue 2)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.e2e.conftest import make_world
from tests.tools import require_tool

pytestmark = pytest.mark.e2e

HOST = "db.cluster-abc123.us-west-2.rds.amazonaws.com"
USER = "o'ne: \\il"


def test_pgiam_token_equals_the_aws_cli(tmp_path: Path) -> None:
    aws = require_tool("aws")
    w = make_world(tmp_path / "home")
    w.env.update(AWS_ACCESS_KEY_ID="AKIAPGIAMTESTEXAMPLE", AWS_SECRET_ACCESS_KEY="pgiamTestSecretKey/ExampleOnly0123456789ab")
    ca = tmp_path / "ca.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n")  # unused, but add checks it is PEM
    w.pgiam("add", "prod", "--host", HOST, "--user", USER, "--sslrootcert", str(ca), "--no-refresh")
    same_second = 0
    for _ in range(6):
        # Start both at once: tokens have one-second resolution, so most pairs share their X-Amz-Date.
        ours = subprocess.Popen([sys.executable, "-m", "pgiam", "token", "prod"], env=w.env, stdout=subprocess.PIPE, text=True)
        theirs = subprocess.run([aws, "rds", "generate-db-auth-token", "--hostname", HOST, "--port", "5432",
                                 "--region", "us-west-2", "--username", USER], env=w.env, capture_output=True, text=True)
        mine = ours.communicate(timeout=60)[0].strip()
        assert ours.returncode == 0 and theirs.returncode == 0, theirs.stderr
        cli = theirs.stdout.strip()
        date = lambda t: re.search(r"X-Amz-Date=(\w+)", t).group(1)  # noqa: E731
        if date(mine) == date(cli):
            same_second += 1
            assert mine == cli
    assert same_second >= 1
