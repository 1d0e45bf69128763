"""`pgiam sandbox up|status|down` as a new user runs them (issue 3's "Done when")."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from tests.e2e.conftest import make_world
from tests.tools import require_tool

pytestmark = pytest.mark.e2e


def test_up_connect_down_and_up_again_after_a_crash(tmp_path: Path) -> None:
    require_tool("psql", "postgresql-client")
    w = make_world(tmp_path / "home")
    try:
        up = w.pgiam("sandbox", "up")
        assert "psql service=sandbox" in up.stdout
        # Issue 21: one short line points other clients to the README, instead of the long hostaddr warning.
        assert "`pgiam url sandbox --for CLIENT` and the README's Clients section" in up.stdout
        assert "hostaddr" not in up.stdout + up.stderr and "pgJDBC" not in up.stdout + up.stderr
        assert w.psql("sandbox").stdout.strip() == "pgiam_sandbox"
        status = dict(ln.split(": ", 1) for ln in w.pgiam("sandbox", "status").stdout.splitlines())
        assert status["running"] == "True"
        # A crash: the server dies without `down`; down then up again must work.
        os.kill(int(status["postgres_pid"]), signal.SIGKILL)
        time.sleep(0.5)
        assert w.psql("sandbox").returncode != 0
        w.pgiam("sandbox", "up")
        assert w.psql("sandbox").stdout.strip() == "pgiam_sandbox"
        down = w.pgiam("sandbox", "down")
        assert "stopped" in down.stdout
        assert "[sandbox]" not in (w.home / ".pg_service.conf").read_text()
        assert "pgiam_sandbox" not in (w.home / ".pgpass").read_text()
        assert w.psql("sandbox").returncode != 0
        assert "sandbox" not in w.pgiam("list", "--names").stdout.split()
        status = dict(ln.split(": ", 1) for ln in w.pgiam("sandbox", "status").stdout.splitlines())
        assert status["running"] == "False"
        # Issue 24: no path that down removed (the server log, the cluster), and a second down says so.
        assert "server_log" not in status and "cluster_dir" not in status
        assert all(Path(v).exists() for k, v in status.items() if k.endswith(("_file", "_log", "_dir"))), status
        again = w.pgiam("sandbox", "down")
        assert again.stdout == "no sandbox was running and no `sandbox` service: nothing to remove\n"
    finally:
        w.pgiam("sandbox", "down", check=False)
