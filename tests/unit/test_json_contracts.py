"""The JSON Schema files every `--json` output ships with: their own rules, the man page's JSON OUTPUT
section, and the typed reports that produce the output (issue 10). Real command output is validated
against the same files in tests/e2e/test_json_output.py."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from pgiam import reports
from pgiam.config import Service, Via

ROOT = Path(__file__).resolve().parents[2]
MAN = ROOT / "man" / "pgiam.1"


def schema_files() -> list[str]:
    """The shipped schema files, read through importlib.resources as an installed pgiam would."""
    return sorted(f.name for f in resources.files("pgiam.schemas").iterdir() if f.name.endswith(".schema.json"))


def load(name: str) -> dict[str, Any]:
    return json.loads(resources.files("pgiam.schemas").joinpath(name).read_text())  # type: ignore[no-any-return]


def validate(instance: Any, name: str) -> None:
    jsonschema.Draft202012Validator(load(name), format_checker=jsonschema.FormatChecker()).validate(instance)


def objects(node: Any, where: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    """Every object schema in a schema document, with a path for messages."""
    if isinstance(node, dict):
        if node.get("type") == "object" or "properties" in node:
            yield where or "/", node
        for k, v in node.items():
            yield from objects(v, f"{where}/{k}")
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from objects(v, f"{where}/{i}")


def properties(node: Any) -> Iterator[tuple[str, dict[str, Any]]]:
    for _, o in objects(node):
        yield from o.get("properties", {}).items()


SCHEMAS = schema_files()
EXPECTED = {"list", "status", "refresh", "certs-status", "sandbox-status", "timer-status"}


def test_every_read_command_has_a_schema_file() -> None:
    """Guards the list below from going empty, and the package data from being left out."""
    stems = {n.removesuffix(".schema.json") for n in SCHEMAS}
    assert EXPECTED <= stems, f"missing {sorted(EXPECTED - stems)}"


def test_every_json_flag_has_a_schema_file() -> None:
    """Every command with a --json flag, taken from the real parser, ships its schema file (doctor and
    discover were added without one in the common format)."""
    from tests.unit.test_docs_drift import PARSERS

    with_json = {"-".join(path) for path, parser in PARSERS.items()
                 if any("--json" in a.option_strings for a in parser._actions)}
    stems = {n.removesuffix(".schema.json") for n in SCHEMAS}
    assert {"doctor", "discover", "timer-status"} <= with_json
    assert with_json <= stems, f"--json without a schema file: {sorted(with_json - stems)}"


@pytest.mark.parametrize("name", SCHEMAS)
def test_schema_is_valid_draft_2020_12(name: str) -> None:
    s = load(name)
    assert s["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    jsonschema.Draft202012Validator.check_schema(s)


@pytest.mark.parametrize("name", SCHEMAS)
def test_schema_has_the_envelope(name: str) -> None:
    s = load(name)
    stem = name.removesuffix(".schema.json")
    assert s["$id"] == f"urn:pgiam:schema:{stem}"
    assert s["properties"]["schema"] == {"const": reports.SCHEMA, "description": s["properties"]["schema"]["description"]}
    command = s["properties"]["command"]["const"]
    assert command.replace(" ", "-") == stem, "the file is named after the command"
    assert s["title"].startswith(f"pgiam {command} ") and "json" in s["title"], "the command line that prints it"


@pytest.mark.parametrize("name", SCHEMAS)
def test_every_field_is_always_present_and_described(name: str) -> None:
    """Absent is null, never a missing key: every object lists all its properties as required and allows no others."""
    for where, o in objects(load(name)):
        props = o.get("properties", {})
        if where.startswith("/$defs") and not props:
            continue
        assert o.get("additionalProperties") is False, f"{name}{where}: additionalProperties must be false"
        assert sorted(o.get("required", [])) == sorted(props), f"{name}{where}: required must list every property"
        for field, sub in props.items():
            assert sub.get("description"), f"{name}{where}: {field} has no description"


def test_one_fact_one_name_one_type() -> None:
    """A field name means the same thing everywhere: the same JSON type in every schema file (a field
    may be nullable in one output and not in another: `user` is known for a service, not for a sandbox
    that was never set up)."""
    seen: dict[str, tuple[str, Any]] = {}
    for name in SCHEMAS:
        for field, sub in properties(load(name)):
            kind = sub.get("type", "enum" if "enum" in sub else "const" if "const" in sub else None)
            if isinstance(kind, list):
                kind = [t for t in kind if t != "null"]
                kind = kind[0] if len(kind) == 1 else kind
            if field in seen:
                assert seen[field][1] == kind, f"{field}: {kind} in {name} but {seen[field][1]} in {seen[field][0]}"
            else:
                seen[field] = (name, kind)


# ---------------------------------------------------------------- the man page


def man_json_section() -> str:
    text = MAN.read_text().replace("\\-", "-")
    m = re.search(r"^\.SH JSON OUTPUT\n(.*?)(?=^\.SH )", text, re.M | re.S)
    assert m, "man page has no JSON OUTPUT section"
    return m.group(1)


def man_fields(command: str) -> set[str]:
    """The `.TP/.B field` names under `.SS "pgiam COMMAND ... --json"` (or `--format json`)."""
    m = re.search(rf"^\.SS \"pgiam {re.escape(command)} [^\"]*json\"\n(.*?)(?=^\.SS |\Z)", man_json_section(), re.M | re.S)
    assert m, f"JSON OUTPUT has no .SS \"pgiam {command} --json\" subsection"
    return set(re.findall(r"^\.TP\n\.B ([A-Za-z_.-]+)$", m.group(1), re.M))  # env's PGHOST...: libpq's names


def test_man_json_output_describes_the_envelope() -> None:
    envelope = man_json_section().split(".SS", 1)[0]
    assert re.search(r"^\.B schema\n\(integer\) 1\.", envelope, re.M)
    assert "^.B command$" and re.search(r"^\.B command$", envelope, re.M)
    assert re.search(r"^\.B null ?,?$|^\.BR null ,$", envelope, re.M)


@pytest.mark.parametrize("name", SCHEMAS)
def test_man_json_output_lists_exactly_the_schema_fields(name: str) -> None:
    s = load(name)
    fields = {f for f, _ in properties(s)} - {"schema", "command"}
    documented = man_fields(s["properties"]["command"]["const"])
    assert documented == fields, f"man lacks {sorted(fields - documented)}, or lists stale {sorted(documented - fields)}"


# ---------------------------------------------------------------- the reports, built directly

SVC = Service(name="prod", host="db.cluster-abc.us-west-2.rds.amazonaws.com", user="alice", region="us-west-2")
FULL = Service(name="tun", host="db.cluster-abc.us-west-2.rds.amazonaws.com", user="bob", region="us-west-2", port=6543,
               dbname="app", profile="prod-sso", via=Via("127.0.0.1", 15432), sslrootcert="/ca.pem", require_auth=True)


def test_list_report_validates_and_keeps_nulls() -> None:
    out = reports.ListReport((SVC, FULL)).to_json()
    validate(out, "list.schema.json")
    assert out["services"][0]["dbname"] is None and out["services"][0]["via"] is None
    assert out["services"][1]["via"] == "127.0.0.1:15432" and out["services"][1]["port"] == 6543


def test_status_report_without_a_token_says_null_not_zero() -> None:
    """seconds_left used to be 0 both with no token and with an expired one (issue 10)."""
    missing = reports.ServiceStatus(SVC, "missing", "no token line", None, reports.seconds_left(None, 100.0),
                                    None, None, None, None, None)
    expired = reports.ServiceStatus(FULL, "expired", "expired", 50.0, reports.seconds_left(50.0, 100.0),
                                    "boom", "do this", 4, 90.0, "prod-sso")
    out = reports.StatusReport((missing, expired)).to_json()
    validate(out, "status.schema.json")
    assert [r["seconds_left"] for r in out["services"]] == [None, 0]
    assert out["services"][1]["signed_by"] == "prod-sso"


def test_refresh_and_certs_reports_validate() -> None:
    validate(reports.RefreshReport((reports.RefreshRecord("prod", "failed", None, None, "e", "h", 4),), 4).to_json(),
             "refresh.schema.json")
    missing = reports.BundleRecord("/x.pem", "aws", False, True, 0, None, ())
    out = reports.CertsReport((missing,), ("a CA bundle in use is missing",)).to_json()
    validate(out, "certs-status.schema.json")
    assert out["bundles"][0]["ca_count"] is None, "a missing bundle has no CA count, not 0"


def test_sandbox_report_validates_when_nothing_was_set_up() -> None:
    details: dict[str, Any] = {"postgres_pid": None, "postgres_alive": False, "ldapd_pid": None, "ldapd_alive": False,
                               "ldapd_port": None, "local_port": None, "endpoint": "db.example.rds.amazonaws.com:5432",
                               "role": None, "ca_file": "/c", "aws_credentials_file": "/a", "aws_profile": "sandbox",
                               "log_file": "/l", "server_log": "/s", "cluster_dir": "/d"}
    out = reports.SandboxReport(False, details).to_json()
    validate(out, "sandbox-status.schema.json")
    assert (out["sandbox"]["host"], out["sandbox"]["port"]) == ("db.example.rds.amazonaws.com", 5432)


def test_a_schema_rejects_a_sentinel_or_a_missing_field() -> None:
    """Guards the schema files' strictness: they can fail."""
    good = reports.ListReport((SVC,)).to_json()
    bad = json.loads(json.dumps(good))
    del bad["services"][0]["dbname"]
    with pytest.raises(jsonschema.ValidationError):
        validate(bad, "list.schema.json")
    bad = json.loads(json.dumps(good))
    bad["services"][0]["endpoint"] = "x:1"
    with pytest.raises(jsonschema.ValidationError):
        validate(bad, "list.schema.json")


