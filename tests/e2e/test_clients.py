"""The README's client recipes, each run against the sandbox with sslmode=verify-full (issues 14 and 21).

Every client here connects as it would to RDS: the certificate is checked against the sandbox CA and
the endpoint name, and the password is the IAM token pgiam keeps (read from ~/.pgpass by the client,
or handed over by `pgiam token NAME` / `pgiam.password(NAME)` as a password callback). Clients that
cannot use `hostaddr` (asyncpg, pgJDBC, pgx) need the endpoint name to lead to the sandbox: the test
gives each one the stand-in for DNS that the client allows (a hosts file for Java, a lookup function
for Go, a resolver hook for Python and node), never a change to the system's /etc/hosts. Where the
form names the endpoint's own port (5432, for which the token is signed), the same stand-in plays
the port forward to the sandbox's local port.

`test_every_recipe_outlives_its_first_token` runs every recipe across a token rotation: each opens a
connection with a token that then expires (signed in the past: the sandbox's checker enforces
expiry), and opens another one in the same process or pool afterwards.

Installs cached under /tmp (what .ci/run prepares): node-postgres in /tmp/pgiam-ci-node, the pgx
program built in /tmp/pgiam-ci-go, pgAdmin 4 in the venv /tmp/pgiam-ci-pgadmin. pgJDBC, pgx and
Ruby's pg come from Debian's packages.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import os
import subprocess
import sys
import textwrap
import time
import tomllib
from collections.abc import Iterator
from pathlib import Path

import botocore.auth
import pytest

from tests.e2e.conftest import World
from tests.tools import require_tool

pytestmark = pytest.mark.e2e

SQL = "select current_user || ' ' || ssl::text from pg_stat_ssl where pid = pg_backend_pid()"
WANT = "pgiam_sandbox true"
NODE_DIR = Path("/tmp/pgiam-ci-node")
GO_DIR = Path("/tmp/pgiam-ci-go")
PGADMIN_VENV = Path("/tmp/pgiam-ci-pgadmin")
JDBC_JAR = Path("/usr/share/java/postgresql.jar")  # Debian: libpostgresql-jdbc-java
PGX_SRC = Path("/usr/share/gocode/src/github.com/jackc/pgx/v4")  # Debian: golang-github-jackc-pgx-v4-dev
ENDPOINT_PORT = "5432"  # the sandbox endpoint's port: tokens are signed for it


def info(world: World) -> dict[str, str]:
    out = world.pgiam("sandbox", "status").stdout
    return dict(line.split(": ", 1) for line in out.splitlines() if ": " in line)


@pytest.fixture(scope="module")
def sb(world: World, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """The sandbox's facts; a `pgiam` on PATH for the recipes; a JDBC/pgx-safe copy of the entry
    (`nohostaddr`); and a service `direct` as `pgiam add` writes one without --via (the endpoint's own
    port), for the clients that cannot use hostaddr."""
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
    # `direct`: the sandbox service without `via`, signed for and dialling the endpoint's own port.
    config = world.home / ".config" / "pgiam" / "config.toml"
    table = dict(tomllib.loads(config.read_text())["services"]["sandbox"])
    table.pop("via")
    config.write_text(config.read_text() + "\n[services.direct]\n"
                      + "".join(f"{k} = {json.dumps(v)}\n" for k, v in table.items()))
    world.pgiam("refresh", "direct")
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


@pytest.fixture(scope="module")
def bad_ca(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("badca")
    ca = d / "unrelated.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(d / "k.pem"),
                    "-out", str(ca), "-subj", "/CN=unrelated test CA", "-days", "2"], check=True, capture_output=True)
    return ca


def no_token_in(p: subprocess.CompletedProcess[str]) -> None:
    assert "X-Amz-Signature" not in p.stdout + p.stderr


def form(world: World, name: str, client: str) -> str:
    """What `pgiam url NAME --for CLIENT` prints."""
    return world.pgiam("url", name, "--for", client).stdout.strip()


# ---------------------------------------------------------------- the Python recipes

# One script, one recipe per mode, each as the README shows it. Arguments: MODE SQL GO FORM [CA] [SERVICE].
# With GO "-" it opens one connection; otherwise, once warm (imports done, pool or engine made), it prints
# "ready" and waits for the file GO.first (the first gate, as every recipe program here), then opens one,
# prints it, waits for the file GO, closes it and opens a second one through the same pool or engine, which
# must open a new connection (the sandbox allows 20 connections: holding the first in every client at once
# would run out).
PYTHON = textwrap.dedent('''
    import asyncio, functools, os, socket, ssl, sys, time

    mode, sql, go, form = sys.argv[1:5]
    ca = sys.argv[5] if len(sys.argv) > 5 else ""
    service = sys.argv[6] if len(sys.argv) > 6 else ""
    # The test's stand-in for DNS and for a port forward (asyncpg has no hostaddr): the endpoint name and
    # port lead to the sandbox's local port.
    endpoint, local_port = os.environ["PGIAM_TEST_ENDPOINT"], os.environ["PGIAM_TEST_LOCAL_PORT"]
    _real = socket.getaddrinfo
    def _lookup(h, p, *a, **k):
        if h == endpoint:
            return _real("127.0.0.1", int(local_port) if str(p) == "5432" else p, *a, **k)
        return _real(h, p, *a, **k)
    socket.getaddrinfo = _lookup

    import pgiam

    def wait_for(path):
        while not os.path.exists(path):
            time.sleep(0.1)

    def wait_for_go():
        wait_for(go)

    def ready():
        """Warm: say so, then wait for the first gate (the test writes the short-lived tokens before it opens)."""
        if go != "-":
            print("ready", flush=True)
            wait_for(go + ".first")

    def twice(connect, drop):
        """connect() -> (conn, value); drop(conn) closes it so that the pool opens a new one."""
        ready()
        first, value = connect()
        print("first:", value, flush=True)
        if go != "-":
            wait_for_go()
            drop(first)
            print("second:", connect()[1], flush=True)

    if mode == "psycopg_pool":  # README: psycopg_pool, the token per new connection from pgiam.password
        from psycopg_pool import ConnectionPool
        pool = ConnectionPool(form, kwargs=lambda: {"password": pgiam.password(service)}, min_size=0, max_size=2,
                              open=True)
        def connect():
            conn = pool.getconn()
            return conn, conn.execute(sql).fetchone()[0]
        twice(connect, lambda c: (c.close(), pool.putconn(c)))
    elif mode == "psycopg_pool_pgpass":  # psycopg through libpq: the service file and ~/.pgpass, re-read per connection
        from psycopg_pool import ConnectionPool
        pool = ConnectionPool(form, min_size=0, max_size=2, open=True)
        def connect():
            conn = pool.getconn()
            return conn, conn.execute(sql).fetchone()[0]
        twice(connect, lambda c: (c.close(), pool.putconn(c)))
    elif mode in ("sqlalchemy", "sqlalchemy_do_connect"):
        import sqlalchemy
        engine = sqlalchemy.create_engine(form)  # psycopg hands the rest to libpq: service file, ~/.pgpass
        if mode == "sqlalchemy_do_connect":  # README: the token per new connection from pgiam.password
            @sqlalchemy.event.listens_for(engine, "do_connect")
            def _password(dialect, conn_rec, cargs, cparams):
                cparams["password"] = pgiam.password(service)
        def connect():
            conn = engine.connect()
            return conn, conn.execute(sqlalchemy.text(sql)).scalar()
        twice(connect, lambda c: (c.invalidate(), c.close()))
    elif mode == "asyncpg":  # README: asyncpg.create_pool(DSN, password=pgiam.password_async partial)
        import asyncpg
        async def main():
            pool = await asyncpg.create_pool(form, password=functools.partial(pgiam.password_async, service),
                                             min_size=0, max_size=2)
            await asyncio.to_thread(ready)
            first = await pool.acquire()
            print("first:", await first.fetchval(sql), flush=True)
            if go != "-":
                await asyncio.to_thread(wait_for_go)
                await pool.release(first)
                await pool.expire_connections()  # the next acquire opens a new connection
                second = await pool.acquire()
                print("second:", await second.fetchval(sql), flush=True)
        asyncio.run(main())
    elif mode == "sqlalchemy_asyncpg":  # README: the URL, the SSLContext `pgiam url` names, pgiam.password_async
        import sqlalchemy
        from sqlalchemy.ext.asyncio import create_async_engine
        async def main():
            connect_args = {"password": functools.partial(pgiam.password_async, service)}
            if ca:
                connect_args["ssl"] = ssl.create_default_context(cafile=ca)
            engine = create_async_engine(form, connect_args=connect_args)
            await asyncio.to_thread(ready)
            first = await engine.connect()
            print("first:", (await first.execute(sqlalchemy.text(sql))).scalar(), flush=True)
            if go != "-":
                await asyncio.to_thread(wait_for_go)
                await first.invalidate()
                await first.close()
                second = await engine.connect()
                print("second:", (await second.execute(sqlalchemy.text(sql))).scalar(), flush=True)
        asyncio.run(main())
    elif mode == "asyncpg_pgpass":  # asyncpg reading ~/.pgpass itself (no callback)
        import asyncpg
        async def main():
            conn = await asyncpg.connect(form)
            print("first:", await conn.fetchval(sql), flush=True)
        asyncio.run(main())
    else:
        raise SystemExit(f"unknown mode {mode}")
''')


def python_recipe(world: World, sb: dict[str, str], tmp_path: Path) -> list[str]:
    script = tmp_path / "recipe.py"
    script.write_text(PYTHON)
    world.env.update(PGIAM_TEST_ENDPOINT=sb["host"], PGIAM_TEST_LOCAL_PORT=sb["local_port"])
    return [sys.executable, str(script)]


def test_asyncpg_with_the_url_for_asyncpg_and_pgiam_password(world: World, sb: dict[str, str], tmp_path: Path,
                                                            bad_ca: Path) -> None:
    """`pgiam url NAME --for asyncpg` is a DSN asyncpg accepts (no hostaddr, issue 21), keeping verify-full."""
    py = python_recipe(world, sb, tmp_path)
    dsn = form(world, "direct", "asyncpg")
    p = run(world, [*py, "asyncpg", SQL, "-", dsn, "", "direct"])
    assert ok(p) == f"first: {WANT}"
    no_token_in(p)
    p = run(world, [*py, "asyncpg", SQL, "-", dsn.replace(sb["ca_file"], str(bad_ca)), "", "direct"])
    assert p.returncode != 0 and "CERTIFICATE_VERIFY_FAILED" in p.stderr, p.stderr


def test_sqlalchemy_asyncpg_with_its_url_and_the_ssl_context(world: World, sb: dict[str, str], tmp_path: Path,
                                                            bad_ca: Path) -> None:
    """SQLAlchemy+asyncpg: the URL from `pgiam url --for sqlalchemy+asyncpg` plus the SSLContext it names
    connects; with a wrong CA, or without the context (the URL's ssl=verify-full), it refuses (issue 21)."""
    py = python_recipe(world, sb, tmp_path)
    url = form(world, "direct", "sqlalchemy+asyncpg")
    p = run(world, [*py, "sqlalchemy_asyncpg", SQL, "-", url, sb["ca_file"], "direct"])
    assert ok(p) == f"first: {WANT}"
    no_token_in(p)
    p = run(world, [*py, "sqlalchemy_asyncpg", SQL, "-", url, str(bad_ca), "direct"])
    assert p.returncode != 0 and "CERTIFICATE_VERIFY_FAILED" in p.stderr, p.stderr
    # Forgetting the context: asyncpg's verify-full finds no root certificate and does not connect.
    p = run(world, [*py, "sqlalchemy_asyncpg", SQL, "-", url, "", "direct"])
    assert p.returncode != 0 and "root certificate file" in p.stderr, p.stderr


def test_asyncpg_cannot_use_the_pgpass_line_alone(world: World, sb: dict[str, str], tmp_path: Path) -> None:
    """Why the asyncpg recipe needs the callback: asyncpg's own ~/.pgpass reader does not unescape `\\:`
    (asyncpg#1249), and every token holds one, so it sends a mangled token."""
    py = python_recipe(world, sb, tmp_path)
    p = run(world, [*py, "asyncpg_pgpass", SQL, "-", form(world, "direct", "asyncpg")],
            {"PGPASSFILE": str(world.home / ".pgpass")})
    assert p.returncode != 0 and "authentication failed" in p.stderr, p.stderr
    no_token_in(p)


@pytest.mark.parametrize("mode", ["psycopg_pool", "psycopg_pool_pgpass", "sqlalchemy", "sqlalchemy_do_connect"])
def test_libpq_python_recipes(world: World, sb: dict[str, str], tmp_path: Path, mode: str) -> None:
    py = python_recipe(world, sb, tmp_path)
    target = {"psycopg_pool": "service=sandbox", "psycopg_pool_pgpass": "service=sandbox",
              "sqlalchemy": "postgresql+psycopg://?service=sandbox",
              "sqlalchemy_do_connect": form(world, "sandbox", "sqlalchemy+psycopg")}[mode]
    p = run(world, [*py, mode, SQL, "-", target, "", "sandbox"])
    assert ok(p) == f"first: {WANT}"
    no_token_in(p)


def test_sqlalchemy_url_from_the_deprecated_scheme_flag(world: World, sb: dict[str, str], tmp_path: Path) -> None:
    py = python_recipe(world, sb, tmp_path)
    p = world.pgiam("url", "sandbox", "--scheme", "postgresql+psycopg")
    assert "deprecated" in p.stderr
    assert ok(run(world, [*py, "sqlalchemy", SQL, "-", p.stdout.strip()])) == f"first: {WANT}"


# ---------------------------------------------------------------- node-postgres: its config object

NODE = textwrap.dedent('''
    const { Pool } = require("pg");
    const fs = require("fs");
    const { promisify } = require("util");
    const { execFileSync } = require("child_process");
    const execFile = promisify(require("child_process").execFile);

    const [service, sql, go, caOverride, portOverride] = process.argv.slice(2);
    // README: the config object from `pgiam url NAME --for node-postgres`, the CA file it names read into
    // ssl.ca, and `pgiam token NAME` as the password function (called for every new connection).
    const { sslrootcert, ...cfg } = JSON.parse(execFileSync("pgiam", ["url", service, "--for", "node-postgres"]));
    if (sslrootcert) cfg.ssl.ca = fs.readFileSync(caOverride || sslrootcert);
    cfg.password = async () => (await execFile("pgiam", ["token", service])).stdout.trim();
    if (portOverride) cfg.port = Number(portOverride);  // the test's stand-in for a port forward
    const pool = new Pool({ ...cfg, max: 2 });
    const value = async (client) => Object.values((await client.query(sql)).rows[0])[0];
    (async () => {
      if (go !== "-") {  // warm: say so, then wait for the first gate
        console.log("ready");
        while (!fs.existsSync(go + ".first")) await new Promise((r) => setTimeout(r, 100));
      }
      const first = await pool.connect();
      console.log("first: " + await value(first));
      if (go !== "-") {
        while (!fs.existsSync(go)) await new Promise((r) => setTimeout(r, 100));
        first.release(true);  // closed: the pool opens a new connection
        const second = await pool.connect();
        console.log("second: " + await value(second));
      }
      process.exit(0);
    })().catch((e) => { console.error(String(e)); process.exit(1); });
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


def node_recipe(world: World, sb: dict[str, str], node_pg: Path, tmp_path: Path, service: str) -> tuple[list[str], dict[str, str]]:
    script = tmp_path / "recipe.js"
    script.write_text(NODE)
    env = {"NODE_PATH": str(node_pg)}
    if service == "direct":  # the endpoint name leads to the sandbox through a DNS stand-in (node has no hosts file)
        env["NODE_OPTIONS"] = f"--require {tmp_path / 'dns.js'}"
        (tmp_path / "dns.js").write_text(textwrap.dedent(f'''
            const dns = require("dns");
            const lookup = dns.lookup;
            dns.lookup = (h, o, cb) => lookup(h === {sb["host"]!r} ? "127.0.0.1" : h, o, cb);
        '''))
    return ["node", str(script), service], env


@pytest.mark.parametrize("service", ["direct", "sandbox"], ids=["endpoint-name", "tunnel-address"])
def test_node_postgres_with_its_config_object(world: World, sb: dict[str, str], node_pg: Path, tmp_path: Path,
                                             bad_ca: Path, service: str) -> None:
    """node-postgres through `pgiam url NAME --for node-postgres` (issue 21): the endpoint name, or a
    tunnel's address with ssl.servername the endpoint (the sandbox service is a --via one); a wrong CA
    is refused."""
    argv, env = node_recipe(world, sb, node_pg, tmp_path, service)
    port = sb["local_port"] if service == "direct" else ""
    p = run(world, [*argv, SQL, "-", "", port], env)
    assert ok(p) == f"first: {WANT}"
    no_token_in(p)
    p = run(world, [*argv, SQL, "-", str(bad_ca), port], env)
    # the server sends its own certificate only: nothing in the unrelated CA file signs it (issue 22: one outcome)
    assert (p.returncode, p.stdout, p.stderr) == (1, "", "Error: unable to verify the first certificate\n")


# ---------------------------------------------------------------- pgcli: the libpq form

def pgcli() -> str:
    """pgcli from the test extras (next to this interpreter), else on PATH."""
    here = Path(sys.executable).with_name("pgcli")
    return str(here) if here.exists() else require_tool("pgcli")


def pgcli_argv(target: str) -> list[str]:
    return [pgcli(), target, "-w", "-t", "--less-chatty", "-c", SQL]


def test_pgcli_through_libpq_honours_the_entry(world: World, sb: dict[str, str]) -> None:
    for target in ("dbname=postgres service=sandbox", form(world, "sandbox", "libpq")):
        p = run(world, pgcli_argv(target), {"TERM": "dumb"})
        assert WANT in ok(p), target


def test_pgcli_service_alone_drops_verify_full(world: World, sb: dict[str, str], tmp_path: Path, bad_ca: Path) -> None:
    """Why the README says `pgcli "dbname=D service=NAME"`: `pgcli service=NAME` reads the service file
    itself, passes on only host, port, user and dbname, and connects to a server whose certificate
    the entry tells libpq to refuse (here: an unrelated CA, and a host name the certificate lacks)."""
    svcfile = tmp_path / "pg_service.conf"
    svcfile.write_text(f"[strict]\nhost=localhost\nport={sb['local_port']}\nuser=pgiam_sandbox\ndbname=postgres\n"
                       f"sslmode=verify-full\nsslrootcert={bad_ca}\n")
    token = world.pgiam("token", "sandbox").stdout.strip()
    env = {"PGSERVICEFILE": str(svcfile), "PGPASSWORD": token, "TERM": "dumb"}
    p = run(world, pgcli_argv("dbname=postgres service=strict"), env)
    # libpq refuses the certificate, and pgcli says so and exits 1 (issue 22: one outcome, not "fails or prints nothing")
    assert (p.returncode, p.stdout) == (1, "") and p.stderr.startswith("connection failed: ")
    assert p.stderr.endswith(" failed: SSL error: certificate verify failed\n"), p.stderr
    p = run(world, pgcli_argv("service=strict"), env)
    assert WANT in ok(p)  # pgcli's own reader: connected over TLS it never checked


# ---------------------------------------------------------------- Ruby pg: PGSERVICE

RUBY = 'require "pg"; c = PG.connect(*ARGV[1..]); puts c.exec(ARGV[0]).getvalue(0, 0)'
RUBY_TWICE = textwrap.dedent('''
    require "pg"
    sql, go = ARGV
    puts "ready"  # warm (pg loaded): say so, then wait for the first gate
    $stdout.flush
    sleep 0.1 until File.exist?(go + ".first")
    first = PG.connect  # README: PGSERVICE=NAME, then PG.connect with no arguments
    puts "first: " + first.exec(sql).getvalue(0, 0)
    $stdout.flush
    sleep 0.1 until File.exist?(go)
    first.close
    second = PG.connect
    puts "second: " + second.exec(sql).getvalue(0, 0)
''')


def ruby() -> str:
    r = require_tool("ruby", "ruby-pg")
    if subprocess.run([r, "-rpg", "-e", ""], capture_output=True).returncode != 0:
        require_tool("ruby-pg-library", "ruby-pg")
    return r


def test_ruby_pg_through_pgservice_keeps_verify_full(world: World, sb: dict[str, str], tmp_path: Path, bad_ca: Path) -> None:
    """Ruby pg (Debian's ruby-pg 1.4): `PGSERVICE=NAME` + `PG.connect` keeps the entry (issue 21), while
    `PG.connect("service=NAME")` fills in libpq's defaults first: the default port wins, and given the
    port, the default sslmode=prefer wins, so a certificate for another host name is accepted."""
    r = ruby()
    p = run(world, [r, "-e", RUBY, SQL], {"PGSERVICE": "sandbox"})
    assert ok(p) == WANT
    no_token_in(p)
    svcfile = tmp_path / "pg_service.conf"
    # `strict`: the sandbox's entry under a host name its certificate does not carry; `badca`: a wrong CA.
    svcfile.write_text(f"[strict]\nhost=localhost\nhostaddr=127.0.0.1\nport={sb['local_port']}\nuser=pgiam_sandbox\n"
                       f"dbname=postgres\nsslmode=verify-full\nsslrootcert={sb['ca_file']}\n"
                       f"[badca]\nhost={sb['host']}\nhostaddr=127.0.0.1\nport={sb['local_port']}\nuser=pgiam_sandbox\n"
                       f"dbname=postgres\nsslmode=verify-full\nsslrootcert={bad_ca}\n")
    env = {"PGSERVICEFILE": str(svcfile), "PGPASSWORD": world.pgiam("token", "sandbox").stdout.strip()}
    p = run(world, [r, "-e", RUBY, SQL], {**env, "PGSERVICE": "badca"})
    assert p.returncode != 0 and "certificate verify failed" in p.stderr, p.stderr
    p = run(world, [r, "-e", RUBY, SQL], {**env, "PGSERVICE": "strict"})
    assert p.returncode != 0 and 'does not match host name "localhost"' in p.stderr, p.stderr
    p = run(world, [r, "-e", RUBY, SQL, "service=strict"], env)
    assert p.returncode != 0 and '"127.0.0.1", port 5432 failed' in p.stderr, p.stderr
    p = run(world, [r, "-e", RUBY, SQL, f"service=strict port={sb['local_port']} user=pgiam_sandbox"], env)
    assert ok(p) == WANT  # connected: no host-name check


# ---------------------------------------------------------------- pgJDBC: ?service=, --for jdbc

JDBC = textwrap.dedent('''
    import java.nio.file.*;
    import java.sql.*;

    public class Recipe {
        static String value(Connection c, String sql) throws Exception {
            try (Statement s = c.createStatement(); ResultSet r = s.executeQuery(sql)) {
                r.next();
                return r.getString(1);
            }
        }

        public static void main(String[] args) throws Exception {
            String url = args[0], sql = args[1], go = args.length > 2 ? args[2] : "-";
            if (!go.equals("-")) {  // warm (compiled, driver loaded): say so, then wait for the first gate
                Class.forName("org.postgresql.Driver");
                System.out.println("ready");
                System.out.flush();
                while (!Files.exists(Paths.get(go + ".first"))) Thread.sleep(100);
            }
            // pgJDBC reads ~/.pgpass (PGPASSFILE) at every new connection.
            Connection first = DriverManager.getConnection(url);
            System.out.println("first: " + value(first, sql));
            System.out.flush();
            if (!go.equals("-")) {
                while (!Files.exists(Paths.get(go))) Thread.sleep(100);
                first.close();
                Connection second = DriverManager.getConnection(url);
                System.out.println("second: " + value(second, sql));
            }
        }
    }
''')


def jdbc_argv(world: World, sb: dict[str, str], tmp_path: Path) -> tuple[list[str], dict[str, str]]:
    java = require_tool("java", "default-jre-headless")
    if not JDBC_JAR.exists():
        require_tool("pgjdbc-jar-at-" + str(JDBC_JAR), "libpostgresql-jdbc-java")
    src = tmp_path / "Recipe.java"
    src.write_text(JDBC)
    # pgJDBC reads the passwd entry's home, not $HOME (like libpq < 15): name both files explicitly.
    env = {"PGSERVICEFILE": str(world.home / ".pg_service.conf"), "PGPASSFILE": str(world.home / ".pgpass")}
    return [java, f"-Djdk.net.hosts.file={sb['hosts_file']}", "-cp", str(JDBC_JAR), str(src)], env


def jdbc_url_for(world: World, sb: dict[str, str]) -> str:
    """`pgiam url direct --for jdbc`, its port pointed at the sandbox (the test's stand-in for a port forward)."""
    url = form(world, "direct", "jdbc")
    return url.replace(f"{sb['host']}:{ENDPOINT_PORT}/", f"{sb['host']}:{sb['local_port']}/")


def test_pgjdbc_reads_an_entry_without_hostaddr(world: World, sb: dict[str, str], tmp_path: Path) -> None:
    argv, env = jdbc_argv(world, sb, tmp_path)
    p = run(world, [*argv, "jdbc:postgresql://?service=nohostaddr", SQL], env)
    assert ok(p) == f"first: {WANT}"
    no_token_in(p)


def test_pgjdbc_with_the_url_for_jdbc(world: World, sb: dict[str, str], tmp_path: Path, bad_ca: Path) -> None:
    argv, env = jdbc_argv(world, sb, tmp_path)
    url = jdbc_url_for(world, sb)
    assert ok(run(world, [*argv, url, SQL], env)) == f"first: {WANT}"
    p = run(world, [*argv, url.replace(sb["ca_file"], str(bad_ca)), SQL], env)
    assert p.returncode != 0 and "PKIX path" in p.stderr + p.stdout, p.stderr


def test_pgjdbc_refuses_an_entry_with_hostaddr(world: World, sb: dict[str, str], tmp_path: Path) -> None:
    """The warning pgiam prints for --via is true: pgJDBC rejects a section holding hostaddr."""
    argv, env = jdbc_argv(world, sb, tmp_path)
    p = run(world, [*argv, "jdbc:postgresql://?service=sandbox", SQL], env)
    assert p.returncode != 0


# ---------------------------------------------------------------- pgx v4: BeforeConnect, service=

PGX = textwrap.dedent('''
    package main

    import (
    \t"context"
    \t"fmt"
    \t"os"
    \t"os/exec"
    \t"strings"
    \t"time"

    \t"github.com/jackc/pgx/v4"
    \t"github.com/jackc/pgx/v4/pgxpool"
    )

    func fail(err error) {
    \tfmt.Fprintln(os.Stderr, err)
    \tos.Exit(1)
    }

    func value(ctx context.Context, c *pgxpool.Conn, sql string) string {
    \tvar s string
    \tif err := c.QueryRow(ctx, sql).Scan(&s); err != nil {
    \t\tfail(err)
    \t}
    \treturn s
    }

    func main() {
    \tconnString, addr, callback, sql, gofile := os.Args[1], os.Args[2], os.Args[3], os.Args[4], os.Args[5]
    \tctx := context.Background()
    \tif gofile != "-" {
    \t\t// Started: say so, then wait for the first gate. Before ParseConfig, which reads ~/.pgpass once.
    \t\tfmt.Println("ready")
    \t\tfor {
    \t\t\tif _, err := os.Stat(gofile + ".first"); err == nil {
    \t\t\t\tbreak
    \t\t\t}
    \t\t\ttime.Sleep(100 * time.Millisecond)
    \t\t}
    \t}
    \tcfg, err := pgxpool.ParseConfig(connString)
    \tif err != nil {
    \t\tfail(err)
    \t}
    \t// The test's stand-in for DNS (and pgx's way through a tunnel): the endpoint name leads to this
    \t// address; TLS still checks the certificate against the endpoint name in the config.
    \tcfg.ConnConfig.LookupFunc = func(ctx context.Context, host string) ([]string, error) {
    \t\treturn []string{addr}, nil
    \t}
    \tif callback != "" {
    \t\t// README: `pgiam token NAME` as the password of every new connection of the pool.
    \t\tcfg.BeforeConnect = func(ctx context.Context, cc *pgx.ConnConfig) error {
    \t\t\tout, err := exec.CommandContext(ctx, "pgiam", "token", callback).Output()
    \t\t\tif err != nil {
    \t\t\t\treturn err
    \t\t\t}
    \t\t\tcc.Password = strings.TrimSpace(string(out))
    \t\t\treturn nil
    \t\t}
    \t}
    \tcfg.MinConns = 0
    \tpool, err := pgxpool.ConnectConfig(ctx, cfg)
    \tif err != nil {
    \t\tfail(err)
    \t}
    \tdefer pool.Close()
    \tfirst, err := pool.Acquire(ctx)
    \tif err != nil {
    \t\tfail(err)
    \t}
    \tfmt.Println("first: " + value(ctx, first, sql))
    \tif gofile != "-" {
    \t\tfor {
    \t\t\tif _, err := os.Stat(gofile); err == nil {
    \t\t\t\tbreak
    \t\t\t}
    \t\t\ttime.Sleep(100 * time.Millisecond)
    \t\t}
    \t\tfirst.Conn().Close(ctx) // closed: Release destroys it and the pool opens a new connection
    \t\tfirst.Release()
    \t\tsecond, err := pool.Acquire(ctx)
    \t\tif err != nil {
    \t\t\tfail(err)
    \t\t}
    \t\tfmt.Println("second: " + value(ctx, second, sql))
    \t\tsecond.Release()
    \t}
    \tfirst.Release()
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
        src = GO_DIR / "gopath" / "src" / f"pgiamrecipe{digest}"
        src.mkdir(parents=True, exist_ok=True)
        (src / "main.go").write_text(PGX)
        env = dict(os.environ, GO111MODULE="off", GOPATH=f"{GO_DIR / 'gopath'}:/usr/share/gocode",
                   GOCACHE=str(GO_DIR / "cache"), GOFLAGS="")
        p = subprocess.run([go, "build", "-o", str(binary), f"pgiamrecipe{digest}"], env=env, capture_output=True,
                           text=True, timeout=900)
        assert p.returncode == 0, p.stderr
    return binary


def pgx_argv(sb: dict[str, str], pgx_recipe: Path, mode: str, world: World) -> tuple[list[str], dict[str, str]]:
    env = {"PGSERVICEFILE": str(world.home / ".pg_service.conf"), "PGPASSFILE": str(world.home / ".pgpass")}
    if mode == "BeforeConnect":
        env["PGPASSFILE"] = str(world.home / "no-such-pgpass")  # the callback is the only source
        return [str(pgx_recipe), "service=nohostaddr", "127.0.0.1", "sandbox", SQL], env
    return [str(pgx_recipe), "service=nohostaddr", "127.0.0.1", "", SQL], env


@pytest.mark.parametrize("mode", ["service-file+pgpass", "BeforeConnect"])
def test_pgx_v4(world: World, sb: dict[str, str], pgx_recipe: Path, mode: str) -> None:
    argv, env = pgx_argv(sb, pgx_recipe, mode, world)
    p = run(world, [*argv, "-"], env)
    assert ok(p) == f"first: {WANT}"
    no_token_in(p)


def test_pgx_v4_fails_on_an_entry_with_hostaddr(world: World, sb: dict[str, str], pgx_recipe: Path) -> None:
    """The warning pgiam prints for --via is true: pgx sends hostaddr to the server as a setting."""
    env = {"PGSERVICEFILE": str(world.home / ".pg_service.conf"), "PGPASSFILE": str(world.home / ".pgpass")}
    p = run(world, [str(pgx_recipe), "service=sandbox", "127.0.0.1", "", SQL, "-"], env)
    assert p.returncode != 0 and "hostaddr" in p.stderr


# ---------------------------------------------------------------- pgAdmin 4: export pgadmin

# pgAdmin's own password-exec runner (one per server, as pgAdmin keeps it), then a connection with the
# server's parameters. Arguments: PGADMIN_DIR SERVERS_JSON SQL [GO]: with GO, "ready" once pgAdmin is loaded,
# the first connection after the file GO.first appears, and a second one after the file GO appears, asking
# the same runner again (it re-runs the command once its expiration passed).
PASSEXEC = textwrap.dedent('''
    import json, os, sys, time
    import psycopg

    sys.path.insert(0, sys.argv[1])
    import config  # pgAdmin's configuration first, as its application imports it (desktop mode)
    from pgadmin import create_app
    from pgadmin.utils.passexec import PasswordExec

    server = next(iter(json.load(open(sys.argv[2]))["Servers"].values()))
    go = sys.argv[4] if len(sys.argv) > 4 else "-"
    with create_app(config.APP_NAME + "-cli").test_request_context():
        runner = PasswordExec(server["PasswordExecCommand"], server["Host"], server["Port"], server["Username"],
                              server["PasswordExecExpiration"])

        def value():
            with psycopg.connect(host=server["Host"], port=server["Port"], user=server["Username"],
                                 dbname=server["MaintenanceDB"], password=runner.get(),
                                 **server["ConnectionParameters"]) as c:
                return c.execute(sys.argv[3]).fetchone()[0]

        if go != "-":
            print("ready", flush=True)
            while not os.path.exists(go + ".first"):
                time.sleep(0.1)
        print("first:", value(), flush=True)
        if go != "-":
            while not os.path.exists(go):
                time.sleep(0.1)
            print("second:", value(), flush=True)
''')


@pytest.fixture(scope="module")
def pgadmin(world: World, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """pgAdmin 4 from PyPI in its own venv, installed once under /tmp (.ci/run does it ahead), configured for
    desktop mode in a throwaway data directory with its database made (`setup.py setup-db`)."""
    python = PGADMIN_VENV / "bin" / "python"
    if not python.exists() or subprocess.run([str(python), "-c", "import pgadmin4.version"], capture_output=True,
                                             cwd="/").returncode:
        subprocess.run([sys.executable, "-m", "venv", str(PGADMIN_VENV)], check=True, timeout=300)
        p = subprocess.run([str(python), "-m", "pip", "install", "-q", "pgadmin4"], capture_output=True, text=True,
                           timeout=1800)
        assert p.returncode == 0, p.stderr[-3000:]
    pkg = subprocess.run([str(python), "-c", "import pgadmin4; print(pgadmin4.__path__[0])"],
                         capture_output=True, text=True, check=True).stdout.strip()
    d = tmp_path_factory.mktemp("pgadmin")
    config = d / "config_desktop.py"
    config.write_text(f"SERVER_MODE = False\nDATA_DIR = {str(d / 'data')!r}\n")
    # pgAdmin reads a distribution config from CONFIG_DISTRO_FILE_PATH: its own directory stays untouched.
    env = {"CONFIG_DISTRO_FILE_PATH": str(config), "HOME": str(d)}
    p = run(world, [str(python), str(pkg + "/setup.py"), "setup-db"], env, timeout=300)
    assert p.returncode == 0, p.stdout + p.stderr
    return {"python": str(python), "pkg": pkg, "config": str(config), "home": str(d)}


def test_export_pgadmin_round_trips_through_pgadmins_loader_and_connects(world: World, sb: dict[str, str],
                                                                          pgadmin: dict[str, str],
                                                                          tmp_path: Path) -> None:
    """`pgiam export pgadmin` loads in pgAdmin 4's own loader (desktop mode), comes back field for field
    from its dump, and pgAdmin's password-exec runner gets a token that connects with verify-full (issue 21)."""
    exported = world.pgiam("export", "pgadmin", "sandbox").stdout
    servers = tmp_path / "servers.json"
    servers.write_text(exported)
    env = {"CONFIG_DISTRO_FILE_PATH": pgadmin["config"], "HOME": pgadmin["home"]}
    setup = [pgadmin["python"], pgadmin["pkg"] + "/setup.py"]
    for argv in (["load-servers", str(servers)], ["dump-servers", str(tmp_path / "dump.json")]):
        p = run(world, [*setup, *argv], env, timeout=300)
        assert p.returncode == 0 and "rror" not in p.stdout, p.stdout + p.stderr
    (want,) = json.loads(exported)["Servers"].values()
    (got,) = json.loads((tmp_path / "dump.json").read_text())["Servers"].values()
    assert {k: got.get(k) for k in want} == want
    assert want["ConnectionParameters"] == {"hostaddr": "127.0.0.1", "sslmode": "verify-full", "sslrootcert": sb["ca_file"]}
    script = tmp_path / "passexec.py"
    script.write_text(PASSEXEC)
    # pgAdmin starts the command with its own environment: here none of the test's, only PATH and its config.
    p = subprocess.run([pgadmin["python"], str(script), pgadmin["pkg"], str(tmp_path / "dump.json"), SQL],
                       env={"PATH": "/usr/bin:/bin", **env}, capture_output=True, text=True, timeout=120)
    assert p.returncode == 0 and p.stdout.strip() == f"first: {WANT}", p.stderr
    no_token_in(p)


# ---------------------------------------------------------------- every recipe across a token rotation

MARGIN = 30  # the smallest renewal margin pgiam accepts: a token is fresh until 30 s before it expires
# The first token expires this many seconds after it is written, which is once every client is warm: the
# first connections (all at once, 13 programs and two command-line clients on a loaded machine) have the
# LEFT - MARGIN seconds it stays fresh; the callbacks would mint a new one after that.
LEFT = MARGIN + 15
READY_WITHIN = 300  # seconds for every recipe program to start and get warm (JVM, imports) on a loaded machine


@pytest.fixture
def short_margin(world: World) -> Iterator[None]:
    config = world.home / ".config" / "pgiam" / "config.toml"
    before = config.read_text()
    config.write_text(f"[defaults]\nrenewal_margin = {MARGIN}\n\n" + before if "[defaults]" not in before
                      else before.replace("[defaults]\n", f"[defaults]\nrenewal_margin = {MARGIN}\n", 1))
    try:
        yield
    finally:
        config.write_text(before)
        world.pgiam("refresh")


def backdate(world: World, monkeypatch: pytest.MonkeyPatch, names: list[str], age: float) -> None:
    """Write tokens for `names` through pgiam's own refresh, signed `age` seconds ago (botocore reads its
    clock through botocore.auth.get_current_datetime)."""
    with monkeypatch.context() as m:
        for k, v in world.env.items():
            m.setenv(k, v)
        from pgiam import refresh, token
        from pgiam.paths import Paths

        past = datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None) - datetime.timedelta(seconds=age)
        m.setattr(botocore.auth, "get_current_datetime", lambda *a, **k: past)
        res = refresh.refresh(Paths.from_env(), time.time(), token.mint, names)
    assert [o.status for o in res.outcomes] == ["renewed"] * len(names), res


def test_every_recipe_outlives_its_first_token(world: World, sb: dict[str, str], tmp_path: Path, node_pg: Path,
                                               pgx_recipe: Path, pgadmin: dict[str, str], short_margin: None,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """Each README recipe opens a connection with a token that then expires, and a new connection after
    that in the same process or pool (issue 21). Clients that read ~/.pgpass pick up the token
    `pgiam refresh --if-needed` (the hook's or timer's job) wrote; the callbacks mint their own. pgx's
    ParseConfig("service=NAME") read ~/.pgpass once, at parse time: its second connection is refused.
    Each program gets warm first and says "ready"; only then does the test write the short-lived first
    tokens and open the first gate, so the slow start-ups do not count against the token's life (issue 22)."""
    py = python_recipe(world, sb, tmp_path)
    node, node_env = node_recipe(world, sb, node_pg, tmp_path, "sandbox")
    jdbc, jdbc_env = jdbc_argv(world, sb, tmp_path)
    passexec, servers = tmp_path / "passexec.py", tmp_path / "servers.json"
    passexec.write_text(PASSEXEC)
    servers.write_text(world.pgiam("export", "pgadmin", "sandbox").stdout)
    go = tmp_path / "go"
    first_gate = tmp_path / "go.first"  # each program waits for GO.first before its first connection
    recipes: dict[str, tuple[list[str], dict[str, str]]] = {
        "psycopg_pool + pgiam.password": ([*py, "psycopg_pool", SQL, str(go), "service=sandbox", "", "sandbox"], {}),
        "psycopg_pool, ~/.pgpass": ([*py, "psycopg_pool_pgpass", SQL, str(go), "service=sandbox"], {}),
        "SQLAlchemy+psycopg, ?service=": ([*py, "sqlalchemy", SQL, str(go), "postgresql+psycopg://?service=sandbox"], {}),
        "SQLAlchemy do_connect + pgiam.password": (
            [*py, "sqlalchemy_do_connect", SQL, str(go), form(world, "sandbox", "sqlalchemy+psycopg"), "", "sandbox"], {}),
        "asyncpg + pgiam.password_async": ([*py, "asyncpg", SQL, str(go), form(world, "direct", "asyncpg"), "", "direct"], {}),
        "SQLAlchemy+asyncpg + pgiam.password_async": (
            [*py, "sqlalchemy_asyncpg", SQL, str(go), form(world, "direct", "sqlalchemy+asyncpg"), sb["ca_file"], "direct"], {}),
        "node-postgres + pgiam token": ([*node, SQL, str(go), "", ""], node_env),
        "pgJDBC ?service=": ([*jdbc, "jdbc:postgresql://?service=nohostaddr", SQL, str(go)], jdbc_env),
        "pgJDBC --for jdbc": ([*jdbc, jdbc_url_for(world, sb), SQL, str(go)], jdbc_env),
        "pgx BeforeConnect": (lambda a, e: ([*a, str(go)], e))(*pgx_argv(sb, pgx_recipe, "BeforeConnect", world)),
        "pgx ParseConfig(service=)": (lambda a, e: ([*a, str(go)], e))(*pgx_argv(sb, pgx_recipe, "service-file+pgpass", world)),
        "Ruby pg, PGSERVICE": ([ruby(), "-e", RUBY_TWICE, SQL, str(go)], {"PGSERVICE": "sandbox"}),
        # pgAdmin keeps the password PasswordExecExpiration seconds (15 at this margin), then asks again.
        "pgAdmin 4 password exec": ([pgadmin["python"], str(passexec), pgadmin["pkg"], str(servers), SQL, str(go)],
                                    {"CONFIG_DISTRO_FILE_PATH": pgadmin["config"]}),
    }
    pgpass = world.home / ".pgpass"
    procs: dict[str, subprocess.Popen[str]] = {}
    outs = {}

    def output(label: str) -> str:
        outs[label].seek(0)
        return outs[label].read()

    for label, (argv, env) in recipes.items():
        outs[label] = open(tmp_path / f"{len(outs)}.out", "w+")
        procs[label] = subprocess.Popen(argv, env=dict(world.env, PGCONNECT_TIMEOUT="10", **env), stdout=outs[label],
                                        stderr=subprocess.STDOUT, text=True, stdin=subprocess.DEVNULL)
    try:
        started = time.time()
        while not all("ready" in output(k) or procs[k].poll() is not None for k in recipes):
            assert time.time() < started + READY_WITHIN, "the recipe programs took too long to start"
            time.sleep(0.2)
        unready = {k: output(k) for k in recipes if "ready\n" not in output(k)}
        assert not unready, "\n".join(f"{k}:\n{out}" for k, out in unready.items())
        backdate(world, monkeypatch, ["sandbox", "direct"], 900 - LEFT)
        written = time.time()
        first_tokens = pgpass.read_text()
        first_gate.write_text("")
        while not all("first:" in output(k) or procs[k].poll() is not None for k in recipes):
            assert time.time() < written + LEFT - MARGIN, "the first connections took longer than the token was fresh"
            time.sleep(0.2)
        bad = {k: output(k) for k in recipes if f"first: {WANT}" not in output(k)}
        assert not bad, "\n".join(f"{k}:\n{out}" for k, out in bad.items())
        # The command-line clients: one connection each, with the first token.
        cli_first = {"psql": run(world, ["psql", "service=sandbox", "-XAtqc", SQL]),
                     "pgcli": run(world, pgcli_argv("dbname=postgres service=sandbox"), {"TERM": "dumb"})}
        assert ok(cli_first["psql"]) == WANT and WANT in ok(cli_first["pgcli"])
        # Every first connection used the first tokens: no callback had to mint (the file is unchanged).
        assert pgpass.read_text() == first_tokens
        time.sleep(max(0.0, written + LEFT + 1 - time.time()))
        p = world.psql("sandbox")  # the first token has expired: the sandbox refuses it
        assert p.returncode != 0 and "authentication failed" in p.stderr, p.stderr
        world.pgiam("refresh", "--if-needed", "--quiet")  # what the prompt hook or the timer runs
        assert pgpass.read_text() != first_tokens
        go.write_text("")
        for label, proc in procs.items():
            proc.wait(timeout=180)
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.kill()
    results = {k: (procs[k].returncode, output(k)) for k in recipes}
    parse_config = results.pop("pgx ParseConfig(service=)")
    failed = {k: v for k, v in results.items() if v[0] != 0 or f"second: {WANT}" not in v[1]}
    assert not failed, "\n".join(f"{k}: exit {code}\n{out}" for k, (code, out) in failed.items())
    assert parse_config[0] != 0 and "authentication failed" in parse_config[1], parse_config
    assert "expired" in Path(sb["log_file"]).read_text()
    assert ok(world.psql("sandbox")) == "pgiam_sandbox"
    assert WANT in ok(run(world, pgcli_argv("dbname=postgres service=sandbox"), {"TERM": "dumb"}))
    for out in outs.values():
        out.close()
    assert all("X-Amz-Signature" not in out for _, out in results.values())
