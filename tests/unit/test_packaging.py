"""`pgiam completion SHELL` from a source checkout (issue 14), in process. What a wheel installs (the man page,
the completion scripts as data files) is checked on a real wheel in tests/e2e/test_wheel.py."""

from __future__ import annotations

from pathlib import Path

import pytest

from pgiam.commands import completion

ROOT = Path(__file__).resolve().parents[2]
SCRIPTS = {"bash": ROOT / "completions" / "pgiam.bash", "zsh": ROOT / "completions" / "_pgiam",
           "fish": ROOT / "completions" / "pgiam.fish"}


@pytest.mark.parametrize("shell", sorted(SCRIPTS))
def test_completion_prints_the_file_byte_for_byte(shell: str, run_cli) -> None:  # type: ignore[no-untyped-def]
    """From the source tree (editable install): stdout is exactly completions/*."""
    assert completion.script_path(shell) == SCRIPTS[shell]
    code, out, err = run_cli("completion", shell)
    assert (code, err) == (0, "")
    assert out.encode() == SCRIPTS[shell].read_bytes()


def test_completion_refuses_other_shells(run_cli) -> None:  # type: ignore[no-untyped-def]
    code, _, err = run_cli("completion", "tcsh")
    assert code == 2
    assert "invalid choice: 'tcsh'" in err


def test_installed_locations_are_the_wheels_shared_data() -> None:
    """completion.py looks where pyproject.toml's shared-data puts each script: one table, read by both."""
    import tomllib

    shared = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["hatch"]["build"]["targets"]["wheel"][
        "shared-data"]
    for shell, name in completion.FILES.items():
        assert shared[f"completions/{name}"] == f"{completion.INSTALLED[shell]}/{name}"
