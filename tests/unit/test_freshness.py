"""The one freshness rule (when a token is due), shared by refresh, the fast path, hooks, timers, token and run."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pgiam import freshness
from pgiam.freshness import CLOCK_TOLERANCE, MIN_INTERVAL, TOKEN_LIFETIME, due_at, judge
from pgiam.tokeninfo import TokenInfo

NOW = 1_800_000_000.0
HOST, PORT, USER, REGION = "db.cluster-abc.us-west-2.rds.amazonaws.com", 5432, "alice", "us-west-2"
INFO = TokenInfo(HOST, PORT, REGION, "rds-db", "connect", USER, NOW - 100, TOKEN_LIFETIME, False)


def j(info: TokenInfo | None, now: float = NOW, **kw: object) -> freshness.Verdict:
    args: dict[str, object] = dict(host=HOST, port=PORT, user=USER, region=REGION, margin=300)
    args.update(kw)
    return judge(now, info, **args)  # type: ignore[arg-type]


def test_due_at_is_the_margin_before_expiry() -> None:
    assert due_at(NOW, NOW + 900, 300) == NOW + 600


def test_credentials_shorter_than_the_margin_renew_half_way_not_at_once() -> None:
    # credentials that expire 120 s after signing: due at 60 s, not immediately (which would spin)
    assert due_at(NOW, NOW + 120, 300) == NOW + 60


def test_a_floor_after_signing_so_nothing_spins() -> None:
    assert due_at(NOW, NOW + 10, 300) == NOW + MIN_INTERVAL


@given(st.floats(0, 10_000), st.floats(0, 2_000), st.integers(0, 3_600))
def test_due_at_bounds(signed_offset: float, life: float, margin: int) -> None:
    signed = NOW + signed_offset
    at = due_at(signed, signed + life, margin)
    assert at >= signed + MIN_INTERVAL
    if life >= 2 * MIN_INTERVAL:
        assert at <= signed + life  # due no later than expiry: a token is renewed while it still works


def test_fresh_then_renew() -> None:
    v = j(INFO)
    assert (v.due, v.reason, v.due_at) == (False, "fresh", NOW - 100 + 600)
    assert j(INFO, now=NOW + 500).reason == "renew"
    assert j(INFO, now=NOW + 5000).due  # long expired


def test_missing_and_malformed() -> None:
    assert (j(None).due, j(None).reason) == (True, "missing")
    assert j(None, malformed=True).reason == "malformed"


@pytest.mark.parametrize("change", [{"host": "other.rds.amazonaws.com"}, {"port": 6432}, {"user": "bob"},
                                    {"region": "eu-west-1"}])
def test_a_token_for_other_settings_is_due(change: dict[str, object]) -> None:
    v = j(INFO, **change)
    assert (v.due, v.reason) == (True, "mismatch")


def test_dsql_has_no_port_and_no_user() -> None:
    dsql = dataclasses.replace(INFO, host="abc.dsql.us-west-2.on.aws", port=None, user=None, service="dsql")
    assert not j(dsql, host="abc.dsql.us-west-2.on.aws", port=None, user=None).due


def test_a_token_dated_ahead_of_the_clock_is_due() -> None:
    """The clock was stepped back after a refresh: RDS refuses a token from the future."""
    ahead = dataclasses.replace(INFO, signed_at=NOW + 86_400)
    assert (j(ahead).due, j(ahead).reason) == (True, "future")
    within = dataclasses.replace(INFO, signed_at=NOW + CLOCK_TOLERANCE)
    assert not j(within).due


def test_a_token_claiming_a_longer_life_than_any_is_due() -> None:
    long = dataclasses.replace(INFO, lifetime=TOKEN_LIFETIME * 2)
    assert j(long).reason == "future"


def test_credentials_expiring_first_bring_the_due_time_forward() -> None:
    v = j(INFO, credentials_expire=NOW + 120)
    assert v.expires == NOW + 120 and v.due_at < INFO.expires - 300


def test_retry_backoff_doubles_and_is_capped() -> None:
    waits = [freshness.retry_at(NOW, n) - NOW for n in range(1, 8)]
    assert waits[:4] == [60, 120, 240, 480]
    assert max(waits) == freshness.MAX_RETRY_AFTER


def test_next_due_is_never_written_beyond_what_a_token_signed_now_gives() -> None:
    """Issue 19 (7): the writer clamps next-due to when a token signed now becomes due, so every reader's
    bound (that, plus the clock tolerance) believes what pgiam writes, a retry backoff included."""
    for margin in (30, 300, 450, 840):
        signed_now = freshness.due_at(NOW, NOW + TOKEN_LIFETIME, margin)
        assert freshness.next_due_bound(NOW, NOW + 10**9, margin) == signed_now
        assert freshness.next_due_bound(NOW, freshness.retry_at(NOW, 16), margin) <= signed_now
        assert freshness.next_due_bound(NOW, NOW + 10, margin) == NOW + 10
