"""pgiam.password / pgiam.password_async (issue 21): a pool's password callback in process, minting through
`pgiam token` only when due, never blocking an event loop."""

from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path

import pytest

import pgiam
from pgiam import pgpass
from pgiam.errors import ExitCode
from tests.conftest import SANDBOX_HOST


def add(run_cli, ca: Path, name: str = "db") -> None:
    code, _, err = run_cli("add", name, "--host", SANDBOX_HOST, "--user", "alice", "--sslrootcert", str(ca), "--no-refresh")
    assert code == ExitCode.OK, err


def pgpass_token(home: Path) -> str | None:
    tokens = pgpass.parse_tokens((home / ".pgpass").read_text()) if (home / ".pgpass").exists() else {}
    return tokens.get(pgpass.Key(SANDBOX_HOST, "5432", "alice"))


def test_fresh_token_is_read_in_process(run_cli, home: Path, ca_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    add(run_cli, ca_file)
    code, out, _ = run_cli("token", "db")  # mints and writes the token index, as the first callback would
    assert code == ExitCode.OK
    token = out.strip()
    assert token == pgpass_token(home)

    def refuse(*a: object, **k: object) -> None:
        raise AssertionError(f"a process was started: {a!r}")

    monkeypatch.setattr(subprocess, "Popen", refuse)
    monkeypatch.setattr(asyncio, "create_subprocess_exec", refuse)
    assert pgiam.password("db") == token
    assert asyncio.run(pgiam.password_async("db")) == token
