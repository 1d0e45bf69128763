"""The wheel as a user gets it (issues 14 and 22).

Built from a copy of the tree (a build never writes into the checkout), by the backend pyproject.toml
names, in an environment holding only its declared build requirements, with no warning in the build's
captured output (a deprecation announced there is a future broken build). Installed into a fresh venv, it
ships the man page and the completion scripts under the prefix, `pgiam completion SHELL` prints them,
and its metadata carries an SPDX licence, the licence file and only the runtime dependencies.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import tomllib
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from packaging.requirements import Requirement

import pgiam
from tests.tools import require_tool

ROOT = Path(__file__).resolve().parents[2]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
# Where each file lands under the environment's prefix (what pipx links and what `man`/shells look in).
SHARED = {"man/pgiam.1": "share/man/man1/pgiam.1",
          "completions/pgiam.bash": "share/bash-completion/completions/pgiam.bash",
          "completions/_pgiam": "share/zsh/site-functions/_pgiam",
          "completions/pgiam.fish": "share/fish/vendor_completions.d/pgiam.fish"}
SCRIPTS = {"bash": "completions/pgiam.bash", "zsh": "completions/_pgiam", "fish": "completions/pgiam.fish"}
# What a checkout holds that is not source: never copied, so the copy builds as a clean clone would.
NOT_SOURCE = shutil.ignore_patterns(".git", ".venv*", "__pycache__", "*.pyc", "*.egg-info", "build", "dist",
                                    ".mypy_cache", ".pytest_cache", ".hypothesis", "node_modules")
BUILD_LITTER = ("build", "dist", "pgiam.egg-info")


@dataclass
class Built:
    wheel: Path
    output: str  # everything the backend printed, stdout and stderr


def build_wheel(tmp: Path, requires: list[str]) -> Built:
    """Copy the tree, install `requires` into a new venv, and call the PEP 517 backend's build_wheel there."""
    copy = tmp / "src"
    shutil.copytree(ROOT, copy, ignore=NOT_SOURCE)
    env_dir = tmp / "buildenv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(env_dir)], check=True, timeout=120)
    py = env_dir / "bin" / "python"
    inst = subprocess.run([sys.executable, "-m", "pip", "--python", str(py), "install", "-q", *requires],
                          capture_output=True, text=True, timeout=600)
    assert inst.returncode == 0, inst.stderr[-2000:]
    backend = PYPROJECT["build-system"]["build-backend"]
    # PEP 517: the backend may ask for more than build-system.requires (hatchling asks for nothing).
    more = json.loads(subprocess.run(
        [str(py), "-c", "import importlib, json, sys; "
         "print(json.dumps(importlib.import_module(sys.argv[1]).get_requires_for_build_wheel()))", backend],
        cwd=copy, capture_output=True, text=True, check=True, timeout=120).stdout)
    if more:
        subprocess.run([sys.executable, "-m", "pip", "--python", str(py), "install", "-q", *more], check=True,
                       capture_output=True, timeout=600)
    dist = tmp / "dist"
    dist.mkdir()
    # Every warning shown, whatever its category (a -W flag given to pip would not reach this process).
    build = subprocess.run(
        [str(py), "-W", "always", "-c",
         "import importlib, sys; print(importlib.import_module(sys.argv[1]).build_wheel(sys.argv[2]))",
         backend, str(dist)],
        cwd=copy, capture_output=True, text=True, timeout=600,
        env={**os.environ, "PYTHONWARNINGS": "always", "SOURCE_DATE_EPOCH": "1700000000"})
    assert build.returncode == 0, build.stdout[-2000:] + build.stderr[-2000:]
    (wheel,) = dist.glob("*.whl")
    assert build.stdout.strip().splitlines()[-1] == wheel.name
    return Built(wheel, build.stdout + build.stderr)


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Built]:
    """The wheel built with the newest backend the declared range allows (what pip would pick)."""
    before = {name: (ROOT / name).exists() for name in BUILD_LITTER}
    tmp = tmp_path_factory.mktemp("wheel")
    yield build_wheel(tmp, PYPROJECT["build-system"]["requires"])
    assert {name: (ROOT / name).exists() for name in BUILD_LITTER} == before, "the build wrote into the checkout"
    shutil.rmtree(tmp, ignore_errors=True)


