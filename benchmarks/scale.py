#!/usr/bin/env python3
"""pgiam at scale (issue 25): each command against the floor, Python's own `tomllib.load` of the same config.

    python3 benchmarks/scale.py [--sizes 100,1000,10000] [--runs N] [--against LABEL=DIR ...]

    # side by side with 0.1.0 and with 0.2.0 before issue 25 (each only needs its pgiam/ directory):
    mkdir -p /tmp/pgiam-0.1.0 /tmp/pgiam-before-25
    git archive 9b68f06^ pgiam | tar -x -C /tmp/pgiam-0.1.0
    git archive 74d334d pgiam | tar -x -C /tmp/pgiam-before-25
    python3 benchmarks/scale.py --against before=/tmp/pgiam-before-25 --against 0.1.0=/tmp/pgiam-0.1.0

For each size, a throwaway HOME gets a config.toml of that many services (written directly, as
`pgiam add --host db{i}.cluster-abc.us-east-1.rds.amazonaws.com --user app --dbname app` writes them)
and one full `pgiam refresh` (dummy static AWS keys: tokens are signed locally, nothing reaches AWS).
Then, interleaved in the same run: `python -c 'tomllib.load(...)'` of that config (the floor), and
`pgiam list`, `pgiam status`, `pgiam refresh sN` (one service) and `pgiam refresh` (all of them).

Each figure is a median over the runs: wall time, CPU time (user + system) and peak RSS of the
process (os.wait4's rusage). Ratios divide by the floor measured in the same run; on a shared machine
read the ratios, not the absolute times. `--against LABEL=DIR` runs another checkout of pgiam (its
`pgiam` package found through PYTHONPATH, e.g. a `git worktree` of an older commit) side by side,
each in its own HOME.

Targets at 10,000 services (issue 25): list <= 1.5x the floor, status <= 2x, refresh NAME <= 2x,
full refresh <= 6x, no command above 0.1.0's memory (refresh s5: 91 MB); at 100 services every
command under 0.2 s.
"""

from __future__ import annotations

import os
import sys

# benchmarks/token.py would shadow the standard library's `token` (dataclasses imports it through inspect).
_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != _HERE]

import argparse  # noqa: E402
import platform  # noqa: E402
import shutil  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402
from pathlib import Path  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
TARGETS = {"list": 1.5, "status": 2.0, "refresh NAME": 2.0, "refresh": 6.0}
FLOOR = "import sys, tomllib\nwith open(sys.argv[1], 'rb') as f:\n    tomllib.load(f)\n"


def config_text(n: int) -> str:
    """n services as `pgiam add` writes them (host, port, user, dbname; the region comes from the host)."""
    parts = ["# pgiam configuration: benchmarks/scale.py\n"]
    for i in range(n):
        parts.append(f'\n[services.s{i}]\nhost = "db{i}.cluster-abc.us-east-1.rds.amazonaws.com"\n'
                     'port = 5432\nuser = "app"\ndbname = "app"\n')
    return "".join(parts)


def make_env(home: Path, source: Path) -> dict[str, str]:
    # As a user runs it: bytecode caches written and used (pip compiles them at install time).
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("AWS_", "PG", "XDG_", "PGIAM_")) and k not in ("PYTHONDONTWRITEBYTECODE", "PYTHONPATH")}
    env.update(HOME=str(home), XDG_CONFIG_HOME=str(home / ".config"), XDG_STATE_HOME=str(home / ".local/state"),
               XDG_DATA_HOME=str(home / ".local/share"), AWS_ACCESS_KEY_ID="AKIAPGIAMBENCHEXAMPL",
               AWS_SECRET_ACCESS_KEY="benchSecretKeyOnlyForLocalSigning/000000", AWS_DEFAULT_REGION="us-east-1",
               AWS_CONFIG_FILE=str(home / "aws-config"), AWS_SHARED_CREDENTIALS_FILE=str(home / "aws-creds"),
               AWS_EC2_METADATA_DISABLED="true", PYTHONPATH=str(source))
    return env


@dataclass
class Sample:
    wall: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)
    rss: list[int] = field(default_factory=list)  # KiB

    def add(self, wall: float, cpu: float, rss: int) -> None:
        self.wall.append(wall), self.cpu.append(cpu), self.rss.append(rss)

    @property
    def med(self) -> tuple[float, float, float]:
        return statistics.median(self.wall), statistics.median(self.cpu), statistics.median(self.rss) / 1024


