"""config.toml validation at scale (issue 25): compiled whole-value checks that say what the per-key checkers say."""

from __future__ import annotations

import re
import sys
import unicodedata
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pgiam import config
from pgiam.errors import ConfigError, UsageError


def test_the_control_pattern_is_exactly_the_unicode_categories() -> None:
    """Issue 25 replaced a per-character unicodedata loop (issue 7's rule: Cc, Zl, Zp) by one compiled pattern."""
    by_category = {c for c in map(chr, range(sys.maxunicode + 1)) if unicodedata.category(c) in ("Cc", "Zl", "Zp")}
    by_pattern = {m.group() for m in config._CONTROL_RE.finditer("".join(map(chr, range(sys.maxunicode + 1))))}
    assert by_pattern == by_category


@pytest.mark.parametrize("value", ["a\nb", "a\x85b", "a\u2028b", "\x7f", "tab\there"])
def test_a_control_character_is_still_refused_and_named(value: str) -> None:
    with pytest.raises(UsageError) as err:
        config.check_text("user", value)
    assert "control character" in err.value.message


_TEXTS = st.one_of(
    st.sampled_from(["alice", " alice", "alice ", "a\u00a0", "\u3000b", "o'brien@x y", "", "/abs/ca.pem", "/abs/ca.pem ",
                     "system", "rel/ca.pem", "us-east-1", "US-EAST-1", "prod-sso", "a[b", "db.example.com",
                     "db-1.cluster-abc.us-west-2.rds.amazonaws.com", "-bad.example.com", "x" * 70 + ".com",
                     "127.0.0.1", "::1", "fe80::1%eth0", "a\nb", "a\u2028b", "\x85"]),
    st.text(max_size=12))
_VALUES = st.one_of(_TEXTS, st.integers(min_value=-2, max_value=70000), st.booleans(), st.none())
_KEYS = st.sampled_from(sorted(config.SERVICE_KEYS | {"hots"}))


@settings(max_examples=200, deadline=None)
@given(st.sampled_from([{}, {"host": "db.cluster-abc.us-west-2.rds.amazonaws.com", "user": "app"}, {"host": "db.example.com", "user": "u"}]),
       st.dictionaries(_KEYS, _VALUES, max_size=5), st.sampled_from([None, "eu-west-1"]), st.sampled_from([None, "dflt"]))
def test_the_fast_service_check_agrees_with_the_per_key_checks(base: dict[str, Any], extra: dict[str, Any],
                                                               region: str | None, profile: str | None) -> None:
    """Issue 25: a table the compiled fast path accepts gives exactly the Service the per-key checkers give;
    anything it does not accept goes to those checkers (which name the error)."""
    table = {k: v for k, v in {**base, **extra}.items() if v is not None}
    defaults = config.Defaults(region=region, profile=profile)
    try:
        checked: config.Service | None = config._checked_service("s", table, defaults, Path("c.toml"), "", "services.s")
    except ConfigError:
        checked = None
    fast = config._plain_service("s", table, defaults)
    assert fast is None or fast == checked


def test_a_plain_rds_service_takes_the_fast_path() -> None:
    table = {"host": "db7.cluster-abc.us-east-1.rds.amazonaws.com", "port": 5432, "user": "app", "dbname": "app"}
    fast = config._plain_service("s7", table, config.Defaults())
    assert fast == config.Service("s7", table["host"], "app", "us-east-1", 5432, "app")


def _region_by_labels(host: str) -> str | None:
    """The label-by-label reading infer_region had before issue 25 (RDS hosts only)."""
    labels = host.lower().rstrip(".").split(".")
    for suffix in (["rds", "amazonaws", "com"], ["rds", "amazonaws", "com", "cn"]):
        n = len(suffix)
        if len(labels) >= n + 2 and labels[-n:] == suffix and re.fullmatch(r"[a-z]{2}(-[a-z]+)+-\d+", labels[-n - 1]):
            return labels[-n - 1]
    return None


_LABELS = st.sampled_from(["db", "cluster-abc", "proxy-x", "US-EAST-1", "us-east-1", "cn-north-1", "us-gov-west-1",
                           "eu-1", "rds", "RDS", "amazonaws", "com", "cn", "", "x1", "dsql", "on", "aws"])


@settings(max_examples=300, deadline=None)
@given(st.lists(_LABELS, max_size=7).map(".".join), st.sampled_from(["", "."]))
def test_the_region_pattern_reads_rds_hosts_as_their_labels_say(host: str, dot: str) -> None:
    """Issue 25: infer_region's one compiled match agrees with reading the host label by label."""
    expected = _region_by_labels(host + dot)
    if expected is not None or ".dsql." not in host.lower():
        assert config.infer_region(host + dot) == expected
