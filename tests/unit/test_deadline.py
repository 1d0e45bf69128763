"""Issue 19: awscreds.deadline bounds a whole AWS exchange, even a read that a slow drip keeps alive."""

from __future__ import annotations

import signal
import socket
import time

import pytest

from pgiam import awscreds
from pgiam.awserrors import DeadlinePassed


def test_a_blocked_read_is_interrupted_at_the_deadline() -> None:
    a, b = socket.socketpair()
    try:
        start = time.monotonic()
        with pytest.raises(DeadlinePassed):
            with awscreds.deadline(0.1):
                a.recv(1)  # nothing ever arrives
        assert 0.09 < time.monotonic() - start < 5
    finally:
        a.close()
        b.close()
    assert signal.getitimer(signal.ITIMER_REAL)[0] == 0 and signal.getsignal(signal.SIGALRM) == signal.SIG_DFL


def test_paused_stops_the_clock_for_a_person_or_a_helper() -> None:
    with awscreds.deadline(0.15):
        with awscreds.paused():
            time.sleep(0.25)  # typing an MFA code: past the deadline, yet no DeadlinePassed
        assert signal.getitimer(signal.ITIMER_REAL)[0] > 0  # the clock runs again afterwards


def test_an_applications_own_alarm_is_left_alone() -> None:
    """pgiam.password inside an application that uses SIGALRM: pgiam sets no deadline and keeps its timer."""
    fired: list[int] = []
    old = signal.signal(signal.SIGALRM, lambda s, f: fired.append(s))
    signal.setitimer(signal.ITIMER_REAL, 0.2)
    try:
        with awscreds.deadline(0.05):
            with awscreds.paused():
                pass
            time.sleep(0.1)  # past our would-be deadline: nothing raised
        until = time.monotonic() + 5
        while not fired and time.monotonic() < until:  # the application's alarm, due 0.2 s after it was set
            time.sleep(0.01)
        time.sleep(0.05)  # and only once
        assert fired == [signal.SIGALRM]
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
