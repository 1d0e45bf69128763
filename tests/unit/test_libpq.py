"""pgiam.libpq: version detection on this machine, the .pgpass truncation table, key gating."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pgiam import libpq
from pgiam.errors import EnvironmentProblem
from pgiam.libpq import LibpqVersion
from tests.tools import require_tool

V = LibpqVersion.parse


def _psql_version() -> LibpqVersion:
    out = subprocess.run(["psql", "--version"], capture_output=True, text=True, check=True).stdout
    m = re.search(r"\(PostgreSQL\) (\d+)\.(\d+)", out)
    assert m, out
    return LibpqVersion(int(m[1]), int(m[2]))


needs_psql = pytest.mark.usefixtures("_psql")


@pytest.fixture
def _psql() -> None:
    """psql's version output is read: missing, it fails (tests/tools.py's rule)."""
    require_tool("psql", "postgresql-client")


# --------------------------------------------------------------------------- the version type


@pytest.mark.parametrize(
    ("num", "text", "fields"),
    [
        (150018, "15.18", (15, 18, 0)),
        (160002, "16.2", (16, 2, 0)),
        (100015, "10.15", (10, 15, 0)),
        (90620, "9.6.20", (9, 20, 6)),
        (90524, "9.5.24", (9, 24, 5)),
        (80422, "8.4.22", (8, 22, 4)),
    ],
)
def test_from_num_and_parse_agree(num: int, text: str, fields: tuple[int, int, int]) -> None:
    v = LibpqVersion.from_num(num, "x")
    assert (v.major, v.minor, v.branch) == fields
    assert str(v) == text and v.num == num
    assert V(text) == v  # source is not part of equality


@pytest.mark.parametrize("text", ["", "sixteen", "16.2.1", "16.", "v16", "1 6"])
def test_parse_rejects(text: str) -> None:
    with pytest.raises(ValueError):
        V(text)


def test_ordering_crosses_the_9_to_10_renumbering() -> None:
    ordered = [V("8.4.22"), V("9.5.24"), V("9.6.3"), V("9.6.20"), V("10.0"), V("12.4"), V("12.5"), V("16"), V("17beta1")]
    assert sorted(reversed(ordered)) == ordered
    assert V("16.0") >= V("15.18") and V("9.6.24") < V("10.1")
    assert V("15.18").at_least(15, 18) and not V("15.18").at_least(16)
    assert V("17beta1") == LibpqVersion(17, 0)


@given(st.integers(min_value=80000, max_value=99999) | st.integers(min_value=100000, max_value=999999))
def test_num_round_trips(num: int) -> None:
    v = LibpqVersion.from_num(num)
    assert v.num == num
    assert LibpqVersion.from_num(v.num) == v
    assert V(str(v)) == v


# --------------------------------------------------------------------------- detection


@needs_psql
def test_ctypes_finds_the_installed_libpq() -> None:
    v = libpq.from_ctypes()
    assert v is not None and "PQlibVersion" in v.source
    assert (v.major, v.minor) == (_psql_version().major, _psql_version().minor)


@needs_psql
def test_detect_prefers_ctypes() -> None:
    v = libpq.detect(env={})
    assert v == _psql_version() and "PQlibVersion" in (v.source if v else "")


def test_from_ctypes_without_any_library(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(libpq.ctypes.util, "find_library", lambda name: None)
    assert libpq.from_ctypes(names=["libpq-does-not-exist.so.99"]) is None


@pytest.mark.parametrize(
    ("output", "expected"),
    [
        ("psql (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)\n", "15.18"),
        ("PostgreSQL 15.18 (Debian 15.18-0+deb12u1)\n", "15.18"),
        ("psql (PostgreSQL) 16.2 (Ubuntu 16.2-1.pgdg22.04+1)\n", "16.2"),
        ("psql (PostgreSQL) 14.11 (Homebrew)\n", "14.11"),
        ("PostgreSQL 12.4\n", "12.4"),
        ("psql (PostgreSQL) 9.6.24\n", "9.6.24"),
        ("PostgreSQL 9.5.3\n", "9.5.3"),
        ("psql (PostgreSQL) 17beta1\n", "17.0"),
        ("psql (PostgreSQL) 18devel\n", "18.0"),
        ("command not found\n", None),
    ],
)
def test_parse_version_output(output: str, expected: str | None) -> None:
    v = libpq.parse_version_output(output)
    assert (str(v) if v else None) == expected


@pytest.mark.parametrize("command", ["psql", "pg_config"])
def test_from_command_parses_the_real_output(command: str) -> None:
    require_tool(command, "postgresql-client" if command == "psql" else "libpq-dev")
    require_tool("psql", "postgresql-client")
    v = libpq.from_command([command, "--version"])
    assert v is not None and v.source == f"{command} --version"
    assert (v.major, v.minor) == (_psql_version().major, _psql_version().minor)


def test_from_command_failures_give_none(tmp_path: Path) -> None:
    assert libpq.from_command([str(tmp_path / "no-such-binary"), "--version"]) is None
    assert libpq.from_command(["false"]) is None
    assert libpq.from_command(["echo", "no version here"]) is None


def _fake_bin(directory: Path, name: str, output: str) -> None:
    script = directory / name
    script.write_text(f"#!/bin/sh\necho '{output}'\n")
    script.chmod(0o755)


def test_detect_falls_back_to_pg_config_then_psql(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No shared libpq found: the real commands on PATH decide, pg_config first."""
    monkeypatch.setattr(libpq, "from_ctypes", lambda names=None: None)
    monkeypatch.setenv("PATH", str(tmp_path))
    assert libpq.detect(env={}) is None
    _fake_bin(tmp_path, "psql", "psql (PostgreSQL) 13.1")
    assert libpq.detect(env={}) == V("13.1")
    _fake_bin(tmp_path, "pg_config", "PostgreSQL 14.3")
    v = libpq.detect(env={})
    assert v == V("14.3") and v is not None and v.source == "pg_config --version"


