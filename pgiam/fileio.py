"""Atomic writes and the one lock; knows no file format.

Every reader sees the old file or the new one, never a mix: write a temp file in
the same directory, born with its final mode, fsync it, rename it over the
target, fsync the directory. The temp file is removed on any failure.

pgiam's own directories (a Scope, built by pgiam.paths.Paths and passed in) are checked before use: owned by
this user and writable by nobody else, else exit 5 naming the fix. Inside the state and data
directories no symlink is ever followed (a planted `next-due -> ~/.bashrc` is replaced, never
written through); the user's own files (~/.pgpass, the service file, the config) keep their
symlinks. A missing home directory is never created.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import signal
import stat
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from pgiam.errors import EnvironmentProblem, FileError, LockedError
from pgiam.facts import dir_problem

TMP_MARK = ".pgiam-tmp-"


def _hint_for(err: OSError, directory: Path) -> str:
    if err.errno == errno.ENOSPC or err.errno == errno.EDQUOT:
        return f"free some space on the file system holding {directory}, then run the command again"
    if err.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return f"check that {directory} is writable by you (ls -ld {directory})"
    return "fix the file system problem above, then run the command again"


# In every directory pgiam creates (or adopts): `pgiam uninstall` removes only marked directories, and
# in them only the files pgiam writes; a directory pgiam found is never adopted or removed whole.
MARKER = ".pgiam-owned"
MARKER_TEXT = (b"pgiam created this directory. `pgiam uninstall --yes` removes the files pgiam wrote here, then\n"
               b"the directory if nothing else is left in it.\n")


@dataclass(frozen=True)
class Scope:
    """pgiam's own directories for one set of locations (pgiam.paths.Paths.scope builds it), passed to every
    function here that writes, adopts, locks or reads under them: nothing about directories is kept in
    the process, so one command's locations never change what another does.

    `own`: pgiam's own directories (config unless the operator's, state, data), checked together before
    any use; `nofollow`: those under which no symlink is followed (state, data); `home`: never created
    (None: no home concerned); `known`: the names pgiam writes in its own directories (an unmarked
    directory holding only those is adopted). Paths are absolute."""

    own: tuple[Path, ...] = ()
    nofollow: tuple[Path, ...] = ()
    home: Path | None = None
    known: frozenset[str] = frozenset()


NOWHERE = Scope()  # files outside any pgiam location: only the rules every file gets (atomic, FIFO-safe...)


def is_marked(directory: Path) -> bool:
    """Did pgiam create (or adopt) this directory?"""
    return os.path.isfile(directory / MARKER) and not os.path.islink(directory / MARKER)


def foreign_entries(directory: Path, known: Iterable[str]) -> list[str]:
    """The names in `directory` that pgiam does not write there (its temp files count as pgiam's)."""
    names = set(known) | {MARKER}
    try:
        return sorted(n for n in os.listdir(directory) if n not in names and TMP_MARK not in n)
    except OSError:
        return []


def adopt(directory: Path, *, scope: Scope) -> None:
    """Make an existing `directory` pgiam's: only when marked already, empty, or holding only files pgiam
    writes (scope.known; 0.2.0 made its directories without a marker); anything else is refused (exit 5)."""
    if is_marked(directory):
        return
    foreign = foreign_entries(directory, scope.known)
    if foreign:
        shown = ", ".join(foreign[:5]) + (f" and {len(foreign) - 5} more" if len(foreign) > 5 else "")
        raise FileError(
            f"{directory} already exists and holds files pgiam did not write ({shown}); pgiam will not use it "
            "as its own directory",
            f"move those files out of {directory} (or the directory away: mv {directory} {directory}.old), or point "
            "pgiam elsewhere (PGIAM_STATE_DIR, XDG_STATE_HOME, XDG_DATA_HOME, XDG_CONFIG_HOME)")
    _mark(directory, scope)


def _mark(directory: Path, scope: Scope) -> None:
    _replace(directory / MARKER, MARKER_TEXT, 0o600, scope)


def _under(path: Path, dirs: Iterable[Path]) -> Path | None:
    p = Path(os.path.abspath(path))
    for d in dirs:
        if p == d or d in p.parents:
            return d
    return None


def _nofollow(path: Path, scope: Scope) -> bool:
    """Is `path` a file inside pgiam's state or data directory (never reached through a symlink)?"""
    return _under(Path(os.path.abspath(path)).parent, scope.nofollow) is not None


def check_private_dir(path: Path) -> None:
    """Refuse one of pgiam's own directories that another user owns or may write (exit 5, naming the fix).

    The rule is pgiam.facts.dir_problem, which the fast path applies too."""
    try:
        problem = dir_problem(str(path))
        if problem is None:
            return
        st = os.stat(path)
    except OSError as err:
        raise FileError(f"cannot use directory {path}: {err.strerror}", f"check it with `ls -ld {path}`") from None
    if problem == "type":
        raise FileError(f"{path} is not a directory", f"move {path} out of the way")
    uid = os.geteuid()
    if problem == "owner":
        raise FileError(f"{path} belongs to uid {st.st_uid}, not to you (uid {uid}); pgiam will not use it",
                        f"check who created it; if it is yours: chown {uid} {path}; else move it away")
    if problem == "mode":
        raise FileError(f"{path} is writable by group or others ({stat.filemode(st.st_mode)}); pgiam will not use it",
                        f"chmod go-w {path} (pgiam creates it 0700)")


def _check_dirs_of(path: Path, scope: Scope) -> None:
    """Before using a pgiam directory, check all of them (config, state, data); refuse to create a missing home."""
    if _under(path, scope.own) is not None:
        for d in scope.own:
            check_private_dir(d)
    _refuse_missing_home(path, scope.home)


def _user(uid: int) -> str:
    """A user's login name (as `sudo -u` takes it), else the number."""
    import pwd

    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return f"#{uid}"  # sudo -u takes #UID


def refuse_foreign_home(home: Path, files: Iterable[Path], argv: Iterable[str] = ()) -> None:
    """Refuse (exit 5) to use files under a home directory another user owns (`sudo -E pgiam ...`, or root
    with HOME=/home/alice): every file pgiam rewrote there would become the runner's, and unreadable
    to its owner. Files named outside the home (PGPASSFILE, PGIAM_CONFIG ...) are not concerned."""
    home = Path(os.path.abspath(home))
    if not any(_under(f, [home]) is not None for f in files):
        return
    try:
        owner = os.stat(home).st_uid
    except OSError:
        return  # a missing home is refused where a file would be created under it
    me = os.geteuid()
    if owner == me:
        return
    import shlex

    args = " ".join(shlex.quote(a) for a in argv) or "..."
    raise FileError(f"HOME={home} belongs to uid {owner} ({_user(owner)}), not to you (uid {me}, {_user(me)}); "
                    f"pgiam will not write there: {_user(owner)}'s files would become {_user(me)}'s",
                    f"run it as its owner: `sudo -H -u {_user(owner)} pgiam {args}`, or with your own home: "
                    f"`sudo -H pgiam {args}`")


def _refuse_missing_home(path: Path, home: Path | None) -> None:
    if home is not None and _under(path, [home]) is not None:
        if os.path.isdir(home):
            refuse_foreign_home(home, [path])
        else:
            raise EnvironmentProblem(
                f"the home directory {home} does not exist, and pgiam needs {path} under it",
                "set HOME to an existing directory (pgiam never creates it), or give every location explicitly: "
                "PGPASSFILE, PGSERVICEFILE, XDG_CONFIG_HOME, XDG_STATE_HOME and XDG_DATA_HOME")


def resolve_target(path: Path, *, scope: Scope) -> Path:
    """The file a write to `path` must replace: a symlink's final target, else `path`.

    Inside pgiam's state and data directories (scope.nofollow) a symlink is not followed: it is the file replaced."""
    if path.is_symlink() and not _nofollow(path, scope):
        return Path(os.path.realpath(path))
    return path


def ensure_private_dir(path: Path, *, scope: Scope) -> None:
    """Create `path` (and parents) with mode 0700, whatever the umask; check pgiam's own directories.

    pgiam's own directory (scope.own) at or above `path` is created and marked, or adopted (see adopt);
    each directory pgiam creates below it is marked too."""
    path = Path(os.path.abspath(path))
    _check_dirs_of(path, scope)
    own = max((d for d in scope.own if d == path or d in path.parents), key=lambda d: len(d.parts), default=None)
    if own is None:
        _mkdir(path)
        return
    if own.is_dir():
        adopt(own, scope=scope)
    else:
        _mkdir(own)
        _check_dirs_of(own, scope)
        _mark(own, scope)
    for d in reversed(path.parents[:len(path.parts) - len(own.parts) - 1]):
        _mkdir_marked(d, scope)
    if path != own:
        _mkdir_marked(path, scope)
    _check_dirs_of(path, scope)


def _mkdir_marked(path: Path, scope: Scope) -> None:
    if not path.is_dir():
        _mkdir(path)
        _mark(path, scope)


def _mkdir(path: Path) -> None:
    if path.is_dir():
        return
    try:
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(path, 0o700)  # mkdir's mode is filtered by the umask
    except OSError as err:
        raise FileError(f"cannot create directory {path}: {err.strerror}", _hint_for(err, path.parent)) from None


_BLOCKED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT)


