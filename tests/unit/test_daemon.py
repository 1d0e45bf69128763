"""`pgiam run`'s schedule in process: the clock, botocore's signing clock and the minter injected (issue 23).

No process is started: the daemon's cycle writes real files under tmp_path and signs with botocore and
the test's dummy keys, at the injected time (botocore reads the clock through
botocore.auth.get_current_datetime).
"""

from __future__ import annotations

import datetime
from collections.abc import Iterator
from pathlib import Path
from random import Random

import botocore.auth
import pytest

from pgiam import freshness, pgpass, tokeninfo
from pgiam.config import Service
from pgiam.daemon import MAX_JITTER, Daemon
from pgiam.errors import AuthError
from pgiam.notify import Notifier
from pgiam.paths import Paths
from pgiam.refresh import Minter

T0 = 1_800_000_000.0  # an injected "now" (2027-01-15), far from the real clock on purpose


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[float]]:
    """One clock for the daemon and for botocore's signer; tests move it by assigning clock[0]."""
    now = [T0]

    def signer_now(*args: object, **kwargs: object) -> datetime.datetime:
        return datetime.datetime.fromtimestamp(now[0], datetime.timezone.utc).replace(tzinfo=None)

    monkeypatch.setattr(botocore.auth, "get_current_datetime", signer_now)
    yield now


def _daemon(home: Path, mint: Minter, clock: list[float], services: int = 2, seed: int = 7,
            margin: int | None = None) -> tuple[Daemon, list[str]]:
    ca = home / "ca.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n")
    cfg = Paths.from_env().config_file
    cfg.parent.mkdir(parents=True, exist_ok=True)
    head = f"[defaults]\nrenewal_margin = {margin}\n\n" if margin is not None else ""
    cfg.write_text(head + "".join(f'[services.s{i}]\nhost = "db{i}.cluster-abc.us-west-2.rds.amazonaws.com"\nuser = "u"\n'
                                  f'sslrootcert = "{ca}"\n' for i in range(services)))
    lines: list[str] = []
    return Daemon(Paths.from_env(), lines.append, mint, Notifier({}), clock=lambda: clock[0], rng=Random(seed)), lines


def _signed(paths: Paths) -> dict[str, float]:
    """host -> signing time of the token the password file holds for it."""
    return {k.host: tokeninfo.decode(t).signed_at for k, t in pgpass.parse_tokens(paths.pgpass.read_text()).items()}


def _real_mint(svc: Service):  # type: ignore[no-untyped-def]
    from pgiam import token

    return token.mint(svc)


def test_renewals_are_spread_before_they_are_due_never_after(home: Path, clock: list[float]) -> None:
    """Issue 23: the jitter moves a renewal earlier, within a fifth of the margin (at most MAX_JITTER),
    never later than the freshness rule's due time; each service draws its own offset; a cycle at the
    jittered wake renews the token although the rule alone would call it fresh."""
    d, lines = _daemon(home, _real_mint, clock, services=6)
    assert d.cycle() == 0
    due = T0 + freshness.TOKEN_LIFETIME - 300  # 900-s tokens, default 300-s margin: due at 600 s
    window = min(MAX_JITTER, 300 / 5)
    leads = dict(d.lead)
    assert sorted(leads) == [f"s{i}" for i in range(6)]
    assert all(0 <= lead <= window for lead in leads.values()), leads
    assert len({round(lead, 6) for lead in leads.values()}) == 6  # spread, not one offset for all
    assert due - window <= d.wake < due
    assert d.wake == due - max(leads.values())

    # Just before the earliest jittered instant nothing is renewed; at it, exactly that service is,
    # while its token is still fresh by the rule (more than the margin left).
    first = max(leads, key=lambda n: leads[n])
    clock[0] = d.wake - 1
    assert d.cycle() == 0 and sum("renewed" in line for line in lines) == 6
    clock[0] = d.wake
    assert clock[0] < due
    assert d.cycle() == 0
    renewed = [line for line in lines[6:] if "renewed" in line]
    assert len(renewed) == 1 and renewed[0].startswith(f"{first}: renewed"), lines
    assert _signed(d.paths)[f"db{first[1:]}.cluster-abc.us-west-2.rds.amazonaws.com"] == int(clock[0])

    # Every other service is renewed before its own due time too: walk the wakes.
    renewed_at = {first: clock[0]}
    for _ in range(20):
        if len(renewed_at) == 6:
            break
        clock[0] = d.wake
        before = len(lines)
        assert d.cycle() == 0
        for line in lines[before:]:
            if "renewed" in line:
                renewed_at[line.split(":")[0]] = clock[0]
    assert all(due - window <= at < due for at in renewed_at.values()), renewed_at


