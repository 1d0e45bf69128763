"""config.toml in pgiam's own layout is read by one compiled match per line, not tomllib (issue 25).

The reader must mean exactly what tomllib means, or step aside (None) and let tomllib read (and report)
the document: checked here against tomllib on documents made of plain lines and of lines that are
almost plain (quoted and dotted keys, escapes, signs, floats, dates, repeated keys and tables, CR).
"""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pgiam import config

def _choice(plain: list[str], odd: list[str]) -> dict[bool, st.SearchStrategy[str]]:
    """{False: plain choices only, True: plain ones with odd ones among them}."""
    return {False: st.sampled_from(plain), True: st.sampled_from(plain * 3 + odd)}


_NAMES = _choice(["prod", "s1", "a-b_C", "123", "defaults", "services"], ["x.y", '"q"', "p q", "", "é"])
_KEYS = _choice(["host", "port", "user", "dbname", "region", "profile", "require_auth", "renewal_margin", "via",
                 "k-1", "true"], ["a.b", '"host"', "", "h\u00e9", "a b"])
_VALUES = _choice(['"db.cluster-abc.us-east-1.rds.amazonaws.com"', '""', '"a\tb"', '"é ü ☃"', '"\u2028"', '"a\x85b"',
                   "5432", "0", "999999999999999999", "true", "false"],
                  ['"a\\"b"', '"a\\nb"', "'lit'", '"a\x7fb"', '"a\x01b"', '"""x"""', "05", "+1", "-1", "1_000", "1.5",
                   "1e3", "inf", "9999999999999999999", "True", "2026-12-03", "[1, 2]", "{ a = 1 }", '"a" "b"',
                   "truex", "", '"a"b'])
_SPACE = _choice(["", " ", "\t", "  "], ["\u00a0", "\x0c"])
_COMMENT = _choice(["", "# note", "#", "# é\t", "#\u2028"], ["#\x01", "#\x7f"])
_ODD_LINES = st.sampled_from(["[services]", "[[services.a]]", "[ services.a ]", "[services.a.b]", 'services.a.host = "h"',
                              "\ufeff[defaults]", "[services.a]]", "[other]", "x = 1\r", "=", 'host = "top level"'])


@st.composite
def _document(draw: st.DrawFn, odd: bool) -> list[str]:
    """Lines of a config: comments, then tables of key lines; with `odd`, odd pieces and lines, repeated
    keys and tables too."""
    sp, comment = _SPACE[odd], _COMMENT[odd]
    lines = [draw(sp) + draw(comment) for _ in range(draw(st.integers(0, 2)))]
    names: set[str] = set()
    for _ in range(draw(st.integers(0, 4))):
        name = draw(st.one_of(_NAMES[odd].map(lambda n: f"services.{n}"), st.just("defaults")))
        if name in names and not odd:
            continue
        names.add(name)
        lines.append(f"{draw(sp)}[{name}]{draw(sp)}{draw(comment)}")
        for key in draw(st.lists(_KEYS[odd], max_size=5, unique=not odd)):
            lines.append(f"{draw(sp)}{key}{draw(sp)}={draw(sp)}{draw(_VALUES[odd])}{draw(sp)}{draw(comment)}")
        if odd and draw(st.booleans()):
            lines.insert(draw(st.integers(0, len(lines))), draw(_ODD_LINES))
    return lines


def _tomllib(text: str) -> dict[str, Any] | None:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError:
        return None


@settings(max_examples=150, deadline=None)
@given(_document(odd=False), st.booleans())
def test_the_plain_reader_reads_what_tomllib_reads(lines: list[str], last: bool) -> None:
    text = "\n".join(lines) + ("\n" if last else "")
    fast = config.read_plain_toml(text)
    assert fast is not None
    assert json.dumps(fast) == json.dumps(tomllib.loads(text))  # the same data, in the same order


