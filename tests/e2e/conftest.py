"""e2e fixtures: a sandbox PostgreSQL started through `pgiam sandbox up`, and stock psql as the client."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.tools import require_server, require_tool


@dataclass
class World:
    """One isolated user: a HOME, its environment, and pgiam/psql runners."""

    home: Path
    env: dict[str, str]

    def pgiam(self, *argv: str, check: bool = True, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        p = subprocess.run([sys.executable, "-m", "pgiam", *argv], env=env or self.env, capture_output=True,
                           text=True, timeout=120, stdin=subprocess.DEVNULL)
        if check and p.returncode != 0:
            raise AssertionError(f"pgiam {' '.join(argv)} exited {p.returncode}: {p.stderr}")
        return p

    def psql(self, service: str, sql: str = "select current_user", env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        e = dict(env or self.env, PGCONNECT_TIMEOUT="10")
        return subprocess.run(["psql", f"service={service}", "-XAtqc", sql], env=e, capture_output=True,
                              text=True, timeout=60, stdin=subprocess.DEVNULL)


def make_world(home: Path) -> World:
    home.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PG", "AWS_", "XDG_"))}
    env.update(
        HOME=str(home),
        XDG_CONFIG_HOME=str(home / ".config"),
        XDG_STATE_HOME=str(home / ".local" / "state"),
        XDG_DATA_HOME=str(home / ".local" / "share"),
        AWS_CONFIG_FILE=str(home / ".aws" / "config"),
        AWS_SHARED_CREDENTIALS_FILE=str(home / ".aws" / "credentials"),
        AWS_EC2_METADATA_DISABLED="true",
        PYTHONPATH=str(Path(__file__).resolve().parents[2]),
        TMPDIR="/tmp",
    )
    return World(home, env)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """A user with a running sandbox (`pgiam sandbox up`), torn down after the module."""
    require_tool("psql", "postgresql-client")
    require_server()
    w = make_world(tmp_path_factory.mktemp("e2e") / "home")
    try:
        w.pgiam("sandbox", "up")
        yield w
    finally:
        w.pgiam("sandbox", "down", check=False)
