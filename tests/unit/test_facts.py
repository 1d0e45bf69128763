"""pgiam.facts (issue 19): each shared fact defined once, and the one "dated ahead" rule every path applies."""

from __future__ import annotations

import math
import os
import re
import time
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pgiam import entry, facts, freshness, state, tokeninfo
from pgiam.paths import Paths

ROOT = Path(__file__).resolve().parents[2]
NOW = 1_800_000_000.0
HOST, PORT, USER, REGION = "db.cluster-abc.us-west-2.rds.amazonaws.com", 5432, "alice", "us-west-2"


def sources() -> dict[Path, str]:
    """pgiam's modules, without the sandbox (whose token checker stays independent on purpose)."""
    pkg = ROOT / "pgiam"
    return {p: p.read_text() for p in pkg.rglob("*.py") if (pkg / "sandbox") not in p.parents}


def test_token_lifetime_is_defined_once() -> None:
    """Issue 19 (9): `grep -rnw 900 pgiam --exclude-dir=sandbox` finds one definition of the token lifetime
    (token lengths such as "350 to 1,900 bytes" are not it)."""
    hits = [(p.name, line.strip()) for p, text in sources().items() for line in text.splitlines()
            if re.search(r"(?<![\w,])900\b", line)]
    code = [(name, line) for name, line in hits if not line.startswith("#")]
    assert code == [("facts.py", "TOKEN_LIFETIME = 900")], hits


@pytest.mark.parametrize("literal", [
    "IAM tokens managed by pgiam",  # the ~/.pgpass marker line
    "services managed by pgiam, rewritten",  # the service file's
    '"# END pgiam"',
    '"--if-needed", "--quiet"',  # the no-op's argv
    "token-index.json",
    '"next-due"',
    '"state.json"',
    '".pgpass"',  # libpq's default locations in the home directory
    '".pg_service.conf"',
])
def test_shared_literals_are_spelled_once(literal: str) -> None:
    """Issue 19 (9): the marker lines, the fast-path argv, the file names and libpq's default locations are
    spelled in pgiam.facts only."""
    where = sorted(p.name for p, text in sources().items() if literal in text)
    assert where == ["facts.py"], where


def test_next_due_file_round_trips_and_refuses_anything_else() -> None:
    assert facts.parse_next_due(facts.render_next_due(1_800_000_600, 300)) == (1_800_000_600, 300)
    for bad in (b"", b"1800000600\n", b"1800000600\n300", b"x\n300\n", b"1800000600\n300\n\n", b"-5\n300\n",
                b"1800000600 300\n"):
        assert facts.parse_next_due(bad) is None, bad


@given(margin=st.integers(30, 840), offset=st.integers(-880, 900))
def test_one_rule_for_dated_ahead(margin: int, offset: int) -> None:
    """Issue 19 (7): the next-due a pgiam wrote for a token (at the token's signing, by its own clock) is
    believed by the fast path and the hooks exactly when the full check would not call the token "future":
    a token signed more than 5 s ahead of the clock is due, and so is its next-due."""
    now = NOW
    signed = now + offset
    row = state.ServiceState(key="k", minted=signed, expires=signed + facts.TOKEN_LIFETIME)
    due = state.next_due({"s": row}, ["s"], margin, signed)  # written by the clock that signed
    assert due is not None
    info = tokeninfo.TokenInfo(HOST, PORT, REGION, "rds-db", "connect", USER, signed, facts.TOKEN_LIFETIME, False)
    verdict = freshness.judge(now, info, host=HOST, port=PORT, user=USER, region=REGION, margin=margin)
    if due > now:  # not yet due by pgiam's note: the bound decides whether the note is believed
        assert facts.next_due_trusted(now, due, margin) == (verdict.reason != "future"), (due - now, verdict)
    # The words, transcribed: later than now + lifetime - min(margin, lifetime / 2) + 5 is not trusted.
    assert facts.next_due_trusted(now, due, margin) == (now < due <= now + 900 - min(margin, 900 / 2) + 5)


def test_written_next_due_is_always_believed_right_after() -> None:
    """A retry backoff longer than the bound is written clamped, so a failed service does not make the fast
    path and the hooks distrust next-due (and run the full check at every prompt)."""
    for margin in (30, 300, 450, 840):
        row = state.ServiceState(key="k", error="failed", failed_at=NOW, failures=16)
        due = state.next_due({"s": row}, ["s"], margin, NOW)
        assert due is not None and facts.next_due_trusted(NOW, due, margin)
        clamp = NOW + facts.next_due_limit(margin) - facts.CLOCK_TOLERANCE
        assert due == math.floor(min(freshness.retry_at(NOW, 16), clamp))
        assert (due < freshness.retry_at(NOW, 16)) == (margin > 300)  # 600 s backoff vs. the bound


