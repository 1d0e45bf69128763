"""Atomic writes and the one lock; knows no file format.

Every reader sees the old file or the new one, never a mix: write a temp file in
the same directory, born with its final mode, fsync it, rename it over the
target, fsync the directory. The temp file is removed on any failure.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import stat
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from pgiam.errors import FileError, LockedError

TMP_MARK = ".pgiam-tmp-"


def _hint_for(err: OSError, directory: Path) -> str:
    if err.errno == errno.ENOSPC or err.errno == errno.EDQUOT:
        return f"free some space on the file system holding {directory}, then run the command again"
    if err.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return f"check that {directory} is writable by you (ls -ld {directory})"
    return "fix the file system problem above, then run the command again"


def resolve_target(path: Path) -> Path:
    """The file a write to `path` must replace: a symlink's final target, else `path`."""
    if path.is_symlink():
        return Path(os.path.realpath(path))
    return path


def ensure_private_dir(path: Path) -> None:
    """Create `path` (and parents) with mode 0700, whatever the umask."""
    if path.is_dir():
        return
    try:
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(path, 0o700)  # mkdir's mode is filtered by the umask
    except OSError as err:
        raise FileError(f"cannot create directory {path}: {err.strerror}", _hint_for(err, path.parent)) from None


def read_bytes(path: Path) -> bytes | None:
    """The file's bytes, or None when it does not exist. Never creates anything."""
    try:
        # O_NONBLOCK: opening a FIFO put where the file should be must not hang pgiam (issue 7).
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    except IsADirectoryError:
        raise FileError(f"{path} is a directory, not a file", f"move {path} out of the way") from None
    except OSError as err:
        raise FileError(f"cannot read {path}: {err.strerror}", f"check the permissions of {path} (ls -l {path})") from None
    try:
        st = os.fstat(fd)
        if stat.S_ISDIR(st.st_mode):
            raise FileError(f"{path} is a directory, not a file", f"move {path} out of the way")
        if not stat.S_ISREG(st.st_mode):
            raise FileError(f"{path} is not a regular file; pgiam will not use it", f"move {path} out of the way")
        os.set_blocking(fd, True)
        with open(fd, "rb", closefd=False) as f:
            return f.read()
    except OSError as err:
        raise FileError(f"cannot read {path}: {err.strerror}", f"check the permissions of {path} (ls -l {path})") from None
    finally:
        os.close(fd)


def atomic_write(path: Path, data: bytes, mode: int = 0o600) -> Path:
    """Replace the file at `path` (or its symlink's target) with `data`, atomically; return the target."""
    target = resolve_target(path)
    try:
        st = os.stat(target)
    except FileNotFoundError:
        st = None
    except OSError as err:
        raise FileError(f"cannot write {path}: {err.strerror}", _hint_for(err, target.parent)) from None
    if st is not None and not stat.S_ISREG(st.st_mode):
        raise FileError(f"{path} is not a regular file; pgiam will not replace it", f"move {path} out of the way")
    directory = target.parent
    tmp = directory / f".{target.name}{TMP_MARK}{os.getpid()}-{time.monotonic_ns()}"
    fd = -1
    try:
        # Born with its final mode: O_CREAT's mode is cut by the umask, fchmod sets it exactly,
        # before the first byte is written (the token is never readable by others, not even briefly).
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, mode & 0o600)
        os.fchmod(fd, mode)
        view = memoryview(data)
        while view:
            written = os.write(fd, view)
            view = view[written:]
        os.fsync(fd)
        os.close(fd)
        fd = -1
        os.replace(tmp, target)
        _fsync_dir(directory)
    except OSError as err:
        raise FileError(f"cannot write {path}: {err.strerror}", _hint_for(err, directory)) from None
    finally:
        if fd >= 0:
            os.close(fd)
        with contextlib.suppress(FileNotFoundError, OSError):
            os.unlink(tmp)
    return target


def write_all(changes: list[tuple[Path, bytes, int]]) -> list[Path]:
    """Atomically write several files; if one fails, put back the ones already written, then raise."""
    done: list[tuple[Path, bytes | None, int]] = []
    try:
        for path, data, mode in changes:
            old = read_bytes(path)
            old_mode = stat.S_IMODE(os.stat(resolve_target(path)).st_mode) if old is not None else mode
            atomic_write(path, data, mode)
            done.append((path, old, old_mode))
    except BaseException:
        for path, old, old_mode in reversed(done):
            with contextlib.suppress(Exception):
                if old is None:
                    os.unlink(resolve_target(path))
                else:
                    atomic_write(path, old, old_mode)
        raise
    return [p for p, _, _ in done]


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def remove_stale_temps(path: Path) -> int:
    """Remove temp files a killed writer left beside `path`; call only while holding the lock."""
    target = resolve_target(path)
    prefix = f".{target.name}{TMP_MARK}"
    removed = 0
    try:
        names = os.listdir(target.parent)
    except OSError:
        return 0
    for name in names:
        if name.startswith(prefix):
            with contextlib.suppress(OSError):
                os.unlink(target.parent / name)
                removed += 1
    return removed


@contextlib.contextmanager
def locked(lock_path: Path, wait: float) -> Iterator[None]:
    """Hold pgiam's one lock; wait at most `wait` seconds (0: give up at once) or raise LockedError."""
    ensure_private_dir(lock_path.parent)
    try:
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    except OSError as err:
        raise FileError(f"cannot open lock file {lock_path}: {err.strerror}", _hint_for(err, lock_path.parent)) from None
    try:
        _flock(fd, wait, f"the lock {lock_path}", lambda: _read_holder(fd))
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the flock


@contextlib.contextmanager
def locked_directory(path: Path, wait: float) -> Iterator[None]:
    """Hold a flock on the directory `path` itself: a second lock that creates no file."""
    ensure_private_dir(path)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as err:
        raise FileError(f"cannot open directory {path}: {err.strerror}", _hint_for(err, path)) from None
    try:
        _flock(fd, wait, f"the mint lock on {path}", lambda: None)
        yield
    finally:
        os.close(fd)


def _flock(fd: int, wait: float, what: str, holder_of: Callable[[], int | None]) -> None:
    deadline = time.monotonic() + wait
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
