"""`pgiam export pgadmin` (issue 21): a pgAdmin 4 servers.json that keeps verify-full and asks pgiam for the token."""

from __future__ import annotations

import json
import os
import shlex
import sys
from pathlib import Path

import pytest

from pgiam import pgadmin
from pgiam.errors import ExitCode
from tests.conftest import SANDBOX_HOST

ODD = "o'ne $x"


def add(run_cli, ca: Path, name: str, *extra: str) -> None:
    code, _, err = run_cli("add", name, "--host", SANDBOX_HOST, "--user", ODD, "--sslrootcert", str(ca),
                           "--no-refresh", *extra)
    assert code == ExitCode.OK, err


def test_servers_json_carries_the_entry_and_the_token_command(run_cli, ca_file: Path, home: Path) -> None:
    add(run_cli, ca_file, "plain", "--dbname", "app")
    add(run_cli, ca_file, "tun", "--via", "127.0.0.1:15432")
    code, out, err = run_cli("export", "pgadmin")
    assert (code, err) == (ExitCode.OK, "")
    servers = json.loads(out)["Servers"]
    assert sorted(s["Name"] for s in servers.values()) == ["plain", "tun"]
    by_name = {s["Name"]: s for s in servers.values()}
    assert by_name["plain"] == {
        "Name": "plain", "Group": "pgiam", "Host": SANDBOX_HOST, "Port": 5432, "Username": ODD,
        "MaintenanceDB": "app",
        "ConnectionParameters": {"sslmode": "verify-full", "sslrootcert": str(ca_file)},
        "PasswordExecCommand": by_name["plain"]["PasswordExecCommand"],
        "PasswordExecExpiration": 150,
    }
    tun = by_name["tun"]
    # Through the tunnel: libpq dials hostaddr and the forward's port, and checks the endpoint name.
    assert (tun["Host"], tun["Port"], tun["MaintenanceDB"]) == (SANDBOX_HOST, 15432, ODD)
    assert tun["ConnectionParameters"] == {"hostaddr": "127.0.0.1", "sslmode": "verify-full", "sslrootcert": str(ca_file)}
    # The command, split as a POSIX shell splits it: the file-choosing variables, then this pgiam by
    # absolute path (here `python -m pgiam`), then `token NAME`.
    words = shlex.split(tun["PasswordExecCommand"])
    assignments = [w for w in words if "=" in w and not w.startswith("/")]
    argv = words[len(assignments):]
    assert argv == [sys.executable, "-m", "pgiam", "token", "tun"] and os.path.isabs(argv[0])
    assert dict(a.split("=", 1) for a in assignments)["XDG_STATE_HOME"] == str(home / ".local" / "state")
    assert "X-Amz" not in out and "AWS_SECRET" not in out


def test_names_select_services_and_an_unknown_one_changes_nothing(run_cli, ca_file: Path) -> None:
    add(run_cli, ca_file, "a")
    add(run_cli, ca_file, "b")
    code, out, _ = run_cli("export", "pgadmin", "b")
    assert code == ExitCode.OK and [s["Name"] for s in json.loads(out)["Servers"].values()] == ["b"]
    code, out, err = run_cli("export", "pgadmin", "a", "nope")
    assert code == ExitCode.CONFIG and out == "" and "'nope'" in err and "hint:" in err


def test_export_needs_a_target(run_cli) -> None:
    code, out, err = run_cli("export")
    assert (code, out) == (ExitCode.USAGE, "") and "required: ACTION" in err and "pgiam export --help" in err


@pytest.mark.parametrize(("margin", "life_left_at_least"), [(300, 300), (60, 60), (900, 450), (30, 30)])
def test_expiration_is_below_what_a_printed_token_has_left(margin: int, life_left_at_least: int) -> None:
    """`pgiam token` prints a token with more than min(margin, 450) s left: pgAdmin must ask again sooner."""
    assert 0 < pgadmin.expiration(margin) < life_left_at_least


def test_command_quotes_every_word() -> None:
    cmd = pgadmin.render_command(["/opt/my tools/pgiam", "token", "it's"], {"PGPASSFILE": "/h/a b/.pgpass"})
    assert shlex.split(cmd) == ["PGPASSFILE=/h/a b/.pgpass", "/opt/my tools/pgiam", "token", "it's"]
