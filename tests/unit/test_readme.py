"""The README's first block is what a new user runs, and .ci/run runs its test command verbatim (issue 2)."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def first_block() -> list[str]:
    text = (ROOT / "README.md").read_text()
    m = re.search(r"```(?:sh|bash|console)?\n(.*?)```", text, re.S)
    assert m, "README.md has no code block"
    return [ln for ln in m.group(1).splitlines() if ln.strip() and not ln.lstrip().startswith("#")]


def test_first_block_is_install_and_run_then_tests() -> None:
    install, test = first_block()
    assert "pip install" in install and "pgiam sandbox up" in install and "psql service=sandbox" in install
    assert "pytest" in test


def test_ci_runs_the_readme_test_command_verbatim() -> None:
    _, test = first_block()
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    assert test in ci