def test_doctor_report_validates_and_an_empty_fix_is_null() -> None:
    from pgiam.doctor import Check, DoctorReport, ServiceDiagnosis, fail, ok, warn

    report = DoctorReport((ok("libpq.version", "libpq 16.4"),),
                          (ServiceDiagnosis("prod", (warn("tls.ca", "expires soon", "pgiam certs update"),
                                                     Check("net.tcp", "FAIL", "refused", ""))),
                           ServiceDiagnosis("ok", (ok("login", "logged in"),))))
    out = report.to_json()
    validate(out, "doctor.schema.json")
    assert (out["ok"], [s["ok"] for s in out["services"]]) == (False, [False, True])
    assert [c["fix"] for c in out["services"][0]["checks"]] == ["pgiam certs update", None]
    assert fail("x.y", "m").to_json()["fix"] is None


def test_discover_report_validates_with_nulls() -> None:
    from pgiam.discover import DiscoverReport, Endpoint, ScanWarning

    ep = Endpoint("px-ro", "proxy-endpoint", "px-ro.endpoint.proxy-x.us-east-1.rds.amazonaws.com", 5432, True, None,
                  None, "us-east-1", "px-ro", "postgres", "READ_ONLY")
    w = ScanWarning(None, "us-east-1", "dsql:ListClusters", "could not connect", 8)
    out = DiscoverReport((ep,), (w,), calls_ok=3).to_json()
    validate(out, "discover.schema.json")
    assert (out["exit_code"], out["endpoints"][0]["ca_identifier"], out["endpoints"][0]["resource_arn"]) == (1, None, None)
