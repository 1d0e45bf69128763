"""A Minter resolves a profile's credentials once per command, not once per service (issue 25).

Each service used to resolve its session's credentials again under the time bound (a thread of its own
outside the main thread: pgiam.refresh mints profiles in worker threads): ~0.6 s of a 10,000-service
refresh. The credentials are reused while botocore itself would hand out the same ones: until 15 minutes
before they expire (botocore's advisory refresh).
"""

from __future__ import annotations

import threading
import time
from typing import Any
from urllib.parse import parse_qs

import pytest
from botocore.credentials import Credentials

from pgiam import awscreds, token
from pgiam.config import Service

HOSTS = [f"db{i}.cluster-abc.us-east-1.rds.amazonaws.com" for i in range(5)]


def _credential_key(tok: str) -> str:
    """The access key a token names in its X-Amz-Credential."""
    return parse_qs(tok.split("?", 1)[1])["X-Amz-Credential"][0].split("/")[0]


def test_one_bounded_resolution_for_the_services_of_one_profile(monkeypatch: pytest.MonkeyPatch) -> None:
    """Five services of one profile, minted in a worker thread (as refresh does): one bounded resolution,
    not five (on the old code: five, each in a thread of its own)."""
    calls: list[int] = []
    real = awscreds.bounded

    def counting(work: Any, seconds: float = awscreds.DEADLINE) -> Any:
        calls.append(1)
        return real(work, seconds)

    monkeypatch.setattr(awscreds, "bounded", counting)
    minter = token.Minter()
    out: list[token.Minted] = []
    worker = threading.Thread(target=lambda: out.extend(minter(Service(f"s{i}", h, "app", "us-east-1"))
                                                        for i, h in enumerate(HOSTS)))
    worker.start()
    worker.join(60)
    assert len(out) == len(HOSTS)
    assert len({m.token for m in out}) == len(HOSTS)
    assert len(calls) == 1


@pytest.mark.parametrize(("left", "reused"), [(3600.0, True), (600.0, False), (None, True)])
def test_resolved_credentials_are_reused_until_botocores_advisory_refresh(left: float | None, reused: bool) -> None:
    """Credentials further than 15 minutes from expiry (or that never expire) sign the next service as they
    are; closer to expiry, the session is asked again (here it holds the environment's keys)."""
    svc = Service("s0", HOSTS[0], "app", "us-east-1")
    minter = token.Minter()
    first = minter(svc)  # the session exists; its resolution is now replaced by older credentials
    env_key = _credential_key(first.token)
    old = Credentials("AKIAOLDCREDENTIALSXX", "old-secret", "old-session-token", method="sso")
    expiry = None if left is None else time.time() + left
    key = (svc.profile, svc.region, svc.aws_credentials_file)
    minter._resolved[key] = (awscreds.Resolved(old, "sso", expiry), old.get_frozen_credentials())
    again = minter(svc)
    assert _credential_key(again.token) == ("AKIAOLDCREDENTIALSXX" if reused else env_key)
    assert (again.method == "sso") is reused
