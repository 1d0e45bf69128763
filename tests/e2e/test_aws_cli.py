"""`pgiam token` is byte-identical to `aws rds generate-db-auth-token` at the same instant (issue 2)."""

from __future__ import annotations

import datetime
import os
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
    ca.write_text("unused\n")
    w.pgiam("add", "prod", "--host", HOST, "--user", USER, "--sslrootcert", str(ca), "--no-refresh")
    # Both sign at the same instant: botocore reads the clock through botocore.auth.get_current_datetime
    # (FACTS: byte-reproducible for fixed credentials and clock), pinned here in both processes by a
    # sitecustomize on PYTHONPATH. Racing two processes to share a second fails on a loaded machine.
    pin = tmp_path / "pin"
    pin.mkdir()
    (pin / "sitecustomize.py").write_text(
        "import datetime, os\n"
        "import botocore.auth\n"
        "_at = datetime.datetime.fromisoformat(os.environ['PGIAM_TEST_SIGN_AT'])\n"
        "botocore.auth.get_current_datetime = lambda *a, **k: _at\n")
    at = datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None, microsecond=0)
    env = dict(w.env, PGIAM_TEST_SIGN_AT=at.isoformat(), PYTHONPATH=f"{pin}{os.pathsep}{w.env['PYTHONPATH']}")
    ours = subprocess.run([sys.executable, "-m", "pgiam", "token", "prod"], env=env, capture_output=True, text=True, timeout=120)
    theirs = subprocess.run([aws, "rds", "generate-db-auth-token", "--hostname", HOST, "--port", "5432",
                             "--region", "us-west-2", "--username", USER], env=env, capture_output=True, text=True, timeout=120)
    assert ours.returncode == 0 and theirs.returncode == 0, ours.stderr + theirs.stderr
    mine, cli = ours.stdout.strip(), theirs.stdout.strip()
    assert f"X-Amz-Date={at:%Y%m%dT%H%M%SZ}" in mine and f"X-Amz-Date={at:%Y%m%dT%H%M%SZ}" in cli  # pinned in both
    assert mine == cli