@contextlib.contextmanager
def no_interrupts() -> Iterator[None]:
    """Hold Ctrl-C, SIGTERM, SIGHUP and SIGQUIT until the block ends: a commit or its rollback is never cut
    in half. A signal that arrives meanwhile is delivered (as KeyboardInterrupt) right after."""
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield  # Python runs signal handlers in the main thread only
        return
    old = signal.pthread_sigmask(signal.SIG_BLOCK, _BLOCKED)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


def read_bytes(path: Path, *, scope: Scope) -> bytes | None:
    """The file's bytes, or None when it does not exist. Never creates anything; never reached through
    a symlink inside pgiam's state and data directories (scope.nofollow)."""
    nofollow = os.O_NOFOLLOW if _nofollow(path, scope) else 0
    try:
        # O_NONBLOCK: opening a FIFO put where the file should be must not hang pgiam (issue 7).
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | nofollow)
    except FileNotFoundError:
        return None
    except IsADirectoryError:
        raise FileError(f"{path} is a directory, not a file", f"move {path} out of the way") from None
    except OSError as err:
        if nofollow and err.errno == errno.ELOOP:
            raise _symlink_refused(path) from None
        raise FileError(f"cannot read {path}: {err.strerror}", f"check the permissions of {path} (ls -l {path})") from None
    try:
        st = os.fstat(fd)
        if stat.S_ISDIR(st.st_mode):
            raise FileError(f"{path} is a directory, not a file", f"move {path} out of the way")
        if not stat.S_ISREG(st.st_mode):
            raise not_regular(path, st.st_mode, "use")
        os.set_blocking(fd, True)
        with open(fd, "rb", closefd=False) as f:
            return f.read()
    except OSError as err:
        raise FileError(f"cannot read {path}: {err.strerror}", f"check the permissions of {path} (ls -l {path})") from None
    finally:
        os.close(fd)


