"""The README's client recipes, each run against the sandbox with sslmode=verify-full (issue 14).

Every client here connects as it would to RDS: the certificate is checked against the sandbox CA and
the endpoint name, and the password is the IAM token pgiam keeps (read from ~/.pgpass by the client,
or handed over by `pgiam token NAME` as a password callback). Clients that cannot use `hostaddr`
(asyncpg, pgJDBC, pgx) need the endpoint name to lead to the sandbox: the test gives each one the
stand-in for DNS that the client allows (a hosts file for Java, a dial function for Go, a resolver
hook for Python), never a change to the system's /etc/hosts.

Installs cached under /tmp (what .ci/run prepares): node-postgres in /tmp/pgiam-ci-node, the pgx
program built in /tmp/pgiam-ci-go. pgJDBC and pgx come from Debian's packages.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.e2e.conftest import World
from tests.tools import require_tool

pytestmark = pytest.mark.e2e

SQL = "select current_user || ' ' || ssl::text from pg_stat_ssl where pid = pg_backend_pid()"
WANT = "pgiam_sandbox true"
NODE_DIR = Path("/tmp/pgiam-ci-node")
GO_DIR = Path("/tmp/pgiam-ci-go")
JDBC_JAR = Path("/usr/share/java/postgresql.jar")  # Debian: libpostgresql-jdbc-java
PGX_SRC = Path("/usr/share/gocode/src/github.com/jackc/pgx/v4")  # Debian: golang-github-jackc-pgx-v4-dev


def info(world: World) -> dict[str, str]:
    out = world.pgiam("sandbox", "status").stdout
    return dict(line.split(": ", 1) for line in out.splitlines() if ": " in line)


@pytest.fixture(scope="module")
def sb(world: World, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """The sandbox's facts, a `pgiam` on PATH for the recipes, and a JDBC/pgx-safe copy of the entry."""
    i = info(world)
    i["host"] = i["endpoint"].rsplit(":", 1)[0]
    bin_dir = tmp_path_factory.mktemp("bin")
    script = bin_dir / "pgiam"
    script.write_text(f"#!/bin/sh\nexec {sys.executable} -m pgiam \"$@\"\n")
    script.chmod(0o755)
    world.env["PATH"] = f"{bin_dir}{os.pathsep}{world.env['PATH']}"
    # The entry pgiam wrote for `sandbox`, minus hostaddr: what `pgiam add` writes without --via, the
    # form pgJDBC and pgx can read. It matches the same ~/.pgpass line (host name, port dialled, user).
    text = (world.home / ".pg_service.conf").read_text()
    start = text.index("[sandbox]\n")
    section = text[start:text.index("\n# END pgiam", start)].replace("[sandbox]", "[nohostaddr]")
    section = "\n".join(ln for ln in section.split("\n") if not ln.startswith("hostaddr="))
    (world.home / ".pg_service.conf").write_text(text + "\n" + section + "\n")
    hosts = bin_dir / "hosts"
    hosts.write_text(f"127.0.0.1 {i['host']}\n")
    i["hosts_file"] = str(hosts)
    return i


def run(world: World, argv: list[str], env: dict[str, str] | None = None, timeout: int = 180) -> subprocess.CompletedProcess[str]:
    e = dict(world.env, PGCONNECT_TIMEOUT="10", **(env or {}))
    return subprocess.run(argv, env=e, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)


def ok(p: subprocess.CompletedProcess[str]) -> str:
    assert p.returncode == 0, f"exit {p.returncode}\nstdout: {p.stdout}\nstderr: {p.stderr}"
    return p.stdout.strip()


def unrelated_ca(tmp_path: Path) -> Path:
    ca = tmp_path / "unrelated.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(tmp_path / "k.pem"),
                    "-out", str(ca), "-subj", "/CN=unrelated test CA", "-days", "2"], check=True, capture_output=True)
    return ca


def no_token_in(p: subprocess.CompletedProcess[str]) -> None:
    assert "X-Amz-Signature" not in p.stdout + p.stderr


