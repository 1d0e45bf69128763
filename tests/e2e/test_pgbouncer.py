"""pgbouncer in front of the sandbox, its server login password kept fresh by `pgiam run` (issue 16).

Debian's pgbouncer (1.18) logs in to the sandbox with verify-full TLS against 127.0.0.1 (the sandbox
certificate carries an IP SAN: pgbouncer has no hostaddr), using the password pgiam writes for the
forced server user in the auth_file; clients log in to pgbouncer with their own line of that file.
"""

from __future__ import annotations

import contextlib
import datetime
import os
import pwd
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import botocore.auth
import pytest

from pgiam import pgbouncer, pgpass
from pgiam.errors import ConfigError
from pgiam.fileio import NOWHERE
from tests.e2e.conftest import World
from tests.e2e.test_psql import info, sandbox_env, sandbox_keys
from tests.e2e.test_run import Log, age_token, until
from tests.tools import require_tool

pytestmark = pytest.mark.e2e

USERS_OWN = b'; client logins, kept by hand\n"app" "apppass"\n;last line without newline\n"ops" "x""y"'


# ---------------------------------------------------------------- the pure block merge


@pytest.mark.parametrize("text", ["", '"app" "pw"\n', USERS_OWN.decode(), "; only a comment", "\r\n"])
def test_merge_keeps_the_users_bytes_and_is_idempotent(text: str) -> None:
    merged = pgbouncer.merge(text, {"iam_user": "host:5432/?Action=connect&X"})
    assert merged.endswith(text)  # pgiam's block goes first; the user's bytes follow untouched
    assert '"iam_user" "host:5432/?Action=connect&X"\n' in merged
    assert pgbouncer.merge(merged, {"iam_user": "host:5432/?Action=connect&X"}) == merged
    assert pgbouncer.merge(merged, {"iam_user": "new"}).endswith(text)
    assert not any(line.startswith("#") for line in merged.splitlines())  # a # line breaks pgbouncer's file


def test_merge_quotes_and_refuses_a_users_own_line() -> None:
    assert '"we""ird" "p"' in pgbouncer.merge("", {'we"ird': "p"})
    with pytest.raises(ConfigError, match="'app'"):
        pgbouncer.merge(USERS_OWN.decode(), {"app": "token"}, "userlist.txt")
    assert pgbouncer.own_users(USERS_OWN.decode()) == ["app", 'ops']


@pytest.mark.parametrize(("version", "limit"), [(None, 2047), ((1, 18), 2047), ((1, 17), 2047), ((1, 16), 995), ((1, 12), 127)])
def test_password_limit_by_version(version: tuple[int, int] | None, limit: int) -> None:
    assert pgbouncer.password_limit(version) == limit


def test_old_pgbouncer_is_refused_with_the_reason() -> None:
    with pytest.raises(Exception, match="1.16 keeps passwords of at most 995 bytes"):
        pgbouncer.check_version((1, 16))
    assert pgbouncer.parse_version("PgBouncer 1.18.0\nlibevent 2.1.12-stable") == (1, 18)


def test_sync_keeps_owner_and_group_and_drops_others(tmp_path: Path) -> None:
    """pgbouncer's account must still read the new file, and nobody else: owner and group kept, the
    group keeps read only, others lose everything; the temp file never shows up beside it."""
    (tmp_path / "etc").mkdir()
    f = tmp_path / "etc" / "userlist.txt"
    f.write_bytes(USERS_OWN)
    os.chmod(f, 0o664)
    if os.geteuid() == 0:
        pg = pwd.getpwnam("postgres")
        os.chown(f, pg.pw_uid, pg.pw_gid)
    before = os.stat(f)
    assert pgbouncer.Target(f).sync({"iam_user": "tok"}, scope=NOWHERE)
    after = os.stat(f)
    assert (after.st_uid, after.st_gid) == (before.st_uid, before.st_gid)
    assert stat.S_IMODE(after.st_mode) == 0o640
    assert f.read_bytes().endswith(USERS_OWN) and sorted(p.name for p in f.parent.iterdir()) == ["userlist.txt"]
    assert not pgbouncer.Target(f).sync({"iam_user": "tok"}, scope=NOWHERE)  # unchanged: no write


