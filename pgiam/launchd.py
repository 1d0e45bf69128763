"""The macOS timer: a LaunchAgent plist (rendered and parsed with plistlib) and `launchctl`.

launchd.plist(5): `StartCalendarInterval` runs a job missed while the Mac slept as soon as it
wakes (several missed firings coalesce into one), where `StartInterval` firings during sleep are
lost; launchd reads no shell rc file, so PATH goes in `EnvironmentVariables`; `ProgramArguments`
is run without a shell, so its first word must be an absolute path. launchctl(1): `bootstrap
DOMAIN PLIST` loads an agent, `bootout DOMAIN/LABEL` unloads it, `print DOMAIN[/LABEL]` answers
whether a domain or a service exists. The per-login `gui/UID` domain exists only for a user logged
in at the console; over SSH agents go to the `user/UID` domain.

Rendering and parsing are pure; load/unload/loaded run `launchctl` found on PATH (a test puts a
stand-in there), so all of it also works, and is tested, off macOS.
"""

from __future__ import annotations

import os
import plistlib
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pgiam.errors import EnvironmentProblem, UsageError
from pgiam.paths import Paths

LABEL = "pgiam.refresh"
TIMEOUT = 30.0
BANNER = ("<!-- Managed by pgiam: `pgiam timer install` rewrites this file, `pgiam timer remove` unloads "
          "and deletes it. Edits here are lost at the next install. -->\n")


def agent_dir(paths: Paths) -> Path:
    """~/Library/LaunchAgents: where launchd looks for a user's agents."""
    return paths.home / "Library" / "LaunchAgents"


def plist_path(paths: Paths) -> Path:
    return agent_dir(paths) / f"{LABEL}.plist"


def log_path(paths: Paths) -> Path:
    """Where launchd writes the job's stderr (`refresh --quiet` prints only failures)."""
    return paths.state_dir / "timer.log"


def calendar(every_seconds: int) -> list[dict[str, int]]:
    """StartCalendarInterval entries: minute 0, M, 2M... of every hour (like cron's */M)."""
    minutes = every_seconds // 60
    if every_seconds % 60 or not 1 <= minutes <= 60:
        raise UsageError(f"the interval must be whole minutes from 1m to 60m, not {every_seconds!r} s")
    return [{"Minute": m} for m in range(0, 60, minutes)]


def render_plist(argv: Sequence[str], every_seconds: int, env: Mapping[str, str], log: Path) -> bytes:
    """The LaunchAgent's XML plist: the refresh command, its schedule, PATH and the carried variables."""
    if not argv or not os.path.isabs(argv[0]):
        raise UsageError(f"the pgiam command for the timer must start with an absolute path, not {list(argv)!r}",
                         "run pgiam through its absolute path")
    doc: dict[str, Any] = {
        "Label": LABEL,
        "ProgramArguments": list(argv),
        "StartCalendarInterval": calendar(every_seconds),
        "RunAtLoad": True,  # refresh at once when loaded (install, login), not only at the next slot
        "EnvironmentVariables": dict(env),
        "StandardErrorPath": str(log),
    }
    try:
        xml = plistlib.dumps(doc, fmt=plistlib.FMT_XML, sort_keys=False)
    except ValueError as err:  # XML 1.0 cannot hold control characters
        raise UsageError(f"cannot write the LaunchAgent: {err}",
                         "remove control characters from pgiam's path and the carried variables") from None
    head, sep, rest = xml.partition(b"<plist ")
    return head + BANNER.encode() + sep + rest


@dataclass(frozen=True)
class Agent:
    """What a LaunchAgent plist says, as far as pgiam cares."""

    label: str
    argv: tuple[str, ...]
    minutes: tuple[int, ...]
    run_at_load: bool
    env: dict[str, str]
    stderr_path: str | None

    @property
    def every(self) -> int | None:
        """The interval in seconds when the minutes are evenly spaced from 0 (as pgiam writes them)."""
        if not self.minutes or self.minutes[0] != 0:
            return None
        step = 60 if len(self.minutes) == 1 else self.minutes[1] - self.minutes[0]
        return step * 60 if list(self.minutes) == list(range(0, 60, step)) else None