@pytest.mark.parametrize(("life", "margin"), [(900, 300), (900, 60), (100, 300), (64, 300), (40, 300), (900, 0)])
def test_the_lead_never_makes_a_renewal_late_nor_sooner_than_min_interval(home: Path, life: int, margin: int) -> None:
    """Whatever the draw: 0 <= lead <= a fifth of the margin in force (<= MAX_JITTER), and the jittered
    renewal is never sooner than MIN_INTERVAL after the signing (nothing spins)."""
    from pgiam import token

    svc = Service("s", "db.cluster-abc.us-west-2.rds.amazonaws.com", "u", "us-west-2", 5432)
    tok = token.mint(svc).token
    info = tokeninfo.decode(tok)
    expires = min(info.expires, info.signed_at + life)
    v = freshness.judge(info.signed_at, info, host=svc.host, port=5432, user="u", region="us-west-2", margin=margin,
                        credentials_expire=expires)
    for seed in range(200):
        d = Daemon(Paths.from_env(), lambda line: None, _real_mint, Notifier({}), rng=Random(seed))
        lead = d.lead_for("s", v, tok)
        assert 0 <= lead <= min(MAX_JITTER, (expires - v.due_at) / 5)
        assert v.due_at - lead >= info.signed_at + freshness.MIN_INTERVAL
        assert d.lead_for("s", v, tok) == lead  # drawn once per token


def test_short_credentials_renew_half_way_and_failures_back_off(home: Path, clock: list[float]) -> None:
    """Credentials living 100 s (less than the 300 s margin): renewed half-way, a little earlier by the
    jitter (a fifth of the 50 s left), never later; failures back off 60 s, 120 s, ...; never a wake
    sooner than a second."""
    from pgiam import token

    fail = [False]

    def mint(svc: Service) -> token.Minted:
        if fail[0]:
            raise AuthError("no credentials", "log in")
        m = token.mint(svc)  # real botocore signing with the test's dummy keys
        return token.Minted(m.token, m.minted_at, m.minted_at + 100)  # the credentials end it at 100 s

    d, lines = _daemon(home, mint, clock)
    assert d.cycle() == 0
    assert T0 + 50 - 100 / 2 / 5 <= d.wake <= T0 + 50
    assert sum("renewed" in line for line in lines) == 2

    # Nothing due before the wake: a cycle mints nothing.
    clock[0] = T0 + 35
    assert d.cycle() == 0 and sum("renewed" in line for line in lines) == 2

    # Due, and the credentials fail: retry after 60 s, then 120 s; the wake is never now.
    fail[0] = True
    clock[0] = T0 + 50
    assert d.cycle() != 0
    assert d.wake - clock[0] == freshness.RETRY_AFTER
    clock[0] = d.wake
    d.cycle()
    assert d.wake - clock[0] == 2 * freshness.RETRY_AFTER
    assert any("no credentials" in line for line in lines)

    # Back to working credentials: renewed at the next wake.
    fail[0] = False
    clock[0] = d.wake
    assert d.cycle() == 0
    assert sum("renewed" in line for line in lines) == 4
