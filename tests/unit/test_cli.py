"""The pgiam command through main(argv): files written, exit codes by name, foreign bytes kept (issue 2)."""

from __future__ import annotations

import datetime
import json
import os
import stat
from pathlib import Path

import botocore.auth
import pytest

from pgiam import pgpass
from pgiam.errors import ExitCode
from tests.conftest import botocore_session, SANDBOX_HOST

FOREIGN_PGPASS = b"# my passwords\r\nlocalhost:5432:*:me:s\\:ecret\r\nother:1:*:x:\xff\xfe"
FOREIGN_SERVICE = b"# my services\n[local]\nhost=localhost\n\n  [odd]  spaced\nport= 5\n[broken"


@pytest.fixture
def frozen(monkeypatch: pytest.MonkeyPatch) -> datetime.datetime:
    t = datetime.datetime(2026, 11, 26, 12, 0, 0)
    monkeypatch.setattr(botocore.auth, "get_current_datetime", lambda *a, **k: t)
    return t


def add(run_cli, ca_file: Path, name: str = "prod", *extra: str) -> tuple[int, str, str]:
    return run_cli("add", name, "--host", SANDBOX_HOST, "--user", "alice", "--sslrootcert", str(ca_file), *extra)


def reference_token(host: str, port: int, user: str, region: str) -> str:
    client = botocore_session().create_client("rds", region_name=region)
    return client.generate_db_auth_token(host, port, user, Region=region)


def test_add_writes_both_files_and_a_token(run_cli, home: Path, ca_file: Path, frozen) -> None:
    (home / ".pgpass").write_bytes(FOREIGN_PGPASS)
    os.chmod(home / ".pgpass", 0o600)
    (home / ".pg_service.conf").write_bytes(FOREIGN_SERVICE)
    code, out, err = add(run_cli, ca_file, "prod", "--dbname", "app")
    assert code == ExitCode.OK, err
    assert "psql service=prod" in out
    pp = (home / ".pgpass").read_bytes()
    assert pp.endswith(FOREIGN_PGPASS)
    tokens = pgpass.parse_tokens(pp.decode("utf-8", "surrogateescape"))
    assert tokens == {pgpass.Key(SANDBOX_HOST, "5432", "alice"): reference_token(SANDBOX_HOST, 5432, "alice", "us-west-2")}
    assert stat.S_IMODE(os.stat(home / ".pgpass").st_mode) == 0o600
    sf = (home / ".pg_service.conf").read_bytes()
    assert sf.endswith(FOREIGN_SERVICE)
    text = sf.decode()
    for line in ["[prod]", f"host={SANDBOX_HOST}", "port=5432", "user=alice", "dbname=app",
                 "sslmode=verify-full", f"sslrootcert={ca_file}"]:
        assert line in text.split("\n")
    assert token_not_in(out + err, tokens)


def token_not_in(text: str, tokens: dict) -> bool:
    return all(t not in text and t.split("X-Amz-Signature=")[1] not in text for t in tokens.values())


def test_remove_restores_foreign_bytes_exactly(run_cli, home: Path, ca_file: Path) -> None:
    (home / ".pgpass").write_bytes(FOREIGN_PGPASS)
    os.chmod(home / ".pgpass", 0o600)
    (home / ".pg_service.conf").write_bytes(FOREIGN_SERVICE)
    assert add(run_cli, ca_file)[0] == ExitCode.OK
    assert run_cli("refresh")[0] == ExitCode.OK
    code, out, err = run_cli("remove", "prod")
    assert code == ExitCode.OK, err
    assert (home / ".pgpass").read_bytes() == FOREIGN_PGPASS
    assert (home / ".pg_service.conf").read_bytes() == FOREIGN_SERVICE


def test_shared_line_survives_removal_of_one_service(run_cli, home: Path, ca_file: Path) -> None:
    assert add(run_cli, ca_file, "a")[0] == ExitCode.OK
    assert add(run_cli, ca_file, "b", "--dbname", "other")[0] == ExitCode.OK
    text = (home / ".pgpass").read_text()
    assert len(pgpass.parse_tokens(text)) == 1
    assert run_cli("remove", "a")[0] == ExitCode.OK
    assert len(pgpass.parse_tokens((home / ".pgpass").read_text())) == 1
    assert run_cli("remove", "b")[0] == ExitCode.OK
    assert not pgpass.parse_tokens((home / ".pgpass").read_text())


