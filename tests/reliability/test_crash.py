"""Issue 7 ("never lose a line"): SIGKILL pgiam at random moments; every file is the old or the new version."""

from __future__ import annotations

import json
import os
import random
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.reliability.conftest import FOREIGN_PGPASS, FOREIGN_SERVICE, HOSTS, add_args, pgiam_env, run

pytestmark = pytest.mark.reliability

# A small driver: import pgiam once, then `pgiam refresh` in a loop, counting finished runs on a pipe.
DRIVER = """
import os, sys
from pgiam.cli import main
fd = int(sys.argv[1])
os.write(fd, b"r")
while True:
    code = main(["refresh", "--quiet"])
    if code != 0:
        sys.exit(code)
    os.write(fd, b".")
"""
TOKEN_LINE = re.compile(rb"^[a-z0-9.-]+:5432:\*:user\d:[a-z0-9.-]+\\:5432/\?Action=connect&DBUser=user\d&.*X-Amz-Signature=[0-9a-f]{64}$")


def _check(home: Path, names: int) -> int:
    """Both libpq files whole and well-formed, foreign bytes intact; returns the number of temp files left."""
    pp = (home / ".pgpass").read_bytes()
    assert pp.endswith(b"# END pgiam\n" + FOREIGN_PGPASS), pp[:200]
    lines = pp.split(b"\n")
    assert lines[0].startswith(b"# BEGIN pgiam")
    block = lines[1 : lines.index(b"# END pgiam")]
    assert len(block) == names and all(TOKEN_LINE.match(ln) for ln in block), block
    sf = (home / ".pg_service.conf").read_bytes()
    assert sf.startswith(b"# BEGIN pgiam") and sf.endswith(b"# END pgiam\n" + FOREIGN_SERVICE)
    state = home / ".local/state/pgiam/state.json"
    if state.exists():
        assert set(json.loads(state.read_bytes())["services"]) == {f"s{i}" for i in range(names)}
    return sum(".pgiam-tmp-" in n for d in (home, state.parent, home / ".config/pgiam") for n in os.listdir(d))


def test_sigkill_during_200_refreshes(home: Path, ca: Path) -> None:
    """Issue 7: 200+ refreshes killed at random points; never a partial or empty file; temp files swept."""
    (home / ".pgpass").write_bytes(FOREIGN_PGPASS)
    os.chmod(home / ".pgpass", 0o600)
    (home / ".pg_service.conf").write_bytes(FOREIGN_SERVICE)
    env = pgiam_env(home)
    for i in range(3):
        assert run(env, *add_args(f"s{i}", HOSTS[i], f"user{i}", ca)).returncode == 0
    rnd = random.Random(int(os.environ.get("PGIAM_CRASH_SEED", "7")))
    refreshes = kills = mid_write = swept = 0
    started = time.monotonic()
    while refreshes < 200 or kills < 30:
        r, w = os.pipe()
        proc = subprocess.Popen([sys.executable, "-c", DRIVER, str(w)], env=env, pass_fds=(w,),
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
        os.close(w)
        os.set_blocking(r, False)
        seen = b""
        while b"r" not in seen:  # imported; now kill it somewhere inside its refresh loop
            try:
                seen += os.read(r, 100)
            except BlockingIOError:
                time.sleep(0.005)
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else b""
        time.sleep(rnd.uniform(0.0, 0.7))  # botocore loads during the first ~0.3 s
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        with open(r, "rb", closefd=True) as f:
            seen += f.read()
        refreshes += seen.count(b".")
        kills += 1
        left = _check(home, 3)
        if left:
            mid_write += 1
        assert time.monotonic() - started < 60, (refreshes, kills)
    # The next run sweeps what the killed writers left behind.
    p = run(env, "refresh", "--quiet")
    assert p.returncode == 0, p.stderr
    assert _check(home, 3) == 0
    print(f"{kills} SIGKILLs during {refreshes} finished refreshes in {time.monotonic() - started:.1f} s; "
          f"{mid_write} left a temp file (killed mid-write)")
