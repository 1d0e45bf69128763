"""`pgiam discover --add` run again: the conflict's hint is discover's own command with --replace, and it works
as written (issue 24). The scan's report is built directly: no AWS call is involved in adding."""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest

from pgiam import discover
from pgiam.cli import build_parser
from pgiam.commands import discover as discover_cmd
from pgiam.config import load_config
from pgiam.discover import DiscoverReport, Endpoint
from pgiam.errors import ConfigError, ExitCode
from pgiam.paths import Paths

HOST = "pg-iam.proxy-abc.us-east-1.rds.amazonaws.com"  # the public roots: no CA bundle to download
REPORT = DiscoverReport((Endpoint("p-pg-iam", "proxy", HOST, 5432, True, None, "dev", "us-east-1", "pg-iam",
                                  "aurora-postgresql"),), (), calls_ok=1)
ARGV = ["discover", "--profile", "dev", "--region", "us-east-1", "--prefix", "p-", "--add", "--user", "alice",
        "--dbname", "app db"]


def test_rerun_hint_is_discovers_own_replace_and_works_as_written(run_cli, home: Path, ca_file: Path) -> None:
    """Issue 24: re-running `discover --add` said `use pgiam add p-pg-iam --replace ...`; the hint is now the
    same discover command with --replace, which parses to the same scan and adds over the old service."""
    code, _, err = run_cli("add", "p-pg-iam", "--host", "mine.cluster-x.us-east-1.rds.amazonaws.com", "--user", "u",
                           "--sslrootcert", str(ca_file), "--no-refresh")
    assert code == ExitCode.OK, err
    paths = Paths.from_env()
    args = build_parser().parse_args(ARGV)
    again = discover_cmd.rerun_with_replace(args)
    assert again == "pgiam discover --profile dev --region us-east-1 --prefix p- --add --user alice --dbname 'app db' --replace"
    with pytest.raises(ConfigError) as caught:
        discover.add_endpoints(paths, REPORT, "alice", "app db", False, 0.0, None, [], again=again)
    assert caught.value.message == f"service 'p-pg-iam' already exists in {paths.config_file}"
    assert caught.value.hint == f"run `{again}` to replace it, or `pgiam remove p-pg-iam` first"

    rerun = build_parser().parse_args(shlex.split(again)[1:])
    assert vars(rerun) == {**vars(args), "replace": True}
    discover.add_endpoints(paths, REPORT, rerun.user, rerun.dbname, rerun.replace, 0.0, None, [], again=again)
    svc = load_config(paths.config_file, scope=paths.scope).services["p-pg-iam"]
    assert (svc.host, svc.user, svc.dbname, svc.profile) == (HOST, "alice", "app db", "dev")


def test_add_keeps_its_own_hint(run_cli, ca_file: Path) -> None:
    for _ in range(2):
        code, _, err = run_cli("add", "prod", "--host", HOST, "--user", "u", "--sslrootcert", str(ca_file), "--no-refresh")
    assert code == ExitCode.CONFIG
    assert err.splitlines()[-1] == "hint: use `pgiam add prod --replace ...` to change it, or `pgiam remove prod` first"
