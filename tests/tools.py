"""The one rule for tools the e2e tests drive: a missing one fails, unless PGIAM_ALLOW_SKIP_E2E=1 (CI never sets it)."""

from __future__ import annotations

import os
import shutil

import pytest


def allow_skip() -> bool:
    return os.environ.get("PGIAM_ALLOW_SKIP_E2E") == "1"


def require_tool(name: str, package: str | None = None) -> str:
    """The tool's path; a missing tool fails the test (skips only with PGIAM_ALLOW_SKIP_E2E=1)."""
    path = shutil.which(name)
    if path:
        return path
    if allow_skip():
        pytest.skip(f"{name} is not installed (PGIAM_ALLOW_SKIP_E2E=1)")
    pytest.fail(f"{name} is not installed (apt-get install -y {package or name}; .ci/run installs it); "
                "set PGIAM_ALLOW_SKIP_E2E=1 to skip instead")


def require_server() -> None:
    """PostgreSQL server binaries for the sandbox, with the same rule."""
    from pgiam.errors import EnvironmentProblem
    from pgiam.sandbox import cluster

    try:
        cluster.find_server_binaries()
    except EnvironmentProblem as err:
        if allow_skip():
            pytest.skip(f"{err.message} (PGIAM_ALLOW_SKIP_E2E=1)")
        pytest.fail(f"{err.message}; {err.hint}")
