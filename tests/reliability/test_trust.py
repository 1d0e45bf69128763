"""Issue 11: trust the files and the clock, not pgiam's notes. Each test reproduces one report of the
issue with real pgiam processes, real files and (where it matters) real psql, real signals and real shells."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest

from pgiam import pgpass, servicefile, tokeninfo
from tests.reliability.conftest import HOSTS, add_args, assert_one_error, need, pgiam_argv, pgiam_env, run, snapshot

pytestmark = pytest.mark.reliability


def _psql_finds(env: dict[str, str], service: str) -> bool:
    """Does libpq (psql) find a definition of `service` in the service file? (no connection needed)"""
    p = subprocess.run([need("psql"), f"service={service}", "-XAtc", "select 1"], env=dict(env, PGCONNECT_TIMEOUT="1"),
                       capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL)
    return f'definition of service "{service}" not found' not in p.stderr


# --- 3. exact markers -------------------------------------------------------------------------------------

USER_BLOCK = (b"# BEGIN pgiam tokens copied from my laptop\n"
              b"laptop.example.com:5432:*:me:s3cret\n"
              b"# END pgiam (laptop)\n")
USER_SECTIONS = (b"# BEGIN pgiam sections copied from my laptop\n"
                 b"[laptop]\nhost=laptop.example.com\n"
                 b"# END pgiam\n")


def test_users_own_pgiam_like_markers_are_foreign(home: Path, ca: Path) -> None:
    """Issue 11 (3): a user's `# BEGIN pgiam tokens copied from my laptop` … `# END pgiam …` lines are not
    pgiam's block: add, refresh and remove keep them, and the lines between, byte for byte."""
    (home / ".pgpass").write_bytes(USER_BLOCK)
    os.chmod(home / ".pgpass", 0o600)
    (home / ".pg_service.conf").write_bytes(USER_SECTIONS)
    env = pgiam_env(home)
    for argv in (add_args("prod", HOSTS[0], "alice", ca), ["refresh"], ["remove", "prod"]):
        p = run(env, *argv)
        assert p.returncode == 0, (argv, p.stderr)
        assert (home / ".pgpass").read_bytes().endswith(USER_BLOCK), argv
        assert (home / ".pg_service.conf").read_bytes().endswith(USER_SECTIONS), argv
    assert (home / ".pgpass").read_bytes() == USER_BLOCK
    assert (home / ".pg_service.conf").read_bytes() == USER_SECTIONS
    assert _psql_finds(env, "laptop")


@pytest.mark.parametrize("which", [".pg_service.conf", ".pgpass"])
def test_begin_without_end_is_refused_and_nothing_written(home: Path, ca: Path, which: str) -> None:
    """Issue 11 (3): pgiam's BEGIN line whose END line was deleted: every command that writes refuses with
    the file and line named (exit 3) and changes nothing; once the END line is back, `pgiam remove prod`
    really removes [prod] (psql no longer finds it)."""
    env = pgiam_env(home)
    assert run(env, *add_args("prod", HOSTS[0], "alice", ca)).returncode == 0
    assert _psql_finds(env, "prod")
    path = home / which
    good = path.read_bytes()
    end = (servicefile.END_LINE if which == ".pg_service.conf" else pgpass.END_LINE).encode() + b"\n"
    assert good.count(end) == 1
    path.write_bytes(good.replace(end, b"") + b"# my own line\n")
    before = snapshot(home)
    for argv in (["remove", "prod"], ["refresh"], ["refresh", "--if-needed"], add_args("s2", HOSTS[1], "bob", ca)):
        p = run(env, *argv)
        assert_one_error(p.stderr, p.returncode, 3)
        assert f"{path}, line 1: pgiam's block starts here but its end line `# END pgiam` is missing" in p.stderr
        notice = home / ".local/state/pgiam/notice"
        if "--if-needed" in argv:  # a hook or timer: the next prompt says why
            assert "end line `# END pgiam` is missing" in notice.read_text()
            notice.unlink()
        assert snapshot(home) == before, argv
    path.write_bytes(good)
    p = run(env, "remove", "prod")
    assert p.returncode == 0, p.stderr
    assert not _psql_finds(env, "prod")


# --- 4. all-or-nothing --------------------------------------------------------------------------------------

def _chattr(flag: str, path: Path) -> None:
    p = subprocess.run([need("chattr"), flag, str(path)], capture_output=True, text=True, timeout=30)
    assert p.returncode == 0, p.stderr


