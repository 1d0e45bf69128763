"""`pgiam token NAME` as a password callback (issue 14), through the console entry point in a fresh process
(what it imports is the point): a fresh token is read from ~/.pgpass with no botocore and no TOML; a due one
is minted (after waiting for a minter at work) and written as refresh does. Moved here from tests/unit, which
starts no pgiam process (issue 22); the fast path's mirror of the shared rules stays there."""

from __future__ import annotations

import datetime
import os
import subprocess
import sys
import time
from pathlib import Path

import botocore.auth
import botocore.session
import pytest

from pgiam import minting, pgpass
from pgiam.config import load_config
from pgiam.errors import ExitCode
from pgiam.paths import Paths
from tests.conftest import SANDBOX_HOST

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]

PROBE = """
import sys, runpy
sys.argv = ["pgiam", "token", sys.argv[1]]
code = 0
try:
    runpy.run_module("pgiam", run_name="__main__")
except SystemExit as e:
    code = e.code
heavy = sorted(m for m in ("botocore", "boto3", "tomllib", "argparse", "dataclasses", "pgiam.cli", "pgiam.refresh") if m in sys.modules)
print("PROBE", code, ",".join(heavy) or "-")
"""


def probe(name: str = "prod", env: dict[str, str] | None = None) -> tuple[int, str, list[str], str]:
    """(exit code, token printed, heavy modules imported, stderr) of the console entry point."""
    env = dict(env or os.environ, PYTHONPATH=str(ROOT))
    p = subprocess.run([sys.executable, "-c", PROBE, name], env=env, capture_output=True, text=True, timeout=120)
    lines = p.stdout.strip().split("\n")
    _, code, heavy = lines[-1].split(" ")
    return int(code or 0), "\n".join(lines[:-1]), [] if heavy == "-" else heavy.split(","), p.stderr


def tokens(home: Path) -> dict[pgpass.Key, str]:
    return pgpass.parse_tokens((home / ".pgpass").read_text())


def mint_at(when: datetime.datetime, monkeypatch: pytest.MonkeyPatch) -> None:
    """Make botocore (in this process) sign as of `when` (naive UTC, as botocore uses)."""
    monkeypatch.setattr(botocore.auth, "get_current_datetime", lambda *a, **k: when)


def utcnow() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None, microsecond=0)


def add(run_cli, ca_file: Path) -> None:
    code, _, err = run_cli("add", "prod", "--host", SANDBOX_HOST, "--user", "alice", "--sslrootcert", str(ca_file))
    assert code == ExitCode.OK, err


def snapshot(home: Path) -> dict[Path, int]:
    return {p: p.stat().st_mtime_ns for p in home.rglob("*") if p.is_file()}


def test_fresh_token_is_printed_from_the_file_without_botocore_or_toml(run_cli, home: Path, ca_file: Path) -> None:
    add(run_cli, ca_file)
    (written,) = tokens(home).values()
    code, out, heavy, err = probe()  # the first call reads the config and writes the token index
    assert (code, out) == (0, written), err
    assert "botocore" not in heavy
    before = snapshot(home)
    code, out, heavy, err = probe()
    assert (code, out, heavy) == (0, written, []), err
    assert snapshot(home) == before  # nothing written


def test_an_edited_config_takes_the_full_path(run_cli, home: Path, ca_file: Path) -> None:
    add(run_cli, ca_file)
    (written,) = tokens(home).values()
    probe()
    cfg = home / ".config" / "pgiam" / "config.toml"
    cfg.write_text(cfg.read_text().replace('user = "alice"', 'user = "bob"'))
    code, out, heavy, err = probe()
    assert code == 0 and "pgiam.refresh" in heavy and "botocore" in heavy, err  # bob has no token yet: minted
    assert out != written and "DBUser=bob" in out
    assert tokens(home)[pgpass.Key(SANDBOX_HOST, "5432", "bob")] == out  # written as refresh writes it
    assert "user=bob" in (home / ".pg_service.conf").read_text().split("\n")
    code, again, heavy, _ = probe()
    assert (code, again, heavy) == (0, out, [])  # the new index serves the next call


