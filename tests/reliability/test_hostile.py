"""Issue 7: hostile arguments and config refused before anything is written; odd legal files kept."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.reliability import libpq_ref
from tests.reliability.conftest import FOREIGN_PGPASS, FOREIGN_SERVICE, HOSTS, assert_one_error, pgiam_env, run, snapshot

pytestmark = pytest.mark.reliability
BAD = ["a\nb", "a\rb", "a\x01b", "a\x1bb", "a\x7fb", "a\x85b", "a\u2028b", "a\tb", "a\n"]
FIELDS = {
    "name": BAD + ["a]b", "a=b", "a#b", "[a", "a b"],
    "--host": BAD + ["a]b.com", "a=b.com", "a#b.com", "fe80::1%a]b=c#d"],
    "--user": BAD,
    "--dbname": BAD,
    "--sslrootcert": [f"/tmp/{b}" for b in BAD],
    "--via": BAD + ["127.0.0.1]:5", "127.0.0.1=:5", "#:5", "[fe80::1%a]b]:5"],
}


def _argv(field: str, value: str, ca: Path) -> list[str]:
    args = {"name": "ok", "--host": HOSTS[0], "--user": "u", "--sslrootcert": str(ca)}
    args[field] = value
    name = args.pop("name")
    return ["add", name, *[x for kv in args.items() for x in kv]]


def test_hostile_arguments_refused(home: Path, ca: Path, run_cli) -> None:
    """Issue 7: newline, `]`, `=`, `#`, control characters: exit 2, no file created or changed, no traceback."""
    env = pgiam_env(home)
    (home / ".pgpass").write_bytes(FOREIGN_PGPASS)
    os.chmod(home / ".pgpass", 0o600)
    before = snapshot(home)
    import subprocess
    import sys

    procs = []
    for field, values in FIELDS.items():
        for v in values:
            argv = _argv(field, v, ca)
            procs.append((argv, subprocess.Popen([sys.executable, "-m", "pgiam", *argv], env=env, text=True,
                                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE)))
    for argv, p in procs:
        out, err = p.communicate(timeout=60)
        assert_one_error(err, p.returncode, 2)
        assert "\n" not in err.splitlines()[0]
    assert snapshot(home) == before
    # NUL cannot travel in argv; through main(argv) it is refused the same way.
    for field in FIELDS:
        code, out, err = run_cli(*_argv(field, "a\0b", ca))
        assert_one_error(err, code, 2)
    assert snapshot(home) == before


def test_legal_odd_values_round_trip(home: Path, ca: Path) -> None:
    """Issue 7: `=`, `#`, `]`, `:`, `\\` are legal in values: libpq reads back exactly what was given."""
    env = pgiam_env(home)
    user, db = "it's a:b\\c d#e=f]", "db=#]x"
    p = run(env, "add", "odd", "--host", HOSTS[0], "--user", user, "--dbname", db, "--sslrootcert", str(ca))
    assert p.returncode == 0, p.stderr
    sf, pp = (home / ".pg_service.conf").read_bytes(), (home / ".pgpass").read_bytes()
    keys = libpq_ref.service_lookup(sf, b"odd")
    assert keys and keys[b"user"] == user.encode() and keys[b"dbname"] == db.encode()
    assert libpq_ref.password_from_file(pp, HOSTS[0].encode(), b"5432", db.encode(), user.encode())


def test_odd_existing_files_kept_byte_for_byte(home: Path, ca: Path) -> None:
    """Issue 7: CRLF, no final newline, 10 kB lines, non-UTF-8, duplicate foreign sections survive add/refresh/remove."""
    env = pgiam_env(home)
    (home / ".pgpass").write_bytes(FOREIGN_PGPASS)
    os.chmod(home / ".pgpass", 0o600)
    orphan = b"connect_timeout=1\r\nnot a key line\n" + FOREIGN_SERVICE  # lines above the first section
    (home / ".pg_service.conf").write_bytes(orphan)
    for argv in (["add", "a", "--host", HOSTS[0], "--user", "u", "--sslrootcert", str(ca)],
                 ["add", "b", "--host", HOSTS[1], "--user", "u", "--sslrootcert", str(ca)], ["refresh"]):
        assert run(env, *argv).returncode == 0
    sf = (home / ".pg_service.conf").read_bytes()
    assert sf.endswith(b"# END pgiam\n" + orphan)
    for n in (b"a", b"b"):  # libpq must not read the user's orphan lines into pgiam's last section
        assert set(libpq_ref.service_lookup(sf, n)) == {b"host", b"port", b"user", b"sslmode", b"sslrootcert"}
    for n in ("a", "b"):
        assert run(env, "remove", n).returncode == 0
    assert (home / ".pgpass").read_bytes() == FOREIGN_PGPASS
    assert (home / ".pg_service.conf").read_bytes() == orphan


CONFIGS = [
    ("[services.x\nhost = 1\n", None, "invalid TOML"),
    ("[services.x]\nhost = \"db.example.com\"\nuser = \"u\"\nregion = \"us-east-1\"\nport = \"5432\"\n", 5, "port"),
    ("[services.x]\nhost = \"db.example.com\"\nuser = \"u\"\nregion = \"us-east-1\"\ncolour = 1\n", 5, "colour"),
    ("[defaults]\nregion = \"us-east-1\"\n\nbogus = 1\n", 4, "bogus"),
    ("\n\n[nonsense]\n", 3, "nonsense"),
    ("services = 3\n", 1, "services"),
    ("[services.\"a\\nb\"]\nhost = \"db.example.com\"\nuser = \"u\"\n", 0, "services"),  # quoted key: no line
    ("[services.x]\nhost = \"db.example.com\"\nuser = \"u\\u0000v\"\nregion = \"us-east-1\"\n", 3, "user"),
    ("[defaults]\nrenewal_margin = true\n", 2, "renewal_margin"),
]


@pytest.mark.parametrize("text,line,key", CONFIGS)
def test_bad_config_refused_with_file_key_line(home: Path, text: str, line: int | None, key: str) -> None:
    """Issue 7: TOML errors, wrong types, unknown keys: exit 3 naming the file, the key and the line."""
    env = pgiam_env(home)
    cfg = home / ".config/pgiam/config.toml"
    cfg.parent.mkdir(parents=True)
    cfg.write_text(text)
    before = snapshot(home)
    for argv in (["refresh"], ["refresh", "--if-needed"], ["list"], ["status"]):
        p = run(env, *argv)
        assert_one_error(p.stderr, p.returncode, 3)
        first = p.stderr.splitlines()[0]
        assert str(cfg) in first and key in first, first
        if line != 0:
            assert (f"{cfg}:{line}:" in first) if line else ("line" in first), first
    assert snapshot(home) == before


def test_damaged_state_file_is_not_a_crash(home: Path, ca: Path) -> None:
    """Issue 7: a state file with wrong types makes everything due instead of a traceback in the prompt hook."""
    env = pgiam_env(home)
    assert run(env, "add", "a", "--host", HOSTS[0], "--user", "u", "--sslrootcert", str(ca)).returncode == 0
    state = home / ".local/state/pgiam/state.json"
    state.write_text('{"services": {"a": {"key": "x", "expires": "soon", "minted": null}}}')
    for argv in (["refresh", "--if-needed", "--quiet"], ["status"], ["status", "--json"]):
        p = run(env, *argv)
        assert p.returncode == 0 and "Traceback" not in p.stderr, (argv, p.stderr)
