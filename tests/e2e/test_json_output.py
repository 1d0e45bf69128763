"""Every `--json` output, printed by a real `pgiam` process against a running sandbox, validates against
its shipped schema file, and list/status say what the files say (issue 10)."""

from __future__ import annotations

import json
import time
from importlib import resources
from typing import Any

import jsonschema
import pytest

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


@pytest.mark.parametrize("command", ["list", "status", "certs status", "sandbox status", "timer status"])
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