def not_regular(path: Path, mode: int, verb: str) -> FileError:
    """A device, FIFO or socket where a file should be: never suggest moving a device away."""
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return FileError(f"{path} is a device, not a regular file; pgiam will not {verb} it",
                         f"point pgiam at a regular file instead of {path} (PGPASSFILE and PGSERVICEFILE must name "
                         "files pgiam can replace)")
    return FileError(f"{path} is not a regular file; pgiam will not {verb} it", f"move {path} out of the way")


def _symlink_refused(path: Path) -> FileError:
    return FileError(f"{path} is a symlink; pgiam does not follow symlinks in its own directories",
                     f"remove it (rm {path}); pgiam writes a regular file there")


def atomic_write(path: Path, data: bytes, mode: int = 0o600, *, scope: Scope) -> Path:
    """Replace the file at `path` (or its symlink's target) with `data`, atomically; return the target.

    Once the rename is done the file is replaced: a failing fsync of the directory afterwards is
    reported as exactly that, not as a failed write."""
    target = _replace(path, data, mode, scope)
    try:
        _fsync_dir(target.parent)
    except OSError as err:
        raise FileError(f"{path} was replaced, but syncing its directory failed: {err.strerror}; "
                        "the change may not survive a power loss", _hint_for(err, target.parent)) from None
    return target


