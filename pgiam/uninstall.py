"""`pgiam uninstall`: undo everything pgiam wrote, in an order that leaves nothing half-done behind.

1. timers of every kind (systemd units, the crontab line, the LaunchAgent), so none refreshes meanwhile;
2. the sandbox, if one runs (its cluster may live outside the state directory);
3. under pgiam's lock: pgiam's marked blocks in ~/.pgpass and ~/.pg_service.conf (everything else in
   them kept byte for byte; the files themselves stay, as they may predate pgiam), and the config;
4. pgiam's own directories (config, state, data).
Shell startup files are never edited: pgiam did not write the `eval "$(pgiam hook …)"` line, so the
plan names where it is for the user to delete.
"""

from __future__ import annotations

import os
import re
import shutil
import stat
from dataclasses import dataclass, field
from pathlib import Path

from pgiam import block, pgpass, servicefile
from pgiam.errors import FileError
from pgiam.fileio import atomic_write, locked, read_bytes, resolve_target
from pgiam.paths import APP, Paths

_HOOK = re.compile(r"pgiam\s+hook\b")


@dataclass(frozen=True)
class Plan:
    """What `pgiam uninstall` would remove (or left for the user)."""

    timers: tuple[str, ...]  # e.g. "systemd user timer (…/pgiam-refresh.timer)"
    sandbox: bool  # a sandbox directory exists
    libpq: tuple[Path, ...]  # libpq files holding a pgiam block
    directories: tuple[Path, ...]  # pgiam's own directories that exist
    hook_lines: tuple[str, ...]  # "FILE:LINE: text" of prompt-hook lines, which the user removes

    @property
    def empty(self) -> bool:
        return not (self.timers or self.sandbox or self.libpq or self.directories)


@dataclass(frozen=True)
class Result:
    removed: tuple[str, ...] = ()
    notes: tuple[str, ...] = field(default_factory=tuple)


def _own_dirs(paths: Paths) -> list[Path]:
    # Only directories named after pgiam (platformdirs' app directories): never a parent by mistake.
    # On macOS platformdirs gives one directory for all three (~/Library/Application Support/pgiam).
    # A config named by PGIAM_CONFIG (a ConfigMap, /etc/pgiam) is the operator's: neither it nor its
    # directory is pgiam's to delete.
    dirs = dict.fromkeys([*([paths.config_dir] if paths.own_config_dir else []), paths.state_dir, paths.data_dir])
    return [d for d in dirs if d.name == APP]


def _hook_lines(paths: Paths) -> list[str]:
    config_home = Path(os.environ.get("XDG_CONFIG_HOME") or paths.home / ".config")
    found: list[str] = []
    for rc in (paths.home / ".bashrc", paths.home / ".bash_profile", paths.home / ".profile", paths.home / ".zshrc",
               config_home / "fish" / "config.fish"):
        try:
            text = rc.read_text(errors="replace")
        except OSError:
            continue
        for n, line in enumerate(text.splitlines(), 1):
            if _HOOK.search(line) and not line.lstrip().startswith("#"):
                found.append(f"{rc}:{n}: {line.strip()}")
    return found


def plan(paths: Paths) -> Plan:
    """Look, change nothing."""
    from pgiam import launchd, timer

    st = timer.status(paths)
    timers: list[str] = []
    if any(st.systemd.units.values()):
        timers.append(f"systemd user timer ({paths.systemd_user_dir / timer.TIMER})")
    if st.cron.line:
        timers.append("crontab line")
    if st.launchd.installed or st.launchd.loaded:
        timers.append(f"LaunchAgent ({launchd.plist_path(paths)})")
    libpq = tuple(p for p in (paths.pgpass, paths.service_file) if _changes(paths, p) is not None)
    return Plan(tuple(timers), paths.sandbox_dir.is_dir(), libpq,
                tuple(d for d in _own_dirs(paths) if d.is_dir()), tuple(_hook_lines(paths)))


def _changes(paths: Paths, path: Path) -> tuple[bytes, bytes] | None:
    data = read_bytes(path)
    if data is None:
        return None
    text = data.decode("utf-8", "surrogateescape")
    mod = pgpass if path == paths.pgpass else servicefile
    foreign = block.split(text, mod.BEGIN_LINE, mod.END_LINE, str(path)).foreign
    return None if foreign == text else (data, foreign.encode("utf-8", "surrogateescape"))


def _remove_link(link: Path, removed: list[str], notes: list[str]) -> None:
    """A directory symlinked elsewhere (a dotfiles manager): the link goes, its target is the user's."""
    target = os.path.realpath(link)
    try:
        link.unlink()
    except OSError as err:
        raise FileError(f"cannot remove {link}: {err.strerror}", f"remove {link} by hand") from None
    removed.append(str(link))
    notes.append(f"{link} was a symlink: removed the link, kept {target}")


def run(paths: Paths, wait: float | None = None) -> Result:
    """Remove everything in plan(paths), holding pgiam's lock (a busy lock changes nothing)."""
    from pgiam import timer
    from pgiam.refresh import lock_wait

    removed: list[str] = []
    notes: list[str] = []
    with locked(paths.lock_file, lock_wait() if wait is None else wait):
        gone = timer.remove(paths)
        removed += [f"timer: {r}" for r in gone.removed]
        notes += gone.notes
        if paths.sandbox_dir.is_dir():
            from pgiam.sandbox import cluster

            if cluster.down(paths):
                removed.append("the running sandbox")
        for path in (paths.pgpass, paths.service_file):
            change = _changes(paths, path)
            if change is None:
                continue
            mode = stat.S_IMODE(os.stat(resolve_target(path)).st_mode)
            atomic_write(path, change[1], mode)
            removed.append(f"pgiam's block in {path}")
            if not change[1].strip():
                notes.append(f"{path} is now empty; delete it if nothing else uses it")
        # The config goes while the lock is held: a refresh waiting for the lock then finds no service.
        if not paths.own_config_dir:
            notes.append(f"{paths.config_file} (PGIAM_CONFIG) is yours: left as it is")
        elif paths.config_dir.is_symlink():
            _remove_link(paths.config_dir, removed, notes)
        elif paths.config_file.exists():
            try:
                paths.config_file.unlink()
            except OSError as err:
                raise FileError(f"cannot remove {paths.config_file}: {err.strerror}",
                                f"remove {paths.config_file} by hand") from None
    for d in _own_dirs(paths):
        if d.is_symlink():
            _remove_link(d, removed, notes)
            continue
        if not d.is_dir():
            continue
        try:
            shutil.rmtree(d)
        except OSError as err:
            raise FileError(f"cannot remove {err.filename or d}: {err.strerror}",
                            f"remove {d} by hand (rm -r {d}), then run `pgiam uninstall --yes` again") from None
        removed.append(str(d))
    return Result(tuple(removed), tuple(notes))
