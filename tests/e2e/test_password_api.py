"""pgiam.password / pgiam.password_async (issue 21) where a process is the point: a fresh interpreter's
imports, and the `pgiam token` child that mints when due (without blocking an event loop). Moved from
tests/unit, which starts no pgiam process (issue 22); the in-process read of a fresh token stays there."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from pathlib import Path

import pytest

import pgiam
from pgiam.errors import ExitCode
from tests.conftest import SANDBOX_HOST
from tests.unit.test_password_api import add, pgpass_token

pytestmark = pytest.mark.e2e


def test_fresh_path_imports_no_botocore(run_cli, home: Path, ca_file: Path) -> None:
    """`import pgiam; pgiam.password(NAME)` in a new interpreter: botocore stays out while the token is fresh."""
    add(run_cli, ca_file)
    assert run_cli("token", "db")[0] == ExitCode.OK
    code = ("import sys, pgiam; t = pgiam.password('db'); "
            "assert 'botocore' not in sys.modules and 'subprocess' not in sys.modules, sorted(sys.modules); print(t)")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == pgpass_token(home)


def test_due_token_is_minted_by_pgiam_token(run_cli, home: Path, ca_file: Path) -> None:
    """No token yet: pgiam.password runs `pgiam token NAME`, which mints and writes ~/.pgpass."""
    add(run_cli, ca_file)
    assert pgpass_token(home) is None
    token = pgiam.password("db")
    assert token.startswith(f"{SANDBOX_HOST}:5432/?Action=connect&DBUser=alice") and token == pgpass_token(home)


def test_async_mint_does_not_block_the_event_loop(run_cli, home: Path, ca_file: Path) -> None:
    """While `pgiam token` mints (a process start, 100+ ms), other tasks keep running."""
    add(run_cli, ca_file)

    async def main() -> tuple[str, int, float]:
        ticks = 0
        stop = False

        async def ticker() -> None:
            nonlocal ticks
            while not stop:
                ticks += 1
                await asyncio.sleep(0.005)

        t = asyncio.create_task(ticker())
        start = time.monotonic()
        token = await pgiam.password_async("db")
        took = time.monotonic() - start
        stop = True
        await t
        return token, ticks, took

    token, ticks, took = asyncio.run(main())
    assert token == pgpass_token(home)
    # A blocking call would leave the ticker at one tick; it ran on every ~5 ms sleep while the child ran.
    assert took > 0.05 and ticks >= took / 0.005 / 4, (ticks, took)


@pytest.mark.parametrize("api", ["sync", "async"])
def test_failure_is_pgiams_error_with_its_hint_and_code(run_cli, home: Path, ca_file: Path, api: str) -> None:
    add(run_cli, ca_file)
    with pytest.raises(pgiam.PgiamError) as info:
        if api == "sync":
            pgiam.password("nope")
        else:
            asyncio.run(pgiam.password_async("nope"))
    err = info.value
    assert "no service named 'nope'" in err.message and err.hint and "pgiam list" in err.hint
    assert err.code == ExitCode.CONFIG
    assert "X-Amz" not in str(err)