def test_new_auth_file_is_private(tmp_path: Path) -> None:
    f = tmp_path / "userlist.txt"
    assert pgbouncer.Target(f).sync({"iam_user": "tok"}, scope=NOWHERE)
    assert stat.S_IMODE(os.stat(f).st_mode) == 0o600
    assert f.read_text() == f'{pgbouncer.BEGIN}\n"iam_user" "tok"\n{pgbouncer.END}\n'


# ---------------------------------------------------------------- the real pgbouncer


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Bouncer:
    def __init__(self, d: Path, port: int, account: pwd.struct_passwd | None) -> None:
        self.dir, self.port, self.account = d, port, account
        self.ini, self.userlist, self.pidfile, self.logfile = d / "pgbouncer.ini", d / "userlist.txt", d / "pgbouncer.pid", d / "pgbouncer.log"

    def psql(self, password: str = "apppass", dbname: str = "sandbox",
             sql: str = "select current_user") -> subprocess.CompletedProcess[str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PG", "AWS_"))}
        env.update(PGPASSWORD=password, PGCONNECT_TIMEOUT="10")
        return subprocess.run(["psql", f"host=127.0.0.1 port={self.port} user=app dbname={dbname} sslmode=disable",
                               "-XAtqc", sql], env=env, capture_output=True, text=True, timeout=60,
                              stdin=subprocess.DEVNULL)

    def log_tail(self) -> str:
        return self.logfile.read_text(errors="replace")[-3000:] if self.logfile.exists() else "(no log)"


@contextlib.contextmanager
def running_bouncer(databases: str, extra: str = "", files: dict[str, bytes] | None = None) -> Iterator[Bouncer]:
    """Debian's pgbouncer with `databases` (the [databases] section and any [pgbouncer] TLS lines, as
    `pgiam export pgbouncer` prints them; `{dir}` is its own directory, where `files` are put) plus its
    listener, files and `extra` settings; USERS_OWN as auth_file."""
    exe = shutil.which("pgbouncer") or ("/usr/sbin/pgbouncer" if os.path.exists("/usr/sbin/pgbouncer") else None)
    if exe is None:
        require_tool("pgbouncer")
    assert exe is not None
    # pgbouncer refuses to run as root: as root, run it as the postgres account (-u), in a directory it owns.
    account = pwd.getpwnam("postgres") if os.geteuid() == 0 else None
    d = Path(tempfile.mkdtemp(prefix="pgiam-pgbouncer-", dir="/tmp"))
    os.chmod(d, 0o755)
    b = Bouncer(d, free_port(), account)
    for name, data in (files or {}).items():
        (d / name).write_bytes(data)
    text = databases.replace("{dir}", str(d))
    if "[pgbouncer]" not in text:
        text += "\n[pgbouncer]\n"
    b.ini.write_text(f"""{text}
listen_addr = 127.0.0.1
listen_port = {b.port}
unix_socket_dir =
auth_type = md5
auth_file = {b.userlist}
pidfile = {b.pidfile}
logfile = {b.logfile}
pool_mode = session
{extra}""")
    b.userlist.write_bytes(USERS_OWN)
    os.chmod(b.userlist, 0o600)  # pgbouncer's account reads it, nobody else
    if account is not None:
        for p in d.iterdir():
            os.chown(p, account.pw_uid, account.pw_gid)
        os.chown(d, account.pw_uid, account.pw_gid)
    argv = [exe, "-d", *(["-u", "postgres"] if account else []), str(b.ini)]
    p = subprocess.run(argv, capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL)
    assert p.returncode == 0, p.stderr + b.log_tail()
    try:
        deadline = time.monotonic() + 30
        while True:  # -d returns once forked; the listener follows
            try:
                socket.create_connection(("127.0.0.1", b.port), timeout=1).close()
                break
            except OSError:
                assert time.monotonic() < deadline, b.log_tail()
                time.sleep(0.05)
        yield b
    finally:
        with open(b.pidfile) as f:
            pid = int(f.read().split()[0])
        os.kill(pid, 15)
        shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def bouncer(world: World) -> Iterator[Bouncer]:
    i = info(world)
    with running_bouncer(f"""\
[databases]
sandbox = host=127.0.0.1 port={i['local_port']} dbname=postgres user=pgiam_sandbox

[pgbouncer]
server_tls_sslmode = verify-full
server_tls_ca_file = {{dir}}/ca.crt
""", """\
; every client connection makes a new server login, with the password of that moment
server_lifetime = 0
; after a failed server login pgbouncer waits this long before the next one (default 15 s)
server_login_retry = 0
""", {"ca.crt": Path(i["ca_file"]).read_bytes()}) as b:
        yield b


def headless_env(world: World, tmp_path: Path) -> dict[str, str]:
    i = info(world)
    host = i["endpoint"].rsplit(":", 1)[0]
    cfg = tmp_path / "config.toml"
    cfg.write_text(f"""\
[services.sandbox]
host = "{host}"
port = 5432
user = "pgiam_sandbox"
dbname = "postgres"
region = "us-east-1"
via = "127.0.0.1:{i['local_port']}"
sslrootcert = "{i['ca_file']}"
""")
    shared = tmp_path / "shared"
    shared.mkdir(exist_ok=True)
    env = {k: v for k, v in world.env.items() if not k.startswith(("XDG_", "AWS_"))}
    env.update(PGIAM_CONFIG=str(cfg), PGIAM_STATE_DIR=str(shared), PGPASSFILE=str(shared / "pgpass"),
               PGSERVICEFILE=str(shared / "pg_service.conf"), AWS_SHARED_CREDENTIALS_FILE=i["aws_credentials_file"],
               AWS_PROFILE="pgiam-sandbox", AWS_CONFIG_FILE=str(tmp_path / "none"), AWS_EC2_METADATA_DISABLED="true")
    return env


def run_once(env: dict[str, str], b: Bouncer) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pgiam", "run", "--once", "--pgbouncer-auth-file", str(b.userlist),
                           "--pgbouncer-pidfile", str(b.pidfile)], env=env, capture_output=True, text=True, timeout=120,
                          stdin=subprocess.DEVNULL)


