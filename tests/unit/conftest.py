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


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if HERE not in Path(item.path).resolve().parents:
            continue
        item.add_marker(pytest.mark.unit)
        if Path(item.path).name in SLOW_MODULES or getattr(getattr(item, "obj", None), "is_hypothesis_test", False):
            item.add_marker(pytest.mark.slow)
