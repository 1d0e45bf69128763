"""Start, inspect and stop the sandbox: a local PostgreSQL whose TCP logins are checked by ldapd.

Layout: pgiam's sandbox dir (0700, the user's) keeps what outlives a cluster (the dummy AWS key pair,
the CA and server certificate, ldapd's config and log, sandbox.json). The cluster itself (data dir,
unix socket, server log) lives in a directory the server's account owns: the sandbox dir when pgiam
runs as a normal user, a postgres-owned 0700 directory under the temp dir when it runs as root
(PostgreSQL refuses to run as root, and the postgres account cannot enter a 0700 state dir).

As root that directory is a fresh one from mkdtemp (an unpredictable name no other user can have
prepared), recorded in the sandbox dir; the postmaster's pid is recorded there too, when pgiam has
just started it, and only a process whose command line names this cluster's data directory is ever
signalled. The server and the token checker start with a minimal environment: none of the caller's
AWS_* credentials (or anything else) reaches processes another account can inspect in /proc.
"""

from __future__ import annotations

import contextlib
import glob
import json
import os
import pwd
import re
import secrets
import shutil
import signal
import socket
import string
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from pgiam.errors import EnvironmentProblem, UsageError
from pgiam.fileio import Scope, atomic_write, ensure_private_dir, locked
from pgiam.paths import Paths

ENDPOINT_HOST = "sandbox.cluster-pgiam.us-east-1.rds.amazonaws.com"
DSQL_HOST = "pgiamsandbox.dsql.us-east-1.on.aws"  # the sandbox also plays an Aurora DSQL endpoint
ENDPOINT_PORT = 5432  # what tokens are signed for, whatever local port the server listens on
REGION = "us-east-1"
DEFAULT_ROLE = "pgiam_sandbox"
AWS_PROFILE = "pgiam-sandbox"
SUPERUSER = "pgiam_bootstrap"  # only reachable over the private unix socket (pg_hba below)
TIMEOUT = 30.0  # seconds for any one child command; nothing waits forever
SERVER_ACCOUNT = "postgres"
_INSTALL_HINT = (
    "install them: sudo apt-get install postgresql (Debian/Ubuntu), sudo dnf install postgresql-server "
    "(Fedora/RHEL), brew install postgresql (macOS); or put initdb, pg_ctl and postgres on PATH"
)


@dataclass(frozen=True)
class SandboxInfo:
    """Where a running sandbox is and how to log in to it."""

    endpoint_host: str
    endpoint_port: int
    local_port: int
    region: str
    role: str
    ca_file: Path
    aws_credentials_file: Path
    aws_profile: str
    log_file: Path  # ldapd's decisions: why a login was accepted or refused
    data_dir: Path

    def to_json(self) -> dict[str, object]:
        """JSON-ready dict (paths as strings)."""
        return {k: str(v) if isinstance(v, Path) else v for k, v in asdict(self).items()}

    @classmethod
    def from_json(cls, raw: dict[str, object]) -> "SandboxInfo":
        """Inverse of to_json."""
        paths = {"ca_file", "aws_credentials_file", "log_file", "data_dir"}
        kwargs = {k: Path(str(raw[k])) if k in paths else raw[k] for k in cls.__dataclass_fields__}
        return cls(**kwargs)  # type: ignore[arg-type]


