"""`pgiam env` read back by real shells (sh, bash, fish; issue 14): the variables a shell has after running
the printed script are the entry's keys, and stale ones are unset. Moved from tests/unit, which starts no
process (issue 22)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from pgiam.errors import ExitCode
from tests.tools import require_tool
from tests.unit.test_env_url import VARS, add, entry, expected_env, odd_ca  # noqa: F401  (odd_ca: a fixture)

pytestmark = pytest.mark.e2e


def shell_env(argv: list[str], script: str, home: Path) -> dict[str, str]:
    """The PG* variables a real shell has after running `script` (stale values set beforehand)."""
    env = dict(os.environ, PGHOSTADDR="stale", PGREQUIREAUTH="stale")
    out = subprocess.run([*argv, script], env=env, capture_output=True, timeout=60, cwd=home).stdout
    pairs = [line.split("=", 1) for line in out.decode().split("\0") if line.startswith("PG")]
    return {k: v for k, v in pairs if k in VARS.values()}


@pytest.mark.parametrize("via", [False, True])
@pytest.mark.parametrize("shell", ["sh", "bash", "fish"])
def test_env_round_trips_through_real_shells(run_cli, home: Path, odd_ca: Path, shell: str, via: bool) -> None:
    require_tool(shell)
    add(run_cli, odd_ca, *(["--via", "127.0.0.1:15432"] if via else []))
    code, out, err = run_cli("env", "odd", "--format", "fish" if shell == "fish" else "sh")
    assert code == ExitCode.OK, err
    script = out + ("\nenv -0" if shell != "fish" else "\nenv -0")
    got = shell_env([shutil.which(shell) or shell, "-c"], script, home)
    assert got == expected_env(entry(home))
    assert ("PGHOSTADDR" in got) == via and "PGREQUIREAUTH" not in got  # stale values unset
