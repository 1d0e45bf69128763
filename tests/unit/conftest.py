"""The fast tier: every test here is marked `unit`; hypothesis properties and tests that start processes
are also marked `slow`, so `pytest tests/unit -m "not slow"` runs in seconds (see README, Tests)."""

from __future__ import annotations

from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent

# Whole modules of the slow kind, and why.
SLOW_MODULES = {
    "test_sigv4check.py": "a botocore session and a token per case",
    "test_ldapd.py": "a real LDAP responder on a socket per test",
}


@pytest.fixture(autouse=True)
def fresh_directory_registry() -> None:
    """Each test is a new "process" (as tests/conftest.py's isolated_env does for botocore sessions): every
    pgiam.paths.Paths registers its directories in pgiam.fileio for the life of the process, and each file
    operation checks the whole registry. Left to grow over a worker's thousand tests (each with its own tmp
    HOME), the registry made the unit tier quadratic, and let one test's directories be checked in another."""
    from pgiam import fileio

    for registry in (fileio._CHECKED, fileio._NOFOLLOW, fileio._HOMES, fileio._KNOWN):
        registry.clear()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if HERE not in Path(item.path).resolve().parents:
            continue
        item.add_marker(pytest.mark.unit)
        if Path(item.path).name in SLOW_MODULES or getattr(getattr(item, "obj", None), "is_hypothesis_test", False):
            item.add_marker(pytest.mark.slow)
