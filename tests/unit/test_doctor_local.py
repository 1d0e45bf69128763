"""The pure readers behind `pgiam doctor`: which ~/.pgpass line and which service section libpq takes (issue 13)."""

from __future__ import annotations

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
    ("localhost", None),
    ("db.example.com", None),
])
def test_region_of_host(host: str, region: str | None) -> None:
    assert local.region_of_host(host) == region