def _replace(path: Path, data: bytes, mode: int, scope: Scope) -> Path:
    """Write a temp file and rename it over `path` (or its symlink's target); no directory fsync."""
    target, tmp = _stage(path, data, mode, scope)
    try:
        os.replace(tmp, target)
    except OSError as err:
        raise FileError(f"cannot write {path}: {err.strerror}", _hint_for(err, target.parent)) from None
    finally:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
    return target


def _temp_name(target: Path, suffix: str = "") -> Path:
    """A temp file beside `target`, named after it and this process (recover() knows a dead writer's)."""
    return target.parent / f".{target.name}{TMP_MARK}{os.getpid()}-{time.monotonic_ns()}{suffix}"


def _stage(path: Path, data: bytes, mode: int, scope: Scope) -> tuple[Path, Path]:
    """Write `data` to a new temp file beside `path`'s target, synced; return (target, temp file)."""
    _check_dirs_of(path, scope)
    target = resolve_target(path, scope=scope)
    try:
        st = os.lstat(target) if _nofollow(target, scope) else os.stat(target)
    except FileNotFoundError:
        st = None
    except OSError as err:
        raise FileError(f"cannot write {path}: {err.strerror}", _hint_for(err, target.parent)) from None
    if st is not None and not stat.S_ISREG(st.st_mode) and not stat.S_ISLNK(st.st_mode):
        raise not_regular(path, st.st_mode, "replace")
    directory = target.parent
    tmp = _temp_name(target)
    fd = -1
    try:
        # Born with its final mode: O_CREAT's mode is cut by the umask, fchmod sets it exactly,
        # before the first byte is written (the token is never readable by others, not even briefly).
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, mode & 0o600)
        if st is not None and stat.S_ISREG(st.st_mode):
            _keep_owner(fd, path, st)
        os.fchmod(fd, mode)
        view = memoryview(data)
        while view:
            written = _write(fd, view)
            view = view[written:]
        _fsync(fd)
        os.close(fd)
        fd = -1
    except BaseException as err:
        if fd >= 0:
            os.close(fd)
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(err, OSError):
            raise FileError(f"cannot write {path}: {err.strerror}", _hint_for(err, directory)) from None
        raise
    return target, tmp


# The seam of the kill test (tests/reliability/test_kill_journal.py): called before every write and
# fsync of pgiam's files; a test's forked child replaces it to kill itself at one chosen step.
def _seam(kind: str) -> None:
    pass


def _write(fd: int, data: memoryview) -> int:
    _seam("write")
    return os.write(fd, data)


def _fsync(fd: int) -> None:
    _seam("fsync")
    os.fsync(fd)


