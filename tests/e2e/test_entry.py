"""The fast path of `pgiam refresh --if-needed --quiet` (issue 4): no botocore, no TOML, no write when nothing is due.
Run as the console entry point in fresh processes (what they import is the point); moved from tests/unit,
which starts no pgiam process (issue 22)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pgiam.errors import ExitCode

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]

PROBE = """
import sys, runpy
sys.argv = ["pgiam", "refresh", "--if-needed", "--quiet"]
try:
    runpy.run_module("pgiam", run_name="__main__")
except SystemExit as e:
    code = e.code
heavy = sorted(m for m in ("botocore", "boto3", "tomllib", "argparse", "json", "pgiam.cli", "pgiam.refresh") if m in sys.modules)
print(code, ",".join(heavy))
"""


def probe(home: Path) -> tuple[str, str]:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    out = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, timeout=60, cwd=home)
    assert out.returncode == 0, out.stderr
    code, heavy = out.stdout.strip().split(" ") if " " in out.stdout.strip() else (out.stdout.strip(), "")
    return code, heavy


def snapshot(home: Path) -> dict[Path, int]:
    return {p: p.stat().st_mtime_ns for p in home.rglob("*") if p.is_file()}


def test_fresh_tokens_answered_without_heavy_imports_or_writes(run_cli, home: Path, ca_file: Path) -> None:
    code, _, err = run_cli("add", "prod", "--host", "db.cluster-x.us-east-1.rds.amazonaws.com", "--user", "u",
                           "--sslrootcert", str(ca_file))
    assert code == ExitCode.OK, err
    before = snapshot(home)
    code, heavy = probe(home)
    assert (code, heavy) == ("0", "")
    assert snapshot(home) == before


def test_due_or_edited_config_takes_the_full_path(run_cli, home: Path, ca_file: Path) -> None:
    assert run_cli("add", "prod", "--host", "db.cluster-x.us-east-1.rds.amazonaws.com", "--user", "u",
                   "--sslrootcert", str(ca_file))[0] == ExitCode.OK
    cfg = home / ".config" / "pgiam" / "config.toml"
    later = time.time() + 5
    os.utime(cfg, (later, later))  # edited by hand after the last refresh
    code, heavy = probe(home)
    assert code == "0" and "pgiam.refresh" in heavy and "botocore" not in heavy  # full path, still nothing due
    (home / ".local" / "state" / "pgiam" / "next-due").write_text(f"{int(time.time()) - 1}\n")
    code, heavy = probe(home)
    assert code == "0" and "botocore" not in heavy  # next-due says due, but the token in ~/.pgpass is fresh
    pgpass = home / ".pgpass"
    pgpass.write_text("")  # pgiam's block deleted by hand (issue 11): the token is gone, so it is due
    code, heavy = probe(home)
    assert code == "0" and "botocore" in heavy
    assert "db.cluster-x.us-east-1.rds.amazonaws.com" in pgpass.read_text()