def test_pgbouncer_logs_in_with_the_token_before_and_after_a_rotation(
        world: World, bouncer: Bouncer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    b = bouncer
    p = b.psql()
    assert p.returncode != 0  # no server password for pgiam_sandbox yet

    env = headless_env(world, tmp_path)
    r = run_once(env, b)
    assert r.returncode == 0, r.stderr
    assert "pgbouncer: wrote" in r.stderr and "reloaded pid" in r.stderr
    data = b.userlist.read_bytes()
    assert data.endswith(USERS_OWN)  # the user's own lines, byte for byte
    st = os.stat(b.userlist)
    assert stat.S_IMODE(st.st_mode) == 0o600
    if b.account is not None:
        assert (st.st_uid, st.st_gid) == (b.account.pw_uid, b.account.pw_gid)  # still pgbouncer's to read
    (t1,) = pgpass.parse_tokens(Path(env["PGPASSFILE"]).read_text()).values()
    assert f'"pgiam_sandbox" "{t1}"'.encode() in data
    assert t1 not in r.stderr and t1 not in r.stdout

    # Reloading: the earlier refusal was not cached, the connection goes through now.
    p = b.psql()
    assert p.returncode == 0, p.stderr + b.log_tail()
    assert p.stdout.strip() == "pgiam_sandbox"

    # An expired token in both files (signed 20 minutes ago, written by pgiam's own code): logins fail.
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    from pgiam import refresh, token
    from pgiam.paths import Paths

    past = datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None) - datetime.timedelta(minutes=20)
    monkeypatch.setattr(botocore.auth, "get_current_datetime", lambda *a, **k: past)
    res = refresh.refresh(Paths.from_env(), time.time(), token.mint, ["sandbox"])
    monkeypatch.undo()
    assert [o.status for o in res.outcomes] == ["renewed"]
    (t0,) = pgpass.parse_tokens(Path(env["PGPASSFILE"]).read_text()).values()
    target = pgbouncer.Target(b.userlist, b.pidfile)
    assert target.sync({"pgiam_sandbox": t0}, scope=NOWHERE) and target.reload(scope=NOWHERE)
    p = b.psql()
    assert p.returncode != 0, "pgbouncer still logged in with an expired token"

    # The rotation: `pgiam run` sees the expired token, mints a new one, rewrites the line, reloads pgbouncer.
    r = run_once(env, b)
    assert r.returncode == 0, r.stderr
    assert "sandbox: renewed" in r.stderr and "reloaded pid" in r.stderr
    (t2,) = pgpass.parse_tokens(Path(env["PGPASSFILE"]).read_text()).values()
    assert t2 != t0 and f'"pgiam_sandbox" "{t2}"'.encode() in b.userlist.read_bytes()
    assert b.userlist.read_bytes().endswith(USERS_OWN)
    p = b.psql()
    assert p.returncode == 0, p.stderr + b.log_tail()
    assert p.stdout.strip() == "pgiam_sandbox"

    # Nothing changed: no rewrite, no reload.
    r = run_once(env, b)
    assert r.returncode == 0 and "pgbouncer: wrote" not in r.stderr


