#!/usr/bin/env python3
"""`pgiam token NAME` as a password callback vs `aws rds generate-db-auth-token` (issue 14).

    python3 -m venv /tmp/pgiam-bench && /tmp/pgiam-bench/bin/pip install .
    /tmp/pgiam-bench/bin/python benchmarks/token.py [--runs N] [--aws PATH]

Measures the installed console script (the `pgiam` next to this interpreter; run it with a venv's
python) in a throwaway HOME with dummy static AWS keys (tokens are signed locally; nothing reaches
AWS), in two states:
- fresh: ~/.pgpass holds a token valid beyond the renewal margin (what a pool sees on almost every
  new connection): printed from the file. Target: <= 0.15x the AWS CLI.
- due: the token line is deleted before each run, so every run mints, writes both files and prints.
Timed with farm-bench (paired, interleaved runs, medians) when it is on PATH, else with the same
interleaved pairing done here. Read the ratios: absolute times drift on a shared machine.
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

HOST = "bench.cluster-abc123.us-west-2.rds.amazonaws.com"


def pgiam_script() -> Path:
    script = Path(sys.executable).with_name("pgiam")
    if not script.exists():
        raise SystemExit(f"no console script at {script}: run this with the python of a venv where pgiam is installed")
    return script


def find_aws(given: str | None) -> str:
    aws = given or shutil.which("aws") or ""
    if aws and "/shims/" in aws and shutil.which("pyenv"):
        # A pyenv shim adds a bash script and pyenv's lookup (~0.1 s) to every call: time the real CLI.
        aws = subprocess.run(["pyenv", "which", "aws"], capture_output=True, text=True).stdout.strip() or aws
    if not aws or not os.path.exists(aws):
        raise SystemExit("the AWS CLI is not installed (pip install awscli, or pass --aws PATH)")
    return aws


def make_env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("AWS_", "PG", "XDG_", "PYTHON"))}
    env.update(HOME=str(home), XDG_CONFIG_HOME=str(home / ".config"), XDG_STATE_HOME=str(home / ".local/state"),
               XDG_DATA_HOME=str(home / ".local/share"), AWS_ACCESS_KEY_ID="AKIAPGIAMBENCHEXAMPL",
               AWS_SECRET_ACCESS_KEY="benchSecretKeyOnlyForLocalSigning/000000", AWS_DEFAULT_REGION="us-west-2",
               AWS_CONFIG_FILE=str(home / "aws-config"), AWS_SHARED_CREDENTIALS_FILE=str(home / "aws-creds"),
               AWS_EC2_METADATA_DISABLED="true")
    return env


def timed(argv: list[str], env: dict[str, str]) -> float:
    t = time.perf_counter()
    p = subprocess.run(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
    elapsed = time.perf_counter() - t
    if p.returncode != 0:
        raise SystemExit(f"benchmark command failed ({p.returncode}): {' '.join(argv)}\n{p.stderr.decode()}")
    return elapsed


def pair_here(a: list[str], b: list[str], env: dict[str, str], runs: int) -> tuple[float, float, float]:
    """Medians of a, of b, and of the pairwise ratio a/b over interleaved runs."""
    timed(a, env), timed(b, env)
    ta, tb = [], []
    for _ in range(runs):
        ta.append(timed(a, env))
        tb.append(timed(b, env))
    return statistics.median(ta), statistics.median(tb), statistics.median(x / y for x, y in zip(ta, tb))


def pair_farm_bench(a: list[str], b: list[str], env: dict[str, str], runs: int) -> str:
    """farm-bench's own report (it prints min/median/max of each and of the paired ratio)."""
    import shlex

    p = subprocess.run(["farm-bench", "-n", str(runs), "--warmup", "2", "--timeout", "600", "--vs", shlex.join(b),
                        "--", *a], env=env, capture_output=True, text=True)
    if p.returncode != 0:
        raise SystemExit(f"farm-bench failed: {p.stderr}")
    return p.stdout


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=20, help="paired runs per comparison (medians are reported)")
    ap.add_argument("--aws", help="the AWS CLI to compare with (default: aws on PATH)")
    ap.add_argument("--no-farm-bench", action="store_true", help="time here even when farm-bench is on PATH")
    args = ap.parse_args()
    pgiam, aws = pgiam_script(), find_aws(args.aws)
    tmp = Path(tempfile.mkdtemp(prefix="pgiam-bench-token-"))
    try:
        home = tmp / "home"
        home.mkdir()
        env = make_env(home)
        ca = home / "ca.pem"
        ca.write_text("-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n")  # PEM-shaped (add checks); never used
        subprocess.run([str(pgiam), "add", "svc", "--host", HOST, "--user", "bench", "--sslrootcert", str(ca)],
                       env=env, check=True, capture_output=True)
        subprocess.run([str(pgiam), "token", "svc"], env=env, check=True, capture_output=True)  # writes the index
        aws_argv = [aws, "rds", "generate-db-auth-token", "--hostname", HOST, "--port", "5432",
                    "--region", "us-west-2", "--username", "bench"]
        # Every run of the due case starts with no token line: `sed` drops it, then pgiam mints.
        pgpass = home / ".pgpass"
        due_argv = ["sh", "-c", f'sed -i "/^{HOST}:/d" "$1" && exec "$2" token svc', "sh", str(pgpass), str(pgiam)]
        aws_sh = ["sh", "-c", 'exec "$@"', "sh", *aws_argv]  # the same extra shell on the baseline side
        cases = [("fresh (token printed from ~/.pgpass)", [str(pgiam), "token", "svc"], aws_argv, "<= 0.15x"),
                 ("due (mint, write both files, print)", due_argv, aws_sh, "-")]
        print(f"pgiam token vs aws rds generate-db-auth-token on {platform.node()} ({platform.machine()}, "
              f"{os.cpu_count()} cores, Python {platform.python_version()}), {time.strftime('%Y-%m-%d %H:%M')}")
        print(f"pgiam: {pgiam}; AWS CLI: {aws} "
              f"({subprocess.run([aws, '--version'], capture_output=True, text=True).stdout.strip()})")
        use_fb = shutil.which("farm-bench") and not args.no_farm_bench
        for label, a, b, target in cases:
            if use_fb:
                print(f"\n== {label}: A = pgiam token, B = the AWS CLI; target {target}")
                print(pair_farm_bench(a, b, env, args.runs))
            else:
                ma, mb, ratio = pair_here(a, b, env, args.runs)
                print(f"{label}: pgiam {ma*1e3:.1f} ms, AWS CLI {mb*1e3:.1f} ms, ratio {ratio:.2f}x (target {target})")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
