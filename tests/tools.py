"""The one rule for tools and libraries the tests drive: a missing one fails, unless PGIAM_ALLOW_SKIP_E2E=1
(CI never sets it). Every skip in the suite goes through skip_or_fail()."""

from __future__ import annotations

import importlib
import os
import shutil
from types import ModuleType
from typing import NoReturn

import pytest


def allow_skip() -> bool:
    return os.environ.get("PGIAM_ALLOW_SKIP_E2E") == "1"


def skip_or_fail(reason: str, fix: str) -> NoReturn:
    """Skip with `reason` only when PGIAM_ALLOW_SKIP_E2E=1; otherwise fail, naming the fix."""
    if allow_skip():
        pytest.skip(f"{reason} (PGIAM_ALLOW_SKIP_E2E=1)")
    pytest.fail(f"{reason}: {fix}; set PGIAM_ALLOW_SKIP_E2E=1 to skip instead")


def require_tool(name: str, package: str | None = None) -> str:
    """The tool's path; a missing tool fails the test (skips only with PGIAM_ALLOW_SKIP_E2E=1)."""
    path = shutil.which(name)
    if path:
        return path
    skip_or_fail(f"{name} is not installed", f"apt-get install -y {package or name}; scripts/test installs it")


def require_module(name: str) -> ModuleType:
    """The imported module; a missing one fails the test (skips only with PGIAM_ALLOW_SKIP_E2E=1)."""
    try:
        return importlib.import_module(name)
    except ImportError as err:
        skip_or_fail(f"the Python module {name} is not installed ({err})", "install the test dependencies (README, Tests)")


def require_server() -> None:
    """PostgreSQL server binaries for the sandbox, with the same rule."""
    from pgiam.errors import EnvironmentProblem
    from pgiam.sandbox import cluster

    try:
        cluster.find_server_binaries()
    except EnvironmentProblem as err:
        skip_or_fail(err.message, err.hint or "install the PostgreSQL server")