def test_a_users_own_line_for_the_iam_user_is_refused_at_start(world: World, bouncer: Bouncer, tmp_path: Path) -> None:
    before = USERS_OWN + b'\n"pgiam_sandbox" "mine"\n'
    bouncer.userlist.write_bytes(before)
    r = run_once(headless_env(world, tmp_path), bouncer)
    assert "already has a line of its own for user 'pgiam_sandbox'" in r.stderr
    assert bouncer.userlist.read_bytes() == before


# ---------------------------------------------------------------- under load, through rotations (issue 23)

ROTATIONS = 3  # the token changes at least this often while pgbench runs: ROTATIONS + 1 distinct tokens
CRED_LIFE = 60  # credentials that expire in a minute: a token is renewed half-way, every 30 s (MIN_INTERVAL)
OLD_TOKEN_LEFT = 120  # s of life the token pgiam run takes over still has when the load starts


def accepted_stamps(log: Path, offset: int, user: str) -> list[str]:
    """The X-Amz-Date of every token the sandbox's checker accepted for `user` after `offset` bytes of its log."""
    with open(log, "rb") as f:
        f.seek(offset)
        text = f.read().decode(errors="replace")
    prefix = f"accepted user={user} signed="
    return [line.split(prefix, 1)[1] for line in text.splitlines() if prefix in line]


def pgbench(b: Bouncer, script: Path, seconds: int) -> subprocess.Popen[str]:
    """pgbench with a new connection per transaction (-C) through pgbouncer, as the client user `app`, started."""
    exe = require_tool("pgbench", "postgresql")  # Debian ships it with the server
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PG", "AWS_"))}
    env.update(PGPASSWORD="apppass", PGCONNECT_TIMEOUT="10")
    return subprocess.Popen([exe, "-n", "-C", "-c", "2", "-j", "1", "-T", str(seconds), "-f", str(script),
                             "-h", "127.0.0.1", "-p", str(b.port), "-U", "app", "sandbox"],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            stdin=subprocess.DEVNULL)