def _keep_owner(fd: int, path: Path, st: os.stat_result) -> None:
    """Give the temp file the owner and group of the file it replaces, before the first byte: an
    operator's config or a daemon's ~/.pgpass stays theirs (a rename would make it the writer's)."""
    me = os.geteuid()
    if (st.st_uid, st.st_gid) == (me, os.getegid()):
        return
    if me != 0 and st.st_uid != me:
        raise FileError(f"{path} belongs to uid {st.st_uid} ({_user(st.st_uid)}); pgiam (uid {me}) would take it over",
                        f"run pgiam as {_user(st.st_uid)}, or give the file to yourself: chown {me} {path}")
    try:
        os.fchown(fd, st.st_uid if me == 0 else -1, st.st_gid)
    except PermissionError:
        raise FileError(f"cannot give the new {path} its group (gid {st.st_gid}): you are not a member",
                        f"run pgiam as a member of that group, or change the file's group: chgrp {os.getegid()} {path}") from None


def mode_of(path: Path, default: int = 0o600, *, scope: Scope) -> int:
    """The permission bits of the file a write to `path` replaces (kept on rewrite), else `default`."""
    try:
        return stat.S_IMODE(os.stat(resolve_target(path, scope=scope)).st_mode)
    except OSError:
        return default


def write_all(changes: Sequence[tuple[Path, bytes | None, int]], journal: Path | None = None, *,
              scope: Scope) -> list[Path]:
    """Write (or, for None, delete) several files all or nothing; if one fails, put back the others, then raise.

    Every new file is first written to a synced temp file, and every file replaced gets a second name
    (a hard link: its old contents, kept). Then `journal` records the intent, before the first rename:
    a pgiam killed between two renames leaves it, and the next command's recover() puts every file
    back. The journal goes once every rename is done and synced: that is the commit.
    Signals are held for the whole commit and its rollback (no_interrupts): Ctrl-C or SIGTERM
    between two renames is acted on after the last one, never halfway."""
    check_locks()
    staged: list[tuple[Path, Path, Path | None, Path | None]] = []  # (path, target, temp file, old file's copy)
    renamed: list[tuple[Path, Path | None]] = []
    committed = False
    with no_interrupts():
        try:
            for path, data, mode in changes:
                if data is None:
                    _check_dirs_of(path, scope)
                    target, tmp = Path(os.path.abspath(path)), None  # a symlink goes, not its target
                    if not os.path.lexists(target):
                        continue
                else:
                    target, tmp = _stage(path, data, mode, scope)
                staged.append((path, target, tmp, None))
            for i, (p, t, tmp, _) in enumerate(staged):
                staged[i] = (p, t, tmp, _keep_old(p, t, scope))
            dirs = list(dict.fromkeys(t.parent for _, t, _, _ in staged))
            for directory in dirs:
                _sync_or_undo(directory)
            if journal is not None and staged:
                record = {"version": 1, "pid": os.getpid(),
                          "files": [{"target": str(t), "new": str(tmp) if tmp else None, "old": str(old) if old else None}
                                    for _, t, tmp, old in staged]}
                atomic_write(journal, json.dumps(record).encode() + b"\n", 0o600, scope=scope)
            for path, target, tmp, old in staged:
                try:
                    if tmp is None:
                        os.unlink(target)
                    else:
                        os.replace(tmp, target)
                except OSError as err:
                    raise FileError(f"cannot write {path}: {err.strerror}", _hint_for(err, target.parent)) from None
                renamed.append((target, old))  # from here on a failure must put it back
            for directory in dirs:
                _sync_or_undo(directory)
            if journal is not None and staged:
                os.unlink(journal)
                _fsync_dir(journal.parent)
            committed = True
        except BaseException:
            for target, old in reversed(renamed):
                with contextlib.suppress(OSError):
                    if old is None:
                        os.unlink(target)
                    else:
                        os.replace(old, target)
            if journal is not None and renamed:
                with contextlib.suppress(OSError):
                    for directory in dict.fromkeys(t.parent for t, _ in renamed):
                        _fsync_dir(directory)
            if journal is not None:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(journal)
            raise
        finally:
            for _, _, tmp, old in staged:
                for leftover in (tmp, old):
                    if leftover is not None:
                        with contextlib.suppress(OSError):
                            os.unlink(leftover)
    return [p for p, _, _, _ in staged] if committed else []


