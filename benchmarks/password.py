#!/usr/bin/env python3
"""`pgiam.password(NAME)` in process vs the `pgiam token` subprocess vs boto3's generate_db_auth_token (issue 21).

    .venv/bin/python benchmarks/password.py [--calls 2000] [--runs 20]

In a throwaway HOME with dummy static AWS keys (tokens are signed locally; nothing reaches AWS), with a
fresh token in ~/.pgpass (what a pool sees on almost every new connection), each measured per call:
- pgiam.password("svc"): in this process, the fast path's reader. Target: median < 1 ms. Also checked:
  botocore is never imported and no process is started (os.posix_spawn / fork counted through audit hooks).
- `pgiam token svc`: the console script next to this interpreter (else `python -m pgiam`) as a child
  process, the callback the README offered before.
- boto3's generate_db_auth_token on a client made once beforehand (its one-off import and client set-up
  are reported apart): what an application that already carries boto3 pays per connection.
Read the ratios: absolute times drift on a shared machine.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# This directory holds token.py, which would shadow the standard library's `token` (tokenize imports it).
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != os.path.dirname(os.path.abspath(__file__))]

HOST = "bench.cluster-abc123.us-west-2.rds.amazonaws.com"


def pgiam_argv() -> list[str]:
    script = Path(sys.executable).with_name("pgiam")
    return [str(script)] if script.exists() else [sys.executable, "-m", "pgiam"]


def bench_env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "PG", "XDG_"))}
    env.update(HOME=str(home), XDG_CONFIG_HOME=str(home / ".config"), XDG_STATE_HOME=str(home / ".local/state"),
               XDG_DATA_HOME=str(home / ".local/share"), AWS_ACCESS_KEY_ID="AKIAPGIAMBENCHEXAMPL",
               AWS_SECRET_ACCESS_KEY="benchSecretKeyOnlyForLocalSigning/000000", AWS_DEFAULT_REGION="us-west-2",
               AWS_CONFIG_FILE=str(home / "aws-config"), AWS_SHARED_CREDENTIALS_FILE=str(home / "aws-creds"),
               AWS_EC2_METADATA_DISABLED="true")
    return env


def per_call(fn: object, calls: int) -> list[float]:
    f = fn  # type: ignore[assignment]
    out = []
    for _ in range(calls):
        t = time.perf_counter_ns()
        f()  # type: ignore[operator]
        out.append((time.perf_counter_ns() - t) / 1e6)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--calls", type=int, default=2000, help="in-process calls per measure")
    ap.add_argument("--runs", type=int, default=20, help="`pgiam token` subprocess runs")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="pgiam-bench-password-"))
    try:
        home = tmp / "home"
        home.mkdir()
        env = bench_env(home)
        ca = home / "ca.pem"
        ca.write_text("-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n")  # PEM-shaped (add checks); never used
        pg = pgiam_argv()
        subprocess.run([*pg, "add", "svc", "--host", HOST, "--user", "bench", "--sslrootcert", str(ca)],
                       env=env, check=True, capture_output=True)
        subprocess.run([*pg, "token", "svc"], env=env, check=True, capture_output=True)  # writes the token index
        os.environ.clear()
        os.environ.update(env)

        spawned = []
        sys.addaudithook(lambda event, _a: spawned.append(event) if event in ("os.posix_spawn", "os.fork",
                                                                               "subprocess.Popen", "os.exec") else None)
        import pgiam

        token = pgiam.password("svc")
        assert token.startswith(HOST + ":5432/?Action=connect"), "no fresh token from ~/.pgpass"
        inproc = per_call(lambda: pgiam.password("svc"), args.calls)
        assert not spawned, f"pgiam.password started a process: {spawned}"
        assert "botocore" not in sys.modules, "pgiam.password imported botocore"

        sub = []
        for _ in range(args.runs):
            t = time.perf_counter()
            subprocess.run([*pg, "token", "svc"], env=env, check=True, stdout=subprocess.DEVNULL)
            sub.append((time.perf_counter() - t) * 1e3)

        t = time.perf_counter()
        import boto3

        client = boto3.client("rds", region_name="us-west-2")
        setup_ms = (time.perf_counter() - t) * 1e3
        boto = per_call(lambda: client.generate_db_auth_token(HOST, 5432, "bench"), args.calls)

        m_in, m_sub, m_boto = statistics.median(inproc), statistics.median(sub), statistics.median(boto)
        print(f"pgiam.password vs `pgiam token` vs boto3 on {platform.node()} ({platform.machine()}, "
              f"{os.cpu_count()} cores, Python {platform.python_version()}, boto3 {boto3.__version__}), "
              f"{time.strftime('%Y-%m-%d %H:%M')}, load average {os.getloadavg()[0]:.1f}")
        print(f"pgiam.password('svc'), in process, fresh: median {m_in:.3f} ms "
              f"(p90 {statistics.quantiles(inproc, n=10)[-1]:.3f} ms, {args.calls} calls; target < 1 ms: "
              f"{'met' if m_in < 1 else 'MISSED'}); no process started, botocore not imported")
        print(f"`pgiam token svc` subprocess ({pg[0]}): median {m_sub:.1f} ms ({args.runs} runs), "
              f"{m_sub / m_in:.0f}x pgiam.password")
        print(f"boto3 generate_db_auth_token, client ready: median {m_boto:.3f} ms ({args.calls} calls), "
              f"{m_boto / m_in:.1f}x pgiam.password; one-off import boto3 + client: {setup_ms:.0f} ms")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