def test_via_writes_hostaddr_and_local_port(run_cli, home: Path, ca_file: Path, frozen) -> None:
    code, _, err = add(run_cli, ca_file, "tun", "--via", "localhost:15432")
    assert code == ExitCode.OK, err
    lines = (home / ".pg_service.conf").read_text().split("\n")
    assert "hostaddr=127.0.0.1" in lines and "port=15432" in lines and f"host={SANDBOX_HOST}" in lines
    tokens = pgpass.parse_tokens((home / ".pgpass").read_text())
    # matched on the local port, signed for the endpoint's port
    assert tokens == {pgpass.Key(SANDBOX_HOST, "15432", "alice"): reference_token(SANDBOX_HOST, 5432, "alice", "us-west-2")}


def test_token_command_equals_botocore(run_cli, ca_file: Path, frozen) -> None:
    assert add(run_cli, ca_file, "p", "--no-refresh")[0] == ExitCode.OK
    code, out, _ = run_cli("token", "p")
    assert code == ExitCode.OK
    assert out == reference_token(SANDBOX_HOST, 5432, "alice", "us-west-2") + "\n"


def test_user_with_quote_colon_backslash_space(run_cli, home: Path, ca_file: Path, frozen) -> None:
    user = "o'ne: \\il"
    code, _, err = run_cli("add", "odd", "--host", SANDBOX_HOST, "--user", user, "--sslrootcert", str(ca_file))
    assert code == ExitCode.OK, err
    tokens = pgpass.parse_tokens((home / ".pgpass").read_text())
    assert tokens == {pgpass.Key(SANDBOX_HOST, "5432", user): reference_token(SANDBOX_HOST, 5432, user, "us-west-2")}
    assert f"user={user}" in (home / ".pg_service.conf").read_text().split("\n")


def test_umask_000_still_gives_0600(run_cli, home: Path, ca_file: Path) -> None:
    old = os.umask(0)
    try:
        assert add(run_cli, ca_file)[0] == ExitCode.OK
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.stat(home / ".pgpass").st_mode) == 0o600
    assert stat.S_IMODE(os.stat(home / ".config" / "pgiam").st_mode) == 0o700


def test_loose_pgpass_is_tightened_and_said(run_cli, home: Path, ca_file: Path) -> None:
    (home / ".pgpass").write_text("x:1:*:y:z\n")
    os.chmod(home / ".pgpass", 0o644)
    code, _, err = add(run_cli, ca_file)
    assert code == ExitCode.OK
    assert "0600" in err
    assert stat.S_IMODE(os.stat(home / ".pgpass").st_mode) == 0o600


def test_symlinked_pgpass_stays_a_symlink(run_cli, home: Path, ca_file: Path) -> None:
    real = home / "secrets" / "pgpass"
    real.parent.mkdir()
    real.write_text("x:1:*:y:z\n")
    os.chmod(real, 0o600)
    (home / ".pgpass").symlink_to(real)
    assert add(run_cli, ca_file)[0] == ExitCode.OK
    assert (home / ".pgpass").is_symlink()
    assert "X-Amz-Signature" in real.read_text() and real.read_text().endswith("x:1:*:y:z\n")


def test_pgpassfile_and_pgservicefile_are_honoured(run_cli, home: Path, ca_file: Path, monkeypatch) -> None:
    monkeypatch.setenv("PGPASSFILE", str(home / "pp"))
    monkeypatch.setenv("PGSERVICEFILE", str(home / "svc.conf"))
    assert add(run_cli, ca_file)[0] == ExitCode.OK
    assert (home / "pp").exists() and (home / "svc.conf").exists()
    assert not (home / ".pgpass").exists() and not (home / ".pg_service.conf").exists()


def test_existing_foreign_section_refused_unless_replace(run_cli, home: Path, ca_file: Path) -> None:
    (home / ".pg_service.conf").write_text("# mine\n[prod]\nhost=old\n")
    code, _, err = add(run_cli, ca_file)
    assert code == ExitCode.CONFIG
    assert f"{home / '.pg_service.conf'}:2" in err and "--replace" in err
    assert (home / ".pg_service.conf").read_text() == "# mine\n[prod]\nhost=old\n"
    assert not (home / ".pgpass").exists() and not (home / ".config" / "pgiam" / "config.toml").exists()
    code, _, err = add(run_cli, ca_file, "prod", "--replace")
    assert code == ExitCode.OK, err
    text = (home / ".pg_service.conf").read_text()
    assert "host=old" not in text and text.endswith("# mine\n")


