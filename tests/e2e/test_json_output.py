"""Every `--json` output, printed by a real `pgiam` process against a running sandbox (discover: against
the moto server), validates against its shipped schema file, and list/status say what the files say (issue 10)."""

from __future__ import annotations

import json
import subprocess
import time
from importlib import resources
from typing import Any

import boto3
import jsonschema
import pytest

from pgiam.errors import ExitCode
from tests.awsfake import DUMMY_KEY_ID, DUMMY_SECRET, env_for, free_port, reset
from tests.e2e.conftest import World

pytestmark = pytest.mark.e2e


def schema(stem: str) -> dict[str, Any]:
    return json.loads(resources.files("pgiam.schemas").joinpath(f"{stem}.schema.json").read_text())  # type: ignore[no-any-return]


def run_json(world: World, command: str, *names: str) -> dict[str, Any]:
    """`pgiam COMMAND [NAME...] --json`: exit 0, and stdout validates against COMMAND's schema file."""
    p = world.pgiam(*command.split(), *names, "--json", check=False)
    assert p.returncode == 0, p.stderr
    out: dict[str, Any] = json.loads(p.stdout)
    jsonschema.Draft202012Validator(schema(command.replace(" ", "-"))).validate(out)
    return out


@pytest.fixture(scope="module")
def two_services(world: World) -> World:
    """The sandbox service (with a token) and one added without a token, pointing at the sandbox CA."""
    ca = json.loads(world.pgiam("sandbox", "status", "--json").stdout)["sandbox"]["ca_file"]
    world.pgiam("add", "notoken", "--host", "db.cluster-xyz.us-west-2.rds.amazonaws.com", "--user", "bob",
                "--sslrootcert", ca, "--no-refresh")
    return world


READ = ["list", "status", "certs status", "sandbox status", "timer status"]
VALIDATED_BELOW = {"refresh", "doctor", "discover"}


def test_every_json_flag_is_validated_here() -> None:
    """A new --json output needs a test in this file: the parser's --json commands are the ones exercised."""
    from tests.unit.test_docs_drift import PARSERS

    with_json = {" ".join(path) for path, parser in PARSERS.items()
                 if any("--json" in a.option_strings for a in parser._actions)}
    assert with_json == set(READ) | VALIDATED_BELOW


@pytest.mark.parametrize("command", READ)
def test_read_command_output_validates(two_services: World, command: str) -> None:
    out = run_json(two_services, command)
    assert out["schema"] == 1 and out["command"] == command


def test_refresh_output_validates_and_matches_status(two_services: World) -> None:
    before = time.time()
    out = run_json(two_services, "refresh", "sandbox")
    [rec] = out["services"]
    assert (out["exit_code"], rec["name"], rec["status"], rec["error"]) == (0, "sandbox", "renewed", None)
    assert before < rec["expires"] <= time.time() + 900
    status = {r["name"]: r for r in run_json(two_services, "status")["services"]}
    assert status["sandbox"]["expires"] == pytest.approx(rec["expires"], abs=1)


def test_refresh_failure_is_a_record_with_its_exit_code(two_services: World) -> None:
    """`notoken` has no AWS credentials in this world: a failed record, not a crash, and the envelope's exit_code
    is the process's exit status."""
    p = two_services.pgiam("refresh", "notoken", "--json", check=False)
    out = json.loads(p.stdout)
    jsonschema.Draft202012Validator(schema("refresh")).validate(out)
    [rec] = out["services"]
    assert rec["status"] == "failed" and rec["error"] and rec["error_code"] == p.returncode == out["exit_code"] != 0
    assert (rec["expires"], rec["seconds_left"]) == (None, None)


def test_list_and_status_values(two_services: World) -> None:
    """The values, not only the shape: list says what config.toml says; status says what ~/.pgpass holds."""
    listed = {r["name"]: r for r in run_json(two_services, "list")["services"]}
    assert listed["notoken"] == {
        "name": "notoken", "host": "db.cluster-xyz.us-west-2.rds.amazonaws.com", "port": 5432, "user": "bob",
        "dbname": None, "region": "us-west-2", "profile": None, "via": None,
        "sslrootcert": listed["notoken"]["sslrootcert"], "require_auth": False,
    }
    assert listed["notoken"]["sslrootcert"].endswith(".pem") or listed["notoken"]["sslrootcert"].endswith(".crt")
    sb = json.loads(two_services.pgiam("sandbox", "status", "--json").stdout)["sandbox"]
    assert (listed["sandbox"]["host"], listed["sandbox"]["port"]) == (sb["host"], sb["port"])
    assert listed["sandbox"]["via"] == f"127.0.0.1:{sb['local_port']}"

    now = time.time()
    status = {r["name"]: r for r in run_json(two_services, "status")["services"]}
    assert set(status) == set(listed)
    missing = status["notoken"]
    assert (missing["token"], missing["expires"], missing["seconds_left"]) == ("missing", None, None)
    fresh = status["sandbox"]
    assert fresh["token"] == "fresh"
    assert 0 < fresh["seconds_left"] <= 900 and fresh["expires"] == pytest.approx(now + fresh["seconds_left"], abs=2)
    for k in ("host", "port", "user", "region", "profile", "via", "sslrootcert"):
        assert fresh[k] == listed["sandbox"][k], k