@dataclass(frozen=True)
class _Layout:
    """Every file of one sandbox, derived from Paths."""

    sandbox: Path
    cluster: Path
    scope: Scope  # pgiam's own directories (the sandbox lives in the state directory)

    @classmethod
    def of(cls, paths: Paths) -> "_Layout":
        sandbox = Path(os.path.abspath(paths.sandbox_dir))
        if os.geteuid() == 0:
            # The directory mkdtemp made for the running cluster, as recorded in the private sandbox dir;
            # none yet: a path inside the sandbox dir that does not exist (nothing to stop or remove).
            try:
                recorded = (sandbox / "cluster-dir").read_text().strip()
            except OSError:
                recorded = ""
            cluster = Path(recorded) if os.path.isabs(recorded) else sandbox / "no-cluster"
        else:
            cluster = sandbox / "cluster"
        return cls(sandbox, cluster, paths.scope)

    info = property(lambda self: self.sandbox / "sandbox.json")
    credentials = property(lambda self: self.sandbox / "aws-credentials")
    keys = property(lambda self: self.sandbox / "keys.json")
    ca_crt = property(lambda self: self.sandbox / "ca.crt")
    ca_key = property(lambda self: self.sandbox / "ca.key")
    server_crt = property(lambda self: self.sandbox / "server.crt")
    server_key = property(lambda self: self.sandbox / "server.key")
    ldapd_conf = property(lambda self: self.sandbox / "ldapd.json")
    ldapd_pid = property(lambda self: self.sandbox / "ldapd.pid")
    ldapd_port = property(lambda self: self.sandbox / "ldapd.port")
    ldapd_log = property(lambda self: self.sandbox / "ldapd.log")
    ldapd_stderr = property(lambda self: self.sandbox / "ldapd.stderr")
    lock = property(lambda self: self.sandbox / "lock")
    cluster_record = property(lambda self: self.sandbox / "cluster-dir")
    postgres_pid = property(lambda self: self.sandbox / "postgres.pid")  # written by pgiam, not the server
    data = property(lambda self: self.cluster / "data")
    sock = property(lambda self: self.cluster / "sock")
    server_log = property(lambda self: self.cluster / "server.log")


def _searchable_temp_dir() -> Path:
    """A temp dir the server account can enter: $TMPDIR may be a private 0700 directory."""
    for candidate in (tempfile.gettempdir(), "/var/tmp", "/tmp"):
        with contextlib.suppress(OSError):
            if os.stat(candidate).st_mode & 0o001:
                return Path(candidate)
    return Path("/tmp")


# ---- finding and running the server binaries ----


def find_server_binaries() -> dict[str, Path]:
    """initdb, pg_ctl, postgres and psql: PATH, else `pg_config --bindir`, else /usr/lib/postgresql/*/bin."""
    names = ("initdb", "pg_ctl", "postgres")
    found = {n: shutil.which(n) for n in names}
    if all(found.values()):
        result = {n: Path(p) for n, p in found.items() if p}
    else:
        candidates: list[Path] = []
        pg_config = shutil.which("pg_config")
        if pg_config:
            with contextlib.suppress(OSError, subprocess.SubprocessError):
                out = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True, timeout=10)
                if out.returncode == 0 and out.stdout.strip():
                    candidates.append(Path(out.stdout.strip()))

        def version(path: str) -> tuple[int, ...]:
            nums = re.findall(r"\d+", Path(path).parent.name)
            return tuple(int(n) for n in nums)

        candidates += [Path(p) for p in sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=version, reverse=True)]
        for bindir in candidates:
            if all(os.access(bindir / n, os.X_OK) for n in names):
                result = {n: bindir / n for n in names}
                break
        else:
            raise EnvironmentProblem("no PostgreSQL server binaries found (initdb, pg_ctl, postgres)", _INSTALL_HINT)
    psql = shutil.which("psql") or str(result["initdb"].parent / "psql")
    if not os.access(psql, os.X_OK):
        raise EnvironmentProblem("psql not found", "install the PostgreSQL client: sudo apt-get install postgresql-client")
    result["psql"] = Path(psql)
    return result


