"""`pgiam uninstall`: undo everything pgiam wrote, in an order that leaves nothing half-done behind.

1. timers of every kind (systemd units, the crontab line, the LaunchAgent), so none refreshes meanwhile;
2. the sandbox, if one runs (its cluster may live outside the state directory);
3. under pgiam's lock: pgiam's marked blocks in ~/.pgpass and ~/.pg_service.conf (everything else in
   them kept byte for byte; the files themselves stay, as they may predate pgiam), and the config;
4. pgiam's own directories (config, state, data), file by file: only a directory pgiam created (it holds
   pgiam's marker file) or one holding nothing but files pgiam writes (0.2.0's), and in it only those
   files; a directory left with other files stays, and the user is told.
Shell startup files are never edited: pgiam did not write the `eval "$(pgiam hook …)"` line, so the
plan names where it is for the user to delete.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import stat
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from pgiam import block, fileio, pgpass, servicefile, store
from pgiam.errors import FileError
from pgiam.fileio import read_bytes, resolve_target, write_all
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
                tuple(d for d in _own_dirs(paths) if d.is_symlink() or (d.is_dir() and _is_pgiams(paths, d))),
                tuple(_hook_lines(paths)))


def _changes(paths: Paths, path: Path) -> tuple[bytes, bytes] | None:
    data = read_bytes(path, scope=paths.scope)
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
    with store.lock(paths, lock_wait() if wait is None else wait):
        gone = timer.remove(paths)
        removed += [f"timer: {r}" for r in gone.removed]
        notes += gone.notes
        if paths.sandbox_dir.is_dir():
            from pgiam.sandbox import cluster

            if cluster.down(paths):
                removed.append("the running sandbox")
        changes: list[tuple[Path, bytes | None, int]] = []
        for path in (paths.pgpass, paths.service_file):
            change = _changes(paths, path)
            if change is None:
                continue
            changes.append((path, change[1], stat.S_IMODE(os.stat(resolve_target(path, scope=paths.scope)).st_mode)))
            removed.append(f"pgiam's block in {path}")
            if not change[1].strip():
                notes.append(f"{path} is now empty; delete it if nothing else uses it")
        # The config goes while the lock is held, in one commit with both blocks (a kill between them
        # is undone by the next command): a refresh waiting for the lock then finds no service.
        if not paths.own_config_dir:
            notes.append(f"{paths.config_file} (PGIAM_CONFIG) is yours: left as it is")
        elif not paths.config_dir.is_symlink() and paths.config_file.exists():
            changes.append((paths.config_file, None, 0o600))
        write_all(changes, journal=paths.journal_file, scope=paths.scope)
        if paths.own_config_dir and paths.config_dir.is_symlink():
            _remove_link(paths.config_dir, removed, notes)
    for d in _own_dirs(paths):
        if d.is_symlink():
            _remove_link(d, removed, notes)
            continue
        if not d.is_dir():
            continue
        if not _is_pgiams(paths, d):
            notes.append(f"kept {d}: pgiam did not create it and it holds files pgiam did not write "
                         f"({', '.join(fileio.foreign_entries(d, paths.own_names))})")
            continue
        try:
            _remove_own(paths, d, removed, notes)
        except OSError as err:
            raise FileError(f"cannot remove {err.filename or d}: {err.strerror}",
                            f"remove {d} by hand (rm -r {d}), then run `pgiam uninstall --yes` again") from None
    return Result(tuple(removed), tuple(notes))


def _is_pgiams(paths: Paths, d: Path) -> bool:
    """A directory pgiam created (marked), or one holding only what pgiam writes (0.2.0 left no marker)."""
    return fileio.is_marked(d) or not fileio.foreign_entries(d, paths.own_names)


def _remove_own(paths: Paths, d: Path, removed: list[str], notes: list[str]) -> None:
    """Remove, one by one, the files pgiam writes in its directory `d`, then `d` if nothing else is left."""
    from pgiam import certs

    for name in sorted(paths.own_names):
        p = d / name
        if p.is_symlink() or p.is_file():
            p.unlink()
        elif p.is_dir() and name == paths.sandbox_dir.name:
            shutil.rmtree(p)  # the sandbox's cluster, made by `pgiam sandbox up` (stopped above)
        elif p.is_dir() and name == paths.mint_dir.name:
            _remove_files(p, lambda n: n.endswith(".lock"), notes)  # the mint slots (pgiam.minting)
        elif p.is_dir() and name == paths.certs_dir.name:
            _remove_files(p, lambda n: n == certs.SOURCES_FILE or (n.startswith("rds-") and n.endswith(".pem")), notes)
    _remove_files(d, lambda n: False, notes)
    if not d.exists():
        removed.append(str(d))


def _remove_files(d: Path, ours: Callable[[str], bool], notes: list[str]) -> None:
    """Remove pgiam's temp files, the files `ours` names and the marker in `d`; then `d`, when it is empty."""
    for name in os.listdir(d):
        if ours(name) or fileio.TMP_MARK in name:
            (d / name).unlink()
    with contextlib.suppress(FileNotFoundError):
        (d / fileio.MARKER).unlink()
    left = sorted(os.listdir(d))
    if left:
        notes.append(f"kept {d}: it holds files pgiam did not write ({', '.join(left)})")
        return  # without pgiam's marker: from now on the directory is the user's
    d.rmdir()