# ---------------------------------------------------------------- asyncpg: password= callable

ASYNCPG = textwrap.dedent('''
    import asyncio, socket, ssl, sys

    host, port, user, database, cafile, service = sys.argv[1:7]
    # The test's stand-in for DNS: asyncpg has no hostaddr, so the endpoint name must lead to the server.
    _real = socket.getaddrinfo
    socket.getaddrinfo = lambda h, *a, **k: _real("127.0.0.1" if h == host else h, *a, **k)

    import asyncpg

    async def token() -> str:  # the recipe: `pgiam token NAME` as the password callback
        p = await asyncio.create_subprocess_exec("pgiam", "token", service, stdout=asyncio.subprocess.PIPE)
        out, _ = await p.communicate()
        if p.returncode:
            raise RuntimeError(f"pgiam token {service} failed")
        return out.decode().strip()

    async def main() -> None:
        tls = ssl.create_default_context(cafile=cafile)  # verify-full: chain and host name
        callback = token if service else None  # without one, asyncpg reads ~/.pgpass itself
        pool = await asyncpg.create_pool(host=host, port=int(port), user=user, database=database,
                                         password=callback, ssl=tls, min_size=2, max_size=2)
        print(await pool.fetchval(sys.argv[7]))
        await pool.close()

    asyncio.run(main())
''')


def test_asyncpg_with_pgiam_token_as_password_callback(world: World, sb: dict[str, str], tmp_path: Path) -> None:
    script = tmp_path / "recipe_asyncpg.py"
    script.write_text(ASYNCPG)
    argv = [sys.executable, str(script), sb["host"], sb["local_port"], "pgiam_sandbox", "postgres", sb["ca_file"], "sandbox"]
    p = run(world, [*argv, SQL])
    assert ok(p) == WANT
    no_token_in(p)
    bad = argv.copy()
    bad[6] = str(unrelated_ca(tmp_path))
    p = run(world, [*bad, SQL])
    assert p.returncode != 0 and "CERTIFICATE_VERIFY_FAILED" in p.stderr


def test_asyncpg_cannot_use_the_pgpass_line_alone(world: World, sb: dict[str, str], tmp_path: Path) -> None:
    """Why the asyncpg recipe needs the callback: asyncpg's own ~/.pgpass reader does not unescape `\\:`
    (asyncpg#1249), and every token holds one, so it sends a mangled token."""
    script = tmp_path / "recipe_asyncpg.py"
    script.write_text(ASYNCPG)
    env = {"PGPASSFILE": str(world.home / ".pgpass")}
    p = run(world, [sys.executable, str(script), sb["host"], sb["local_port"], "pgiam_sandbox", "postgres",
                    sb["ca_file"], "", SQL], env)
    assert p.returncode != 0 and "authentication failed" in p.stderr, p.stderr
    no_token_in(p)


# ---------------------------------------------------------------- node-postgres: password async function

NODE = textwrap.dedent('''
    const { Client } = require("pg");
    const fs = require("fs");
    const { promisify } = require("util");
    const execFile = promisify(require("child_process").execFile);

    const [host, hostaddr, port, user, database, ca, service, sql] = process.argv.slice(2);
    const client = new Client({
      host: hostaddr || host, port: Number(port), user, database,
      // the recipe: `pgiam token NAME` as the password function (called for every new connection)
      password: async () => (await execFile("pgiam", ["token", service])).stdout.trim(),
      // verify-full: the chain against the CA file, the certificate against the endpoint name
      // (servername), also when dialling a tunnel's address
      ssl: { ca: fs.readFileSync(ca), servername: host, rejectUnauthorized: true },
    });
    client.connect()
      .then(() => client.query(sql))
      .then((r) => { console.log(Object.values(r.rows[0])[0]); return client.end(); })
      .catch((e) => { console.error(String(e)); process.exit(1); });
''')


