"""Issue 7 ("never lose a line"): 50 pgiam processes at once over shared files, then psql still connects."""

from __future__ import annotations

import random
import subprocess
import time

import pytest

from tests.reliability import libpq_ref
from tests.reliability.conftest import FOREIGN_PGPASS, FOREIGN_SERVICE, HOSTS, add_args, pgiam_argv, run

pytestmark = pytest.mark.reliability


def _token_lines(pgpass: bytes) -> list[bytes]:
    lines = pgpass.split(b"\n")
    assert lines[0].startswith(b"# BEGIN pgiam"), lines[0][:80]
    end = lines.index(b"# END pgiam")
    return lines[1:end]


HANG = 900.0  # seconds: a deadlock detector, not a speed bound (see the test)


def _finish(p: subprocess.Popen[str], deadline: float) -> tuple[int, str, str]:
    out, err = p.communicate(timeout=max(1.0, deadline - time.monotonic()))
    return p.returncode, out, err


def test_fifty_concurrent_processes(sandbox) -> None:
    """Issue 7: refresh, refresh --if-needed, add and remove racing; no line lost, one line per service."""
    # No bound on speed (issue 10 item 7): on a loaded machine 50 interpreters importing botocore took 75 to
    # 96 s, and a writer queued behind the others may wait longer than any lock timeout we could pick. So
    # nobody gives up on the lock for time (3600 s, PGIAM_LOCK_WAIT's maximum), and what is checked is
    # what the issue asks: every process succeeds (or, --if-needed, steps aside at once), no line is lost.
    # A deadlock would hang: HANG is a detector for that only, far above any run seen.
    env = dict(sandbox.env, PGIAM_LOCK_WAIT="3600")
    stable = [f"s{i}" for i in range(4)]
    doomed = [f"r{i}" for i in range(5)]
    fresh = [f"c{i}" for i in range(10)]

    def spec(name: str, i: int) -> list[str]:
        return add_args(name, HOSTS[i % len(HOSTS)], f"user_{name}", sandbox.ca)

    # --no-refresh: these have no token yet, so the racing `--if-needed` runs find work and take the lock.
    setup = [subprocess.Popen(pgiam_argv(*spec(n, i), "--no-refresh"), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
             for i, n in enumerate(stable + doomed)]
    deadline = time.monotonic() + HANG
    for p in setup:
        assert p.wait(max(1.0, deadline - time.monotonic())) == 0, p.stderr.read() if p.stderr else ""

    jobs: list[tuple[str, list[str]]] = []
    jobs += [("refresh", ["refresh", "--quiet"])] * 20
    jobs += [("if-needed", ["refresh", "--if-needed", "--quiet"])] * 15
    jobs += [("add", spec(n, i)) for i, n in enumerate(fresh)]
    jobs += [("remove", ["remove", n]) for n in doomed]
    random.Random(7).shuffle(jobs)
    started = time.monotonic()
    procs = [(kind, argv, subprocess.Popen(pgiam_argv(*argv), env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                           text=True, stdin=subprocess.DEVNULL)) for kind, argv in jobs]
    deadline = started + HANG
    try:
        results = [(kind, argv, *_finish(p, deadline)) for kind, argv, p in procs]
    finally:
        for _, _, p in procs:
            if p.poll() is None:  # only after a hang: leave no process behind
                p.kill()
                p.wait()
    elapsed = time.monotonic() - started
    print(f"50 concurrent pgiam processes finished in {elapsed:.2f} s")
    gave_up = 0
    for kind, argv, code, out, err in results:
        assert "Traceback" not in err, (argv, err)
        if kind == "if-needed" and code == 6:
            gave_up += 1
            assert err == "", err  # --quiet: a busy lock is not worth a word
            continue
        assert code == 0, (argv, code, err)
    print(f"refresh --if-needed gave up on a busy lock {gave_up} times out of 15")

    names = run(env, "list", "--names").stdout.split()
    assert sorted(names) == sorted(["sandbox", *stable, *fresh])
    pp = (sandbox.home / ".pgpass").read_bytes()
    sf = (sandbox.home / ".pg_service.conf").read_bytes()
    # Foreign bytes: everything after pgiam's block, exactly, in order.
    assert pp.endswith(b"# END pgiam\n" + FOREIGN_PGPASS)
    assert sf.endswith(b"# END pgiam\n" + FOREIGN_SERVICE)
    lines = _token_lines(pp)
    assert len(lines) == len(names) == len(set(lines)), lines
    for n in names:
        keys = libpq_ref.service_lookup(sf, n.encode())
        assert keys is not None, n
        assert keys[b"sslmode"] == b"verify-full"
        host = keys[b"host"]
        port = keys[b"port"]
        token = libpq_ref.password_from_file(pp, host, port, b"whatever", keys[b"user"])
        assert token is not None and token.startswith(host + b":") and b"X-Amz-Signature=" in token, n
        assert sf.count(f"\n[{n}]\n".encode()) == 1, n
    managed = sf[: sf.index(b"# END pgiam\n")]
    assert managed.count(b"\n[") == len(names)

    p = sandbox.psql()
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == "pgiam_sandbox"
