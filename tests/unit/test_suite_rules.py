"""The suite's own rules (issue 22): every skip goes through tests/tools.py (a missing tool fails unless
PGIAM_ALLOW_SKIP_E2E=1, which CI never sets), and no test is marked to be expected to fail."""

from __future__ import annotations

import re
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]
# pytest.skip(...), pytest.importorskip, @pytest.mark.skip / skipif, xfail in any spelling.
SKIPS = re.compile(r"\bpytest\.skip\(|\bimportorskip\(|\bmark\.skip(?:if)?\b|\bxfail\b")


def test_every_skip_goes_through_tests_tools() -> None:
    found = [f"{p.relative_to(TESTS)}:{n}: {line.strip()}"
             for p in sorted(TESTS.rglob("*.py")) if p.name not in ("tools.py", Path(__file__).name)
             for n, line in enumerate(p.read_text().splitlines(), 1) if SKIPS.search(line)]
    assert found == [], "skip through tests.tools (require_tool, require_module, skip_or_fail):\n" + "\n".join(found)


def test_the_rule_sees_each_spelling() -> None:
    """Guards the pattern above: each way of skipping matches."""
    for line in ('pytest.skip("x")', 'm = pytest.importorskip("m")', "@pytest.mark.skipif(True, reason='x')",
                 "@pytest.mark.skip", 'pytest.xfail("x")', "@pytest.mark.xfail"):
        assert SKIPS.search(line), line
    assert not SKIPS.search("skip_or_fail('x', 'y')") and not SKIPS.search("PGIAM_ALLOW_SKIP_E2E")


def test_a_unit_test_cannot_start_pgiam_as_a_process() -> None:
    """tests/unit/conftest.py's guard: `python -m pgiam` (or a `pgiam` executable) is refused in this tier."""
    import subprocess
    import sys

    import pytest

    for argv in ([sys.executable, "-m", "pgiam", "--version"], [sys.executable, "-P", "-m", "pgiam", "--version"],
                 ["/usr/local/bin/pgiam", "--version"]):
        with pytest.raises(AssertionError, match="started pgiam as a process"):
            subprocess.run(argv, capture_output=True, timeout=30)
    assert subprocess.run(["true"], timeout=30).returncode == 0  # other programs run


def test_the_files_run_first_exist() -> None:
    """tests/conftest.py's FIRST (the long files handed to the workers first, issue 22) names files that
    exist: a renamed file would silently go back to the end of the run. So does UNIT_FIRST (the unit
    tier's long files), which names unit files only."""
    from tests.conftest import FIRST, UNIT_FIRST

    assert len(set(FIRST)) == len(FIRST) and len(set(UNIT_FIRST)) == len(UNIT_FIRST)
    assert [name for name in FIRST + UNIT_FIRST if not (TESTS.parent / name).is_file()] == []
    assert [name for name in UNIT_FIRST if not name.startswith("tests/unit/") or name in FIRST] == []
