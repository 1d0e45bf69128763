#!/usr/bin/env python3
"""pgiam's performance figures, measured side by side in one run (medians and ratios).

    python3 benchmarks/run.py [--runs N]

Everything runs in a throwaway HOME with dummy static AWS keys (tokens are signed locally; nothing
reaches AWS). Absolute times drift on a shared machine: read the ratios, which compare commands
measured interleaved in the same run.

Targets (issue 4): no-op <= 1.3x interpreter start; token (fresh, printed from ~/.pgpass) <= 0.15x the AWS CLI (benchmarks/token.py also times a due one); 100 services <= 1.2x
one service; hook < 0.1 ms per prompt with zero processes; refresh peak memory <= 0.6x the AWS CLI's.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HOST = "bench.cluster-abc123.us-west-2.rds.amazonaws.com"


def pgiam_cmd() -> list[str]:
    """The installed console script next to this interpreter, else `python -m pgiam`."""
    script = Path(sys.executable).with_name("pgiam")
    return [str(script)] if script.exists() else [sys.executable, "-m", "pgiam"]


def make_env(home: Path) -> dict[str, str]:
    # As a user runs it: bytecode caches written and used (pip compiles them at install time).
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("AWS_", "PG", "XDG_")) and k != "PYTHONDONTWRITEBYTECODE"}
    env.update(HOME=str(home), XDG_CONFIG_HOME=str(home / ".config"), XDG_STATE_HOME=str(home / ".local/state"),
               XDG_DATA_HOME=str(home / ".local/share"), AWS_ACCESS_KEY_ID="AKIAPGIAMBENCHEXAMPL",
               AWS_SECRET_ACCESS_KEY="benchSecretKeyOnlyForLocalSigning/000000", AWS_DEFAULT_REGION="us-west-2",
               AWS_CONFIG_FILE=str(home / "aws-config"), AWS_SHARED_CREDENTIALS_FILE=str(home / "aws-creds"),
               AWS_EC2_METADATA_DISABLED="true")
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    return env


def run(argv: list[str], env: dict[str, str]) -> tuple[float, int]:
    """Wall time (s) and peak RSS (KiB) of one run of argv."""
    t = time.perf_counter()
    p = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
    _, status, usage = os.wait4(p.pid, 0)
    elapsed = time.perf_counter() - t
    p.returncode = os.waitstatus_to_exitcode(status)
    if p.returncode != 0:
        raise SystemExit(f"benchmark command failed ({p.returncode}): {' '.join(argv)}\n{p.stderr.read().decode()}")
    p.stderr.close()
    return elapsed, usage.ru_maxrss


def compare(a: list[str], env_a: dict[str, str], b: list[str], env_b: dict[str, str], runs: int) -> tuple[float, float, int, int]:
    """Interleaved runs of a and b; medians of time and of peak RSS."""
    ta, tb, ma, mb = [], [], [], []
    run(a, env_a), run(b, env_b)  # warm caches
    for _ in range(runs):
        x, mx = run(a, env_a)
        y, my = run(b, env_b)
        ta.append(x), tb.append(y), ma.append(mx), mb.append(my)
    return statistics.median(ta), statistics.median(tb), int(statistics.median(ma)), int(statistics.median(mb))


def setup_services(home: Path, n: int) -> dict[str, str]:
    home.mkdir(parents=True)
    env = make_env(home)
    ca = home / "ca.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n")  # PEM-shaped (add checks); never used
    for i in range(n):
        subprocess.run([*pgiam_cmd(), "add", f"svc{i}", "--host", HOST, "--port", str(5432 + i), "--user", "bench",
                        "--sslrootcert", str(ca), "--no-refresh"], env=env, check=True, capture_output=True)
    subprocess.run([*pgiam_cmd(), "refresh"], env=env, check=True, capture_output=True)
    return env


def hook_cost(env: dict[str, str], prompts: int) -> tuple[float, float, int | None]:
    """Seconds for `prompts` prompts in bash with and without the hook, and processes spawned with it."""
    snippet = subprocess.run([*pgiam_cmd(), "hook", "bash"], env=env, check=True, capture_output=True, text=True).stdout
    loop = (
        'run_prompt() { local c; for c in "${PROMPT_COMMAND[@]}"; do eval "$c"; done; }\n'
        f't0=$EPOCHREALTIME; for ((i = 0; i < {prompts}; i++)); do run_prompt; done; t1=$EPOCHREALTIME\n'
        'echo "$t0 $t1"\n'
    )
    def timed(script: str) -> float:
        out = subprocess.run(["bash", "--norc", "--noprofile", "-c", script], env=env, check=True,
                             capture_output=True, text=True).stdout.split()
        return float(out[-1].replace(",", ".")) - float(out[-2].replace(",", "."))
    with_hook = statistics.median(timed(snippet + "\n" + loop) for _ in range(5))
    without = statistics.median(timed("PROMPT_COMMAND=:\n" + loop) for _ in range(5))
    spawned = None
    if shutil.which("strace"):
        with tempfile.NamedTemporaryFile("r", suffix=".strace") as trace:
            subprocess.run(["strace", "-f", "-qq", "-e", "trace=execve,fork,vfork,clone,clone3", "-o", trace.name,
                            "bash", "--norc", "--noprofile", "-c", snippet + "\n" + loop], env=env, check=True,
                           capture_output=True)
            calls = [ln for ln in trace.read().splitlines() if re.search(r"\b(execve|fork|vfork|clone3?)\(", ln)]
            spawned = len(calls) - 1  # the first line is strace starting bash itself
    return with_hook, without, spawned


def aws_version() -> str:
    aws = shutil.which("aws")
    if not aws:
        return "not installed"
    out = subprocess.run([aws, "--version"], capture_output=True, text=True)
    return (out.stdout or out.stderr).split(" ")[0].strip()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=15, help="runs per command (medians are reported)")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="pgiam-bench-"))
    rows: list[tuple[str, str, str, str, str]] = []
    try:
        one = setup_services(tmp / "one", 1)
        hundred = setup_services(tmp / "hundred", 100)
        py = [sys.executable, "-c", "pass"]

        a, b, _, _ = compare([*pgiam_cmd(), "refresh", "--if-needed", "--quiet"], one, py, one, args.runs * 2)
        rows.append(("refresh --if-needed (fresh) vs python -c pass", f"{a*1e3:.1f} ms", f"{b*1e3:.1f} ms", f"{a/b:.2f}x", "<= 1.3x"))

        a, b, ma, mb = compare([*pgiam_cmd(), "refresh"], hundred, [*pgiam_cmd(), "refresh"], one, args.runs)
        rows.append(("refresh, 100 services vs 1", f"{a*1e3:.0f} ms", f"{b*1e3:.0f} ms", f"{a/b:.2f}x", "<= 1.2x"))
        refresh_rss = mb

        aws = shutil.which("aws")
        if aws and "/shims/" in aws and shutil.which("pyenv"):
            # A pyenv shim adds a bash script and pyenv's lookup (~0.1 s) to every call: time the real CLI.
            aws = subprocess.run(["pyenv", "which", "aws"], capture_output=True, text=True).stdout.strip() or aws
        if aws:
            aws_argv = [aws, "rds", "generate-db-auth-token", "--hostname", HOST, "--port", "5432",
                        "--region", "us-west-2", "--username", "bench"]
            a, b, _, mb_aws = compare([*pgiam_cmd(), "token", "svc0"], one, aws_argv, one, args.runs)
            rows.append(("pgiam token (fresh) vs aws rds generate-db-auth-token", f"{a*1e3:.0f} ms", f"{b*1e3:.0f} ms", f"{a/b:.2f}x", "<= 0.15x"))
            rows.append(("peak memory: pgiam refresh vs the AWS CLI", f"{refresh_rss/1024:.1f} MiB", f"{mb_aws/1024:.1f} MiB",
                         f"{refresh_rss/mb_aws:.2f}x", "<= 0.6x"))
        else:
            rows.append(("pgiam token vs aws rds generate-db-auth-token", "-", "-", "skipped", "the AWS CLI is not installed"))
            rows.append(("peak memory: pgiam refresh vs the AWS CLI", f"{refresh_rss/1024:.1f} MiB", "-", "skipped", "the AWS CLI is not installed"))

        if shutil.which("bash"):
            prompts = 1000
            w, wo, spawned = hook_cost(one, prompts)
            per = (w - wo) / prompts * 1e3
            rows.append((f"bash hook, {prompts} prompts, tokens fresh", f"{w*1e3:.1f} ms", f"{wo*1e3:.1f} ms (no hook)",
                         f"{per:.4f} ms/prompt", "< 0.1 ms"))
            rows.append(("processes spawned by those prompts", str(spawned) if spawned is not None else "strace missing",
                         "-", "", "0"))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"pgiam benchmarks on {platform.node()} ({platform.machine()}, {os.cpu_count()} cores, "
          f"Python {platform.python_version()}, {platform.platform()}), {time.strftime('%Y-%m-%d %H:%M')}")
    print(f"pgiam command: {' '.join(pgiam_cmd())}; AWS CLI: {aws_version()}")
    w = [max(len(r[i]) for r in rows) for i in range(5)]
    head = ("measure", "pgiam", "baseline", "ratio", "target")
    w = [max(w[i], len(head[i])) for i in range(5)]
    for r in [head, tuple("-" * x for x in w), *rows]:
        print("  ".join(c.ljust(w[i]) for i, c in enumerate(r)))


if __name__ == "__main__":
    main()