def test_duplicate_add_needs_replace(run_cli, ca_file: Path) -> None:
    assert add(run_cli, ca_file)[0] == ExitCode.OK
    assert add(run_cli, ca_file)[0] == ExitCode.CONFIG
    assert add(run_cli, ca_file, "prod", "--replace", "--port", "6432")[0] == ExitCode.OK


@pytest.mark.parametrize("argv", [
    ["add", "bad]name", "--host", SANDBOX_HOST, "--user", "u"],
    ["add", "bad name", "--host", SANDBOX_HOST, "--user", "u"],
    ["add", "a=b", "--host", SANDBOX_HOST, "--user", "u"],
    ["add", "a#b", "--host", SANDBOX_HOST, "--user", "u"],
    ["add", "ok", "--host", "evil\nhost", "--user", "u"],
    ["add", "ok", "--host", SANDBOX_HOST, "--user", "u\nx"],
    ["add", "ok", "--host", SANDBOX_HOST, "--user", "u\x00x"],
    ["add", "ok", "--host", SANDBOX_HOST, "--user", "u", "--dbname", "d\rb"],
    ["add", "ok", "--host", SANDBOX_HOST, "--user", "u", "--sslrootcert", "/tmp/a\nb"],
    ["add", "ok", "--host", SANDBOX_HOST, "--user", "u", "--via", "example.com:1"],
    ["add", "ok", "--host", SANDBOX_HOST, "--user", "u", "--port", "99999"],
    ["add", "ok", "--host", "db.example.com", "--user", "u"],  # no region
    ["refresh", "--bogus"],
])
def test_bad_input_is_refused_with_usage_and_changes_nothing(run_cli, home: Path, argv: list[str]) -> None:
    code, out, err = run_cli(*argv)
    assert code == ExitCode.USAGE
    assert err.startswith("pgiam: ") and "\nhint: " in err and "Traceback" not in err
    assert list(home.rglob("*")) == []


def test_unknown_service_is_config_error(run_cli) -> None:
    code, _, err = run_cli("refresh", "nope")
    assert code == ExitCode.CONFIG and "nope" in err


def test_bad_config_names_file_key_and_line(run_cli, home: Path) -> None:
    cfg = home / ".config" / "pgiam" / "config.toml"
    cfg.parent.mkdir(parents=True)
    cfg.write_text('[services.prod]\nhost = "h.cluster-x.us-east-1.rds.amazonaws.com"\nuser = "u"\nport = "x"\n')
    code, _, err = run_cli("list")
    assert code == ExitCode.CONFIG
    assert f"{cfg}:4" in err and "port" in err
    cfg.write_text('[services.prod]\nhost = \n')
    code, _, err = run_cli("list")
    assert code == ExitCode.CONFIG and "line 2" in err
    cfg.write_text('[services.prod]\nhost = "h.cluster-x.us-east-1.rds.amazonaws.com"\nuser = "u"\ncolour = 1\n')
    code, _, err = run_cli("status")
    assert code == ExitCode.CONFIG and f"{cfg}:4" in err and "colour" in err


def test_missing_credentials_is_auth_error_with_hint(run_cli, ca_file: Path, monkeypatch) -> None:
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    code, _, err = add(run_cli, ca_file)
    assert code == ExitCode.AUTH and "hint:" in err
    assert add(run_cli, ca_file, "prod", "--no-refresh")[0] == ExitCode.OK
    code, _, err = run_cli("refresh")
    assert code == ExitCode.AUTH


def test_expired_sso_session_names_the_fix_and_keeps_other_services(run_cli, home: Path, ca_file: Path, monkeypatch) -> None:
    """A failure for one service doesn't stop the others: the good one gets its new token, the exit is
    PARTIAL exactly, and the SSO one's error names `aws sso login --profile sso` (issues 2, 10)."""
    aws = home / ".aws"
    aws.mkdir()
    (aws / "config").write_text(
        "[profile sso]\nsso_session = s\nsso_account_id = 123456789012\nsso_role_name = r\nregion = us-west-2\n"
        "[sso-session s]\nsso_start_url = https://example.awsapps.com/start\nsso_region = us-west-2\n"
        "[profile static]\nregion = us-west-2\n"
    )
    (aws / "credentials").write_text(f"[static]\naws_access_key_id = AKIASTATICPROFILE000\naws_secret_access_key = {'s' * 40}\n")
    assert add(run_cli, ca_file, "good", "--profile", "static", "--no-refresh")[0] == ExitCode.OK
    assert add(run_cli, ca_file, "sso", "--port", "6432", "--profile", "sso", "--no-refresh")[0] == ExitCode.OK
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    code, out, err = run_cli("refresh")
    assert code == ExitCode.PARTIAL, err
    assert "aws sso login --profile sso" in err
    tokens = pgpass.parse_tokens((home / ".pgpass").read_text())
    [(key, token)] = tokens.items()
    assert key[:2] == (SANDBOX_HOST, "5432"), "only the good service has a line"
    assert "X-Amz-Credential=AKIASTATICPROFILE000%2F" in token, "signed with the good service's own profile"
    code, out, _ = run_cli("status", "--json")
    rows = {r["name"]: r for r in json.loads(out)["services"]}
    assert (rows["good"]["token"], rows["good"]["error"]) == ("fresh", None)
    assert rows["sso"]["token"] == "missing"
    assert rows["sso"]["error"] == "sso: the AWS SSO session of profile sso is missing or expired"
    assert rows["sso"]["hint"] == "run `aws sso login --profile sso`, then `pgiam refresh sso`"
    assert rows["sso"]["error_code"] == ExitCode.AUTH