@pytest.fixture(scope="module")
def node_pg() -> Path:
    """node-postgres from the npm registry, installed once under /tmp (.ci/run does it ahead)."""
    require_tool("node", "nodejs")
    if not (NODE_DIR / "node_modules" / "pg" / "package.json").exists():
        npm = require_tool("npm")
        p = subprocess.run([npm, "install", "--prefix", str(NODE_DIR), "--no-audit", "--no-fund", "pg@8"],
                           capture_output=True, text=True, timeout=600)
        assert p.returncode == 0, p.stderr
    return NODE_DIR / "node_modules"


@pytest.mark.parametrize("via", [False, True], ids=["endpoint-name", "tunnel-address"])
def test_node_postgres_with_pgiam_token_as_password_function(world: World, sb: dict[str, str], node_pg: Path,
                                                            tmp_path: Path, via: bool) -> None:
    script = tmp_path / "recipe.js"
    script.write_text(NODE)
    env = {"NODE_PATH": str(node_pg)}
    argv = ["node", str(script), sb["host"], "127.0.0.1" if via else "", sb["local_port"], "pgiam_sandbox",
            "postgres", sb["ca_file"], "sandbox", SQL]
    if not via:  # the endpoint name leads to the sandbox through a hosts-file stand-in node can't read: skip DNS
        env["NODE_OPTIONS"] = f"--require {tmp_path / 'dns.js'}"
        (tmp_path / "dns.js").write_text(textwrap.dedent(f'''
            const dns = require("dns");
            const lookup = dns.lookup;
            dns.lookup = (h, o, cb) => lookup(h === {sb["host"]!r} ? "127.0.0.1" : h, o, cb);
        '''))
    p = run(world, argv, env)
    assert ok(p) == WANT
    no_token_in(p)
    argv[7] = str(unrelated_ca(tmp_path))
    p = run(world, argv, env)
    # the server sends its own certificate only: nothing in the unrelated CA file signs it (issue 22: one outcome)
    assert (p.returncode, p.stdout, p.stderr) == (1, "", "Error: unable to verify the first certificate\n")


# ---------------------------------------------------------------- pgcli: the libpq form

def pgcli() -> str:
    """pgcli from the test extras (next to this interpreter), else on PATH."""
    here = Path(sys.executable).with_name("pgcli")
    return str(here) if here.exists() else require_tool("pgcli")


def test_pgcli_through_libpq_honours_the_entry(world: World, sb: dict[str, str]) -> None:
    pgcli_ = pgcli()
    for target in ("dbname=postgres service=sandbox", world.pgiam("url", "sandbox").stdout.strip()):
        p = run(world, [pgcli_, target, "-w", "-t", "--less-chatty", "-c", SQL], {"TERM": "dumb"})
        assert WANT in ok(p), target


def test_pgcli_service_alone_drops_verify_full(world: World, sb: dict[str, str], tmp_path: Path) -> None:
    """Why the README says `pgcli "dbname=D service=NAME"`: `pgcli service=NAME` reads the service file
    itself, passes on only host, port, user and dbname, and connects to a server whose certificate
    the entry tells libpq to refuse (here: an unrelated CA, and a host name the certificate lacks)."""
    pgcli_ = pgcli()
    svcfile = tmp_path / "pg_service.conf"
    svcfile.write_text(f"[strict]\nhost=localhost\nport={sb['local_port']}\nuser=pgiam_sandbox\ndbname=postgres\n"
                       f"sslmode=verify-full\nsslrootcert={unrelated_ca(tmp_path)}\n")
    token = world.pgiam("token", "sandbox").stdout.strip()
    env = {"PGSERVICEFILE": str(svcfile), "PGPASSWORD": token, "TERM": "dumb"}
    p = run(world, [pgcli_, "dbname=postgres service=strict", "-w", "-t", "--less-chatty", "-c", SQL], env)
    # libpq refuses the certificate, and pgcli says so and exits 1 (issue 22: one outcome, not "fails or prints nothing")
    assert (p.returncode, p.stdout) == (1, "") and p.stderr.startswith("connection failed: ")
    assert p.stderr.endswith(" failed: SSL error: certificate verify failed\n"), p.stderr
    p = run(world, [pgcli_, "service=strict", "-w", "-t", "--less-chatty", "-c", SQL], env)
    assert WANT in ok(p)  # pgcli's own reader: connected over TLS it never checked


