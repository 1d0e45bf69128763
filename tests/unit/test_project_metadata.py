"""Packaging (issues 10 and 22): one version source, an SPDX licence, a bounded build backend, development tools
out of the published metadata, the botocore range. The wheel itself: tests/e2e/test_wheel.py."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pgiam

ROOT = Path(__file__).resolve().parents[2]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())


def test_one_version_source(run_cli) -> None:
    project = PYPROJECT["project"]
    assert "version" not in project and "version" in project["dynamic"]
    assert PYPROJECT["tool"]["hatch"]["version"] == {"path": "pgiam/__init__.py"}
    code, out, _ = run_cli("--version")
    assert (code, out.strip()) == (0, f"pgiam {pgiam.__version__}")
    changelog = (ROOT / "CHANGELOG.md").read_text()
    assert re.search(rf"^## {re.escape(pgiam.__version__)}\b", changelog, re.M), "CHANGELOG has a section for this version"


def test_license_is_an_spdx_expression_with_its_file() -> None:
    """PEP 639: `license = "MIT"` and `license-files`; no licence classifier beside them (issue 22)."""
    project = PYPROJECT["project"]
    assert project["license"] == "MIT"
    assert project["license-files"] == ["LICENSE"]
    assert (ROOT / "LICENSE").read_text().startswith("MIT License\n")
    assert [c for c in project["classifiers"] if c.startswith("License ::")] == []


def test_build_backend_is_bounded() -> None:
    """Each build requirement has a floor and a ceiling: a new major backend cannot change the wheel unseen."""
    from packaging.requirements import Requirement

    for req in map(Requirement, PYPROJECT["build-system"]["requires"]):
        operators = {s.operator for s in req.specifier}
        assert operators == {">=", "<"}, req


def test_development_tools_are_a_dependency_group_not_an_extra() -> None:
    """pytest, mypy, pgcli … are not published in the wheel's metadata (PEP 735 group `test`)."""
    from packaging.requirements import Requirement

    assert "optional-dependencies" not in PYPROJECT["project"]
    group = {Requirement(r).name for r in PYPROJECT["dependency-groups"]["test"]}
    assert {"pytest", "mypy", "pytest-xdist", "moto", "boto3"} <= group
    runtime = {Requirement(r).name for r in PYPROJECT["project"]["dependencies"]}
    assert runtime == {"botocore", "dnspython", "platformdirs", "tomlkit"}


def test_botocore_range_covers_what_pgiam_touches() -> None:
    """pgiam reads the signing clock through botocore.auth.get_current_datetime (botocore 1.40.2 and later)."""
    import botocore
    import botocore.auth

    [spec] = [d for d in PYPROJECT["project"]["dependencies"] if d.startswith("botocore")]
    assert spec == "botocore>=1.40.2,<2"
    assert callable(getattr(botocore.auth, "get_current_datetime"))
    major, minor, patch = (int(x) for x in botocore.__version__.split(".")[:3])
    assert (1, 40, 2) <= (major, minor, patch) < (2, 0, 0)