@pytest.mark.parametrize(("value", "expected"), [("16.2", "16.2"), ("16", "16.0"), ("9.6.20", "9.6.20"), (" 12.4 ", "12.4")])
def test_override_comes_first(value: str, expected: str) -> None:
    v = libpq.detect(env={libpq.OVERRIDE_ENV: value})
    assert v is not None and str(v) == expected and v.source == "PGIAM_LIBPQ_VERSION"


def test_override_from_the_real_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PGIAM_LIBPQ_VERSION", "16.2")
    assert libpq.detect() == LibpqVersion(16, 2)


def test_bad_override_is_an_environment_problem() -> None:
    with pytest.raises(EnvironmentProblem, match="PGIAM_LIBPQ_VERSION") as info:
        libpq.detect(env={libpq.OVERRIDE_ENV: "sixteen"})
    assert info.value.hint and "16.2" in info.value.hint


# --------------------------------------------------------------------------- the 320-byte trap

TRUNCATION = [
    # (version, truncates): every boundary of Tom Lane's fix (13.0, 12.5, 11.10, 10.15, 9.6.20, 9.5.24)
    ("18.1", False),
    ("16.0", False),
    ("13.0", False),
    ("12.4", True),
    ("12.5", False),
    ("12.0", True),
    ("12.22", False),
    ("11.9", True),
    ("11.10", False),
    ("10.14", True),
    ("10.15", False),
    ("10.0", True),
    ("9.6.19", True),
    ("9.6.20", False),
    ("9.6.24", False),
    ("9.5.23", True),
    ("9.5.24", False),
    ("9.5.25", False),
    ("9.4.26", True),
    ("9.0.23", True),
    ("8.4.22", True),
]


@pytest.mark.parametrize(("version", "truncates"), TRUNCATION)
def test_truncates_pgpass(version: str, truncates: bool) -> None:
    assert libpq.truncates_pgpass(V(version)) is truncates