def _sync_or_undo(directory: Path) -> None:
    try:
        _fsync_dir(directory)
    except OSError as err:
        raise FileError(f"cannot sync directory {directory} after writing: {err.strerror}; "
                        "pgiam put back every file it had changed", _hint_for(err, directory)) from None


def _keep_old(path: Path, target: Path, scope: Scope) -> Path | None:
    """A second name for the file about to be replaced (None: there is none): a hard link, else a copy."""
    if not os.path.lexists(target):
        return None
    old = _temp_name(target, ".old")
    try:
        os.link(target, old, follow_symlinks=False)
        return old
    except OSError:
        pass  # a file system without hard links: copy it, mode and owner kept
    data = read_bytes(path, scope=scope)
    if data is None:
        return None
    _, tmp = _stage(path, data, stat.S_IMODE(os.lstat(target).st_mode), scope)
    os.replace(tmp, old)
    return old


def recover(journal: Path, beside: Iterable[Path], *, scope: Scope) -> list[Path]:
    """Undo a commit that a killed pgiam left half-done (its journal), then remove the temp files that
    dead writers left beside the files in `beside` (they may hold tokens). Call holding pgiam's lock.
    Returns the files put back."""
    put_back: list[Path] = []
    raw = read_bytes(journal, scope=scope)
    if raw is not None:
        try:
            files = json.loads(raw)["files"]
            entries = [(Path(f["target"]), Path(f["new"]) if f["new"] else None, Path(f["old"]) if f["old"] else None)
                       for f in files]
        except (ValueError, KeyError, TypeError) as err:
            raise FileError(f"pgiam's commit journal {journal} is damaged ({type(err).__name__})",
                            f"compare your files with `pgiam status`, then remove it: rm {journal}") from None
        for target, new, old in entries:
            for p in (new, old):
                if p is not None and (p.parent != target.parent or not p.name.startswith(f".{target.name}{TMP_MARK}")):
                    raise FileError(f"pgiam's commit journal {journal} names {p}, which is not a temp file of {target}",
                                    f"remove it: rm {journal}")
        for target, new, old in reversed(entries):
            if old is not None:
                if os.path.lexists(old):
                    os.replace(old, target)
                    put_back.append(target)
            elif new is None or not os.path.lexists(new):  # a new file that was renamed in: it goes
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(target)
                    put_back.append(target)
            if new is not None:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(new)
        for directory in dict.fromkeys(t.parent for t, _, _ in entries):
            with contextlib.suppress(OSError):
                _fsync_dir(directory)
        os.unlink(journal)
        _fsync_dir(journal.parent)
    for path in (*beside, journal):
        remove_stale_temps(path, only_dead=True, scope=scope)
    return put_back


def stale_temps(path: Path, *, scope: Scope) -> list[Path]:
    """The temp files of writers that are no longer running, beside `path`'s target."""
    target = resolve_target(path, scope=scope)
    prefix = f".{target.name}{TMP_MARK}"
    try:
        names = os.listdir(target.parent)
    except OSError:
        return []
    return [target.parent / n for n in names if n.startswith(prefix) and not _alive(n[len(prefix):])]


def _alive(tail: str) -> bool:
    """Is the writer that named a temp file `...{pid}-{ns}` still running?"""
    try:
        pid = int(tail.split("-", 1)[0])
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (ValueError, OverflowError):
        return False
    except PermissionError:
        return True  # another user's process with that pid
    return True


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def remove_stale_temps(path: Path, only_dead: bool = False, *, scope: Scope) -> int:
    """Remove temp files a killed writer left beside `path` (only_dead: only those of writers no longer
    running); call only while holding the lock."""
    target = resolve_target(path, scope=scope)
    prefix = f".{target.name}{TMP_MARK}"
    removed = 0
    try:
        names = os.listdir(target.parent)
    except OSError:
        return 0
    for name in names:
        if name.startswith(prefix) and not (only_dead and _alive(name[len(prefix):])):
            with contextlib.suppress(OSError):
                os.unlink(target.parent / name)
                removed += 1
    return removed