@dataclass(frozen=True)
class _Runner:
    """Runs server commands as the account that owns the cluster (postgres when we are root)."""

    uid: int | None
    gid: int | None
    home: Path

    @classmethod
    def current(cls, cluster: Path) -> "_Runner":
        if os.geteuid() != 0:
            return cls(None, None, cluster)
        try:
            pw = pwd.getpwnam(SERVER_ACCOUNT)
        except KeyError:
            raise EnvironmentProblem(
                f"PostgreSQL refuses to run as root and there is no {SERVER_ACCOUNT!r} account to run it as",
                f"run pgiam sandbox as a normal user, or create the account: sudo useradd --system {SERVER_ACCOUNT}",
            ) from None
        return cls(pw.pw_uid, pw.pw_gid, cluster)

    def chown(self, path: Path) -> None:
        """Give `path` to the server account (no-op when not root)."""
        if self.uid is not None and self.gid is not None:
            os.chown(path, self.uid, self.gid, follow_symlinks=False)

    def run(self, argv: Sequence[str], *, input: str | None = None, timeout: float = TIMEOUT) -> subprocess.CompletedProcess[str]:
        """Run argv (never with a secret in it) and capture its output through a file, not a pipe."""
        env = minimal_env(HOME=str(self.home))
        # Output goes to a temp file: `pg_ctl start` leaves a postmaster behind that could hold a pipe open.
        with tempfile.TemporaryFile("w+", encoding="utf-8", errors="replace") as out:
            try:
                proc = subprocess.run(
                    list(argv),
                    input=input,
                    stdin=None if input is not None else subprocess.DEVNULL,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    text=True,
                    env=env,
                    cwd=str(self.home),
                    timeout=timeout,
                    user=self.uid,
                    group=self.gid,
                    extra_groups=[] if self.uid is not None else None,
                )
            except subprocess.TimeoutExpired:
                raise EnvironmentProblem(
                    f"{Path(argv[0]).name} did not finish within {timeout:g} s", "see the server log"
                ) from None
            out.seek(0)
            return subprocess.CompletedProcess(proc.args, proc.returncode, out.read(), "")


# ---- small helpers ----


def minimal_env(**extra: str) -> dict[str, str]:
    """The whole environment of the sandbox's children: PATH and a C locale, nothing of the caller's
    (no AWS_* secrets, no PG* settings); another account can read a process's environment in /proc."""
    env = {"PATH": os.environ.get("PATH") or os.defpath, "LC_ALL": "C", "LANG": "C"}
    env.update(extra)
    return env


def _alive(pid: int | None) -> bool:
    """True when a process with this pid exists (and is not a zombie)."""
    if not pid or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    with contextlib.suppress(OSError):
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return fields[0] != "Z"
    return True


def _read_int(path: Path) -> int | None:
    """The integer on the first line of `path`, or None."""
    try:
        return int(path.read_text().splitlines()[0].strip())
    except (OSError, ValueError, IndexError):
        return None


def _postmaster_pid(layout: _Layout) -> int | None:
    """The postmaster pid pgiam recorded when it started the server, if that process still is this
    cluster's postmaster (pid reuse, or a pid file planted by someone else, names another process)."""
    pid = _read_int(layout.postgres_pid)
    return pid if pid and _is_postmaster(pid, layout) else None


def _is_postmaster(pid: int, layout: _Layout) -> bool:
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return _alive(pid) and not Path("/proc/self").exists()  # no /proc (macOS): trust pgiam's own record
    return str(layout.data).encode() in cmdline


def _record_postmaster(layout: _Layout) -> None:
    """Right after `pg_ctl start -w`, note the postmaster's pid in pgiam's private sandbox dir."""
    pid = _read_int(layout.data / "postmaster.pid")
    if not pid or not _is_postmaster(pid, layout):
        raise EnvironmentProblem(f"the sandbox PostgreSQL started but its pid file names no postmaster of {layout.data}",
                                 f"see {layout.server_log}")
    _write_private(layout, layout.postgres_pid, f"{pid}\n".encode())


def _is_ldapd(pid: int) -> bool:
    """Guard against pid reuse: only signal a process that is our responder."""
    try:
        return b"pgiam.sandbox.ldapd" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return _alive(pid)  # no /proc (macOS): trust the pid file


def _tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def _free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _conf_quote(value: str) -> str:
    """A postgresql.conf string literal."""
    return "'" + value.replace("\\", "\\\\").replace("'", "''") + "'"


