"""Packaging: one version source, the licence file, the schema files as package data, the botocore range (issue 10)."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

import pgiam

ROOT = Path(__file__).resolve().parents[2]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())


def test_one_version_source(run_cli) -> None:
    project = PYPROJECT["project"]
    assert "version" not in project and "version" in project["dynamic"]
    assert PYPROJECT["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "pgiam.__version__"}
    code, out, _ = run_cli("--version")
    assert (code, out.strip()) == (0, f"pgiam {pgiam.__version__}")
    changelog = (ROOT / "CHANGELOG.md").read_text()
    assert re.search(rf"^## {re.escape(pgiam.__version__)}\b", changelog, re.M), "CHANGELOG has a section for this version"


def test_license_file_matches_the_declared_licence() -> None:
    assert PYPROJECT["project"]["license"] == {"text": "MIT"}
    assert (ROOT / "LICENSE").read_text().startswith("MIT License\n")
    assert "License :: OSI Approved :: MIT License" in PYPROJECT["project"]["classifiers"]


def test_botocore_range_covers_what_pgiam_touches() -> None:
    """pgiam reads the signing clock through botocore.auth.get_current_datetime (botocore 1.40.2 and later)."""
    import botocore
    import botocore.auth

    [spec] = [d for d in PYPROJECT["project"]["dependencies"] if d.startswith("botocore")]
    assert spec == "botocore>=1.40.2,<2"
    assert callable(getattr(botocore.auth, "get_current_datetime"))
    major, minor, patch = (int(x) for x in botocore.__version__.split(".")[:3])
    assert (1, 40, 2) <= (major, minor, patch) < (2, 0, 0)


@pytest.mark.slow
def test_the_wheel_ships_schemas_license_and_every_subpackage(tmp_path: Path) -> None:
    p = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", str(ROOT), "-w", str(tmp_path)],
                       capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr
    [wheel] = tmp_path.glob("pgiam-*.whl")
    assert wheel.name.startswith(f"pgiam-{pgiam.__version__}-")
    names = set(zipfile.ZipFile(wheel).namelist())
    schemas = {f"pgiam/schemas/{f.name}" for f in (ROOT / "pgiam" / "schemas").glob("*.schema.json")}
    assert schemas and schemas <= names
    assert {"pgiam/commands/__init__.py", "pgiam/sandbox/__init__.py", "pgiam/py.typed"} <= names
    assert any(n.endswith(".dist-info/licenses/LICENSE") or n.endswith(".dist-info/LICENSE") for n in names)
