"""The unit tier: pgiam in process (run_cli, tests.conftest.in_process), real files under each test's HOME,
botocore signing with dummy keys. No test here starts pgiam as a process: those live in tests/e2e (issue 22).
Every test is marked `unit`; hypothesis properties and the modules below are also `slow`, which
`-m "not slow"` leaves out. README (Development) has the measured times."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

HERE = Path(__file__).resolve().parent

# Whole modules of the slow kind, and why.
SLOW_MODULES = {
    "test_sigv4check.py": "a botocore session and a token per case",
    "test_ldapd.py": "a real LDAP responder on a socket per test",
}


@pytest.fixture(autouse=True)
def no_pgiam_process(monkeypatch: pytest.MonkeyPatch) -> None:
    """The rule of this tier, kept: a test that would start pgiam's CLI as a process fails here (run it in
    process, or put it in tests/e2e). Helpers at the edges (a stand-in crontab, openssl, a shell) may run."""
    real = subprocess.Popen.__init__

    def guarded(self: subprocess.Popen[Any], args: Any, *rest: Any, **kw: Any) -> None:
        words = [os.fsdecode(a) for a in ([args] if isinstance(args, (str, bytes, os.PathLike)) else args)]
        if words and (os.path.basename(words[0]) == "pgiam" or "pgiam" in words[1:4] and "-m" in words[1:3]):
            raise AssertionError(f"a unit test started pgiam as a process ({words[:4]}): use run_cli or "
                                 "tests.conftest.in_process, or move the test to tests/e2e")
        real(self, args, *rest, **kw)

    monkeypatch.setattr(subprocess.Popen, "__init__", guarded)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if HERE not in Path(item.path).resolve().parents:
            continue
        item.add_marker(pytest.mark.unit)
        if Path(item.path).name in SLOW_MODULES or getattr(getattr(item, "obj", None), "is_hypothesis_test", False):
            item.add_marker(pytest.mark.slow)
