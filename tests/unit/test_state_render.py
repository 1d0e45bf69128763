"""state.json rendering at scale (issue 25): one row per line, cut out of one call of json's C encoder."""

from __future__ import annotations

import json
from dataclasses import asdict

from hypothesis import given, settings
from hypothesis import strategies as st

from pgiam.state import ServiceState, _encode_rows, _well_typed, parse_state, render_state

_TEXT = st.one_of(st.none(), st.lists(st.sampled_from(['}', '{', '"', ', ', '"code": ', '\\', 'x', '\n', 'é', '}, {"code": ']),
                                      max_size=6).map("".join))
_ROWS = st.builds(ServiceState, key=st.text(max_size=5), minted=st.one_of(st.none(), st.floats(0, 2e9)),
                  expires=st.one_of(st.none(), st.floats(0, 2e9)), error=_TEXT, hint=_TEXT, profile=_TEXT,
                  failures=st.integers(0, 9))


@settings(max_examples=100, deadline=None)
@given(st.dictionaries(st.text(alphabet="ab._-@+0", min_size=1, max_size=4), _ROWS, max_size=5))
def test_the_rows_read_back_exactly(states: dict[str, ServiceState]) -> None:
    """Issue 25: whatever the errors and hints hold (braces, quotes, `}, {"code": `), the file reads back
    as the same rows, and each row is exactly what json would write for it alone."""
    data = render_state(states)
    assert parse_state(data) == states
    assert json.loads(data) == {"version": 1, "services": {n: asdict(s) for n, s in states.items()}}
    rows = [asdict(s) for s in states.values()]
    assert _encode_rows(rows) == [json.dumps(r, sort_keys=True) for r in rows]


def test_rows_with_other_keys_are_encoded_one_by_one() -> None:
    rows = [{"a": 1, "b": "}, {\"a\": "}, {"b": 2}, {"a": "x"}]
    assert _encode_rows(rows) == [json.dumps(r, sort_keys=True) for r in rows]


def _by_keyword(data: bytes) -> dict[str, ServiceState]:
    """parse_state as it read every row before issue 25's positional reading: by keyword, unknown keys
    dropped, a missing field its default, anything ill-typed making the file count as empty."""
    try:
        entries = json.loads(data).get("services", {})
        states = {n: ServiceState(**{k: v for k, v in e.items() if k in ServiceState.__dataclass_fields__})
                  for n, e in entries.items()}
    except (ValueError, TypeError, AttributeError):
        return {}
    return states if all(_well_typed(s) for s in states.values()) else {}


_FIELD_VALUES = {"key": st.text(max_size=3), "minted": st.none() | st.floats(0, 2e9) | st.just("soon"),
                 "expires": st.none() | st.integers(0, 9), "error": _TEXT, "hint": _TEXT, "failed_at": st.none(),
                 "code": st.none() | st.integers(0, 9), "failures": st.integers(0, 3) | st.just(True),
                 "profile": _TEXT, "source": _TEXT, "newer": st.integers()}


@settings(max_examples=150, deadline=None)
@given(st.dictionaries(st.sampled_from(["a", "b", "c"]),
                       st.fixed_dictionaries({k: v for k, v in _FIELD_VALUES.items() if k != "newer"})  # every field
                       | st.fixed_dictionaries({"key": _FIELD_VALUES["key"]},
                                               optional={k: v for k, v in _FIELD_VALUES.items() if k != "key"}),
                       max_size=3))
def test_rows_are_read_as_by_keyword(rows: dict[str, dict[str, object]]) -> None:
    """Issue 25: rows with every field are built by position; rows with fields missing (their defaults),
    with unknown keys (dropped) or ill-typed (the file counts as empty) read as they did by keyword."""
    data = json.dumps({"services": rows, "version": 1}).encode()
    assert parse_state(data) == _by_keyword(data)