def test_unwritable_state_file_changes_nothing_and_retry_works(home: Path, ca: Path) -> None:
    """Issue 11 (4): with state.json unreplaceable (immutable: even root's rename fails), `add` and `remove`
    exit 5 and change no file (no config or service-file change left behind); once it is writable again,
    the same commands succeed (no "already exists")."""
    env = pgiam_env(home)
    assert run(env, *add_args("s1", HOSTS[0], "alice", ca)).returncode == 0
    state = home / ".local/state/pgiam/state.json"
    _chattr("+i", state)
    try:
        before = snapshot(home)
        for argv in (add_args("s2", HOSTS[1], "bob", ca), ["remove", "s1"]):
            p = run(env, *argv)
            assert_one_error(p.stderr, p.returncode, 5)
            assert str(state) in p.stderr
            assert snapshot(home) == before, argv
    finally:
        _chattr("-i", state)
    for argv in (add_args("s2", HOSTS[1], "bob", ca), ["remove", "s1"]):
        p = run(env, *argv)
        assert p.returncode == 0, (argv, p.stderr)
    assert b"[s2]" in (home / ".pg_service.conf").read_bytes()
    assert b"[s1]" not in (home / ".pg_service.conf").read_bytes()


# A real signal at an exact moment: an audit hook (PEP 578) in sitecustomize sends SIGTERM (or SIGINT) to
# the pgiam process itself when it is about to make its Nth rename (os.replace raises the "os.rename" event),
# and logs that it did: the test reads what happened from that log, it never guesses from timing.
SITECUSTOMIZE = """
import os, signal, sys
_at = {int(n) for n in os.environ.get("PGIAM_TEST_SIGNAL_AT_RENAME", "").split(",") if n}
_sig = getattr(signal, os.environ.get("PGIAM_TEST_SIGNAL", "SIGTERM"))
_count = [0]
def _hook(event, args):
    if event == "os.rename":
        _count[0] += 1
        with open(os.environ["PGIAM_TEST_RENAME_LOG"], "a") as f:
            f.write(f"{_count[0]} {args[1]}\\n")
            if _count[0] in _at:
                f.write(f"signal {_sig.name} at {_count[0]}\\n")
                f.flush()
                os.kill(os.getpid(), _sig)
if _at:
    sys.addaudithook(_hook)
"""

# Ctrl-C as a terminal delivers it: pgiam started with SIGINT and SIGQUIT at their default disposition and
# no signal blocked, whatever this test process inherited. A suite started in the background of a
# non-interactive shell (`pytest &` in a script, some CI runners) inherits SIGINT and SIGQUIT *ignored*
# (POSIX: asynchronous lists without job control), an ignored disposition survives exec, and Python then
# installs no KeyboardInterrupt handler: the SIGINT case then failed whatever pgiam did (issue 26).
AS_FROM_A_TERMINAL = (
    "import os, signal, sys\n"
    "for s in (signal.SIGINT, signal.SIGQUIT): signal.signal(s, signal.SIG_DFL)\n"
    "signal.pthread_sigmask(signal.SIG_SETMASK, [])\n"
    "os.execv(sys.executable, [sys.executable, *sys.argv[1:]])\n"
)