def test_pgbench_through_pgbouncer_across_three_rotations_has_no_failed_transaction(
        world: World, bouncer: Bouncer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 23: pgbench opens a new connection per transaction through Debian's pgbouncer (every client
    connection a new server login: server_lifetime = 0) while `pgiam run` rotates the token underneath and
    rewrites pgbouncer's auth file; the sandbox's token checker logs the X-Amz-Date of each token it
    accepts. The first token is 780 s old when the load starts (pgiam run takes over a token inside its
    renewal margin, about to expire, while the first round of load runs on it); after it, credentials living a
    minute (a credential_process) make pgiam run renew every 30 s, never more often.
    Across three rotations (four distinct tokens accepted): zero failed or aborted transactions, no failed
    server login in pgbouncer's log, no token refused. The one exception is pgbouncer's own (see finish): a
    reload that drops a server login in progress can fail the next client of a pool with no ready server."""
    from tests.awsfake import credential_profiles

    b = bouncer
    access, secret = sandbox_keys(world)
    env = headless_env(world, tmp_path)
    env.pop("AWS_PROFILE")
    env["AWS_CONFIG_FILE"] = str(credential_profiles(tmp_path, {"rotating": CRED_LIFE}, access, secret))
    cfg = Path(env["PGIAM_CONFIG"])
    cfg.write_text(cfg.read_text() + 'profile = "rotating"\n')
    script = tmp_path / "select.sql"
    script.write_text("select 1;\n")
    checker_log = Path(info(world)["log_file"])
    # Two minutes left: inside the 300 s renewal margin, so `pgiam run` renews it the moment it starts, yet
    # it outlives the first round of load plus pgiam run's start on a loaded machine (with 20 s left, a
    # full-suite run at load 10-15 saw it expire before the first renewal reached pgbouncer).
    age_token(env, "sandbox", 900 - OLD_TOKEN_LEFT, monkeypatch)
    (t0,) = pgpass.parse_tokens(Path(env["PGPASSFILE"]).read_text()).values()
    target = pgbouncer.Target(b.userlist, b.pidfile)
    assert target.sync({"pgiam_sandbox": t0}, scope=NOWHERE) and target.reload(scope=NOWHERE)
    start = checker_log.stat().st_size
    runs = transactions = 0

    log: Log | None = None

    def refusals() -> list[str]:
        """The sandbox checker's refusals since the test started."""
        with open(checker_log, "rb") as f:
            f.seek(start)
            return [line for line in f.read().decode(errors="replace").splitlines() if "refused" in line]

    def evidence() -> str:
        """What explains a failed server login: the checker's refusals, pgbouncer's log, pgiam run's log."""
        refused = refusals()
        run_log = "".join(log.lines) if log is not None else "(pgiam run not started)"
        # pgbouncer's warnings and every disconnect but the routine two (a server dropped during its login
        # makes pgbouncer fail the next clients: src/objects.c, check_fast_fail), and the server's errors.
        routine = ("client close request", "server lifetime over")
        warnings = [line for line in b.logfile.read_text(errors="replace").splitlines()
                    if " LOG " not in line or ("closing because" in line and not any(r in line for r in routine))
                    ][-20:] if b.logfile.exists() else ["(no log)"]
        server_log = Path(info(world)["data_dir"]).parent / "server.log"
        server = [line for line in server_log.read_text(errors="replace").splitlines()
                  if "FATAL" in line or "ERROR" in line or "WARNING" in line][-20:] if server_log.exists() else []
        return (f"\nchecker refusals: {refused}\npgbouncer warnings:\n" + "\n".join(warnings)
                + "\nserver log (FATAL, ERROR, WARNING):\n" + "\n".join(server)
                + f"\npgbouncer log:\n{b.log_tail()}\npgiam run log:\n{run_log}"
                f"\nnow {time.strftime('%H:%M:%S', time.gmtime())}")

    cancelled = "closing because: connect string changed"
    excused = 0

    def cancelled_logins() -> int:
        return b.logfile.read_text(errors="replace").count(cancelled) if b.logfile.exists() else 0

    def finish(bench: subprocess.Popen[str], cancelled_before: int) -> None:
        """Wait for one round of load; it failed no transaction.

        One failure is pgbouncer's and is told apart exactly: with server TLS configured, every reload marks
        the pools dirty and drops the server logins in progress ("connect string changed"), records that as
        a failed login, and fails a client that then finds no ready server ("server login has been
        failing"): pgbouncer's src/sbuf.c (TLS reload) and src/objects.c (tag_pool_dirty, disconnect_server,
        check_fast_fail), described in pgbouncer issue #1536. Such a round, with no token refused, is counted
        and the load goes on; any other failure fails the test."""
        nonlocal runs, transactions, excused
        try:
            out, err = bench.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            bench.kill()
            raise
        runs += 1
        if (bench.returncode != 0 and "server login has been failing" in err
                and cancelled_logins() > cancelled_before and not refusals()):
            excused += 1
            assert excused <= ROTATIONS, out + err + evidence()  # at most one per reload pgiam sent
            return
        assert bench.returncode == 0, out + err + evidence()
        assert "aborted" not in out + err
        assert "number of failed transactions: 0 " in out, out
        done = int(out.split("number of transactions actually processed: ", 1)[1].split()[0])
        assert done > 0, out
        transactions += done

    def round_of_load() -> None:
        before = cancelled_logins()
        finish(pgbench(b, script, 5), before)

    # The load starts on the old token; once the sandbox has accepted it, `pgiam run` starts and takes over
    # while that first round still runs.
    first_before = cancelled_logins()
    first = pgbench(b, script, 5)
    until("the old token accepted", lambda: bool(accepted_stamps(checker_log, start, "pgiam_sandbox")), 60)
    assert f"X-Amz-Date={accepted_stamps(checker_log, start, 'pgiam_sandbox')[0]}&" in t0
    proc = subprocess.Popen([sys.executable, "-m", "pgiam", "run", "--pgbouncer-auth-file", str(b.userlist),
                             "--pgbouncer-pidfile", str(b.pidfile)], env=env, stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    log = Log(proc)
    try:
        finish(first, first_before)
        deadline = time.monotonic() + ROTATIONS * 30 + 60
        while len(set(accepted_stamps(checker_log, start, "pgiam_sandbox"))) < ROTATIONS + 1:
            assert time.monotonic() < deadline, (f"{len(set(accepted_stamps(checker_log, start, 'pgiam_sandbox')))} "
                                                 f"distinct tokens only:\n{''.join(log.lines)}")
            round_of_load()
        stamps = accepted_stamps(checker_log, start, "pgiam_sandbox")
        assert len(stamps) >= transactions  # every transaction's server login was a checked token
        # Renewed every 30 s, never more often (no spinning on credentials shorter than the margin): the
        # third renewal's token is seen within a round of its write, long before a fourth is due 30 s later.
        assert ROTATIONS <= sum("renewed" in line for line in log.lines) <= ROTATIONS + 1, log.lines
        pglog = b.logfile.read_text(errors="replace")
        assert "login failed" not in pglog and "password authentication failed" not in pglog, b.log_tail()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 0
        tokens = pgpass.parse_tokens(Path(env["PGPASSFILE"]).read_text()).values()
        assert not any(t in "".join(log.lines) for t in tokens) and secret not in "".join(log.lines)
        signed = sorted({datetime.datetime.strptime(s, "%Y%m%dT%H%M%SZ") for s in stamps})
        left = (signed[0] + datetime.timedelta(seconds=900) - signed[1]).total_seconds()
        print(f"pgbench: {runs} runs ({excused} failed by pgbouncer after a reload dropped a server login; "
              f"{cancelled_logins()} server logins dropped by reloads), "
              f"{transactions} transactions, {len(set(stamps))} distinct tokens; "
              f"the first renewal was signed {left:.0f} s before the old token expired")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


# ---------------------------------------------------------------- `pgiam export pgbouncer` (issue 23)


def test_exported_config_starts_pgbouncer_and_logs_in_with_verify_full(world: World, tmp_path: Path) -> None:
    """Issue 23: `pgiam export pgbouncer` for an RDS-like and an Aurora DSQL service (the sandbox plays both)
    gives [databases] lines and verify-full TLS with one CA file; pgbouncer starts with it as printed, and
    clients reach both databases as their IAM users over TLS once `pgiam run --once` filled auth_file.
    server_lifetime is below DSQL's hour. The same config with a CA file that lacks the sandbox's CA fails
    the server login: the verification is real."""
    from tests.e2e.test_dsql import add_dsql

    i = info(world)
    add_dsql(world, "dsqlx", "dsql_x")
    try:
        staged = tmp_path / "server-ca.pem"
        r = world.pgiam("export", "pgbouncer", "sandbox", "dsqlx", "--ca-file", str(staged))
        text = r.stdout
        assert f"sandbox = host=127.0.0.1 port={i['local_port']} dbname=postgres user=pgiam_sandbox\n" in text
        assert f"dsqlx = host=127.0.0.1 port={i['local_port']} dbname=postgres user=dsql_x\n" in text
        assert "server_tls_sslmode = verify-full\n" in text and f"server_tls_ca_file = {staged}\n" in text
        lifetime = int(text.split("server_lifetime = ", 1)[1].split()[0])
        assert 0 < lifetime < 3600
        assert Path(i["ca_file"]).read_bytes().strip() in staged.read_bytes()
        # pgbouncer's account reads the CA file from pgbouncer's own directory; the config is used as printed.
        ini = text.replace(str(staged), "{dir}/server-ca.pem")
        with running_bouncer(ini, "server_login_retry = 0\n", {"server-ca.pem": staged.read_bytes()}) as b:
            env = dict(sandbox_env(world))
            r = subprocess.run([sys.executable, "-m", "pgiam", "run", "--once", "--pgbouncer-auth-file", str(b.userlist),
                                "--pgbouncer-pidfile", str(b.pidfile)], env=env, capture_output=True, text=True,
                               timeout=120, stdin=subprocess.DEVNULL)
            assert r.returncode == 0, r.stderr
            for db, user in (("sandbox", "pgiam_sandbox"), ("dsqlx", "dsql_x")):
                p = b.psql(dbname=db, sql="select current_user || ' ' || ssl::text from pg_stat_ssl where pid = pg_backend_pid()")
                assert p.returncode == 0, p.stderr + b.log_tail()
                assert p.stdout.strip() == f"{user} true"
        other = Path("/etc/ssl/certs/ca-certificates.crt")
        if not other.exists():
            other = Path(i["aws_credentials_file"])  # any file without the sandbox CA
        # client_login_timeout: the client waits for a server login this long (default 60 s) before it is told
        with running_bouncer(ini, "server_login_retry = 0\nclient_login_timeout = 3\n",
                             {"server-ca.pem": other.read_bytes()}) as b:
            r = subprocess.run([sys.executable, "-m", "pgiam", "run", "--once", "--pgbouncer-auth-file", str(b.userlist),
                                "--pgbouncer-pidfile", str(b.pidfile)], env=env, capture_output=True, text=True,
                               timeout=120, stdin=subprocess.DEVNULL)
            assert r.returncode == 0, r.stderr
            p = b.psql(dbname="sandbox")
            assert p.returncode != 0, "pgbouncer logged in although the CA file lacks the server's CA"
            assert "certificate verify failed" in b.log_tail(), b.log_tail()
    finally:
        world.pgiam("remove", "dsqlx")


def test_export_pgbouncer_needs_one_ca_file(world: World, tmp_path: Path) -> None:
    """pgbouncer has one server_tls_ca_file: services with different CA files need --ca-file (exit 2, with the
    command to run); nothing is written."""
    from tests.e2e.test_psql import add_sandbox_like

    ca = tmp_path / "other-ca.pem"
    ca.write_bytes(Path(info(world)["ca_file"]).read_bytes())
    add_sandbox_like(world, "otherca", "pgiam_sandbox", "--sslrootcert", str(ca))
    try:
        r = world.pgiam("export", "pgbouncer", check=False)
        assert r.returncode == 2 and r.stdout == ""
        assert "2 CA files" in r.stderr and "hint: add --ca-file FILE" in r.stderr
        r = world.pgiam("export", "pgbouncer", "otherca", check=False)
        assert r.returncode == 0 and f"server_tls_ca_file = {ca}\n" in r.stdout
    finally:
        world.pgiam("remove", "otherca")
