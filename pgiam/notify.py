"""systemd's notification protocol (sd_notify(3)), without libsystemd: one datagram per message.

The service manager passes NOTIFY_SOCKET: the path of an AF_UNIX datagram socket, or an abstract
socket name written with a leading `@` (sd_notify(3): "If the first character of $NOTIFY_SOCKET is
"@", the string is understood as Linux abstract namespace socket"). A message is newline-separated
VAR=value assignments (READY=1, STATUS=..., WATCHDOG=1, STOPPING=1). WATCHDOG_USEC (and, when set,
WATCHDOG_PID) says whether and how often the manager expects WATCHDOG=1 (sd_watchdog_enabled(3):
send it at half the interval). Without NOTIFY_SOCKET every call is a no-op.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping


class Notifier:
    """Sends sd_notify messages when the environment asks for them; never raises for a lost datagram."""

    def __init__(self, env: Mapping[str, str] | None = None) -> None:
        env = os.environ if env is None else env
        raw = env.get("NOTIFY_SOCKET", "")
        self.address: str | bytes | None = None
        if raw.startswith("@"):
            self.address = b"\0" + raw[1:].encode()  # the abstract namespace: a leading NUL byte
        elif raw.startswith("/"):
            self.address = raw
        self.watchdog_interval = _watchdog_interval(env)

    @property
    def enabled(self) -> bool:
        return self.address is not None

    def send(self, **fields: str) -> bool:
        """Send VAR=value lines (READY="1", STATUS="..."); False when not under a manager or it failed."""
        if self.address is None:
            return False
        text = "\n".join(f"{k}={_one_line(v)}" for k, v in fields.items())
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
                sock.connect(self.address)
                sock.sendall(text.encode("utf-8", "replace"))
        except OSError:
            return False  # the manager went away or the socket is not ours: nothing to tell
        return True

    def ready(self, status: str) -> bool:
        return self.send(READY="1", STATUS=status)

    def status(self, status: str) -> bool:
        return self.send(STATUS=status)

    def watchdog(self) -> bool:
        return self.watchdog_interval is not None and self.send(WATCHDOG="1")

    def stopping(self, status: str) -> bool:
        return self.send(STOPPING="1", STATUS=status)


def _one_line(value: str) -> str:
    """A field value cannot carry a newline: it would start another assignment."""
    return " ".join(value.splitlines())


def _watchdog_interval(env: Mapping[str, str]) -> float | None:
    """Seconds between WATCHDOG=1 pings (half of WATCHDOG_USEC), or None when no watchdog is armed."""
    usec = env.get("WATCHDOG_USEC", "")
    pid = env.get("WATCHDOG_PID", "")
    if not usec.isdigit() or int(usec) == 0:
        return None
    if pid and pid.isdigit() and int(pid) != os.getpid():
        return None  # the watchdog is meant for another process (sd_watchdog_enabled(3))
    return int(usec) / 1e6 / 2