def test_list_names_and_json(run_cli, ca_file: Path) -> None:
    assert add(run_cli, ca_file, "b", "--no-refresh")[0] == ExitCode.OK
    assert add(run_cli, ca_file, "a", "--no-refresh", "--port", "1")[0] == ExitCode.OK
    code, out, _ = run_cli("list", "--names")
    assert code == ExitCode.OK and sorted(out.split()) == ["a", "b"]
    code, out, _ = run_cli("list", "--json")
    listed = json.loads(out)
    assert code == ExitCode.OK and (listed["schema"], listed["command"]) == (1, "list")
    assert [(r["name"], r["port"]) for r in listed["services"]] == [("b", 5432), ("a", 1)], "config order"
    code, out, _ = run_cli("status", "--json")
    rows = json.loads(out)["services"]
    assert code == ExitCode.OK and [(r["name"], r["token"], r["seconds_left"], r["expires"]) for r in rows] == [
        ("b", "missing", None, None), ("a", "missing", None, None)]


def test_refresh_if_needed_is_a_no_op_when_fresh(run_cli, home: Path, ca_file: Path) -> None:
    assert add(run_cli, ca_file)[0] == ExitCode.OK
    before = {p: p.stat().st_mtime_ns for p in home.rglob("*") if p.is_file()}
    code, out, err = run_cli("refresh", "--if-needed", "--quiet")
    assert code == ExitCode.OK and out == "" and err == ""
    after = {p: p.stat().st_mtime_ns for p in home.rglob("*") if p.is_file()}
    assert before == after


def test_version_and_help(run_cli) -> None:
    code, out, _ = run_cli("--version")
    assert code == 0 and out.startswith("pgiam ")
    code, out, _ = run_cli("add", "--help")
    assert code == 0 and "examples:" in out


PROXY_HOST = "app.proxy-abc123.us-west-2.rds.amazonaws.com"


def test_proxy_gets_system_roots_on_libpq_16(run_cli, home: Path, monkeypatch) -> None:
    """Issue 5: RDS Proxy certificates chain to public Amazon roots: sslrootcert=system on libpq 16+."""
    monkeypatch.setenv("PGIAM_LIBPQ_VERSION", "16.4")
    code, _, err = run_cli("add", "px", "--host", PROXY_HOST, "--user", "alice")
    assert code == ExitCode.OK, err
    assert "sslrootcert=system" in (home / ".pg_service.conf").read_text().split("\n")
    assert "JDBC" in err  # pgJDBC cannot read sslrootcert=system


def test_proxy_gets_the_system_ca_file_on_libpq_15(run_cli, home: Path, monkeypatch) -> None:
    import ssl

    monkeypatch.setenv("PGIAM_LIBPQ_VERSION", "15.8")
    code, _, err = run_cli("add", "px", "--host", PROXY_HOST, "--user", "alice")
    assert code == ExitCode.OK, err
    lines = (home / ".pg_service.conf").read_text().split("\n")
    (root,) = [ln.split("=", 1)[1] for ln in lines if ln.startswith("sslrootcert=")]
    paths = ssl.get_default_verify_paths()
    assert root in {os.path.abspath(p) for p in (paths.cafile, paths.openssl_cafile) if p}