def _headless(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Paths:
    shared, cm = tmp_path / "shared", tmp_path / "cm"
    shared.mkdir()
    cm.mkdir()
    for k, v in {"PGIAM_STATE_DIR": shared, "PGIAM_CONFIG": cm / "config.toml", "PGPASSFILE": shared / "pgpass",
                 "PGSERVICEFILE": shared / "pg_service.conf"}.items():
        monkeypatch.setenv(k, str(v))
    paths = Paths.from_env()
    for f in (paths.config_file, paths.pgpass, paths.service_file):
        f.write_text("")
    paths.state_dir.mkdir(mode=0o700)
    old = time.time() - 10
    for f in (paths.config_file, paths.pgpass, paths.service_file):
        os.utime(f, (old, old))
    return paths


@pytest.mark.parametrize("margin", [30, 300, 450, 840])
def test_fast_path_bound_is_the_shared_one(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, margin: int) -> None:
    """Issue 19 (7): the no-op answers "nothing due" for a next-due up to the bound and hands anything
    further ahead to the full check (it used to believe anything up to 900 s ahead, whatever the margin)."""
    paths = _headless(tmp_path, monkeypatch)
    now = int(time.time())
    limit = 900 - min(margin, 450) + 5  # the rule, transcribed
    paths.next_due_file.write_bytes(facts.render_next_due(now + limit, margin))
    assert entry.nothing_due(now)
    paths.next_due_file.write_bytes(facts.render_next_due(now + limit + 1, margin))
    assert not entry.nothing_due(now)


def test_fast_path_refuses_an_old_one_line_next_due(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A next-due without its margin (written by pgiam 0.2.0) cannot be bounded: the full path rewrites it."""
    paths = _headless(tmp_path, monkeypatch)
    paths.next_due_file.write_text(f"{int(time.time()) + 60}\n")
    assert not entry.nothing_due()


@pytest.mark.parametrize("mode", [0o770, 0o777, 0o720])
def test_fast_path_hands_a_writable_state_directory_to_the_full_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                    mode: int) -> None:
    """Issue 19 (8): a state directory others may write could hold a planted next-due: the no-op does not
    believe it (the full path then refuses with exit 5)."""
    paths = _headless(tmp_path, monkeypatch)
    paths.next_due_file.write_bytes(facts.render_next_due(int(time.time()) + 60, 300))
    assert entry.nothing_due()
    os.chmod(paths.state_dir, mode)
    assert not entry.nothing_due()


def test_operator_config_directory_is_not_checked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The directory PGIAM_CONFIG's file lives in is the operator's (a sticky world-writable ConfigMap
    mount): the no-op still answers."""
    paths = _headless(tmp_path, monkeypatch)
    os.chmod(paths.config_dir, 0o1777)
    paths.next_due_file.write_bytes(facts.render_next_due(int(time.time()) + 60, 300))
    assert entry.nothing_due()
    assert facts.own_dirs(os.environ) == [str(paths.state_dir), str(paths.data_dir)]


def test_locations_agree_with_paths(home: Path) -> None:
    """pgiam.paths builds every location from pgiam.facts: the fast path and the full path look at the
    same files under XDG and under PGIAM_CONFIG / PGIAM_STATE_DIR."""
    p = Paths.from_env()
    env = os.environ
    assert (str(p.config_file), str(p.state_dir), str(p.data_dir), str(p.pgpass), str(p.service_file)) == (
        facts.config_file(env), facts.state_dir(env), facts.data_dir(env), facts.pgpass_file(env), facts.service_file(env))
    assert [str(d) for d in p.own_dirs] == facts.own_dirs(env)
    assert p.config_file == home / ".config" / "pgiam" / "config.toml"
    assert p.state_dir == home / ".local" / "state" / "pgiam"


@given(late=st.integers(0, facts.CLOCK_TOLERANCE), ahead=st.integers(0, 600))
def test_next_due_does_not_depend_on_when_the_clock_was_read(late: int, ahead: int) -> None:
    """A `now` read up to the clock tolerance before a slow mint bounds next-due as the signing clock would (a loaded
    `add` wrote a next-due one second early and the next `refresh --if-needed` rewrote it: the flaky
    test_trust::test_too_early_next_due_corrects_itself), but a token dated ahead of the clock by more than
    the tolerance never pushes the bound out (issue 19's dated-ahead rule)."""
    margin = 300
    signed = NOW
    row = state.ServiceState(key="k", minted=signed, expires=signed + facts.TOKEN_LIFETIME)
    assert state.next_due({"s": row}, ["s"], margin, signed - late) == state.next_due({"s": row}, ["s"], margin, signed)
    ahead_row = state.ServiceState(key="k", minted=NOW + ahead, expires=NOW + ahead + facts.TOKEN_LIFETIME)
    due = state.next_due({"s": ahead_row}, ["s"], margin, NOW)
    assert due is not None and due <= NOW + facts.next_due_limit(margin)
