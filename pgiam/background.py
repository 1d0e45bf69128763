"""Bounded waiting: `refresh --wait N` returns after N seconds while the work goes on detached.

fish has no read timeout and a prompt must not hang on an unresponsive SSO endpoint, so the bound
lives here: the process the shell waits for forks; the child (in a session of its own, so Ctrl-C at
the prompt does not reach it) does the work; the parent relays the child's output until it exits or
the deadline passes, then returns. The child's later writes go to a closed pipe and are dropped.
"""

from __future__ import annotations

import atexit
import os
import select
import sys
import time


# What the waiting process needs, after it stops waiting, to exit (interpreter teardown), kept out of the bound.
EXITING = 0.2


def _running_for() -> float:
    """Seconds since this process was started (its interpreter start and imports): on Linux, /proc/self/stat's
    starttime (field 22, clock ticks after boot: proc(5)) against CLOCK_BOOTTIME, the clock it is kept in;
    elsewhere 0, and the bound counts from here."""
    try:
        with open("/proc/self/stat", "rb") as f:
            stat = f.read()
        started = int(stat[stat.rindex(b")") + 2:].split()[19]) / os.sysconf("SC_CLK_TCK")
        return max(0.0, time.clock_gettime(time.CLOCK_BOOTTIME) - started)
    except (OSError, ValueError, IndexError, AttributeError):
        return 0.0


def _drop_unread_output() -> None:
    """In the child, at exit: what is left for a parent that stopped waiting (and closed its ends of the
    pipes) goes to /dev/null, so the exit status stays the command's (pgiam.cli's for a reader that left,
    128 + SIGPIPE) instead of Python's 120 for a flush that failed at exit."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except BrokenPipeError:
            null = os.open(os.devnull, os.O_WRONLY)
            os.dup2(null, stream.fileno())
            os.close(null)


def run_bounded(seconds: float) -> tuple[bool, int]:
    """Fork. In the child return (True, 0): do the work. In the parent return (False, code): the
    child's exit code when it finished within `seconds` of this process's start, else 0 (still
    running, detached). The bound is the caller's (a prompt waits at most 3 s, README), so the time
    this process took to start counts."""
    deadline = time.monotonic() + seconds - _running_for() - EXITING
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:
        os.setsid()
        os.close(out_r)
        os.close(err_r)
        os.dup2(out_w, 1)
        os.dup2(err_w, 2)
        os.close(out_w)
        os.close(err_w)
        atexit.register(_drop_unread_output)
        return True, 0
    os.close(out_w)
    os.close(err_w)
    open_fds = {out_r: sys.stdout, err_r: sys.stderr}
    try:
        while open_fds:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            ready, _, _ = select.select(list(open_fds), [], [], left)
            for fd in ready:
                chunk = os.read(fd, 65536)
                if not chunk:
                    del open_fds[fd]
                    continue
                stream = open_fds[fd]
                stream.flush()
                stream.buffer.write(chunk) if hasattr(stream, "buffer") else stream.write(chunk.decode(errors="replace"))
                stream.flush()
    finally:
        for fd in (out_r, err_r):
            os.close(fd)
    if open_fds:
        return False, 0  # still running: it goes on in its own session
    _, status = os.waitpid(pid, 0)
    return False, os.waitstatus_to_exitcode(status) if os.WIFEXITED(status) else 1