def _sql_literal(value: str) -> str:
    """An SQL string literal (standard_conforming_strings is on: backslashes are plain)."""
    return "'" + value.replace("'", "''") + "'"


def _check_role_name(name: str) -> None:
    if not name or "\x00" in name:
        raise UsageError(f"invalid role name {name!r}", "use a non-empty name without NUL bytes")
    if len(name.encode("utf-8")) > 63:
        # PostgreSQL silently truncates identifiers to 63 bytes; the token would then name another role.
        raise UsageError(f"role name {name!r} is longer than PostgreSQL's 63 bytes", "use a shorter name")


def _write_private(layout: _Layout, path: Path, data: bytes) -> None:
    atomic_write(path, data, mode=0o600, scope=layout.scope)


# ---- secrets and certificates (kept across down/up so service entries stay valid) ----


def _load_or_make_keys(layout: _Layout) -> tuple[str, str]:
    """The sandbox's dummy static AWS key pair, generated once."""
    with contextlib.suppress(OSError, ValueError, KeyError):
        raw = json.loads(layout.keys.read_text())
        return str(raw["access_key"]), str(raw["secret_key"])
    alnum = string.ascii_uppercase + string.digits
    access = "AKIA" + "".join(secrets.choice(alnum) for _ in range(16))
    secret_alphabet = string.ascii_letters + string.digits + "+/"
    secret = "".join(secrets.choice(secret_alphabet) for _ in range(40))
    _write_private(layout, layout.keys, json.dumps({"access_key": access, "secret_key": secret}).encode())
    return access, secret


def _write_credentials(layout: _Layout, access: str, secret: str) -> None:
    """The AWS shared-credentials file holding only the sandbox profile."""
    text = (
        "# Written by pgiam sandbox: dummy keys that only the local sandbox accepts.\n"
        f"[{AWS_PROFILE}]\naws_access_key_id = {access}\naws_secret_access_key = {secret}\n"
    )
    _write_private(layout, layout.credentials, text.encode())


def _openssl(argv: list[str], cwd: Path) -> None:
    openssl = shutil.which("openssl")
    if not openssl:
        raise EnvironmentProblem("openssl not found", "install it: sudo apt-get install openssl")
    proc = subprocess.run([openssl, *argv], cwd=cwd, capture_output=True, text=True, timeout=TIMEOUT)
    if proc.returncode != 0:
        raise EnvironmentProblem(f"openssl {argv[0]} failed: {proc.stderr.strip()[-500:]}")


def _make_certificates(layout: _Layout) -> None:
    """A private CA and a server certificate for both endpoint names, unless both already exist."""
    if all(p.exists() for p in (layout.ca_crt, layout.ca_key, layout.server_crt, layout.server_key)):
        if _names_dsql(layout.server_crt):
            return
        layout.ca_crt.unlink()  # made before the sandbox played DSQL: make both again
    d = layout.sandbox
    for key in (layout.ca_key, layout.server_key):
        # Born 0600 before openssl writes the private key into it (openssl truncates, keeping the mode).
        fd = os.open(key, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.fchmod(fd, 0o600)
        os.close(fd)
    _openssl(
        ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.crt", "-days", "3650",
         "-subj", "/CN=pgiam sandbox CA", "-addext", "basicConstraints=critical,CA:TRUE",
         "-addext", "keyUsage=critical,keyCertSign,cRLSign"],
        d,
    )
    _openssl(
        ["req", "-new", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key", "-out", "server.csr",
         "-subj", f"/CN={ENDPOINT_HOST}"],
        d,
    )
    ext = d / "server.ext"
    ext.write_text(
        # IP:127.0.0.1 too: clients without libpq's hostaddr (pgbouncer) dial the address and check it.
        f"subjectAltName=DNS:{ENDPOINT_HOST},DNS:{DSQL_HOST},IP:127.0.0.1\nbasicConstraints=CA:FALSE\n"
        "keyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n"
    )
    _openssl(
        ["x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-set_serial",
         str(secrets.randbits(63)), "-days", "825", "-out", "server.crt", "-extfile", "server.ext"],
        d,
    )
    for leftover in (d / "server.csr", ext):
        leftover.unlink(missing_ok=True)
    os.chmod(layout.ca_crt, 0o644)


