"""The periodic refresh: a systemd user timer, one marked crontab line, or a macOS LaunchAgent.

Rendering and the crontab merges are pure; install/remove/status talk to `systemctl --user`,
`crontab` (never cron's own files) and `launchctl` (pgiam.launchd). No secret is ever written to
a unit, a crontab, a plist or a child's argv: only PATH and path variables are carried over. The
AWS profile is not carried: each service records the profile it signs with in pgiam's config.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pgiam import freshness, launchd
from pgiam.config import DEFAULT_MARGIN
from pgiam.errors import EnvironmentProblem, FileError, UsageError
from pgiam.facts import REFRESH_ARGS as REFRESH_ARGS
from pgiam.fileio import atomic_write, ensure_private_dir
from pgiam.paths import Paths

SERVICE = "pgiam-refresh.service"
TIMER = "pgiam-refresh.timer"
METHODS = ("systemd", "cron", "launchd")
# Variables that decide which files pgiam and libpq use: the timer must write the files the
# user's shell reads. Never credentials (AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN...), and no
# longer AWS_PROFILE: the profile a service signs with is recorded in pgiam's config at `add`,
# so a timer signs with the same identity whatever the installing shell had set.
ENV_VARS = (
    "PGPASSFILE",
    "PGSERVICEFILE",
    "XDG_CONFIG_HOME",
    "XDG_STATE_HOME",
    "XDG_DATA_HOME",
    "AWS_CONFIG_FILE",
    "AWS_SHARED_CREDENTIALS_FILE",
)
# botocore expands `~` in these two (botocore.configloader); libpq expands nothing (PGPASSFILE...).
TILDE_OK = ("AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE")
CRON_MARKER = "# pgiam: managed"
CRON_COMMENT = CRON_MARKER + "; remove with pgiam timer remove"
MIN_EVERY, MAX_EVERY = 60, 3600
# How late a run may put its new token in the file, after the time it was scheduled for: the
# scheduler's start delay plus the refresh itself (its credential calls are bounded to about 15 s).
# Start delay: systemd.timer(5) lets a timer fire up to AccuracySec= late (written below as 15 s;
# the default is a minute); cron(8) wakes every minute and starts the matching jobs then; launchd.plist(5)
# starts StartCalendarInterval jobs at the calendar time (later only after sleep, covered by the
# catch-up run at wake). See max_every(): --every may not exceed the renewal margin minus ACCURACY.
# A suspended machine is outside this rule: systemd and launchd catch up at wake, cron does not
# (the prompt hook covers that gap).
START_DELAY = 15
REFRESH_TIME = 15
ACCURACY = START_DELAY + REFRESH_TIME
PROBE_TIMEOUT = 3.0  # seconds: an unreachable user bus can hang systemctl; the default must be quick
COMMAND_TIMEOUT = 30.0

_UNITS = {"s": 1, "sec": 1, "secs": 1, "second": 1, "seconds": 1,
          "m": 60, "min": 60, "mins": 60, "minute": 60, "minutes": 60,
          "h": 3600, "hour": 3600, "hours": 3600}
_EVERY_RE = re.compile(r"\s*(\d+)\s*([a-z]+)\s*")


@dataclass(frozen=True)
class TimerResult:
    """What install() did: the method, the schedule, the files written, whether it is running."""

    method: str
    every: int
    enabled: bool
    files: tuple[Path, ...] = ()
    cron_line: str | None = None
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class RemoveResult:
    """What remove() took away (human-readable items) and anything worth telling the user."""

    removed: tuple[str, ...] = ()
    notes: tuple[str, ...] = field(default_factory=tuple)


# ---------------------------------------------------------------- schedule


def margin_window(margin: int) -> int:
    """Seconds between a full-life token becoming due and its expiry, by the freshness rule."""
    due = freshness.due_at(0.0, float(freshness.TOKEN_LIFETIME), margin)
    return int(freshness.TOKEN_LIFETIME - due)


def max_every(margin: int) -> int:
    """The longest interval (whole minutes, at most 60m; 0 when none) that never lets a token expire.

    A run finds a token not yet due; the next run may start up to `every + START_DELAY` later and
    its token lands REFRESH_TIME after that, while the old token lives `margin_window(margin)`
    past its due time. So every + ACCURACY <= margin_window(margin). Proved against
    freshness.due_at by tests/unit/test_timer.py (simulated schedules).
    """
    limit = margin_window(margin) - ACCURACY
    return max(0, min(MAX_EVERY, limit // 60 * 60))


def check_every(every_seconds: int, margin: int) -> None:
    """Refuse an interval that can let a token expire between two runs, naming the limit."""
    _minutes(every_seconds)
    window = margin_window(margin)
    longest = max_every(margin)
    if longest < MIN_EVERY:
        raise UsageError(
            f"renewal_margin {margin} s is too short for any timer: a token is due {window} s before it expires, "
            f"and a run may land its token up to {ACCURACY} s after its scheduled time",
            f"raise renewal_margin to at least {MIN_EVERY + ACCURACY} s in the [defaults] of pgiam's config, "
            "or use the prompt hook (`pgiam hook SHELL`)")
    if every_seconds > longest:
        raise UsageError(
            f"--every {every_seconds // 60}m could let tokens expire: with renewal_margin {margin} s a token is due "
            f"{window} s before it expires, and a run may land its token up to {ACCURACY} s late, so runs may be at "
            f"most {window - ACCURACY} s apart",
            f"use --every {longest // 60}m or less (the default), or raise renewal_margin in pgiam's config")


def parse_every(text: str) -> int:
    """'5m', '90s', '1h' -> seconds; whole minutes from 1m to 60m, anything else is a UsageError."""
    hint = "give a whole number of minutes from 1m to 60m, e.g. --every 5m"
    match = _EVERY_RE.fullmatch(text.lower())
    if not match or match.group(2) not in _UNITS:
        raise UsageError(f"cannot read the interval {text!r}", hint)
    seconds = int(match.group(1)) * _UNITS[match.group(2)]
    # Refuse rather than round: both schedulers fire on minute boundaries, and a silently
    # changed interval would surprise whoever picked it.
    if seconds % 60:
        raise UsageError(f"the interval {text!r} is not a whole number of minutes; "
                         "systemd calendar timers and cron fire on minute boundaries", hint)
    if not MIN_EVERY <= seconds <= MAX_EVERY:
        raise UsageError(f"the interval {text!r} is outside 1m..60m", hint)
    return seconds


def _minutes(every_seconds: int) -> int:
    if isinstance(every_seconds, bool) or not isinstance(every_seconds, int) or every_seconds % 60 \
            or not MIN_EVERY <= every_seconds <= MAX_EVERY:
        raise UsageError(f"the interval must be whole minutes from 1m to 60m, not {every_seconds!r} s")
    return every_seconds // 60


def on_calendar(every_seconds: int) -> str:
    """systemd OnCalendar= for the interval: `*:0/M` (every M minutes from the hour), or hourly."""
    # Like cron's */M, the repetition restarts at each full hour: an M that does not divide 60
    # leaves one shorter gap per hour, which only refreshes a little early.
    minutes = _minutes(every_seconds)
    return "*:00" if minutes == 60 else f"*:0/{minutes}"


def cron_schedule(every_seconds: int) -> str:
    """The five cron time fields for the interval."""
    minutes = _minutes(every_seconds)
    if minutes == 60:
        return "0 * * * *"
    return "* * * * *" if minutes == 1 else f"*/{minutes} * * * *"


def _check_exe(exe: Sequence[str]) -> None:
    if not exe or not os.path.isabs(exe[0]):
        raise UsageError(f"the pgiam command for the timer must start with an absolute path, not {list(exe)!r}",
                         "run pgiam through its absolute path")
    if any("\n" in w or "\r" in w or "\0" in w for w in exe):
        raise UsageError("the pgiam command contains a line break; a unit or crontab line cannot hold it")


def clean_path(value: str) -> str:
    """PATH without empty and relative entries (they name the installing shell's working directory,
    not one the timer runs in) and without repeats, order kept."""
    seen: list[str] = []
    for entry in value.split(os.pathsep):
        if entry and os.path.isabs(entry) and entry not in seen:
            seen.append(entry)
    return os.pathsep.join(seen)


def check_env(env: Mapping[str, str]) -> None:
    """Refuse a relative path in a carried variable: the timer runs elsewhere and would use other files."""
    for name in ENV_VARS:
        value = env.get(name)
        if not value:
            continue
        shown = value if name not in TILDE_OK else os.path.expanduser(value)
        if not os.path.isabs(shown):
            raise UsageError(
                f"{name}={value!r} is a relative path: a timer runs in another directory, so it would "
                "read and write other files than this shell",
                f'set it to an absolute path (export {name}="$PWD/{value}") and install again, or unset it')


def carried_env(env: Mapping[str, str]) -> dict[str, str]:
    """PATH (cleaned, first) and the ENV_VARS that are set and non-empty in `env`, in ENV_VARS order.

    PATH lets a credential_process or SSO helper named without a directory run from the timer as it
    runs from the shell (cron's default PATH is /usr/bin:/bin; launchd reads no shell rc file).
    """
    check_env(env)
    carried: dict[str, str] = {}
    path = clean_path(env.get("PATH", ""))
    if path:
        carried["PATH"] = path
    carried.update({name: env[name] for name in ENV_VARS if env.get(name)})
    return carried


# ---------------------------------------------------------------- systemd


def _systemd_escape(value: str) -> str:
    """Escape for inside a double-quoted systemd word: C escapes, and % specifiers as %%."""
    out = value.replace("\\", "\\\\").replace('"', '\\"').replace("%", "%%")
    return out.replace("\n", "\\n").replace("\r", "\\r").replace("\t", "\\t")


def systemd_exec_word(word: str, *, executable: bool = False) -> str:
    """One ExecStart= word, quoted; in arguments $ is doubled so systemd does not expand variables."""
    # systemd expands $VAR in the arguments but not in the executable's path, where $$ would stay
    # literal (tested with systemd-analyze verify, systemd 252); specifiers (%) apply to both.
    escaped = _systemd_escape(word)
    return '"' + (escaped if executable else escaped.replace("$", "$$")) + '"'


def render_units(exe: list[str], every_seconds: int, env: Mapping[str, str]) -> dict[str, str]:
    """The texts of pgiam-refresh.service and pgiam-refresh.timer."""
    _check_exe(exe)
    # systemd refuses an executable path holding a quote, a backslash or a control character
    # ("Executable name contains special characters", systemd 252), however it is escaped.
    if any(c in exe[0] for c in "'\"\\") or any(ord(c) < 32 or ord(c) == 127 for c in exe[0]):
        raise UsageError(f"systemd cannot run a program whose path contains quotes or backslashes: {exe[0]}",
                         "make a symlink to pgiam at a plain path and run pgiam through it, "
                         "or use `pgiam timer install --cron`")
    banner = ("# Managed by pgiam: `pgiam timer install` rewrites this file, `pgiam timer remove` deletes it\n"
              "# (with its timer and the cron line, if any). Edits here are lost at the next install.\n")
    exec_start = " ".join([systemd_exec_word(exe[0], executable=True)]
                          + [systemd_exec_word(w) for w in exe[1:]] + list(REFRESH_ARGS))
    # Environment= does not expand $, so only specifiers and quotes need escaping.
    env_lines = "".join(f'Environment="{_systemd_escape(k)}={_systemd_escape(v)}"\n'
                        for k, v in carried_env(env).items())
    service = (
        f"{banner}"
        "[Unit]\n"
        "Description=Refresh RDS IAM tokens in ~/.pgpass (pgiam)\n"
        "\n"
        "[Service]\n"
        "Type=oneshot\n"
        f"{env_lines}"
        f"ExecStart={exec_start}\n"
    )
    timer = (
        f"{banner}"
        "[Unit]\n"
        "Description=Refresh RDS IAM tokens in ~/.pgpass every "
        f"{every_seconds // 60} min (pgiam)\n"
        "\n"
        "[Timer]\n"
        f"OnCalendar={on_calendar(every_seconds)}\n"
        # A calendar timer with Persistent= runs at once after a suspend or shutdown that
        # swallowed a run (OnUnitActiveSec= timers do not catch up).
        "Persistent=true\n"
        # The default accuracy is one minute; max_every() counts on START_DELAY.
        f"AccuracySec={START_DELAY}s\n"
        f"Unit={SERVICE}\n"
        "\n"
        "[Install]\n"
        "WantedBy=timers.target\n"
    )
    return {SERVICE: service, TIMER: timer}


def _run(argv: list[str], *, timeout: float, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes] | None:
    """Run a helper program; None when it is not installed or does not answer in time."""
    program = shutil.which(argv[0])
    if program is None:
        return None
    try:
        return subprocess.run([program, *argv[1:]], input=stdin, capture_output=True, timeout=timeout,
                              stdin=None if stdin is not None else subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        return None
    except OSError:
        return None


def _text(raw: bytes) -> str:
    return raw.decode("utf-8", "replace").strip()


def systemd_reachable() -> bool:
    """True when a systemd user manager answers `systemctl --user show-environment` quickly."""
    # show-environment succeeds whenever the manager answers; is-system-running exits non-zero
    # on a merely "degraded" manager, which still runs timers fine.
    proc = _run(["systemctl", "--user", "show-environment"], timeout=PROBE_TIMEOUT)
    return proc is not None and proc.returncode == 0


def _systemctl(*args: str) -> None:
    """Run `systemctl --user ARGS`; a failure is an EnvironmentProblem quoting systemctl."""
    proc = _run(["systemctl", "--user", *args], timeout=COMMAND_TIMEOUT)
    if proc is None:
        raise EnvironmentProblem(f"`systemctl --user {' '.join(args)}` did not run (missing or timed out)",
                                 "check `systemctl --user status`, or use `pgiam timer install --cron`")
    if proc.returncode != 0:
        raise EnvironmentProblem(f"`systemctl --user {' '.join(args)}` failed: {_text(proc.stderr) or proc.returncode}",
                                 "check `systemctl --user status`, or use `pgiam timer install --cron`")


def _no_manager() -> EnvironmentProblem:
    return EnvironmentProblem(
        "no systemd user manager is reachable (`systemctl --user` cannot connect: a container, or an SSH "
        "session of a user without lingering)",
        "run `loginctl enable-linger $USER` and log in again, or use `pgiam timer install --cron`; "
        "`--no-enable` writes the unit files without starting them",
    )


def _unit_paths(paths: Paths) -> list[Path]:
    return [paths.systemd_user_dir / SERVICE, paths.systemd_user_dir / TIMER]


def _wants_link(paths: Paths) -> Path:
    return paths.systemd_user_dir / "timers.target.wants" / TIMER


def _remove_units(paths: Paths) -> RemoveResult:
    present = [p for p in _unit_paths(paths) if p.exists()]
    link = _wants_link(paths)
    if not present and not link.is_symlink():
        return RemoveResult()
    notes: list[str] = []
    reachable = systemd_reachable()
    if reachable:
        proc = _run(["systemctl", "--user", "disable", "--now", TIMER], timeout=COMMAND_TIMEOUT)
        if proc is None or proc.returncode != 0:
            notes.append(f"`systemctl --user disable --now {TIMER}` failed: "
                         f"{_text(proc.stderr) if proc else 'did not run'}")
    removed: list[str] = []
    # Without a manager `disable` cannot run: drop the enablement symlink it would have removed.
    for path in [*present, *([link] if link.is_symlink() else [])]:
        try:
            path.unlink()
        except FileNotFoundError:
            continue
        except OSError as err:
            raise FileError(f"cannot remove {path}: {err.strerror}", f"remove {path} by hand") from None
        removed.append(str(path))
    if reachable:
        _systemctl("daemon-reload")
    else:
        notes.append("no systemd user manager is reachable: the unit files are gone, "
                     "a running manager forgets the timer at its next daemon-reload")
    return RemoveResult(tuple(removed), tuple(notes))


# ---------------------------------------------------------------- cron


def _sh_quote(word: str) -> str:
    return "'" + word.replace("'", "'\\''") + "'"


def render_cron_line(exe: list[str], every_seconds: int, env: Mapping[str, str]) -> str:
    """One crontab line (no newline): schedule, path variables, absolute pgiam, the marker."""
    _check_exe(exe)
    carried = carried_env(env)
    for name, value in carried.items():
        if "\n" in value or "\r" in value:
            raise UsageError(f"{name} contains a line break; a crontab line cannot hold it")
    # cron runs the command with /bin/sh and a minimal environment: absolute program, the path
    # variables as assignments, single-quoted. No output redirection: --quiet prints only failures,
    # which cron mails.
    words = [f"{k}={_sh_quote(v)}" for k, v in carried.items()]
    words += [_sh_quote(w) for w in exe] + list(REFRESH_ARGS)
    # cron turns an unescaped % into a newline (even inside quotes) and drops the backslash of \%.
    command = " ".join(words).replace("%", "\\%")
    # After the command the marker is a shell comment: sh ignores it, strip_crontab finds it.
    return f"{cron_schedule(every_seconds)} {command} {CRON_COMMENT}"


def _is_ours(line: str) -> bool:
    return CRON_MARKER in line


def _split(text: str) -> list[str]:
    """Lines with their '\\n' kept; only '\\n' separates lines in a crontab (a '\\r' stays in its line)."""
    parts = text.split("\n")
    lines = [p + "\n" for p in parts[:-1]]
    if parts[-1]:
        lines.append(parts[-1])  # an unterminated last line
    return lines


def merge_crontab(text: str, line: str) -> str:
    """`text` with pgiam's one line set to `line`; every other byte kept, in order."""
    entry = line.rstrip("\n") + "\n"
    lines = _split(text)
    out: list[str] = []
    placed = False
    for existing in lines:
        if _is_ours(existing):
            if not placed:
                out.append(entry)  # replaced where it was, so its place among MAILTO= etc. stays
                placed = True
            continue
        out.append(existing)
    if not placed:
        if out and not out[-1].endswith("\n"):
            # An unterminated last line is kept byte for byte (cron would ignore it anyway);
            # ours goes before it so it ends with the newline cron requires.
            out.insert(len(out) - 1, entry)
        else:
            out.append(entry)
    return "".join(out)


def strip_crontab(text: str) -> str:
    """`text` without pgiam's line(s); every other byte kept, in order."""
    return "".join(line for line in _split(text) if not _is_ours(line))


def _decode(raw: bytes) -> str:
    # surrogateescape: a crontab in another encoding goes back to crontab byte for byte.
    return raw.decode("utf-8", "surrogateescape")


def crontab_available() -> bool:
    """True when a `crontab` program is on PATH."""
    return shutil.which("crontab") is not None


def load_crontab() -> str:
    """The user's crontab through `crontab -l`; '' when there is none."""
    proc = _run(["crontab", "-l"], timeout=COMMAND_TIMEOUT)
    if proc is None:
        raise EnvironmentProblem("`crontab -l` did not run: no crontab program on PATH, or it hung",
                                 "install cron (e.g. apt-get install cron), or use a systemd user timer")
    if proc.returncode == 0:
        return _decode(proc.stdout)
    # "no crontab for USER" (exit 1, nothing on stdout) means an empty table, not an error.
    if not proc.stdout and (proc.returncode == 1 or b"no crontab" in proc.stderr.lower()):
        return ""
    raise EnvironmentProblem(f"`crontab -l` failed: {_text(proc.stderr) or proc.returncode}",
                             "check that you may use cron (/etc/cron.allow, /etc/cron.deny)")


def save_crontab(text: str) -> None:
    """Install `text` as the user's crontab through `crontab -` (the table on stdin)."""
    proc = _run(["crontab", "-"], timeout=COMMAND_TIMEOUT, stdin=text.encode("utf-8", "surrogateescape"))
    if proc is None:
        raise EnvironmentProblem("`crontab -` did not run: no crontab program on PATH, or it hung",
                                 "install cron (e.g. apt-get install cron), or use a systemd user timer")
    if proc.returncode != 0:
        raise EnvironmentProblem(f"crontab refused the new table: {_text(proc.stderr) or proc.returncode}",
                                 "check `crontab -l`; pgiam changed nothing")


def drop_crontab() -> None:
    """Remove the user's crontab through `crontab -r`; none there already is fine."""
    proc = _run(["crontab", "-r"], timeout=COMMAND_TIMEOUT)
    if proc is None:
        raise EnvironmentProblem("`crontab -r` did not run: no crontab program on PATH, or it hung",
                                 "install cron (e.g. apt-get install cron), or use a systemd user timer")
    if proc.returncode != 0 and b"no crontab" not in proc.stderr.lower():
        raise EnvironmentProblem(f"crontab did not remove the table: {_text(proc.stderr) or proc.returncode}",
                                 "check `crontab -l`, and remove pgiam's line with `crontab -e`")


def _remove_cron() -> RemoveResult:
    current = load_crontab()
    stripped = strip_crontab(current)
    if stripped == current:
        return RemoveResult()
    if stripped:
        save_crontab(stripped)
    else:
        # The table held only pgiam's line: `timer install --cron` created it, so no table is what was
        # there before (`crontab -` with nothing would leave an empty one behind).
        drop_crontab()
    return RemoveResult(("crontab line",))


# ---------------------------------------------------------------- launchd


def _remove_launchd(paths: Paths, uid: int) -> RemoveResult:
    plist = launchd.plist_path(paths)
    notes = launchd.unload(uid) if launchd.available() else []
    if not plist.exists():
        return RemoveResult((), tuple(notes))
    if not launchd.available():
        notes.append("no launchctl on PATH: the plist is gone, a running launchd forgets the agent at the next login")
    try:
        plist.unlink()
    except FileNotFoundError:
        return RemoveResult((), tuple(notes))
    except OSError as err:
        raise FileError(f"cannot remove {plist}: {err.strerror}", f"remove {plist} by hand") from None
    return RemoveResult((str(plist),), tuple(notes))


# ---------------------------------------------------------------- commands


def default_method(platform: str, systemd_ok: bool) -> str:
    """launchd on macOS; elsewhere systemd when a user manager answers, else cron."""
    if platform == "darwin":
        return "launchd"
    return "systemd" if systemd_ok else "cron"


def _remove_others(paths: Paths, keep: str, uid: int) -> list[str]:
    """One scheduler is enough: an earlier install of another kind would refresh twice as often."""
    notes: list[str] = []
    if keep != "systemd" and (any(p.exists() for p in _unit_paths(paths)) or _wants_link(paths).is_symlink()):
        notes.extend(_remove_units(paths).notes)
        notes.append("removed the earlier pgiam systemd timer")
    if keep != "cron" and crontab_available():
        with contextlib.suppress(EnvironmentProblem):
            if _remove_cron().removed:
                notes.append("removed the earlier pgiam crontab line")
    if keep != "launchd" and launchd.plist_path(paths).exists():
        result = _remove_launchd(paths, uid)
        notes.extend(result.notes)
        notes.append("removed the earlier pgiam LaunchAgent")
    return notes


def install(paths: Paths, *, method: str | None, every: int | None, enable: bool, exe: list[str],
            env: Mapping[str, str], margin: int = DEFAULT_MARGIN, platform: str = sys.platform,
            uid: int | None = None) -> TimerResult:
    """Install the periodic refresh (launchd on macOS, else systemd when reachable, else cron) and
    remove any other kind. `every` None: the longest interval `margin` allows (max_every)."""
    if method not in (None, *METHODS):
        raise UsageError(f"unknown timer method {method!r}", "use --systemd, --cron or --launchd")
    _check_exe(exe)
    every = max_every(margin) if every is None else every
    check_every(every, margin)
    carried = carried_env(env)  # refuses relative path variables before anything is written
    uid = os.getuid() if uid is None else uid
    # Probe only when systemd may be used: an unreachable bus can take PROBE_TIMEOUT to answer.
    reachable = method == "systemd" or (method is None and platform != "darwin")
    reachable = reachable and systemd_reachable()
    chosen = method or default_method(platform, reachable)
    if method is None and chosen == "cron" and enable and not crontab_available():
        raise EnvironmentProblem(
            "no systemd user manager is reachable and there is no crontab command: nothing can run the timer",
            "run `loginctl enable-linger $USER` and log in again (systemd), or install cron "
            "(apt-get install cron); the prompt hook (`pgiam hook SHELL`) works without either",
        )
    notes: list[str] = []
    if chosen == "launchd":
        if enable and not launchd.available():
            raise EnvironmentProblem("there is no launchctl command: a LaunchAgent needs macOS's launchd",
                                     "use --systemd or --cron here, or --no-enable to only write the plist")
        plist = launchd.plist_path(paths)
        data = launchd.render_plist([*exe, *REFRESH_ARGS], every, carried, launchd.log_path(paths))
        ensure_private_dir(paths.state_dir, scope=paths.scope)  # launchd creates the log file, not its directory
        plist.parent.mkdir(parents=True, exist_ok=True)
        written: tuple[Path, ...] = (atomic_write(plist, data, mode=0o644, scope=paths.scope),)
        if enable:
            where = launchd.load(plist, uid)
            notes.append(f"loaded into launchd's {where} domain")
        else:
            notes.append(f"not loaded: run `launchctl bootstrap gui/{uid} {plist}`")
        notes.extend(_remove_others(paths, "launchd", uid))
        return TimerResult("launchd", every, enable, written, None, tuple(notes))
    if chosen == "systemd":
        if not reachable and enable:
            raise _no_manager()
        units = render_units(exe, every, carried)
        ensure_private_dir(paths.systemd_user_dir, scope=paths.scope)
        written = tuple(atomic_write(paths.systemd_user_dir / name, text.encode(), mode=0o644, scope=paths.scope)
                        for name, text in units.items())
        if enable:
            _systemctl("daemon-reload")
            _systemctl("enable", "--now", TIMER)
        else:
            notes.append(f"not enabled: run `systemctl --user daemon-reload && systemctl --user enable --now {TIMER}`")
        notes.extend(_remove_others(paths, "systemd", uid))
        return TimerResult("systemd", every, enable, written, None, tuple(notes))
    line = render_cron_line(exe, every, carried)
    if not enable:
        notes.append("not installed (--no-enable): add the line with `crontab -e` to run it")
        return TimerResult("cron", every, False, (), line, tuple(notes))
    current = load_crontab()
    merged = merge_crontab(current, line)
    if merged != current:
        save_crontab(merged)
    notes.extend(_remove_others(paths, "cron", uid))
    notes.append("cron does not catch up after a suspend; the prompt hook (`pgiam hook`) covers the gap")
    return TimerResult("cron", every, True, (), line, tuple(notes))


def remove(paths: Paths, method: str | None = None, uid: int | None = None) -> RemoveResult:
    """Remove what install() set up: every kind unless `method` names one."""
    if method not in (None, *METHODS):
        raise UsageError(f"unknown timer method {method!r}", "use --systemd, --cron or --launchd")
    uid = os.getuid() if uid is None else uid
    removed: list[str] = []
    notes: list[str] = []
    if method in (None, "systemd"):
        result = _remove_units(paths)
        removed += result.removed
        notes += result.notes
    # Without a crontab program there is no pgiam line to remove, unless cron was asked for.
    if method == "cron" or (method is None and crontab_available()):
        removed += _remove_cron().removed
    if method in (None, "launchd"):
        result = _remove_launchd(paths, uid)
        removed += result.removed
        notes += result.notes
    return RemoveResult(tuple(removed), tuple(notes))


# ---------------------------------------------------------------- status


@dataclass(frozen=True)
class SystemdStatus:
    units: dict[str, bool]  # unit file name -> present
    manager_reachable: bool
    enabled: str | None  # `systemctl --user is-enabled` answer; None when the manager is not reachable
    active: str | None


@dataclass(frozen=True)
class CronStatus:
    available: bool  # a crontab program is on PATH
    line: str | None  # pgiam's line, without its newline
    error: str | None = None  # why the crontab could not be read


@dataclass(frozen=True)
class LaunchdStatus:
    plist: str  # where pgiam's LaunchAgent lives
    installed: bool  # the plist exists
    launchctl: bool  # a launchctl program is on PATH
    loaded: str | None  # the domain it is loaded in (gui/UID, user/UID), None when not loaded or unknown
    every: int | None  # the plist's interval in seconds
    error: str | None = None  # why the plist could not be read


@dataclass(frozen=True)
class TimerStatus:
    """`pgiam timer status`: every kind of timer pgiam may have installed."""

    systemd: SystemdStatus
    cron: CronStatus
    launchd: LaunchdStatus

    def to_json(self) -> dict[str, Any]:
        from dataclasses import asdict

        from pgiam.reports import envelope

        return envelope("timer status", timer={"systemd": asdict(self.systemd), "cron": asdict(self.cron),
                                               "launchd": asdict(self.launchd)})


def _launchd_status(paths: Paths, uid: int) -> LaunchdStatus:
    plist = launchd.plist_path(paths)
    has_launchctl = launchd.available()
    loaded = launchd.loaded_in(uid) if has_launchctl else None
    every: int | None = None
    error: str | None = None
    installed = plist.exists()
    if installed:
        try:
            every = launchd.parse_plist(plist.read_bytes()).every
        except UsageError as err:
            error = f"{plist}: {err.message}"
        except OSError as err:
            error = f"cannot read {plist}: {err.strerror}"
    return LaunchdStatus(str(plist), installed, has_launchctl, loaded, every, error)


def status(paths: Paths, uid: int | None = None) -> TimerStatus:
    """What is installed: unit files and their systemctl state, the crontab line, the LaunchAgent."""
    uid = os.getuid() if uid is None else uid
    units = {name: (paths.systemd_user_dir / name).exists() for name in (SERVICE, TIMER)}
    reachable = systemd_reachable()
    enabled = active = None
    if reachable:
        for query in ("is-enabled", "is-active"):
            proc = _run(["systemctl", "--user", query, TIMER], timeout=PROBE_TIMEOUT)
            answer = _text(proc.stdout) if proc is not None else None
            if query == "is-enabled":
                enabled = answer or None
            else:
                active = answer or None
    available = crontab_available()
    line: str | None = None
    error: str | None = None
    if available:
        try:
            line = next((ln.rstrip("\n") for ln in _split(load_crontab()) if _is_ours(ln)), None)
        except EnvironmentProblem as err:
            error = err.message
    return TimerStatus(SystemdStatus(units, reachable, enabled, active), CronStatus(available, line, error),
                       _launchd_status(paths, uid))