# ---------------------------------------------------------------- SQLAlchemy over psycopg

SQLALCHEMY = textwrap.dedent('''
    import sys
    import sqlalchemy

    url, sql = sys.argv[1:3]
    engine = sqlalchemy.create_engine(url)  # psycopg 3 hands the rest to libpq: service file, ~/.pgpass
    with engine.connect() as conn:
        print(conn.execute(sqlalchemy.text(sql)).scalar())
''')


@pytest.mark.parametrize("form", ["service", "pgiam-url"])
def test_sqlalchemy_over_psycopg(world: World, sb: dict[str, str], tmp_path: Path, form: str) -> None:
    script = tmp_path / "recipe_sqlalchemy.py"
    script.write_text(SQLALCHEMY)
    url = ("postgresql+psycopg://?service=sandbox" if form == "service"
           else world.pgiam("url", "sandbox", "--for", "sqlalchemy+psycopg").stdout.strip())
    p = run(world, [sys.executable, str(script), url, SQL])
    assert ok(p) == WANT
    no_token_in(p)


# ---------------------------------------------------------------- pgJDBC: ?service=

JDBC = textwrap.dedent('''
    import java.sql.*;

    public class Recipe {
        public static void main(String[] args) throws Exception {
            try (Connection c = DriverManager.getConnection(args[0]);
                 Statement s = c.createStatement();
                 ResultSet r = s.executeQuery(args[1])) {
                r.next();
                System.out.println(r.getString(1));
            }
        }
    }
''')


def jdbc(world: World, sb: dict[str, str], tmp_path: Path, url: str) -> subprocess.CompletedProcess[str]:
    java = require_tool("java", "default-jre-headless")
    if not JDBC_JAR.exists():
        require_tool("pgjdbc-jar-at-" + str(JDBC_JAR), "libpostgresql-jdbc-java")
    src = tmp_path / "Recipe.java"
    src.write_text(JDBC)
    # pgJDBC reads the passwd entry's home, not $HOME (like libpq < 15): name both files explicitly.
    env = {"PGSERVICEFILE": str(world.home / ".pg_service.conf"), "PGPASSFILE": str(world.home / ".pgpass")}
    return run(world, [java, f"-Djdk.net.hosts.file={sb['hosts_file']}", "-cp", str(JDBC_JAR), str(src), url, SQL], env)


def test_pgjdbc_reads_an_entry_without_hostaddr(world: World, sb: dict[str, str], tmp_path: Path) -> None:
    p = jdbc(world, sb, tmp_path, "jdbc:postgresql://?service=nohostaddr")
    assert ok(p) == WANT
    no_token_in(p)


def test_pgjdbc_refuses_an_entry_with_hostaddr(world: World, sb: dict[str, str], tmp_path: Path) -> None:
    """The warning pgiam prints for --via is true: pgJDBC rejects a section holding hostaddr."""
    p = jdbc(world, sb, tmp_path, "jdbc:postgresql://?service=sandbox")
    assert p.returncode != 0


# ---------------------------------------------------------------- pgx v4: service=, BeforeConnect