def _names_dsql(cert: Path) -> bool:
    """Does the server certificate name the DSQL endpoint and 127.0.0.1 too (else it is made again)?"""
    import ssl

    try:
        decoded = ssl._ssl._test_decode_cert(str(cert))  # type: ignore[attr-defined]
    except (OSError, ssl.SSLError, AttributeError):
        return False
    sans = decoded.get("subjectAltName", ())
    return ("DNS", DSQL_HOST) in sans and ("IP Address", "127.0.0.1") in sans


# ---- ldapd ----


def _start_ldapd(layout: _Layout, access: str, secret: str) -> int:
    """Start the responder on a free port; return the port once it listens."""
    for stale in (layout.ldapd_pid, layout.ldapd_port):
        stale.unlink(missing_ok=True)
    config = {
        "port": 0,
        "access_key": access,
        "secret_key": secret,
        "region": REGION,
        "endpoint_host": ENDPOINT_HOST,
        "endpoint_port": ENDPOINT_PORT,
        "dsql_host": DSQL_HOST,
        "log_file": str(layout.ldapd_log),
        "pid_file": str(layout.ldapd_pid),
        "port_file": str(layout.ldapd_port),
    }
    # The secret key travels in this 0600 file, never in argv or the environment.
    _write_private(layout, layout.ldapd_conf, json.dumps(config).encode())
    package_root = str(Path(__file__).resolve().parents[2])  # so `-m pgiam...` works from a checkout too
    env = minimal_env(PYTHONPATH=os.pathsep.join(p for p in (package_root, os.environ.get("PYTHONPATH")) if p))
    err_fd = os.open(layout.ldapd_stderr, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600)
    with open(err_fd, "ab") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "pgiam.sandbox.ldapd", str(layout.ldapd_conf)],
            stdin=subprocess.DEVNULL,
            stdout=err,
            stderr=err,
            env=env,
            cwd=str(layout.sandbox),
            start_new_session=True,  # outlives the pgiam command that started it
        )
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        port = _read_int(layout.ldapd_port)
        if port:
            return port
        if proc.poll() is not None:
            break
        time.sleep(0.05)
    with contextlib.suppress(OSError):
        proc.kill()
    raise EnvironmentProblem(
        f"the sandbox LDAP responder did not start:\n{_tail(layout.ldapd_stderr)}",
        f"see {layout.ldapd_stderr}",
    )


