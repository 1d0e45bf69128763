"""`pgiam export pgbouncer`: the pure pgbouncer.ini rendering and the command's refusals (issue 23).

Connection-string values are read back with a transcription of pgbouncer's own reader (src/loader.c,
cstr_get_key / cstr_get_value / cstr_unquote_value); tests/e2e/test_pgbouncer.py starts the real
pgbouncer with the exported lines.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pgiam import pgbouncer
from pgiam.errors import ExitCode
from pgiam.pgbouncer import Database


def loader_pairs(connstr: str) -> list[tuple[str, str]]:
    """pgbouncer's loader.c reading of a [databases] value: `key=value` pairs split on spaces, a value bare
    up to the next space or in single quotes with '' for a quote."""
    out, p = [], 0
    while True:
        while p < len(connstr) and connstr[p] == " ":
            p += 1
        if p == len(connstr):
            return out
        k0 = p
        while p < len(connstr) and connstr[p] not in "= ":
            p += 1
        key = connstr[k0:p]
        while p < len(connstr) and connstr[p] == " ":
            p += 1
        assert p < len(connstr) and connstr[p] == "=" and key, f"no '=' after {key!r}"
        p += 1
        while p < len(connstr) and connstr[p] == " ":
            p += 1
        if p < len(connstr) and connstr[p] == "'":
            p += 1
            val = []
            while True:
                assert p < len(connstr), "unterminated quote"
                if connstr[p] == "'":
                    if p + 1 < len(connstr) and connstr[p + 1] == "'":
                        p += 1
                    else:
                        break
                val.append(connstr[p])
                p += 1
            p += 1
            value = "".join(val)
        else:
            v0 = p
            while p < len(connstr) and connstr[p] != " ":
                p += 1
            value = connstr[v0:p]
        assert value, "pgbouncer refuses empty values"
        out.append((key, value))


@given(st.text(alphabet=st.characters(blacklist_categories=("Cs", "Cc")), min_size=1))
def test_values_round_trip_through_pgbouncers_reader(value: str) -> None:
    line = f"user={pgbouncer.quote_value(value)} dbname={pgbouncer.quote_value(value)}"
    assert loader_pairs(line) == [("user", value), ("dbname", value)]


@pytest.mark.parametrize(("name", "key"), [("prod", "prod"), ("app_2", "app_2"), ("we.ird", '"we.ird"'),
                                           ("a@b+c-d", '"a@b+c-d"')])
def test_database_names_are_quoted_when_not_bare(name: str, key: str) -> None:
    assert pgbouncer.quote_name(name) == key


def test_render_ini_lines() -> None:
    rds = Database("prod", "db.cluster-abc.us-west-2.rds.amazonaws.com", 5432, "app", "o'neil x",
                   "db.cluster-abc.us-west-2.rds.amazonaws.com")
    text = pgbouncer.render_ini([rds], "/etc/pgbouncer/ca.pem")
    lines = text.splitlines()
    assert "prod = host=db.cluster-abc.us-west-2.rds.amazonaws.com port=5432 dbname=app user='o''neil x'" in lines
    assert lines[lines.index("[pgbouncer]"):] == ["[pgbouncer]", "server_tls_sslmode = verify-full",
                                                  "server_tls_ca_file = /etc/pgbouncer/ca.pem"]
    assert all(ln.startswith(";") or "#" not in ln for ln in lines)  # comments only as whole ';' lines
    assert "server_lifetime" not in text  # pgbouncer's default (3600 s) is fine for RDS


def test_render_ini_lowers_server_lifetime_for_dsql_and_says_why() -> None:
    d = Database("dq", "abc.dsql.us-east-1.on.aws", 5432, "postgres", "admin", "abc.dsql.us-east-1.on.aws", dsql=True)
    via = Database("tun", "127.0.0.1", 15432, "app", "u", "db.cluster-abc.us-west-2.rds.amazonaws.com")
    text = pgbouncer.render_ini([d, via], "/ca.pem")
    lines = text.splitlines()
    assert f"server_lifetime = {pgbouncer.DSQL_SERVER_LIFETIME}" in lines and pgbouncer.DSQL_SERVER_LIFETIME < 3600
    assert "tun = host=127.0.0.1 port=15432 dbname=app user=u" in lines
    (note,) = [ln for ln in lines if ln.startswith("; tun:")]
    assert "no hostaddr" in note and "/etc/hosts" in note


def test_merge_ca_files_keeps_each_file_once() -> None:
    a, b = b"-----BEGIN CERTIFICATE-----\nA\n-----END CERTIFICATE-----\n", b"-----BEGIN CERTIFICATE-----\nB\n-----END CERTIFICATE-----"
    merged = pgbouncer.merge_ca_files([("/a.pem", a), ("/b.pem", b), ("/a-copy.pem", a)])
    assert merged == b"# /a.pem\n" + a + b"# /b.pem\n" + b + b"\n"


# ---------------------------------------------------------------- the command, in process


def _add(run_cli, name: str, host: str, user: str, ca: Path) -> None:  # type: ignore[no-untyped-def]
    code, _, err = run_cli("add", name, "--host", host, "--user", user, "--sslrootcert", str(ca), "--no-refresh")
    assert code == ExitCode.OK, err


def test_two_ca_files_need_ca_file_and_it_writes_one(run_cli, home: Path, ca_file: Path) -> None:  # type: ignore[no-untyped-def]
    other = home / "other.pem"
    other.write_text("-----BEGIN CERTIFICATE-----\nOTHER\n-----END CERTIFICATE-----\n")
    _add(run_cli, "a", "a.cluster-abc.us-west-2.rds.amazonaws.com", "u1", ca_file)
    _add(run_cli, "b", "b.cluster-abc.us-west-2.rds.amazonaws.com", "u2", other)
    code, out, err = run_cli("export", "pgbouncer")
    assert code == ExitCode.USAGE and out == ""
    assert "2 CA files" in err and "hint: add --ca-file FILE" in err
    code, out, err = run_cli("export", "pgbouncer", "a")
    assert code == ExitCode.OK and f"server_tls_ca_file = {ca_file}\n" in out
    target = home / "pgb" / "server-ca.pem"
    target.parent.mkdir()
    code, out, err = run_cli("export", "pgbouncer", "--ca-file", str(target))
    assert code == ExitCode.OK, err
    assert f"server_tls_ca_file = {target}\n" in out
    assert target.read_bytes() == pgbouncer.merge_ca_files([(str(ca_file), ca_file.read_bytes()),
                                                            (str(other), other.read_bytes())])
    assert stat.S_IMODE(os.stat(target).st_mode) == 0o644  # certificates are public; pgbouncer's account reads them


def test_one_user_for_two_endpoints_is_refused(run_cli, home: Path, ca_file: Path) -> None:  # type: ignore[no-untyped-def]
    _add(run_cli, "a", "a.cluster-abc.us-west-2.rds.amazonaws.com", "same", ca_file)
    _add(run_cli, "b", "b.cluster-abc.us-west-2.rds.amazonaws.com", "same", ca_file)
    code, out, err = run_cli("export", "pgbouncer")
    assert code == ExitCode.CONFIG and out == "" and "one password per user" in err
    code, out, err = run_cli("export", "pgbouncer", "b")
    assert code == ExitCode.OK and "b = host=b.cluster-abc.us-west-2.rds.amazonaws.com" in out


def test_a_missing_ca_file_is_named(run_cli, home: Path, ca_file: Path) -> None:  # type: ignore[no-untyped-def]
    _add(run_cli, "a", "a.cluster-abc.us-west-2.rds.amazonaws.com", "u", ca_file)
    ca_file.unlink()
    code, out, err = run_cli("export", "pgbouncer", "--ca-file", str(home / "x.pem"))
    assert code == ExitCode.FILE and out == "" and f"a: its CA file {ca_file} is missing" in err
    assert not (home / "x.pem").exists()
