"""The notes `pgiam add` prints for keys some clients cannot use name every affected client and the way out (issue 14)."""

from __future__ import annotations

from pathlib import Path

from pgiam.errors import ExitCode
from tests.conftest import SANDBOX_HOST

PROXY_HOST = "app.proxy-abc123.us-west-2.rds.amazonaws.com"


def test_hostaddr_note_names_pgjdbc_pgx_asyncpg_and_the_alternative(run_cli, ca_file: Path) -> None:
    code, _, err = run_cli("add", "tun", "--host", SANDBOX_HOST, "--user", "alice", "--sslrootcert", str(ca_file),
                           "--via", "127.0.0.1:15432", "--no-refresh")
    assert code == ExitCode.OK, err
    (note,) = [ln for ln in err.splitlines() if "hostaddr" in ln]
    for word in ("pgJDBC", "pgx", "asyncpg", "`pgiam env tun`", "`pgiam token tun`", "README: Clients"):
        assert word in note, word


def test_system_roots_note_names_pgjdbc_pgx_asyncpg_and_a_ca_file(run_cli, monkeypatch) -> None:
    monkeypatch.setenv("PGIAM_LIBPQ_VERSION", "16.4")
    code, _, err = run_cli("add", "px", "--host", PROXY_HOST, "--user", "alice", "--no-refresh")
    assert code == ExitCode.OK, err
    (note,) = [ln for ln in err.splitlines() if "sslrootcert=system" in ln]
    for word in ("pgJDBC", "pgx", "asyncpg", "CA file", "`pgiam token px`"):
        assert word in note, word


def test_plain_entry_prints_no_client_note(run_cli, ca_file: Path) -> None:
    code, _, err = run_cli("add", "plain", "--host", SANDBOX_HOST, "--user", "alice", "--sslrootcert", str(ca_file),
                           "--no-refresh")
    assert code == ExitCode.OK and "pgJDBC" not in err and "pgx" not in err
