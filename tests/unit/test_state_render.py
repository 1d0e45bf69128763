"""state.json rendering at scale (issue 25): one row per line, cut out of one call of json's C encoder."""

from __future__ import annotations

import json
from dataclasses import asdict

from hypothesis import given, settings
from hypothesis import strategies as st

from pgiam.state import ServiceState, _encode_rows, parse_state, render_state

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