def test_truncation_from_pqlibversion_numbers() -> None:
    assert libpq.truncates_pgpass(LibpqVersion.from_num(90619)) is True
    assert libpq.truncates_pgpass(LibpqVersion.from_num(90620)) is False
    assert libpq.truncates_pgpass(LibpqVersion.from_num(150018)) is False


# --------------------------------------------------------------------------- service keys

BASIC = {
    "host": "db.abc.eu-west-1.rds.amazonaws.com",
    "hostaddr": "127.0.0.1",
    "port": "5432",
    "user": "app",
    "dbname": "app",
    "sslmode": "verify-full",
    "sslrootcert": "/home/u/.local/share/pgiam/certs/rds-aws.pem",
}


@pytest.mark.parametrize("version", ["9.5.24", "12.4", "15.18", "16.0", "18.1"])
def test_basic_keys_work_everywhere(version: str) -> None:
    libpq.check_service_keys(BASIC, V(version))
    libpq.check_service_keys(BASIC, None)


@pytest.mark.parametrize(
    ("keys", "version", "ok"),
    [
        ({"require_auth": "password"}, "15.18", False),
        ({"require_auth": "password"}, "16.0", True),
        ({"sslrootcert": "system"}, "15.18", False),
        ({"sslrootcert": "system"}, "16.2", True),
        ({"sslnegotiation": "direct"}, "16.4", False),
        ({"sslnegotiation": "direct"}, "17.0", True),
        ({"passfile": "/x"}, "9.6.24", False),
        ({"passfile": "/x"}, "10.0", True),
        ({"tty": ""}, "13.9", True),
        ({"tty": ""}, "14.0", False),
    ],
)
def test_key_gating(keys: dict[str, str], version: str, ok: bool) -> None:
    if ok:
        libpq.check_service_keys({**BASIC, **keys}, V(version))
    else:
        with pytest.raises(EnvironmentProblem):
            libpq.check_service_keys({**BASIC, **keys}, V(version))


def test_gating_message_names_key_needed_and_installed_versions() -> None:
    installed = LibpqVersion(15, 18, "PQlibVersion() in libpq.so.5")
    with pytest.raises(EnvironmentProblem) as info:
        libpq.check_service_keys({**BASIC, "require_auth": "password"}, installed)
    msg = info.value.message
    assert "require_auth" in msg and "libpq 16" in msg and "15.18" in msg and "libpq.so.5" in msg
    with pytest.raises(EnvironmentProblem, match="sslrootcert=system.*16.*15.18"):
        libpq.check_service_keys({"sslrootcert": "system"}, installed)


def test_unknown_version_refuses_only_new_keys() -> None:
    with pytest.raises(EnvironmentProblem, match="unknown") as info:
        libpq.check_service_keys({"require_auth": "password"}, None)
    assert info.value.hint and "PGIAM_LIBPQ_VERSION" in info.value.hint


def test_min_versions_table() -> None:
    table = libpq.SERVICE_KEYS_MIN_VERSION
    for key in ("host", "port", "user", "dbname", "sslmode", "sslrootcert", "hostaddr"):
        assert table[key] <= 9
    assert table["require_auth"] == 16
    assert libpq.SERVICE_VALUES_MIN_VERSION[("sslrootcert", "system")] == 16


def test_jdbc_safe_keys() -> None:
    assert libpq.JDBC_SAFE_KEYS == frozenset({"host", "port", "user", "dbname", "sslmode", "sslrootcert"})
    assert "hostaddr" not in libpq.JDBC_SAFE_KEYS and "require_auth" not in libpq.JDBC_SAFE_KEYS


@needs_psql
def test_installed_libpq_matches_facts() -> None:
    """psql 15.18 on this machine: long .pgpass lines fine, require_auth refused."""
    v = libpq.detect(env={})
    assert v is not None and not libpq.truncates_pgpass(v)
    if v.major < 16:
        with pytest.raises(EnvironmentProblem):
            libpq.check_service_keys({"require_auth": "password"}, v)
    assert os.path.basename(v.source.split()[-1]).startswith("libpq")
