"""`pgiam sandbox status` and `sandbox down` say what is (issue 24), without starting a server: the files a
sandbox leaves after `down` (keys, CA, logs; no cluster) are laid out by hand where pgiam.paths puts them."""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

import jsonschema

from pgiam.errors import ExitCode
from pgiam.paths import Paths
from tests.conftest import SANDBOX_HOST

PATH_FIELDS = ("ca_file", "aws_credentials_file", "log_file", "server_log", "cluster_dir")


def text_status(run_cli) -> dict[str, str]:
    code, out, err = run_cli("sandbox", "status")
    assert code == ExitCode.OK, err
    return dict(line.split(": ", 1) for line in out.splitlines())


def json_status(run_cli) -> dict[str, object]:
    code, out, err = run_cli("sandbox", "status", "--json")
    assert code == ExitCode.OK, err
    doc = json.loads(out)
    schema = json.loads(resources.files("pgiam.schemas").joinpath("sandbox-status.schema.json").read_text())
    jsonschema.Draft202012Validator(schema).validate(doc)
    return doc["sandbox"]  # type: ignore[no-any-return]


def left_by_down(paths: Paths) -> Path:
    """What `sandbox down` keeps: the private sandbox directory with its keys, CA, credentials and the token
    checker's log; the cluster directory and its record are gone."""
    from pgiam.fileio import ensure_private_dir

    sandbox = paths.sandbox_dir
    ensure_private_dir(sandbox, scope=paths.scope)  # as `sandbox up` made it
    for name in ("ca.crt", "ca.key", "aws-credentials", "keys.json", "ldapd.log"):
        (sandbox / name).write_text("x\n")
    return sandbox


def test_status_after_down_names_no_file_that_is_not_there(run_cli) -> None:
    """Issue 24: after `down`, `sandbox status` printed `server_log: …/server.log` (and the cluster directory),
    which `down` had removed. Only files that exist are named; in JSON the others are null."""
    sandbox = left_by_down(Paths.from_env())
    st = text_status(run_cli)
    assert st["running"] == "False"
    assert "server_log" not in st and "cluster_dir" not in st
    assert (st["ca_file"], st["log_file"]) == (str(sandbox / "ca.crt"), str(sandbox / "ldapd.log"))
    js = json_status(run_cli)
    assert (js["running"], js["server_log"], js["cluster_dir"]) == (False, None, None)
    assert js["ca_file"] == str(sandbox / "ca.crt") and js["aws_credentials_file"] == str(sandbox / "aws-credentials")


def test_status_before_any_up_names_no_file(run_cli) -> None:
    st = text_status(run_cli)
    assert st["running"] == "False" and not set(PATH_FIELDS) & set(st)
    js = json_status(run_cli)
    assert [js[f] for f in PATH_FIELDS] == [None] * len(PATH_FIELDS)


def test_down_with_nothing_there_says_so_and_changes_nothing(run_cli, home: Path) -> None:
    """Issue 24: a second `sandbox down` said "`sandbox` service removed" though there was none."""
    left_by_down(Paths.from_env())

    def files() -> dict[Path, bytes]:  # but the sandbox's lock file, which down takes
        return {p: p.read_bytes() for p in home.rglob("*") if p.is_file() and p.name != "lock"}

    before = files()
    for _ in range(2):
        assert run_cli("sandbox", "down") == (ExitCode.OK, "no sandbox was running and no `sandbox` service: nothing to remove\n", "")
    assert files() == before


def test_down_after_a_crash_removes_the_service_and_says_only_that(run_cli, home: Path, ca_file: Path) -> None:
    """The server is gone (a crash, a reboot) but the `sandbox` service is still configured: down removes the
    service and says the sandbox was not running."""
    code, _, err = run_cli("add", "sandbox", "--host", SANDBOX_HOST, "--user", "alice", "--sslrootcert", str(ca_file),
                           "--no-refresh")
    assert code == ExitCode.OK, err
    assert run_cli("sandbox", "down") == (ExitCode.OK, "no sandbox was running; `sandbox` service removed\n", "")
    assert "[sandbox]" not in (home / ".pg_service.conf").read_text()
    assert run_cli("sandbox", "down") == (ExitCode.OK, "no sandbox was running and no `sandbox` service: nothing to remove\n", "")