@settings(max_examples=200, deadline=None)
@given(_document(odd=True), st.sampled_from(["\n", "\n", "\r\n"]), st.booleans())
def test_the_plain_reader_means_what_tomllib_means_or_steps_aside(lines: list[str], newline: str, last: bool) -> None:
    text = newline.join(lines) + (newline if last else "")
    fast = config.read_plain_toml(text)
    if fast is not None:
        slow = _tomllib(text)
        assert slow is not None, "the plain reader accepted what tomllib refuses"
        assert json.dumps(fast) == json.dumps(slow)  # the same data, in the same order


def test_the_layout_pgiam_add_writes_is_read_without_tomllib() -> None:
    """What `pgiam add` and benchmarks/scale.py write takes the fast path (else the benchmark measures tomllib)."""
    text = (config.HEADER + '\n[defaults]\nprofile = "prod-sso"  # all services\nrenewal_margin = 300\n\n'
            '[services.prod]\nhost = "db.cluster-abc.us-west-2.rds.amazonaws.com"\nport = 5432\nuser = "alice"\n'
            'dbname = "app"\nrequire_auth = true\n\n[services.s-2]\nhost = "h.example.com"\nport = 6432\nuser = "bob"\n')
    assert config.read_plain_toml(text) == tomllib.loads(text)


@pytest.mark.parametrize("text", ['[services.a]\nhost = "x"\nhost = "y"\n', "[services.a]\n[services.a]\n",
                                  "[defaults]\n[defaults]\n", 'host = "x"\n', "[services.a]\nport = 05\n"])
def test_what_tomllib_refuses_is_still_reported_by_tomllib(text: str, tmp_path: Path) -> None:
    """A repeated key or table, a top-level key, a leading zero: the plain reader steps aside and the error
    is tomllib's, naming the file."""
    assert config.read_plain_toml(text) is None
    with pytest.raises(config.ConfigError) as err:
        config.parse_config(text, tmp_path / "config.toml")
    assert str(tmp_path / "config.toml") in err.value.message


_PLAIN_VALUE = st.text(st.characters(blacklist_characters='"\\', blacklist_categories=("Cs", "Cc")), max_size=5)


@st.composite
def _pgiam_layout(draw: st.DrawFn) -> str:
    """A document as `pgiam add` writes it: a head (comments, [defaults]), then tables of host, port, user and
    optional keys in service_table's order, a blank line before each; sometimes a line out of that layout."""
    head = draw(st.sampled_from(["", config.HEADER, config.HEADER + '\n[defaults]\nprofile = "p"  # all\n',
                                 "# x\n[defaults]\nrenewal_margin = 300\n"]))
    tables = []
    for name in draw(st.lists(st.sampled_from(["a", "b-1", "C_2", "defaults"]), max_size=4)):
        lines = [f"[services.{name}]", f'host = "{draw(_PLAIN_VALUE)}"', f"port = {draw(st.integers(0, 99999))}",
                 f'user = "{draw(_PLAIN_VALUE)}"']
        for key in ("dbname", "region", "profile", "sslrootcert", "require_auth", "aws_credentials_file"):
            if draw(st.booleans()):
                lines.append(f"{key} = {draw(st.sampled_from(['true', 'false']))}" if key == "require_auth"
                             else f'{key} = "{draw(_PLAIN_VALUE)}"')
        if draw(st.integers(0, 9)) == 0:
            lines.insert(draw(st.integers(1, len(lines))), draw(st.sampled_from(["# note", "x = 1", "port = 5", ""])))
        tables.append("\n".join(lines) + "\n")
    return head + "".join("\n" + t for t in tables) + draw(st.sampled_from(["", "", "\n", "# end\n"]))


@settings(max_examples=150, deadline=None)
@given(_pgiam_layout())
def test_the_layout_pgiam_add_writes_is_read_table_by_table_as_tomllib_reads_it(text: str) -> None:
    """Issue 25: tables in `pgiam add`'s layout are read one compiled match per table; the result must be
    tomllib's (data and order), or step aside for what tomllib refuses (a repeated table)."""
    slow = _tomllib(text)
    fast = config.read_plain_toml(text)
    assert json.dumps(fast) == json.dumps(slow)