def _run_as_from_a_terminal(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    argv = pgiam_argv(*args)
    return subprocess.run([argv[0], "-c", AS_FROM_A_TERMINAL, *argv[1:]], env=env, capture_output=True, text=True,
                          errors="backslashreplace", timeout=120, stdin=subprocess.DEVNULL)


def _consistent(home: Path, name: str) -> bool | None:
    """Do the config, the service file and ~/.pgpass agree about `name`? True/False: all have it or none."""
    cfg = home / ".config/pgiam/config.toml"
    has = [cfg.exists() and f"[services.{name}]" in cfg.read_text(),
           f"[{name}]\n".encode() in (home / ".pg_service.conf").read_bytes()]
    return has[0] if len(set(has)) == 1 else None


@pytest.mark.parametrize("sig", ["SIGTERM", "SIGINT"])
def test_signal_between_renames_leaves_files_agreeing(home: Path, ca: Path, tmp_path: Path, sig: str) -> None:
    """Issue 11 (4): a real SIGTERM/SIGINT/SIGHUP delivered just before each rename of `add` (and a second
    one during what would be the rollback): the config and the service file always agree, the command
    exits 130, and the next command works. (SIGHUP takes the same path as SIGTERM in pgiam.cli.)
    Issue 26: each round waits for the child's own record that it sent the signal (no timing involved),
    and the child starts with SIGINT deliverable whatever the test runner inherited."""
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(SITECUSTOMIZE)
    log = tmp_path / "renames.log"
    env = pgiam_env(home, PGIAM_TEST_RENAME_LOG=str(log))
    env["PYTHONPATH"] = f"{site}:{env['PYTHONPATH']}"
    assert run(env, *add_args("s1", HOSTS[0], "alice", ca)).returncode == 0
    # How many renames does an add make? Count them once, with no signal.
    log.write_text("")
    assert run(dict(env, PGIAM_TEST_SIGNAL_AT_RENAME="999"), *add_args("probe", HOSTS[2], "carol", ca)).returncode == 0
    renames = len(log.read_text().splitlines())
    assert renames >= 4, log.read_text()
    # Each round adds a service of its own name, so no `remove` is needed between rounds.
    rounds = [f"{n}" for n in range(1, renames + 1)] + [f"{n},{n + 1}" for n in range(1, renames)]
    for i, at in enumerate(rounds):
        name = f"s{i + 2}"
        log.write_text("")
        p = _run_as_from_a_terminal(dict(env, PGIAM_TEST_SIGNAL_AT_RENAME=at, PGIAM_TEST_SIGNAL=sig),
                                    *add_args(name, HOSTS[1], f"u{i}", ca))
        events = log.read_text()
        assert f"signal {sig} at {at.split(',')[0]}\n" in events, (at, events)  # the event this round waits on
        assert p.returncode == 130, (at, p.returncode, p.stderr, events)
        assert "Traceback" not in p.stderr
        assert _consistent(home, name) is not None, (at, "config and service file disagree")
        assert _consistent(home, "s1") is True, at
    again = run(env, *add_args("last", HOSTS[1], "bob", ca))
    assert again.returncode == 0, again.stderr


def test_failed_directory_fsync_is_not_a_failed_replace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 11 (4): fsync of a directory fails (EIO) after the renames. A lone atomic_write says the file
    was replaced (true) and keeps it; write_all puts back every file and says so: never "failed" for a
    file left replaced."""
    from pgiam import fileio
    from pgiam.errors import FileError

    real = os.fsync

    def fsync(fd: int) -> None:
        if os.path.isdir(f"/proc/self/fd/{fd}"):
            raise OSError(5, "Input/output error")
        real(fd)

    a, b = tmp_path / "a", tmp_path / "b"
    a.write_bytes(b"A0")
    b.write_bytes(b"B0")
    monkeypatch.setattr(fileio.os, "fsync", fsync)
    with pytest.raises(FileError) as exc:
        fileio.atomic_write(a, b"A1", scope=fileio.NOWHERE)
    assert "was replaced" in exc.value.message and a.read_bytes() == b"A1"
    a.write_bytes(b"A0")
    with pytest.raises(FileError) as exc:
        fileio.write_all([(a, b"A1", 0o600), (b, b"B1", 0o600)], scope=fileio.NOWHERE)
    assert "put back every file" in exc.value.message
    assert (a.read_bytes(), b.read_bytes()) == (b"A0", b"B0")


# --- 5. hostile directories -----------------------------------------------------------------------------

@pytest.mark.parametrize("how", ["world-writable", "group-writable", "other owner"])
@pytest.mark.parametrize("which", [".local/state/pgiam", ".config/pgiam", ".local/share/pgiam"])
def test_hostile_own_directory_refused(home: Path, ca: Path, which: str, how: str) -> None:
    """Issue 11 (5): an existing pgiam directory another user owns or may write: exit 5 naming the fix
    (chmod/chown), nothing written."""
    env = pgiam_env(home)
    d = home / which
    d.mkdir(parents=True)
    if how == "other owner":
        os.chown(d, 65534, 65534)
    else:
        os.chmod(d, 0o777 if how == "world-writable" else 0o770)
    before = snapshot(home)
    p = run(env, *add_args("s1", HOSTS[0], "alice", ca))
    assert_one_error(p.stderr, p.returncode, 5)
    assert str(d) in p.stderr
    assert ("chown" if how == "other owner" else "chmod go-w") in p.stderr
    assert snapshot(home) == before


@pytest.mark.parametrize("how", ["group-writable", "other owner"])
@pytest.mark.parametrize("which", [".local/state/pgiam", ".config/pgiam", ".local/share/pgiam"])
def test_hostile_own_directory_refused_on_reads(home: Path, ca: Path, which: str, how: str) -> None:
    """Issue 19 (8): reads check exactly the directories writes check. After a good `add` and `token`, one
    of pgiam's own directories turns group-writable or another user's: the no-op `refresh --if-needed
    --quiet` (its fast path hands over to the full path), `status`, `list` and `token` (its fast path too)
    all refuse with exit 5 naming the directory and the fix, and print no token (they exited 0, reading
    next-due, the state, the config and the token index from it)."""
    env = pgiam_env(home)
    assert run(env, *add_args("s1", HOSTS[0], "alice", ca)).returncode == 0
    assert run(env, "token", "s1").returncode == 0  # writes the token index the fast path reads
    assert run(env, "refresh", "--if-needed", "--quiet").returncode == 0
    d = home / which
    d.mkdir(mode=0o700, parents=True, exist_ok=True)  # the data directory exists once a CA bundle was downloaded
    if how == "other owner":
        os.chown(d, 65534, 65534)
    else:
        os.chmod(d, 0o770)
    before = snapshot(home)
    for argv in (["refresh", "--if-needed", "--quiet"], ["status"], ["list"], ["token", "s1"]):
        p = run(env, *argv)
        assert_one_error(p.stderr, p.returncode, 5)
        assert str(d) in p.stderr, argv
        assert ("chown" if how == "other owner" else "chmod go-w") in p.stderr, argv
        assert p.stdout == "", argv
    assert snapshot(home) == before


def test_planted_symlinks_in_state_dir_not_followed(home: Path, ca: Path) -> None:
    """Issue 11 (5): `next-due -> ~/.bashrc`, `notice -> ~/.profile`, `lock -> ~/.lockvictim` planted in the
    state directory: no pgiam command writes through them; the user's files are untouched."""
    env = pgiam_env(home)
    assert run(env, *add_args("s1", HOSTS[0], "alice", ca)).returncode == 0
    state = home / ".local/state/pgiam"
    victims = {"next-due": home / ".bashrc", "notice": home / ".profile", "state.json": home / ".victim-state"}
    for name, victim in victims.items():
        victim.write_text(f"# my {victim.name}\n")
        (state / name).unlink(missing_ok=True)
        (state / name).symlink_to(victim)
    for argv in (["refresh"], ["refresh", "--if-needed"], add_args("s2", HOSTS[1], "bob", ca), ["remove", "s1"]):
        run(env, *argv)
        for victim in victims.values():
            assert victim.read_text() == f"# my {victim.name}\n", argv
    (state / "lock").unlink()
    (home / ".lockvictim").write_text("mine\n")
    (state / "lock").symlink_to(home / ".lockvictim")
    p = run(env, "refresh")
    assert_one_error(p.stderr, p.returncode, 5)
    assert "symlink" in p.stderr
    assert (home / ".lockvictim").read_text() == "mine\n"


def test_user_symlinks_kept(home: Path, ca: Path) -> None:
    """Issue 11 (5): the user's own files keep today's rules: a symlinked ~/.pgpass and config stay symlinks."""
    env = pgiam_env(home)
    real = home / "dotfiles"
    real.mkdir()
    (real / "pgpass").write_text("")
    os.chmod(real / "pgpass", 0o600)
    (home / ".pgpass").symlink_to(real / "pgpass")
    (home / ".config/pgiam").mkdir(parents=True)
    (real / "config.toml").write_text("")
    (home / ".config/pgiam/config.toml").symlink_to(real / "config.toml")
    assert run(env, *add_args("s1", HOSTS[0], "alice", ca)).returncode == 0
    assert (home / ".pgpass").is_symlink() and b"# END pgiam" in (real / "pgpass").read_bytes()
    assert (home / ".config/pgiam/config.toml").is_symlink() and "[services.s1]" in (real / "config.toml").read_text()


# --- 6. relative paths ----------------------------------------------------------------------------------

@pytest.mark.parametrize("var", ["PGPASSFILE", "PGSERVICEFILE"])
def test_relative_libpq_path_refused(home: Path, ca: Path, tmp_path: Path, var: str) -> None:
    """Issue 11 (6): PGPASSFILE=rel.pgpass (or PGSERVICEFILE): refused with the variable named (exit 2);
    nothing is written into the current directory, and `timer install` bakes nothing."""
    cwd = tmp_path / "some git work tree"
    cwd.mkdir()
    env = pgiam_env(home, **{var: "rel.file"})
    for argv in (add_args("s1", HOSTS[0], "alice", ca), ["refresh", "--if-needed", "--quiet"], ["refresh"],
                 ["timer", "install", "--systemd", "--no-enable"], ["timer", "install", "--cron"], ["hook", "bash"]):
        p = subprocess.run(pgiam_argv(*argv), env=env,
                           cwd=cwd, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
        assert p.returncode == 2, (argv, p.returncode, p.stderr)
        assert f"{var}='rel.file' is a relative path" in p.stderr, p.stderr
        assert list(cwd.iterdir()) == [], argv


# --- 10. smaller ----------------------------------------------------------------------------------------

def test_missing_home_never_created(tmp_path: Path, ca: Path) -> None:
    """Issue 11 (10): HOME=/nonexistent/x: exit 7 naming HOME, the tree is not created; with every location
    given explicitly, no HOME is needed at all."""
    missing = tmp_path / "nonexistent" / "x"
    env = pgiam_env(missing)
    p = run(env, *add_args("s1", HOSTS[0], "alice", ca))
    assert_one_error(p.stderr, p.returncode, 7)
    assert f"home directory {missing} does not exist" in p.stderr
    assert not (tmp_path / "nonexistent").exists()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env.update(XDG_CONFIG_HOME=str(elsewhere / "c"), XDG_STATE_HOME=str(elsewhere / "s"),
               XDG_DATA_HOME=str(elsewhere / "d"), PGPASSFILE=str(elsewhere / "pgpass"),
               PGSERVICEFILE=str(elsewhere / "services"))
    for argv in (add_args("s1", HOSTS[0], "alice", ca), ["refresh"], ["remove", "s1"]):
        p = run(env, *argv)
        assert p.returncode == 0, (argv, p.stderr)
    assert not (tmp_path / "nonexistent").exists()


def test_dev_null_pgpassfile_hint(home: Path, ca: Path) -> None:
    """Issue 11 (10): PGPASSFILE=/dev/null: exit 5, and the hint never says to move /dev/null away."""
    p = run(pgiam_env(home, PGPASSFILE="/dev/null"), *add_args("s1", HOSTS[0], "alice", ca))
    assert_one_error(p.stderr, p.returncode, 5)
    assert "/dev/null is a device" in p.stderr
    assert "move /dev/null" not in p.stderr and "out of the way" not in p.stderr
    assert os.path.exists("/dev/null") and not os.path.isfile("/dev/null")


def test_hard_linked_pgpass_warned(home: Path, ca: Path) -> None:
    """Issue 11 (10): a hard-linked ~/.pgpass is not split silently: pgiam says the other name keeps old tokens."""
    (home / ".pgpass").write_text("")
    os.chmod(home / ".pgpass", 0o600)
    os.link(home / ".pgpass", home / "pgpass-backup")
    p = run(pgiam_env(home), *add_args("s1", HOSTS[0], "alice", ca))
    assert p.returncode == 0, p.stderr
    assert "other hard link" in p.stderr


LOCK_HOLDER = """
import fcntl, os, sys
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT, 0o600)
fcntl.flock(fd, fcntl.LOCK_EX)
print("held", flush=True)
sys.stdin.readline()
"""


def _hold(lock: Path) -> subprocess.Popen[str]:
    import sys

    holder = subprocess.Popen([sys.executable, "-c", LOCK_HOLDER, str(lock)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
    return holder


def _release(holder: subprocess.Popen[str]) -> None:
    assert holder.stdin is not None
    holder.stdin.write("\n")
    holder.stdin.flush()
    holder.wait(10)


def test_lock_file_deleted_while_held(home: Path) -> None:
    """Issue 11 (10): deleting the lock file while it is held must not let two writers in. A waiter that
    opened the old file retries on the new one (instead of joining whoever holds the new file), and a
    holder whose file was deleted or replaced refuses to commit."""
    import threading

    from pgiam import fileio
    from pgiam.errors import LockedError

    lock = home / "lockdir" / "lock"
    lock.parent.mkdir(mode=0o700)
    # 1. In-process holder whose lock file is deleted and recreated: its commit is refused, nothing written.
    with fileio.locked(lock, 0, scope=fileio.NOWHERE):
        lock.unlink()
        lock.write_text("")
        with pytest.raises(LockedError, match="deleted or replaced"):
            fileio.write_all([(home / "f", b"x", 0o600)], scope=fileio.NOWHERE)
    assert not (home / "f").exists()
    # 2. first holds the file; a waiter opens it and waits; the file is deleted; second creates and holds
    # a new one; first lets go. The waiter must not get in beside second.
    first = _hold(lock)
    acquired = threading.Event()

    def waiter() -> None:
        with fileio.locked(lock, 30, scope=fileio.NOWHERE):
            acquired.set()

    t = threading.Thread(target=waiter)
    t.start()
    try:
        deadline = time.monotonic() + 10
        while not any(os.path.realpath(f"/proc/self/fd/{fd}") == str(lock) for fd in os.listdir("/proc/self/fd")):
            assert time.monotonic() < deadline, "the waiter never opened the lock file"
            time.sleep(0.01)
        lock.unlink()
        second = _hold(lock)
        _release(first)
        assert not acquired.wait(1.0), "the waiter got the deleted file's lock while another process holds the new one"
        _release(second)
        assert acquired.wait(10)
    finally:
        for p in (first,):
            p.kill()
        t.join(30)


# --- 9. the sandbox as root -----------------------------------------------------------------------------

def test_sandbox_private_dir_and_minimal_env(home: Path, tmp_path: Path) -> None:
    """Issue 11 (9): as root, `sandbox up` never uses the predictable /tmp/pgiam-sandbox-<sha256(dir)[:16]> of
    earlier versions, and never signals the pid a planted postmaster.pid there names; the server and the
    token checker get none of the caller's AWS_* variables (read from /proc/PID/environ)."""
    import hashlib
    import json
    import sys
    import tempfile

    from tests.tools import require_server, skip_or_fail

    if os.geteuid() != 0:
        skip_or_fail("the predictable directory was used only as root", "run it as root, as CI does")
    need("psql")
    require_server()
    env = pgiam_env(home, AWS_SESSION_TOKEN="SessionTokenThatMustNotLeak", AWS_SECRET_ACCESS_KEY="SecretThatMustNotLeak")
    sandbox_dir = home / ".local/state/pgiam/sandbox"
    digest = hashlib.sha256(str(sandbox_dir).encode()).hexdigest()[:16]
    planted = Path(tempfile.gettempdir()) / f"pgiam-sandbox-{digest}"
    (planted / "data").mkdir(parents=True)
    victim = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    try:
        (planted / "data" / "postmaster.pid").write_text(f"{victim.pid}\n{planted}/data\n")
        up = run(env, "sandbox", "up", timeout=240)
        try:
            assert up.returncode == 0, up.stderr
            assert victim.poll() is None, "pgiam signalled the pid a planted postmaster.pid named"
            st = json.loads(run(env, "sandbox", "status", "--json").stdout)
            status = st.get("sandbox", st)
            cluster = Path(status["cluster_dir"])
            assert cluster != planted and cluster.name.startswith("pgiam-sandbox-")
            assert oct(os.stat(cluster).st_mode & 0o777) == oct(0o700)
            pids = [int(status["postgres_pid"]), int(status["ldapd_pid"])]
            for pid in pids:
                environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
                names = {v.split(b"=")[0] for v in environ if v}
                # pg_ctl and postgres add PGDATA, PG_GRANDPARENT_PID, PGLOCALEDIR, PGSYSCONFDIR themselves.
                assert {n for n in names if not n.startswith(b"PG")} <= {b"PATH", b"LC_ALL", b"LANG", b"HOME", b"PWD", b"PYTHONPATH"}, (pid, names)
                assert b"MustNotLeak" not in b"\0".join(environ)
        finally:
            down = run(env, "sandbox", "down", timeout=120)
        assert down.returncode == 0, down.stderr
        assert victim.poll() is None, "sandbox down signalled the pid a planted postmaster.pid named"
        assert (planted / "data" / "postmaster.pid").exists()
    finally:
        victim.kill()
        victim.wait(10)
        import shutil

        shutil.rmtree(planted, ignore_errors=True)


# --- 1, 2. freshness judged from the files and the clock -------------------------------------------------

# The clock of one pgiam process shifted by PGIAM_TEST_CLOCK_OFFSET seconds: time.time and botocore's
# signing clock (botocore.auth.get_current_datetime), the two clocks pgiam reads.
CLOCK_SITECUSTOMIZE = """
import os
_off = float(os.environ.get("PGIAM_TEST_CLOCK_OFFSET") or 0)
if _off:
    import datetime, time
    _real = time.time
    time.time = lambda: _real() + _off
    import botocore.auth
    _orig = botocore.auth.get_current_datetime
    botocore.auth.get_current_datetime = lambda *a, **k: _orig(*a, **k) + datetime.timedelta(seconds=_off)
"""


def _clock_env(home: Path, tmp_path: Path, **extra: str) -> dict[str, str]:
    site = tmp_path / "clock-site"
    site.mkdir(exist_ok=True)
    (site / "sitecustomize.py").write_text(CLOCK_SITECUSTOMIZE)
    env = pgiam_env(home, **extra)
    env["PYTHONPATH"] = f"{site}:{env['PYTHONPATH']}"
    return env


def _token(home: Path, pgpass_file: Path | None = None) -> str | None:
    tokens = pgpass.parse_tokens((pgpass_file or home / ".pgpass").read_bytes().decode("utf-8", "surrogateescape"))
    return next(iter(tokens.values()), None)


def test_clock_stepped_back_renews(home: Path, ca: Path, tmp_path: Path) -> None:
    """Issue 11 (1): a refresh under a clock a day ahead, then the real clock: `refresh --if-needed` renews
    the token dated in the future instead of calling it fresh; the fast path (`--if-needed --quiet`) does too."""
    env = _clock_env(home, tmp_path)
    assert run(env, *add_args("prod", HOSTS[0], "alice", ca)).returncode == 0
    for argv in (["refresh", "--if-needed"], ["refresh", "--if-needed", "--quiet"]):
        ahead = run(dict(env, PGIAM_TEST_CLOCK_OFFSET="86400"), "refresh")
        assert ahead.returncode == 0, ahead.stderr
        future = _token(home)
        p = run(env, *argv)
        assert p.returncode == 0, p.stderr
        assert "still fresh" not in p.stdout
        assert _token(home) != future, argv


def _faketime(offset: str) -> list[str]:
    """argv prefix running a command under libfaketime with the clock shifted by `offset` (e.g. "-400s")."""
    return [need("faketime"), "-f", offset]


def test_clock_stepped_back_less_than_a_token_life_renews(home: Path, ca: Path) -> None:
    """Issue 19 (7), as reproduced: `faketime -f -400s pgiam add …`, then `faketime -f -600s pgiam refresh
    --if-needed --quiet`. The token in ~/.pgpass is dated 200 s ahead of that clock, so it is due (a token
    signed more than 5 s ahead is); the fast path no longer believes next-due (it lies beyond now +
    lifetime - min(margin, lifetime / 2) + 5), the full check renews it: exit 0 and a new token signed by
    the stepped-back clock (it exited 0, wrote nothing, and left a token to expire unrenewed)."""
    env = pgiam_env(home)
    p = subprocess.run(_faketime("-400s") + pgiam_argv(*add_args("prod", HOSTS[0], "alice", ca)), env=env,
                       capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert p.returncode == 0, p.stderr
    old = _token(home)
    assert old is not None
    start = time.time()
    p = subprocess.run(_faketime("-600s") + pgiam_argv("refresh", "--if-needed", "--quiet"), env=env,
                       capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert (p.returncode, p.stdout, p.stderr) == (0, "", "")
    new = _token(home)
    assert new is not None and new != old
    signed_old, signed_new = tokeninfo.decode(old).signed_at, tokeninfo.decode(new).signed_at
    assert signed_old > start - 600 + 150  # about 200 s ahead of the stepped-back clock
    assert start - 601 <= signed_new <= time.time() - 599  # the new one signed by the stepped-back clock


def test_far_next_due_with_expired_token_renews(home: Path, ca: Path, tmp_path: Path) -> None:
    """Issue 11 (1): next-due far in the future while the token expired: the fast path does not stay silent."""
    env = _clock_env(home, tmp_path)
    assert run(dict(env, PGIAM_TEST_CLOCK_OFFSET="-1200"), *add_args("prod", HOSTS[0], "alice", ca)).returncode == 0
    old = _token(home)
    due = home / ".local/state/pgiam/next-due"
    import time

    due.write_text(f"{int(time.time()) + 10 * 86400}\n300\n")
    p = run(env, "refresh", "--if-needed", "--quiet")
    assert p.returncode == 0, p.stderr
    assert _token(home) != old
    assert int(due.read_text().split()[0]) <= time.time() + 600  # a token signed now, margin 300


@pytest.mark.parametrize("how", ["block deleted by hand", "backup restored", "other PGPASSFILE"])
def test_token_missing_from_the_file_renews(home: Path, ca: Path, tmp_path: Path, how: str) -> None:
    """Issue 11 (2): pgiam's block deleted by hand (the README says it is safe), a ~/.pgpass restored from a
    backup, or PGPASSFILE different at refresh than at add: `refresh --if-needed --quiet` writes a token."""
    env = pgiam_env(home)
    (home / ".pgpass").write_bytes(b"mine:1:*:me:pw\n")
    os.chmod(home / ".pgpass", 0o600)
    backup = (home / ".pgpass").read_bytes()
    assert run(env, *add_args("prod", HOSTS[0], "alice", ca)).returncode == 0
    target = home / ".pgpass"
    if how == "block deleted by hand":
        target.write_bytes(pgpass.foreign_text(target.read_bytes().decode()).encode())
    elif how == "backup restored":
        target.write_bytes(backup)
    else:
        target = tmp_path / "other-pgpass"
        env = dict(env, PGPASSFILE=str(target))
    assert _token(home, target) is None if target.exists() else True
    p = run(env, "refresh", "--if-needed", "--quiet")
    assert p.returncode == 0, p.stderr
    assert _token(home, target) is not None, how


# --- 8. herd --------------------------------------------------------------------------------------------

CRED_PROCESS = """#!/bin/sh
# A credential_process (AWS CLI docs, "Sourcing credentials with an external process") that counts its runs
# and, like a slow SSO login, does not answer until the test creates the file "go".
echo run >> "{counter}"
i=0
while [ ! -e "{go}" ] && [ $i -lt 1200 ]; do sleep 0.05; i=$((i + 1)); done
printf '{{"Version": 1, "AccessKeyId": "AKIAHERDTEST00000001", "SecretAccessKey": "herdSecret/0123456789"}}\\n'
"""


@pytest.mark.parametrize("variant", [["--if-needed", "--quiet"], ["--if-needed", "--quiet", "--wait", "3"]])
def test_herd_resolves_credentials_once(home: Path, ca: Path, tmp_path: Path, variant: list[str]) -> None:
    """Issue 11 (8): 20 shells prompting at once with an expired token: credentials are resolved once (a real
    botocore credential_process that appends to a counter file). While the one minter is stuck in it, every
    other background `--if-needed` returns (exit 6, silently), and the prompt's `--wait 3` returns too; once
    the credentials come, the token is renewed and nobody resolves them again."""
    counter, go = tmp_path / "counter", tmp_path / "go"
    script = tmp_path / "creds.sh"
    script.write_text(CRED_PROCESS.format(counter=counter, go=go))
    script.chmod(0o755)
    (home / ".aws").mkdir()
    (home / ".aws/config").write_text(f"[profile herd]\ncredential_process = {script}\n")
    env = _clock_env(home, tmp_path)
    for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        env.pop(var)
    go.touch()
    p = run(dict(env, PGIAM_TEST_CLOCK_OFFSET="-1200"), *add_args("prod", HOSTS[0], "alice", ca, "--profile", "herd"))
    assert p.returncode == 0, p.stderr
    old = _token(home)
    counter.unlink()
    go.unlink()
    procs = [subprocess.Popen(pgiam_argv("refresh", *variant), env=env, stdin=subprocess.DEVNULL,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE) for _ in range(20)]
    try:
        if "--wait" in variant:  # every prompt gets its shell back while the minter is stuck
            codes = [pr.wait(60) for pr in procs]
            assert codes == [0] * 20, codes
        else:  # all but the minter return while it is stuck, silently, with "busy"
            deadline = time.monotonic() + 60
            while sum(pr.poll() is not None for pr in procs) < 19:
                assert time.monotonic() < deadline, [pr.poll() for pr in procs]
                time.sleep(0.05)
            done = [pr for pr in procs if pr.poll() is not None]
            assert [pr.returncode for pr in done] == [6] * 19
            assert all(pr.communicate()[1] == b"" for pr in done)
        assert _token(home) == old
    finally:
        go.touch()
    codes = [pr.wait(60) for pr in procs]
    assert sorted(codes) == ([0] * 20 if "--wait" in variant else [0] + [6] * 19), codes
    deadline = time.monotonic() + 60  # the minter (a detached child with --wait) writes the new token
    while _token(home) == old and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _token(home) != old
    assert counter.read_text().splitlines() == ["run"], "credentials resolved more than once"


def test_too_early_next_due_corrects_itself(home: Path, ca: Path) -> None:
    """Issue 11 (8): a next-due in the past while the token is fresh: one `refresh --if-needed --quiet` writes
    the right one, so the prompts stop starting a refresh every 30 s."""
    import time

    env = pgiam_env(home)
    assert run(env, *add_args("prod", HOSTS[0], "alice", ca)).returncode == 0
    due = home / ".local/state/pgiam/next-due"
    good = due.read_text()
    due.write_text(f"{int(time.time()) - 100}\n300\n")
    token = _token(home)
    p = run(env, "refresh", "--if-needed", "--quiet")
    assert p.returncode == 0, p.stderr
    assert _token(home) == token  # nothing minted
    assert due.read_text() == good and int(good.split()[0]) > time.time()