def validated(p: subprocess.CompletedProcess[str], stem: str) -> dict[str, Any]:
    """stdout of a finished `pgiam ... --json`, validated against pgiam/schemas/STEM.schema.json."""
    out: dict[str, Any] = json.loads(p.stdout)
    jsonschema.Draft202012Validator(schema(stem)).validate(out)
    return out


def test_status_check_json_is_the_status_output(two_services: World) -> None:
    """`status --check --json` prints the status document (the man page says so), also when a check fails."""
    p = two_services.pgiam("status", "sandbox", "--check", "--json", check=False)
    assert p.returncode == 0, p.stderr
    [rec] = validated(p, "status")["services"]
    assert (rec["name"], rec["token"]) == ("sandbox", "fresh")
    p = two_services.pgiam("status", "--check", "--json", check=False)
    out = validated(p, "status")
    assert out["command"] == "status" and p.returncode == 1 and "notoken" in p.stderr
    assert {r["name"]: r["seconds_left"] for r in out["services"]}["notoken"] is None


def test_doctor_output_validates_and_says_what_failed(two_services: World) -> None:
    """doctor against the sandbox: the sandbox service passes every check up to the login; `notoken` (no token,
    no AWS credentials, a host that does not resolve) fails, and each failure is a record with its fix."""
    p = two_services.pgiam("doctor", "sandbox", "--json", check=False)
    out = validated(p, "doctor")
    [svc] = out["services"]
    assert p.returncode == 0 and out["ok"] is True and svc["ok"] is True, p.stdout
    checks = {c["id"]: c for c in svc["checks"]}
    assert checks["login"]["status"] == "ok" and checks["token.endpoint"]["status"] == "ok"
    assert all(c["fix"] is None for c in svc["checks"] if c["status"] == "ok"), "no fix for a passing check"

    p = two_services.pgiam("doctor", "--json", check=False)
    out = validated(p, "doctor")
    by_name = {s["name"]: s for s in out["services"]}
    assert set(by_name) == {"sandbox", "notoken"}
    assert (p.returncode, out["ok"], by_name["notoken"]["ok"], by_name["sandbox"]["ok"]) == (1, False, False, True)
    failed = [c for c in by_name["notoken"]["checks"] if c["status"] == "FAIL"]
    assert failed and any(c["fix"] for c in failed), failed


def test_discover_output_validates(two_services: World, moto_url: str) -> None:
    """discover against the moto server: an endpoint record with its integer port and nulls where nothing applies,
    and a failed API call (DSQL's endpoint refuses connections) as a warning record with its exit code."""
    reset(moto_url)
    rds = boto3.session.Session(aws_access_key_id=DUMMY_KEY_ID, aws_secret_access_key=DUMMY_SECRET).client(
        "rds", region_name="us-east-1", endpoint_url=moto_url)
    rds.create_db_instance(DBInstanceIdentifier="pg-iam", Engine="postgres", EnableIAMDatabaseAuthentication=True,
                           DBInstanceClass="db.t3.micro", MasterUsername="m", MasterUserPassword="password123",
                           AllocatedStorage=20, Port=6543)
    env = dict(two_services.env, **env_for(moto_url))
    p = two_services.pgiam("discover", "--region", "us-east-1", "--json", env=env, check=False)
    assert p.returncode == 0, p.stderr
    out = validated(p, "discover")
    [ep] = out["endpoints"]
    assert (ep["name"], ep["kind"], ep["port"], ep["iam"], ep["profile"], ep["target_role"]) == \
        ("pg-iam", "instance", 6543, True, None, None)
    assert (out["exit_code"], out["warnings"], out["added"]) == (0, [], [])

    # botocore's per-service endpoint variable (AWS_ENDPOINT_URL_<SERVICE>) sends DSQL to a closed port.
    env["AWS_ENDPOINT_URL_DSQL"] = f"http://127.0.0.1:{free_port()}"
    p = two_services.pgiam("discover", "--region", "us-east-1", "--json", env=env, check=False)
    out = validated(p, "discover")
    [w] = out["warnings"]
    assert (p.returncode, out["exit_code"]) == (ExitCode.PARTIAL, ExitCode.PARTIAL)
    assert (w["api"], w["region"], w["profile"], w["error_code"]) == ("dsql:ListClusters", "us-east-1", None,
                                                                      ExitCode.NETWORK)
    assert [e["name"] for e in out["endpoints"]] == ["pg-iam"]