def run(argv: list[str], env: dict[str, str], cwd: Path) -> tuple[float, float, int]:
    """Wall time (s), CPU time (s) and peak RSS (KiB) of one run of argv."""
    t = time.perf_counter()
    p = subprocess.Popen(argv, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                         stdin=subprocess.DEVNULL)
    _, status, usage = os.wait4(p.pid, 0)
    wall = time.perf_counter() - t
    code = os.waitstatus_to_exitcode(status)
    err = p.stderr.read().decode() if p.stderr else ""
    if p.stderr:
        p.stderr.close()
    if code != 0:
        raise SystemExit(f"benchmark command failed ({code}): {' '.join(argv)}\n{err}")
    return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss


@dataclass
class Impl:
    label: str
    source: Path
    home: Path
    env: dict[str, str] = field(default_factory=dict)


def setup(impl: Impl, n: int) -> None:
    (impl.home / ".config" / "pgiam").mkdir(parents=True)
    (impl.home / ".config" / "pgiam" / "config.toml").write_text(config_text(n))
    impl.env = make_env(impl.home, impl.source)
    where = subprocess.run([sys.executable, "-c", "import pgiam; print(pgiam.__file__)"], env=impl.env,
                           cwd=impl.home, check=True, capture_output=True, text=True).stdout.strip()
    if not where.startswith(str(impl.source)):
        raise SystemExit(f"{impl.label}: PYTHONPATH={impl.source} runs pgiam from {where}")
    run([sys.executable, "-m", "pgiam", "refresh"], impl.env, impl.home)  # tokens, state and entries in place


def measure(n: int, impls: list[Impl], runs: int) -> dict[tuple[str, str], Sample]:
    name = f"s{n // 2}"
    commands = {"list": ["list"], "status": ["status"], "refresh NAME": ["refresh", name], "refresh": ["refresh"]}
    out: dict[tuple[str, str], Sample] = {}
    floor_env = impls[0].env
    config = impls[0].home / ".config" / "pgiam" / "config.toml"
    for r in range(runs + 1):  # the first round warms caches and is not counted
        for label, argv, env, cwd in [("tomllib.load", [sys.executable, "-c", FLOOR, str(config)], floor_env, impls[0].home)] + [
                (f"{cmd}|{impl.label}", [sys.executable, "-m", "pgiam", *args], impl.env, impl.home)
                for cmd, args in commands.items() for impl in impls]:
            if n >= 10000 and label.startswith("refresh|") and r > max(2, runs // 3):
                continue  # a full refresh of 10,000 services takes long: fewer runs of it
            result = run(argv, env, cwd)
            if r:
                out.setdefault(tuple(label.split("|")) if "|" in label else (label, ""), Sample()).add(*result)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="100,1000,10000", help="comma-separated service counts (default 100,1000,10000)")
    ap.add_argument("--runs", type=int, default=5, help="measured runs per command (medians are reported)")
    ap.add_argument("--against", action="append", default=[], metavar="LABEL=DIR",
                    help="also run the pgiam package of another checkout DIR, labelled LABEL")
    args = ap.parse_args()
    sources = [("this", ROOT)] + [(a.split("=", 1)[0], Path(a.split("=", 1)[1]).resolve()) for a in args.against]
    tmp = Path(tempfile.mkdtemp(prefix="pgiam-scale-"))
    print(f"pgiam scale benchmark on {platform.node()} ({platform.machine()}, {os.cpu_count()} cores, "
          f"load {os.getloadavg()[0]:.1f}, Python {platform.python_version()}), {time.strftime('%Y-%m-%d %H:%M')}")
    print("implementations: " + ", ".join(f"{label}={src}" for label, src in sources))
    try:
        for n in (int(x) for x in args.sizes.split(",")):
            impls = [Impl(label, src, tmp / f"{n}-{label}") for label, src in sources]
            for impl in impls:
                setup(impl, n)
            res = measure(n, impls, args.runs)
            fw, fc, fm = res[("tomllib.load", "")].med
            print(f"\n{n} services: floor tomllib.load {fw:.3f} s wall, {fc:.3f} s CPU, {fm:.0f} MB")
            head = ("command", "impl", "wall s", "x floor", "CPU s", "x floor", "peak MB", "target")
            rows = []
            for cmd in ("list", "status", "refresh NAME", "refresh"):
                for impl in impls:
                    w, c, m = res[(cmd, impl.label)].med
                    target = f"<= {TARGETS[cmd]}x" if n >= 10000 else ("< 0.2 s" if n <= 100 else "")
                    rows.append((cmd, impl.label, f"{w:.3f}", f"{w / fw:.2f}", f"{c:.3f}", f"{c / fc:.2f}", f"{m:.0f}", target))
            widths = [max(len(str(r[i])) for r in [head, *rows]) for i in range(len(head))]
            for r in [head, tuple("-" * w for w in widths), *rows]:
                print("  ".join(str(c).ljust(widths[i]) for i, c in enumerate(r)))
            sys.stdout.flush()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