@pytest.fixture(scope="module")
def installed(built: Built, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv holding only that wheel; its dependencies come from the test venv's site-packages
    through a .pth line (a plain path: the editable install's own .pth is not processed)."""
    venv = tmp_path_factory.mktemp("installed") / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    py = venv / "bin" / "python"
    site = Path(subprocess.run([str(py), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                               capture_output=True, text=True, check=True).stdout.strip())
    (site / "deps.pth").write_text(sysconfig.get_path("purelib") + "\n")
    inst = subprocess.run([sys.executable, "-m", "pip", "--python", str(py), "install", "--no-deps", "-q",
                           str(built.wheel)], capture_output=True, text=True, timeout=300)
    assert inst.returncode == 0, inst.stderr[-2000:]
    return venv


def warnings_in(output: str) -> list[str]:
    return [line for line in output.splitlines() if re.search(r"warn|deprecat", line, re.I)]


def test_the_build_prints_no_warning(built: Built) -> None:
    """A backend announces a coming refusal (setuptools' licence table, data-files) as a warning: none."""
    assert warnings_in(built.output) == []


def test_the_lowest_declared_backend_builds_the_same_wheel(built: Built, tmp_path: Path) -> None:
    """The build-system range is tested at both ends: its floor builds the same files with no warning."""
    floors = [re.sub(r">=", "==", req.split(",")[0]) for req in PYPROJECT["build-system"]["requires"]]
    assert all("==" in f for f in floors), floors
    oldest = build_wheel(tmp_path, floors)
    assert warnings_in(oldest.output) == []
    newest_files = sorted(zipfile.ZipFile(built.wheel).namelist())
    oldest_files = sorted(zipfile.ZipFile(oldest.wheel).namelist())
    assert oldest_files == newest_files
    metadata = zipfile.ZipFile(oldest.wheel).read(f"pgiam-{pgiam.__version__}.dist-info/METADATA").decode()
    assert "License-Expression: MIT\n" in metadata and "License-File: LICENSE\n" in metadata


def test_the_wheel_ships_every_subpackage_the_schemas_and_py_typed(built: Built) -> None:
    assert built.wheel.name.startswith(f"pgiam-{pgiam.__version__}-py3-none-any")
    names = set(zipfile.ZipFile(built.wheel).namelist())
    source = {p.relative_to(ROOT).as_posix() for p in (ROOT / "pgiam").rglob("*")
              if p.is_file() and "__pycache__" not in p.parts}
    assert source == {n for n in names if n.startswith("pgiam/")}
    assert {"pgiam/py.typed", "pgiam/schemas/README.md", "pgiam/schemas/status.schema.json"} <= source
    data = f"pgiam-{pgiam.__version__}.data/data/"
    assert {n[len(data):] for n in names if n.startswith(data)} == set(SHARED.values())


def test_installed_metadata_spdx_licence_and_only_runtime_dependencies(installed: Path, tmp_path: Path) -> None:
    """Core metadata 2.4: License-Expression and License-File, no licence classifier, no test extra."""
    probe = ("import importlib.metadata as m, json; d = m.distribution('pgiam'); md = d.metadata; "
             "print(json.dumps({k: md.get_all(k) or [] for k in ('Metadata-Version', 'Version', 'License-Expression', "
             "'License-File', 'License', 'Classifier', 'Requires-Dist', 'Provides-Extra')} | "
             "{'license_text': d.read_text('licenses/LICENSE')}))")
    # Outside the checkout: `python -c` puts the working directory first on sys.path.
    md = json.loads(subprocess.run([str(installed / "bin" / "python"), "-c", probe], capture_output=True, text=True,
                                   cwd=tmp_path, check=True, timeout=60).stdout)
    major, minor = (int(x) for x in md["Metadata-Version"][0].split("."))
    assert (major, minor) >= (2, 4)
    assert md["Version"] == [pgiam.__version__]
    assert md["License-Expression"] == ["MIT"]
    assert md["License-File"] == ["LICENSE"]
    assert md["license_text"] == (ROOT / "LICENSE").read_text()
    assert md["License"] == []
    assert [c for c in md["Classifier"] if c.startswith("License ::")] == []
    assert md["Provides-Extra"] == []
    assert requirements(md["Requires-Dist"]) == requirements(PYPROJECT["project"]["dependencies"])


def requirements(specs: list[str]) -> set[tuple[str, str]]:
    """Name and version set of each requirement, in a form that does not depend on how it was spelt."""
    return {(r.name, str(r.specifier)) for r in map(Requirement, specs)}


def test_wheel_installs_the_man_page_where_man_finds_it(installed: Path) -> None:
    page = installed / "share" / "man" / "man1" / "pgiam.1"
    assert page.read_bytes() == (ROOT / "man" / "pgiam.1").read_bytes()
    # man finds it on the prefix's MANPATH (pipx 1.5+ links share/man/man1 into ~/.local/share/man/man1).
    man = require_tool("man", "man-db")
    found = subprocess.run([man, "-w", "pgiam"], capture_output=True, text=True, timeout=30,
                           env={**os.environ, "MANPATH": str(installed / "share" / "man")})
    assert (found.returncode, found.stdout.strip()) == (0, str(page)), found.stderr


@pytest.mark.parametrize("shell", sorted(SCRIPTS))
def test_wheel_pgiam_completion_prints_the_installed_script(installed: Path, shell: str, tmp_path: Path) -> None:
    """The console script of the installed wheel, run outside the source tree, prints the data file."""
    where = subprocess.run([str(installed / "bin" / "python"), "-c", "import pgiam; print(pgiam.__file__)"],
                           capture_output=True, text=True, cwd=tmp_path, check=True).stdout
    assert where.startswith(str(installed)), where  # the wheel's copy, not this checkout
    source = (ROOT / SCRIPTS[shell]).read_bytes()
    assert (installed / SHARED[SCRIPTS[shell]]).read_bytes() == source
    proc = subprocess.run([str(installed / "bin" / "pgiam"), "completion", shell], capture_output=True,
                          cwd=tmp_path, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == source


def test_missing_script_is_an_environment_problem(installed: Path, tmp_path: Path) -> None:
    """A wheel install whose data file was deleted: exit 7 naming the shell, not a traceback."""
    script = installed / SHARED["completions/pgiam.fish"]
    saved = script.read_bytes()
    script.unlink()
    try:
        proc = subprocess.run([str(installed / "bin" / "pgiam"), "completion", "fish"], capture_output=True,
                              text=True, cwd=tmp_path, timeout=60)
    finally:
        script.write_bytes(saved)
    assert proc.returncode == 7 and "fish completion script is not installed" in proc.stderr