def test_old_libpq_that_truncates_pgpass_lines_is_refused(run_cli, home: Path, ca_file: Path, monkeypatch) -> None:
    monkeypatch.setenv("PGIAM_LIBPQ_VERSION", "12.4")
    code, _, err = add(run_cli, ca_file)
    assert code == ExitCode.ENVIRONMENT and "320" in err and "hint:" in err
    assert not (home / ".pgpass").exists() and not (home / ".pg_service.conf").exists()


def test_require_auth_needs_libpq_16(run_cli, home: Path, ca_file: Path, monkeypatch) -> None:
    monkeypatch.setenv("PGIAM_LIBPQ_VERSION", "15.8")
    code, _, err = add(run_cli, ca_file, "prod", "--require-auth")
    assert code == ExitCode.ENVIRONMENT and "require_auth" in err
    assert not (home / ".pg_service.conf").exists()
    monkeypatch.setenv("PGIAM_LIBPQ_VERSION", "16.4")
    code, _, err = add(run_cli, ca_file, "prod", "--require-auth")
    assert code == ExitCode.OK and "JDBC" in err
    assert "require_auth=password" in (home / ".pg_service.conf").read_text().split("\n")


def test_default_entry_holds_only_jdbc_safe_keys(run_cli, home: Path, ca_file: Path) -> None:
    """Issue 5: by default pgJDBC can read every key pgiam writes; `via` adds hostaddr and says so."""
    from pgiam.libpq import JDBC_SAFE_KEYS

    code, _, err = add(run_cli, ca_file, "plain", "--dbname", "app")
    assert code == ExitCode.OK and "JDBC" not in err
    code, _, err = add(run_cli, ca_file, "tunnel", "--via", "127.0.0.1:15432")
    assert code == ExitCode.OK and "JDBC" in err and "hostaddr" in err
    text = (home / ".pg_service.conf").read_text()
    plain = text.split("[plain]\n", 1)[1].split("\n\n", 1)[0]
    keys = {ln.split("=", 1)[0] for ln in plain.split("\n") if "=" in ln and not ln.startswith("#")}
    assert keys <= JDBC_SAFE_KEYS and {"host", "port", "user", "dbname", "sslmode", "sslrootcert"} == keys


def test_unexpected_error_is_one_line_without_debug_and_a_traceback_with(run_cli, monkeypatch) -> None:
    from pgiam import refresh

    def boom(*a, **k):
        raise RuntimeError("forced")

    monkeypatch.setattr(refresh, "refresh", boom)
    code, _, err = run_cli("refresh")
    assert code == ExitCode.BUG and "Traceback" not in err and "--debug" in err and len(err.splitlines()) == 2
    code, _, err = run_cli("--debug", "refresh")
    assert code == ExitCode.BUG and "Traceback" in err and "RuntimeError: forced" in err


@pytest.mark.parametrize("argv", [("discover", "--region", "us-west-2"), ("discover", "--region", "us-west-2", "--json"),
                                  ("refresh", "prod"), ("sandbox", "status")], ids=" ".join)
def test_the_bug_hint_works_as_written_with_debug_after_the_command(run_cli, monkeypatch, argv: tuple[str, ...]) -> None:
    """Issue 24: "run the command again with --debug" means the same command line with --debug added (at the
    end): `pgiam discover … --debug` is accepted and shows the traceback, not "unrecognized arguments"."""
    from pgiam import discover, refresh
    from pgiam.sandbox import cluster

    def boom(*a, **k):
        raise RuntimeError("forced")

    for module, name in ((discover, "discover"), (refresh, "refresh"), (cluster, "status")):
        monkeypatch.setattr(module, name, boom)
    code, _, err = run_cli(*argv)
    assert (code, err.splitlines()) == (ExitCode.BUG, ["pgiam: unexpected error (RuntimeError); this is a bug in pgiam",
                                                       "hint: run the command again with --debug and report the traceback"])
    code, _, err = run_cli(*argv, "--debug")
    assert code == ExitCode.BUG and err.startswith("Traceback") and "RuntimeError: forced" in err
    assert "hint:" not in err


def test_debug_anywhere_changes_nothing_else(run_cli) -> None:
    """`--debug` after the command is the global flag (issue 24); any other unknown option is still refused."""
    assert run_cli("list", "--names", "--debug") == run_cli("--debug", "list", "--names") == (ExitCode.OK, "", "")
    code, _, err = run_cli("list", "--debug", "--bogus")  # with --debug, the usage error's traceback follows
    assert (code, err.splitlines()[:3]) == (ExitCode.USAGE, ["pgiam: unrecognized arguments: --bogus",
                                                             "hint: see `pgiam --help`", "Traceback (most recent call last):"])
