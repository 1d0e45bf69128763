"""The README's first block is what a new user runs (issues 2 and 26): its first line sets up and connects, its
second is scripts/test, which .ci/run runs verbatim and which installs every tool the tests ask for."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def first_block() -> list[str]:
    text = (ROOT / "README.md").read_text()
    m = re.search(r"```(?:sh|bash|console)?\n(.*?)```", text, re.S)
    assert m, "README.md has no code block"
    return [ln for ln in m.group(1).splitlines() if ln.strip() and not ln.lstrip().startswith("#")]


def test_first_line_installs_its_system_packages_then_connects() -> None:
    """Issue 26: one line on a fresh Debian/Ubuntu: the apt packages, pgiam, the sandbox, psql."""
    install, _ = first_block()
    steps = install.split(" && ")
    assert steps[0] == "scripts/apt-install postgresql python3-venv"
    assert "pip install ." in install and "pgiam sandbox up" in install
    assert steps[-1].startswith("psql service=sandbox")
    assert (ROOT / "scripts" / "apt-install").stat().st_mode & 0o111


def test_second_line_is_the_test_script_and_ci_runs_it_verbatim() -> None:
    _, test = first_block()
    assert test == "scripts/test"
    assert (ROOT / "scripts" / "test").stat().st_mode & 0o111
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    assert test in ci
    assert "unset PGIAM_ALLOW_SKIP_E2E" in "\n".join(ci)  # on CI a missing tool is a failure, never a skip


def packages_tests_ask_for() -> set[str]:
    """Every Debian package a test names through tests/tools.py's require_tool(NAME[, PACKAGE])."""
    found = set()
    for path in (ROOT / "tests").rglob("*.py"):
        for name, package in re.findall(r'require_tool\(\s*"([^"]+)"\s*(?:,\s*"([^"]+)"\s*)?\)', path.read_text()):
            found.add(package or name)
    return found


def test_scripts_test_installs_every_package_a_test_asks_for() -> None:
    """A tool a test requires is installed (and checked) by scripts/test before any test runs."""
    script = (ROOT / "scripts" / "test").read_text()
    installed = set(re.findall(r"^[^#\n]+#([a-z0-9.+-]+)#", script, re.M))
    asked = packages_tests_ask_for()
    assert {"psql", "postgresql-client", "zsh"} & asked  # the scan finds the calls
    # Not from apt: the AWS CLI goes into its own venv, pgcli comes with the test dependency group.
    assert asked - installed - {"aws", "awscli", "pgcli"} == set()