@contextlib.contextmanager
def locked(lock_path: Path, wait: float, what: str | None = None, guard: bool = True, until: float | None = None, *,
           scope: Scope) -> Iterator[None]:
    """Hold the lock file `lock_path` (pgiam's one lock for its files, or a mint slot); wait at most `wait`
    seconds (0: give up at once; `until`: a monotonic deadline instead) or raise LockedError naming `what`
    (default: the lock file) and the pid the holder wrote in it. guard: refuse a commit while this lock
    file was replaced (see check_locks)."""
    ensure_private_dir(lock_path.parent, scope=scope)
    deadline = time.monotonic() + wait if until is None else until
    for attempt in range(100):
        if attempt == 99:
            raise LockedError(f"the lock file {lock_path} keeps being replaced", "stop whatever deletes or replaces it")
        fd = _open_lock(lock_path, scope)
        try:
            _flock(fd, deadline, wait, what or f"the lock {lock_path}", lambda: _read_holder(fd))
        except BaseException:
            os.close(fd)
            raise
        if _same_file(fd, lock_path):
            break
        # The file was deleted or replaced while we waited: a lock on it excludes nobody. Take the new one.
        os.close(fd)
    if guard:
        _HELD[lock_path] = fd
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield
    finally:
        if guard:
            _HELD.pop(lock_path, None)
        os.close(fd)  # closing the descriptor releases the flock


_HELD: dict[Path, int] = {}  # the locks this process holds, checked before every commit


def check_locks() -> None:
    """Refuse to write when a lock file this process holds was deleted or replaced meanwhile: another
    pgiam may have taken the new file and be writing too."""
    for path, fd in list(_HELD.items()):
        if not _same_file(fd, path):
            raise LockedError(f"the lock file {path} was deleted or replaced while pgiam held it; nothing was written",
                              "run the command again (and leave pgiam's lock file in place)")


def _open_lock(lock_path: Path, scope: Scope) -> int:
    flags = os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | (os.O_NOFOLLOW if _nofollow(lock_path, scope) else 0)
    try:
        return os.open(lock_path, flags, 0o600)
    except IsADirectoryError:
        raise FileError(f"the lock file {lock_path} is a directory", f"remove it (rmdir {lock_path}); pgiam creates a file there") from None
    except OSError as err:
        if err.errno == errno.ELOOP and _nofollow(lock_path, scope):
            raise _symlink_refused(lock_path) from None
        raise FileError(f"cannot open lock file {lock_path}: {err.strerror}", _hint_for(err, lock_path.parent)) from None


def _same_file(fd: int, path: Path) -> bool:
    """Is the locked descriptor still the file at `path` (not deleted, not replaced)?"""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return False
    mine = os.fstat(fd)
    return (st.st_dev, st.st_ino) == (mine.st_dev, mine.st_ino)


def _flock(fd: int, deadline: float, wait: float, what: str, holder_of: Callable[[], int | None]) -> None:
    """Take an exclusive flock on `fd`, trying until the monotonic `deadline` (`wait` seconds after the start)."""
    delay = 0.005
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            if time.monotonic() >= deadline:
                holder = holder_of()
                who = f"pid {holder}" if holder else "another process"
                raise LockedError(
                    f"another pgiam ({who}) holds {what}" + (f" (waited {wait:g} s)" if wait else ""),
                    f"wait for it to finish, or check it with `ps -p {holder}`" if holder else "wait for it to finish",
                ) from None
            time.sleep(delay)
            delay = min(delay * 2, 0.1)


def _read_holder(fd: int) -> int | None:
    try:
        raw = os.pread(fd, 32, 0).strip()
        return int(raw) if raw else None
    except (OSError, ValueError):
        return None