def parse_plist(data: bytes) -> Agent:
    """Read a LaunchAgent plist; a file that is not one pgiam could have written is a UsageError."""
    try:
        doc = plistlib.loads(data)
    except Exception as err:  # plistlib raises InvalidFileException, ExpatError, ValueError...
        raise UsageError(f"not a property list: {err}") from None
    if not isinstance(doc, dict):
        raise UsageError("the property list is not a dictionary")
    cal = doc.get("StartCalendarInterval", [])
    cal = [cal] if isinstance(cal, dict) else cal
    minutes = tuple(int(c["Minute"]) for c in cal if isinstance(c, dict) and "Minute" in c)
    env = doc.get("EnvironmentVariables") or {}
    return Agent(label=str(doc.get("Label", "")), argv=tuple(str(a) for a in doc.get("ProgramArguments", [])),
                 minutes=minutes, run_at_load=bool(doc.get("RunAtLoad", False)),
                 env={str(k): str(v) for k, v in env.items()},
                 stderr_path=str(doc["StandardErrorPath"]) if "StandardErrorPath" in doc else None)


# ---------------------------------------------------------------- launchctl


def available() -> bool:
    return shutil.which("launchctl") is not None


def _launchctl(*args: str) -> subprocess.CompletedProcess[bytes] | None:
    """Run `launchctl ARGS`; None when there is no launchctl or it does not answer in time."""
    program = shutil.which("launchctl")
    if program is None:
        return None
    try:
        return subprocess.run([program, *args], capture_output=True, stdin=subprocess.DEVNULL, timeout=TIMEOUT)
    except (subprocess.TimeoutExpired, OSError):
        return None


def _said(proc: subprocess.CompletedProcess[bytes] | None) -> str:
    if proc is None:
        return "did not run (no launchctl on PATH, or it hung)"
    return proc.stderr.decode("utf-8", "replace").strip() or proc.stdout.decode("utf-8", "replace").strip() \
        or f"exit {proc.returncode}"


def domains(uid: int) -> tuple[str, str]:
    return f"gui/{uid}", f"user/{uid}"


def domain(uid: int) -> str:
    """`gui/UID` when the login session's domain exists, else `user/UID` (an SSH session)."""
    gui, user = domains(uid)
    proc = _launchctl("print", gui)
    return gui if proc is not None and proc.returncode == 0 else user


def loaded_in(uid: int) -> str | None:
    """The domain the agent is loaded in, or None."""
    for d in domains(uid):
        proc = _launchctl("print", f"{d}/{LABEL}")
        if proc is not None and proc.returncode == 0:
            return d
    return None


def load(plist: Path, uid: int) -> str:
    """(Re)load the agent from `plist`; returns the domain. An agent already loaded is booted out first."""
    current = loaded_in(uid)
    if current is not None:
        _launchctl("bootout", f"{current}/{LABEL}")  # bootstrap refuses a label that is already loaded
    target = domain(uid)
    proc = _launchctl("bootstrap", target, str(plist))
    if proc is None or proc.returncode != 0:
        raise EnvironmentProblem(f"`launchctl bootstrap {target} {plist}` failed: {_said(proc)}",
                                 "check `launchctl print " + target + "`; the plist is written, "
                                 "`pgiam timer remove` deletes it")
    return target


def unload(uid: int) -> list[str]:
    """Boot the agent out of every domain it is loaded in; returns notes for what failed."""
    notes: list[str] = []
    for d in domains(uid):
        proc = _launchctl("print", f"{d}/{LABEL}")
        if proc is None or proc.returncode != 0:
            continue
        out = _launchctl("bootout", f"{d}/{LABEL}")
        if out is None or out.returncode != 0:
            notes.append(f"`launchctl bootout {d}/{LABEL}` failed: {_said(out)}")
    return notes