def test_a_token_within_the_margin_is_renewed_written_and_printed(run_cli, home: Path, ca_file: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    mint_at(utcnow() - datetime.timedelta(seconds=700), monkeypatch)  # 200 s left: inside the 300 s margin
    add(run_cli, ca_file)
    (old,) = tokens(home).values()
    code, out, heavy, err = probe()
    assert code == 0 and "botocore" in heavy, err
    assert out != old and tokens(home) == {pgpass.Key(SANDBOX_HOST, "5432", "alice"): out}
    assert old not in err and out not in err


def test_expired_token_and_no_credentials_is_an_auth_error(run_cli, home: Path, ca_file: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    mint_at(utcnow() - datetime.timedelta(seconds=1000), monkeypatch)
    add(run_cli, ca_file)
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_ACCESS") and not k.startswith("AWS_SECRET")}
    code, out, _, err = probe(env=env)
    assert code == ExitCode.AUTH and out == "", err
    assert "pgiam:" in err and "X-Amz-Signature" not in err


def test_fast_path_reads_the_index_and_config_pgiam_config_and_state_dir_name(run_cli, home: Path, ca_file: Path,
                                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 19 (2): `prod` added for alice on host A with the default locations and `pgiam token prod`;
    `prod` added for bob on host B with PGIAM_CONFIG / PGIAM_STATE_DIR set; a refresh of the default config
    puts alice's token back into the shared ~/.pgpass. Then, with the variables set, `pgiam token prod`
    prints a token for bob on host B (it printed alice's for host A: the fast path read the default token
    index and config), and the next call is answered by the fast path from the headless index."""
    other = "db.cluster-other.us-west-2.rds.amazonaws.com"
    (home / "cm").mkdir()
    (home / "shared").mkdir()

    def headless(on: bool) -> None:
        for var, value in (("PGIAM_CONFIG", home / "cm" / "config.toml"), ("PGIAM_STATE_DIR", home / "shared")):
            if on:
                monkeypatch.setenv(var, str(value))
            else:
                monkeypatch.delenv(var)

    add(run_cli, ca_file)
    code, alice, _, err = probe()
    assert code == 0 and "DBUser=alice" in alice, err
    headless(True)
    code, _, err = run_cli("add", "prod", "--host", other, "--user", "bob", "--sslrootcert", str(ca_file))
    assert code == ExitCode.OK, err
    headless(False)
    code, _, err = run_cli("refresh", "prod")
    assert code == ExitCode.OK, err
    assert list(tokens(home)) == [pgpass.Key(SANDBOX_HOST, "5432", "alice")]
    headless(True)
    code, out, heavy, err = probe()
    assert code == 0 and out.startswith(f"{other}:5432/") and "DBUser=bob" in out, err
    assert tokens(home) == {pgpass.Key(other, "5432", "bob"): out}
    code, again, heavy, err = probe()
    assert (code, again, heavy) == (0, out, []), err  # the headless index serves the next call
    assert (home / "shared" / "pgiam" / "token-index.json").exists()


def test_unknown_service_is_a_config_error(run_cli, home: Path, ca_file: Path) -> None:
    add(run_cli, ca_file)
    probe()  # an index exists
    code, out, _, err = probe("nope")
    assert (code, out) == (ExitCode.CONFIG, "") and "no service named 'nope'" in err


def test_waits_for_a_minter_at_work_and_prints_what_it_wrote(run_cli, home: Path, ca_file: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """A due token and another pgiam minting: `pgiam token` waits for the slot, then judges the file
    again and prints the other minter's token instead of minting its own."""
    mint_at(utcnow() - datetime.timedelta(seconds=700), monkeypatch)
    add(run_cli, ca_file)
    paths = Paths.from_env()
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    key = minting.key_of(load_config(paths.config_file, scope=paths.scope).services["prod"])
    with minting.slot(paths, key, 0):
        p = subprocess.Popen([sys.executable, "-m", "pgiam", "token", "prod"], env=env, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
        # The event: the child holds prod's slot file open, i.e. it is inside minting.slot().
        deadline = time.monotonic() + 60
        slot_file = str(minting.slot_file(paths, key).resolve())
        while not any(os.path.realpath(f"/proc/{p.pid}/fd/{fd}") == slot_file for fd in _fds(p.pid)):
            assert p.poll() is None and time.monotonic() < deadline, p.communicate()
            time.sleep(0.01)
        ten_s_ago = utcnow() - datetime.timedelta(seconds=10)  # not what the child would sign ("now")
        mint_at(ten_s_ago, monkeypatch)
        other = botocore.session.Session().create_client("rds", region_name="us-west-2").generate_db_auth_token(
            SANDBOX_HOST, 5432, "alice", Region="us-west-2")
        text = (home / ".pgpass").read_text()
        (home / ".pgpass").write_text(pgpass.merge(text, {pgpass.Key(SANDBOX_HOST, "5432", "alice"): other}))
    out, err = p.communicate(timeout=60)
    assert p.returncode == 0, err
    assert out.strip() == other


def _fds(pid: int) -> list[str]:
    try:
        return os.listdir(f"/proc/{pid}/fd")
    except FileNotFoundError:
        return []


def test_bounded_wait_for_a_stuck_minter(run_cli, home: Path, ca_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    mint_at(utcnow() - datetime.timedelta(seconds=700), monkeypatch)
    add(run_cli, ca_file)
    paths = Paths.from_env()
    key = minting.key_of(load_config(paths.config_file, scope=paths.scope).services["prod"])
    with minting.slot(paths, key, 0):
        code, out, _, err = probe(env=dict(os.environ, PGIAM_LOCK_WAIT="0.3"))
    assert (code, out) == (ExitCode.LOCKED, ""), err
    assert f"another pgiam (pid {os.getpid()}) holds the mint lock of {minting.label(key)}" in err
