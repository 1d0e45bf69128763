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

# A fork server: import pgiam and botocore once (one warm-up refresh), then for each request fork a
# child that runs `pgiam refresh` in a loop until the test SIGKILLs it; report the child's pid, then
# its wait status. Forking makes 200 kills cheap (no interpreter start per kill).
DRIVER = """
import os, sys
from pgiam.cli import main
ctl_in, ctl_out, progress = map(int, sys.argv[1:4])
if main(["refresh", "--quiet"]) != 0:
    sys.exit(3)
os.write(ctl_out, b"ready\\n")
while os.read(ctl_in, 1):
    pid = os.fork()
    if pid == 0:
        while main(["refresh", "--quiet"]) == 0:
            os.write(progress, b".")
        os._exit(3)
    os.write(ctl_out, b"%d\\n" % pid)
    os.write(ctl_out, b"%d\\n" % os.waitpid(pid, 0)[1])
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


def _readline(fd: int) -> bytes:
    out = b""
    while not out.endswith(b"\n"):
        chunk = os.read(fd, 1)
        assert chunk, "the fork server died"
        out += chunk
    return out.strip()


def test_200_sigkills_during_refreshes(home: Path, ca: Path) -> None:
    """Issue 7: 200 refreshing processes SIGKILLed at random points; never a partial or empty file; temps swept."""
    (home / ".pgpass").write_bytes(FOREIGN_PGPASS)
    os.chmod(home / ".pgpass", 0o600)
    (home / ".pg_service.conf").write_bytes(FOREIGN_SERVICE)
    env = pgiam_env(home)
    for i in range(3):
        assert run(env, *add_args(f"s{i}", HOSTS[i], f"user{i}", ca)).returncode == 0
    rnd = random.Random(int(os.environ.get("PGIAM_CRASH_SEED", "7")))
    ctl_in, to_server = os.pipe()
    ctl_out, from_server = os.pipe()
    progress_r, progress_w = os.pipe()
    os.set_blocking(progress_r, False)
    server = subprocess.Popen([sys.executable, "-c", DRIVER, str(ctl_in), str(from_server), str(progress_w)],
                              env=env, pass_fds=(ctl_in, from_server, progress_w), stdin=subprocess.DEVNULL,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    for fd in (ctl_in, from_server, progress_w):
        os.close(fd)
    refreshes = kills = mid_write = 0
    started = time.monotonic()
    try:
        assert _readline(ctl_out) == b"ready", server.stderr.read() if server.stderr else b""
        while kills < 200:
            os.write(to_server, b"g")
            pid = int(_readline(ctl_out))
            time.sleep(rnd.uniform(0.0, 0.08))  # one refresh takes a few tens of ms: land anywhere in it
            os.kill(pid, signal.SIGKILL)
            status = int(_readline(ctl_out))
            assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL, status
            kills += 1
            try:
                refreshes += os.read(progress_r, 65536).count(b".")
            except BlockingIOError:
                pass
            if _check(home, 3):
                mid_write += 1
            assert time.monotonic() - started < 120, (refreshes, kills)
    finally:
        os.close(to_server)
        server.wait(10)
    # The next run sweeps what the killed writers left behind.
    p = run(env, "refresh", "--quiet")
    assert p.returncode == 0, p.stderr
    assert _check(home, 3) == 0
    assert refreshes > 0 and mid_write > 0  # kills really landed inside refreshes, some mid-write
    print(f"{kills} SIGKILLs during {refreshes} finished refreshes in {time.monotonic() - started:.1f} s; "
          f"{mid_write} left a temp file (killed mid-write)")
