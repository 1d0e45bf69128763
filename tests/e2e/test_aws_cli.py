"""`pgiam token` is byte-identical to `aws rds generate-db-auth-token` at the same instant (issue 2), and
pgiam shares the AWS CLI's assumed-role cache (issue 12)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
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


def token_pairs(w: World, cli_args: list[str], tries: int = 3) -> list[tuple[str, str]]:
    """(pgiam token, aws rds generate-db-auth-token) pairs, each pair started together."""
    aws = require_tool("aws")
    pairs = []
    for _ in range(tries):
        theirs = subprocess.Popen([aws, "rds", "generate-db-auth-token", *cli_args], env=w.env,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        ours = subprocess.Popen([sys.executable, "-m", "pgiam", "token", "prod"], env=w.env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        mine, my_err = ours.communicate(timeout=120)
        cli, cli_err = theirs.communicate(timeout=120)
        assert ours.returncode == 0, my_err
        assert theirs.returncode == 0, cli_err
        pairs.append((mine.strip(), cli.strip()))
    return pairs


def botocore_token(creds: tuple[str, str, str | None], user: str, date: str, port: int = 5432) -> str:
    """botocore's own generate_db_auth_token for `creds`, as if signed at `date` (an X-Amz-Date).

    Tokens have one-second resolution and the two tools rarely sign in the same second on a loaded
    machine: instead of racing them, each token is compared with botocore's token for its own instant.
    """
    import datetime
    from unittest import mock

    import botocore.auth
    import botocore.session

    session = botocore.session.Session()
    session.set_credentials(*creds)
    client = session.create_client("rds", region_name="us-west-2")
    at = datetime.datetime.strptime(date, "%Y%m%dT%H%M%SZ")
    with mock.patch.object(botocore.auth, "get_current_datetime", lambda *a, **k: at):
        return str(client.generate_db_auth_token(HOST, port, user))


def test_pgiam_token_equals_the_aws_cli(tmp_path: Path) -> None:
    w = make_world(tmp_path / "home")
    creds = ("AKIAPGIAMTESTEXAMPLE", "pgiamTestSecretKey/ExampleOnly0123456789ab", None)
    w.env.update(AWS_ACCESS_KEY_ID=creds[0], AWS_SECRET_ACCESS_KEY=creds[1])
    ca = tmp_path / "ca.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n")  # unused, but add checks it is PEM
    w.pgiam("add", "prod", "--host", HOST, "--user", USER, "--sslrootcert", str(ca), "--no-refresh")
    pairs = token_pairs(w, ["--hostname", HOST, "--port", "5432", "--region", "us-west-2", "--username", USER])
    for mine, cli in pairs:
        assert mine == botocore_token(creds, USER, _date(mine))
        assert cli == botocore_token(creds, USER, _date(cli))
        if _date(mine) == _date(cli):
            assert mine == cli


def test_an_assumed_role_is_shared_with_the_aws_cli(tmp_path: Path, moto_url: str) -> None:
    """pgiam and the AWS CLI share ~/.aws/cli/cache, so a role assumed by one signs for the other.

    moto hands out new random credentials at every AssumeRole: tokens that botocore reproduces from the
    cached credentials prove that both tools signed with that one assumed session. The profile has no region: pgiam hands the service's
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
    ca.write_text("-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n")  # unused, but add checks it is PEM
    w.pgiam("add", "prod", "--host", HOST, "--user", "alice", "--profile", "dbrole", "--sslrootcert", str(ca))
    cache = w.home / ".aws" / "cli" / "cache"
    assert len(list(cache.glob("*.json"))) == 1
    pairs = token_pairs(w, ["--hostname", HOST, "--port", "5432", "--region", "us-west-2", "--username", "alice",
                            "--profile", "dbrole"])
    assert len(list(cache.glob("*.json"))) == 1  # the CLI found the role pgiam cached: no second session
    c = json.loads(next(cache.glob("*.json")).read_text())["Credentials"]
    creds = (c["AccessKeyId"], c["SecretAccessKey"], c["SessionToken"])
    for mine, cli in pairs:  # both tools signed with exactly the cached role session
        assert mine == botocore_token(creds, "alice", _date(mine))
        assert cli == botocore_token(creds, "alice", _date(cli))
