"""A token's noted signing time is its own X-Amz-Date, even when a second ticks over while it is signed (issue 23).

pgiam notes the expiry of the credentials that signed a token against the token's signing time
(state.minted); a note one second off is dropped as "another token's", and a token signed with
two-minute credentials is then taken for a 900-second one: never renewed before it dies. Found by
the probes test in tests/e2e/test_run.py under load.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterator

import botocore.auth
import pytest

from pgiam import token, tokeninfo
from pgiam.config import Service

T = datetime.datetime(2027, 1, 15, 8, 0, 0, 999_000)


@pytest.fixture
def second_ticks(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """botocore's clock: the first read is at .999 s, every later one a millisecond into the next second."""
    reads = iter([T] + [T + datetime.timedelta(milliseconds=2)] * 100)
    monkeypatch.setattr(botocore.auth, "get_current_datetime", lambda *a, **k: next(reads))
    yield


@pytest.mark.parametrize(("host", "user"), [("db.cluster-abc.us-west-2.rds.amazonaws.com", "app"),
                                             ("abcdefghijklmnopqrstuvwxyz.dsql.us-east-1.on.aws", "admin")])
def test_minted_at_is_the_tokens_own_signing_time(second_ticks: None, host: str, user: str) -> None:
    region = "us-east-1" if ".dsql." in host else "us-west-2"
    m = token.mint(Service("s", host, user, region))
    assert m.minted_at == tokeninfo.decode(m.token).signed_at