PGX = textwrap.dedent('''
    package main

    import (
    \t"context"
    \t"fmt"
    \t"os"
    \t"os/exec"
    \t"strings"

    \t"github.com/jackc/pgx/v4"
    \t"github.com/jackc/pgx/v4/pgxpool"
    )

    func main() {
    \tconnString, addr, callback, sql := os.Args[1], os.Args[2], os.Args[3], os.Args[4]
    \tcfg, err := pgxpool.ParseConfig(connString)
    \tif err != nil {
    \t\tfmt.Fprintln(os.Stderr, err)
    \t\tos.Exit(1)
    \t}
    \t// The test's stand-in for DNS (and pgx's way through a tunnel): the endpoint name leads to this
    \t// address; TLS still checks the certificate against the endpoint name in the config.
    \tcfg.ConnConfig.LookupFunc = func(ctx context.Context, host string) ([]string, error) {
    \t\treturn []string{addr}, nil
    \t}
    \tif callback != "" {
    \t\t// The recipe: `pgiam token NAME` as the password for every new connection.
    \t\tcfg.BeforeConnect = func(ctx context.Context, cc *pgx.ConnConfig) error {
    \t\t\tout, err := exec.CommandContext(ctx, "pgiam", "token", callback).Output()
    \t\t\tif err != nil {
    \t\t\t\treturn err
    \t\t\t}
    \t\t\tcc.Password = strings.TrimSpace(string(out))
    \t\t\treturn nil
    \t\t}
    \t}
    \tpool, err := pgxpool.ConnectConfig(context.Background(), cfg)
    \tif err != nil {
    \t\tfmt.Fprintln(os.Stderr, err)
    \t\tos.Exit(1)
    \t}
    \tdefer pool.Close()
    \tvar s string
    \tif err := pool.QueryRow(context.Background(), sql).Scan(&s); err != nil {
    \t\tfmt.Fprintln(os.Stderr, err)
    \t\tos.Exit(1)
    \t}
    \tfmt.Println(s)
    }
''')


@pytest.fixture(scope="module")
def pgx_recipe() -> Path:
    """The pgx program, built once against Debian's pgx v4 (GOPATH mode), cached in /tmp by source hash."""
    go = require_tool("go", "golang-go")
    if not PGX_SRC.exists():
        require_tool("pgx-v4-source-at-" + str(PGX_SRC), "golang-github-jackc-pgx-v4-dev")
    digest = hashlib.sha256(PGX.encode()).hexdigest()[:12]
    binary = GO_DIR / f"recipe-{digest}"
    if not binary.exists():
        src = GO_DIR / "gopath" / "src" / "pgiamrecipe"
        src.mkdir(parents=True, exist_ok=True)
        (src / "main.go").write_text(PGX)
        env = dict(os.environ, GO111MODULE="off", GOPATH=f"{GO_DIR / 'gopath'}:/usr/share/gocode",
                   GOCACHE=str(GO_DIR / "cache"), GOFLAGS="")
        p = subprocess.run([go, "build", "-o", str(binary), "pgiamrecipe"], env=env, capture_output=True, text=True,
                           timeout=900)
        assert p.returncode == 0, p.stderr
    return binary


@pytest.mark.parametrize("mode", ["service-file+pgpass", "BeforeConnect"])
def test_pgx_v4(world: World, sb: dict[str, str], pgx_recipe: Path, mode: str) -> None:
    env = {"PGSERVICEFILE": str(world.home / ".pg_service.conf"), "PGPASSFILE": str(world.home / ".pgpass")}
    if mode == "BeforeConnect":
        conn = (f"host={sb['host']} port={sb['local_port']} user=pgiam_sandbox dbname=postgres "
                f"sslmode=verify-full sslrootcert={sb['ca_file']}")
        env["PGPASSFILE"] = str(world.home / "no-such-pgpass")  # the callback is the only source
        argv = [str(pgx_recipe), conn, "127.0.0.1", "sandbox", SQL]
    else:
        argv = [str(pgx_recipe), "service=nohostaddr", "127.0.0.1", "", SQL]
    p = run(world, argv, env)
    assert ok(p) == WANT
    no_token_in(p)


def test_pgx_v4_fails_on_an_entry_with_hostaddr(world: World, sb: dict[str, str], pgx_recipe: Path) -> None:
    """The warning pgiam prints for --via is true: pgx sends hostaddr to the server as a setting."""
    env = {"PGSERVICEFILE": str(world.home / ".pg_service.conf"), "PGPASSFILE": str(world.home / ".pgpass")}
    p = run(world, [str(pgx_recipe), "service=sandbox", "127.0.0.1", "", SQL], env)
    assert p.returncode != 0 and "hostaddr" in p.stderr