def _stop_ldapd(layout: _Layout) -> bool:
    """SIGTERM the responder named by the pid file; True if one was running."""
    pid = _read_int(layout.ldapd_pid)
    running = bool(pid and _alive(pid) and _is_ldapd(pid))
    if pid and running:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 5
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        if _alive(pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        # When this process started the responder (up then down in one process), reap it: no zombie.
        with contextlib.suppress(ChildProcessError, OSError):
            os.waitpid(pid, os.WNOHANG)
    for path in (layout.ldapd_pid, layout.ldapd_port):
        path.unlink(missing_ok=True)
    return running


# ---- the cluster ----


def _make_cluster_dir(layout: _Layout) -> tuple[_Layout, _Runner]:
    """Create the cluster directory, owned by the server account, 0700; return the layout and runner for it.

    As root: a fresh mkdtemp directory under a temp dir the server account can enter, recorded in the
    sandbox dir (never a predictable name another user could have prepared). Else the sandbox dir's
    `cluster`, which only this user can reach."""
    if os.geteuid() == 0:
        cluster = Path(tempfile.mkdtemp(prefix="pgiam-sandbox-", dir=_searchable_temp_dir()))
        _write_private(layout, layout.cluster_record, f"{cluster}\n".encode())
        layout = _Layout(layout.sandbox, cluster, layout.scope)
    else:
        if layout.cluster.is_symlink() or (layout.cluster.exists() and not layout.cluster.is_dir()):
            raise EnvironmentProblem(f"{layout.cluster} is not a directory pgiam made", f"remove {layout.cluster}")
        if layout.cluster.exists():
            shutil.rmtree(layout.cluster)  # leftovers of a crashed sandbox
        layout.cluster.mkdir(mode=0o700)
    os.chmod(layout.cluster, 0o700)
    runner = _Runner.current(layout.cluster)
    runner.chown(layout.cluster)
    return layout, runner


def _hba(ldap_port: int) -> str:
    """pg_hba.conf: the superuser only on the private socket; every TCP login via LDAP over TLS."""
    # Empty ldapprefix/ldapsuffix select simple-bind mode with the bind DN equal to the role name
    # (checked with PostgreSQL 15): no search, so no restriction on characters in role names.
    return (
        "# Written by pgiam sandbox.\n"
        f"local all {SUPERUSER} trust\n"
        "local all all reject\n"
        f"host all {SUPERUSER} all reject\n"
        f'hostssl all all 127.0.0.1/32 ldap ldapserver=127.0.0.1 ldapport={ldap_port} ldapprefix="" ldapsuffix=""\n'
        "host all all all reject\n"
    )


def _server_conf(layout: _Layout, port: int) -> str:
    settings = {
        "listen_addresses": _conf_quote("127.0.0.1"),
        "port": str(port),
        "unix_socket_directories": _conf_quote(str(layout.sock)),
        "ssl": "on",
        "ssl_cert_file": _conf_quote(str(layout.cluster / "server.crt")),
        "ssl_key_file": _conf_quote(str(layout.cluster / "server.key")),
        "fsync": "off",  # a throw-away sandbox: speed over durability
        "max_connections": "20",
        "shared_buffers": _conf_quote("16MB"),
        "log_connections": "on",
    }
    return "\n# pgiam sandbox\n" + "".join(f"{k} = {v}\n" for k, v in settings.items())


def _psql(layout: _Layout, runner: _Runner, bins: dict[str, Path], port: int, sql: str, timeout: float = TIMEOUT) -> subprocess.CompletedProcess[str]:
    """Run SQL (on stdin, never argv) as the bootstrap superuser over the unix socket."""
    return runner.run(
        [str(bins["psql"]), "-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", str(layout.sock), "-p", str(port),
         "-U", SUPERUSER, "-d", "postgres", "-f", "-"],
        input=sql,
        timeout=timeout,
    )


def _create_roles(layout: _Layout, runner: _Runner, bins: dict[str, Path], port: int, roles: Sequence[str]) -> None:
    for name in roles:
        _check_role_name(name)
    # format('%I') quotes the identifier (', :, \ and spaces); \gexec makes it idempotent.
    sql = "".join(
        f"SELECT format('CREATE ROLE %I LOGIN', n) FROM (VALUES ({_sql_literal(name)})) AS v(n) "
        "WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = n) \\gexec\n"
        for name in dict.fromkeys(roles)
    )
    proc = _psql(layout, runner, bins, port, sql)
    if proc.returncode != 0:
        raise EnvironmentProblem(f"could not create sandbox roles: {proc.stdout.strip()[-500:]}")


def _load_state(layout: _Layout) -> dict[str, object] | None:
    try:
        raw = json.loads(layout.info.read_text())
    except (OSError, ValueError):
        return None
    return raw if isinstance(raw, dict) else None


def _healthy(layout: _Layout, runner: _Runner, bins: dict[str, Path]) -> dict[str, object] | None:
    """The recorded state when postgres and ldapd both run and the server answers."""
    state = _load_state(layout)
    if not state:
        return None
    ldapd = _read_int(layout.ldapd_pid)
    if not (_alive(_postmaster_pid(layout)) and ldapd and _alive(ldapd)):
        return None
    try:
        ok = _psql(layout, runner, bins, int(state["info"]["local_port"]), "SELECT 1;", timeout=10).returncode == 0  # type: ignore[index]
    except (EnvironmentProblem, KeyError, TypeError, ValueError):
        return None
    return state if ok else None


@contextlib.contextmanager
def _sandbox_lock(layout: _Layout) -> Iterator[None]:
    ensure_private_dir(layout.sandbox, scope=layout.scope)
    with locked(layout.lock, wait=TIMEOUT * 2, scope=layout.scope):
        yield


@contextlib.contextmanager
def _locked_sandbox(paths: Paths) -> Iterator[tuple[_Layout, _Runner, dict[str, Path], dict[str, object] | None]]:
    """Under the sandbox lock: its layout, the runner, the server binaries, and its state if healthy."""
    layout = _Layout.of(paths)
    bins = find_server_binaries()
    runner = _Runner.current(layout.cluster)
    with _sandbox_lock(layout):
        yield layout, runner, bins, _healthy(layout, runner, bins)


def up(paths: Paths, port: int | None = None, roles: Sequence[str] = ()) -> SandboxInfo:
    """Start the sandbox (or return the running one), with login roles DEFAULT_ROLE plus `roles`."""
    for name in roles:
        _check_role_name(name)
    with _locked_sandbox(paths) as (layout, runner, bins, state):
        if state:
            info = SandboxInfo.from_json(state["info"])  # type: ignore[arg-type]
            _create_roles(layout, runner, bins, info.local_port, [info.role, *roles])
            return info
        _teardown(layout, runner, bins)  # stale pid files or half-made dirs of a crashed sandbox
        access, secret = _load_or_make_keys(layout)
        _write_credentials(layout, access, secret)
        _make_certificates(layout)
        try:
            layout, runner = _make_cluster_dir(layout)
            init = runner.run(
                [str(bins["initdb"]), "-D", str(layout.data), "-U", SUPERUSER, "--auth=trust", "-E", "UTF8",
                 "--locale=C", "--no-sync"],
                timeout=120,
            )
            if init.returncode != 0:
                raise EnvironmentProblem(f"initdb failed:\n{init.stdout.strip()[-1500:]}", "see the message above")
            for src in (layout.server_crt, layout.server_key):
                dst = layout.cluster / src.name
                shutil.copyfile(src, dst)
                os.chmod(dst, 0o600)  # PostgreSQL refuses a key readable by others
                runner.chown(dst)
            layout.sock.mkdir(mode=0o700)
            runner.chown(layout.sock)
            ldap_port = _start_ldapd(layout, access, secret)
            local_port = port or _free_port()
            with open(layout.data / "postgresql.conf", "a", encoding="utf-8") as conf:
                conf.write(_server_conf(layout, local_port))
            (layout.data / "pg_hba.conf").write_text(_hba(ldap_port))
            start = runner.run(
                [str(bins["pg_ctl"]), "-D", str(layout.data), "-l", str(layout.server_log), "-w", "-t",
                 str(int(TIMEOUT)), "start"],
                timeout=TIMEOUT + 10,
            )
            if start.returncode != 0:
                raise EnvironmentProblem(
                    f"the sandbox PostgreSQL did not start (port {local_port}):\n{_tail(layout.server_log)}",
                    f"see {layout.server_log}" + ("; is the port in use?" if port else ""),
                )
            _record_postmaster(layout)
            info = SandboxInfo(
                endpoint_host=ENDPOINT_HOST,
                endpoint_port=ENDPOINT_PORT,
                local_port=local_port,
                region=REGION,
                role=DEFAULT_ROLE,
                ca_file=layout.ca_crt,
                aws_credentials_file=layout.credentials,
                aws_profile=AWS_PROFILE,
                log_file=layout.ldapd_log,
                data_dir=layout.data,
            )
            _create_roles(layout, runner, bins, local_port, [DEFAULT_ROLE, *roles])
        except BaseException:
            _teardown(layout, runner, bins)
            raise
        state = {
            "info": info.to_json(),
            "cluster_dir": str(layout.cluster),
            "server_log": str(layout.server_log),
            "ldapd_port": ldap_port,
            "started": int(time.time()),
        }
        atomic_write(layout.info, json.dumps(state, indent=2).encode() + b"\n", mode=0o600, scope=layout.scope)
        return info


def add_role(paths: Paths, name: str) -> None:
    """Create another login role in the running sandbox."""
    _check_role_name(name)
    with _locked_sandbox(paths) as (layout, runner, bins, state):
        if not state:
            raise EnvironmentProblem("the sandbox is not running", "start it: pgiam sandbox up")
        _create_roles(layout, runner, bins, int(state["info"]["local_port"]), [name])  # type: ignore[index]


def _teardown(layout: _Layout, runner: _Runner, bins: dict[str, Path] | None) -> bool:
    """Stop postgres and ldapd, remove the cluster; True if anything was running."""
    running = False
    pm = _postmaster_pid(layout)
    if pm and _alive(pm):
        running = True
        stopped = False
        if bins:
            with contextlib.suppress(EnvironmentProblem):
                stopped = runner.run(
                    [str(bins["pg_ctl"]), "-D", str(layout.data), "-m", "fast", "-w", "-t", "20", "stop"], timeout=30
                ).returncode == 0
        if not stopped and _alive(pm) and _is_postmaster(pm, layout):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pm, signal.SIGQUIT)  # PostgreSQL's "immediate shutdown"
            deadline = time.monotonic() + 10
            while _alive(pm) and time.monotonic() < deadline:
                time.sleep(0.05)
    running = _stop_ldapd(layout) or running
    if layout.cluster.is_dir() and not layout.cluster.is_symlink():
        shutil.rmtree(layout.cluster, ignore_errors=True)
    for path in (layout.info, layout.postgres_pid, layout.cluster_record):
        path.unlink(missing_ok=True)
    return running


