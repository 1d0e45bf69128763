"""The pure readers behind `pgiam doctor`: which ~/.pgpass line and which service section libpq takes (issue 13)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pgiam import pgpass, servicefile
from pgiam.doctor import local

PGIAM_LINE = pgpass.render_line(pgpass.Key("db.example.com", "5432", "alice"), "tok:en")
BLOCK = f"{pgpass.BEGIN_LINE}\n{PGIAM_LINE}\n{pgpass.END_LINE}\n"


@pytest.mark.parametrize(("text", "line", "managed"), [
    (BLOCK, 2, True),
    ("*:*:*:alice:pw\n" + BLOCK, 1, False),  # a whole-field `*` is a wildcard
    ("\\*:*:*:alice:pw\n" + BLOCK, 3, True),  # an escaped `\*` is a literal star
    ("db.example.com:5432:*:bob:pw\n" + BLOCK, 3, True),  # another user
    ("#db.example.com:5432:*:alice:pw\n" + BLOCK, 3, True),  # a comment
    (" db.example.com:5432:*:alice:pw\n" + BLOCK, 3, True),  # no trimming: a leading space never matches
    ("db.example.com:5432:app:alice:pw\r\n" + BLOCK, 1, False),  # CRLF works
    ("db.example.com:5432:other:alice:pw\n" + BLOCK, 3, True),  # the database is compared too
])
def test_first_match_follows_libpq(text: str, line: int, managed: bool) -> None:
    m = local.first_match(text, "db.example.com", "5432", "app", "alice")
    assert m is not None and (m.line, m.managed) == (line, managed)


def test_no_line_matches() -> None:
    assert local.first_match(BLOCK, "db.example.com", "5433", "app", "alice") is None


def test_find_section_takes_the_first_and_knows_whose_it_is() -> None:
    ours = servicefile.merge("", [servicefile.Entry("prod", [("host", "h"), ("port", "5432")])])
    s = local.find_section(Path("f"), ours, "prod")
    assert s is not None and s.managed and s.get("host") == "h" and s.get("port") == "5432"
    theirs = "[prod]\nhost=x\nfoo = bar\n\n" + ours
    s = local.find_section(Path("f"), theirs, "prod")
    assert s is not None and not s.managed and s.line == 1 and ("foo ", " bar", 3) in s.keys
    assert local.find_section(Path("f"), ours, "Prod") is None  # names are case-sensitive


@pytest.mark.parametrize(("host", "region"), [
    ("db.cluster-abc.us-west-2.rds.amazonaws.com", "us-west-2"),
    ("db.abc.cn-north-1.rds.amazonaws.com.cn", "cn-north-1"),
    ("abc.dsql.us-east-1.on.aws", "us-east-1"),
    ("abc.dsql-fips.us-east-1.on.aws", "us-east-1"),
    ("localhost", None),
    ("db.example.com", None),
])
def test_region_of_host(host: str, region: str | None) -> None:
    """Issue 19 (repro 6): doctor reads a host's region with config's parser, dsql-fips included."""
    from pgiam.config import infer_region

    assert infer_region(host) == region
    assert not hasattr(local, "region_of_host")  # no second parser to drift


@pytest.mark.parametrize("host", ["abc.dsql.us-east-1.on.aws", "abc.dsql-fips.us-east-1.on.aws"])
def test_a_valid_dsql_token_passes_token_scope(host: str) -> None:
    """Issue 19 (repro 6): a FIPS DSQL endpoint's valid token is not FAIL token.scope (doctor took it for RDS)."""
    import time

    from pgiam import token
    from pgiam.config import Service

    svc = Service("fips", host, "admin", "us-east-1")
    minted = token.mint(svc)  # real botocore signing with the dummy keys of the test environment
    checks = {c.id: c for c in local.check_token(svc, minted.token, time.time(), None)}
    assert checks["token.scope"].status == "ok", checks["token.scope"]
    assert checks["token.scope"].message == "scope us-east-1/dsql matches the endpoint"



# ---------------------------------------------------------------- env.home (issue 24)


def _home_checks(home: Path, env: dict[str, str], major: int) -> list[local.Check]:
    from pgiam.libpq import LibpqVersion

    return [c for c in local.check_environment("prod", None, env, home, LibpqVersion(major, 0)) if c.id == "env.home"]


def test_home_that_is_not_the_passwd_home_is_a_warning_with_the_exports(tmp_path: Path) -> None:
    """Issue 24: $HOME is not the passwd home (which pgJDBC, pgx and libpq < 15 read): a check whose text names
    that problem is `warn` with the exports that fix it, not `ok`; `fail` when psql's own libpq is one of them."""
    home = tmp_path / "home"
    exports = f"export PGPASSFILE={home}/.pgpass PGSERVICEFILE={home}/.pg_service.conf"
    (c,) = _home_checks(home, {}, 15)
    assert (c.status, c.fix) == ("warn", exports)
    assert c.message.startswith(f"$HOME ({home}) is not the passwd home (")
    (c,) = _home_checks(home, {}, 14)
    assert (c.status, c.fix) == ("FAIL", exports)
    (c,) = _home_checks(home, {"PGPASSFILE": f"{home}/.pgpass"}, 15)
    assert (c.status, c.fix) == ("warn", f"export PGSERVICEFILE={home}/.pg_service.conf")


def test_home_with_both_files_named_is_ok_and_says_why(tmp_path: Path) -> None:
    """With PGPASSFILE and PGSERVICEFILE set, every client finds the files wherever $HOME points: `ok`, and the
    text says so instead of naming a problem (issue 24)."""
    home = tmp_path / "home"
    env = {"PGPASSFILE": f"{home}/.pgpass", "PGSERVICEFILE": f"{home}/.pg_service.conf"}
    for major in (14, 15):
        (c,) = _home_checks(home, env, major)
        assert (c.status, c.fix) == ("ok", None)
        assert c.message.endswith("but PGPASSFILE and PGSERVICEFILE name the files for every client")


def test_home_that_is_the_passwd_home_has_no_check(tmp_path: Path) -> None:
    import pwd

    assert _home_checks(Path(pwd.getpwuid(os.getuid()).pw_dir), {}, 15) == []