def down(paths: Paths) -> bool:
    """Stop the sandbox and remove its cluster (keys, CA and logs stay); True if something was running."""
    layout = _Layout.of(paths)
    if not layout.sandbox.is_dir():
        return False
    try:
        bins: dict[str, Path] | None = find_server_binaries()
    except EnvironmentProblem:
        bins = None  # still kill what the pid files name
    runner = _Runner.current(layout.cluster)
    with _sandbox_lock(layout):
        return _teardown(layout, runner, bins)


def status(paths: Paths) -> dict[str, object]:
    """What runs where: pids and whether they are alive, ports, endpoint, logs. Creates nothing."""
    layout = _Layout.of(paths)
    state = _load_state(layout) or {}
    raw_info = state.get("info")
    info: dict[str, object] = raw_info if isinstance(raw_info, dict) else {}
    pg_pid = _postmaster_pid(layout)
    ldapd_pid = _read_int(layout.ldapd_pid)
    pg_alive, ldapd_alive = _alive(pg_pid), bool(ldapd_pid and _alive(ldapd_pid) and _is_ldapd(ldapd_pid))

    def there(path: Path) -> str | None:  # before `up` and after `down` some files are not: never name them
        return str(path) if path.exists() else None

    return {
        "running": bool(state) and pg_alive and ldapd_alive,
        "postgres_pid": pg_pid,
        "postgres_alive": pg_alive,
        "ldapd_pid": ldapd_pid,
        "ldapd_alive": ldapd_alive,
        "ldapd_port": state.get("ldapd_port"),
        "local_port": info.get("local_port"),
        "endpoint": f"{ENDPOINT_HOST}:{ENDPOINT_PORT}",
        "dsql_endpoint": f"{DSQL_HOST}:{ENDPOINT_PORT}",
        "role": info.get("role"),
        "ca_file": there(layout.ca_crt),
        "aws_credentials_file": there(layout.credentials),
        "aws_profile": AWS_PROFILE,
        "log_file": there(layout.ldapd_log),
        "server_log": there(layout.server_log),
        "cluster_dir": there(layout.cluster),
    }
