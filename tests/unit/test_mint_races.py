"""Minting races (issue 20, repros 5-7): a token is written only under the service it was minted for; a
caller that waited for another minter judges the files and the clock again; one ~/.pgpass line per host,
port and user. Real botocore signing with dummy keys; the only stand-in is the minter's timing."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from pgiam import fileio, minting, pgpass, refresh, store, token, tokeninfo
from pgiam.config import Service, load_config
from pgiam.errors import ExitCode
from pgiam.paths import Paths
from pgiam.state import ServiceState, render_state
from tests.conftest import SANDBOX_HOST

HOST_B = SANDBOX_HOST.replace("abc123", "bbb222")


def add(run_cli, ca_file: Path, name: str, host: str, *extra: str) -> tuple[int, str, str]:
    return run_cli("add", name, "--host", host, "--user", "alice", "--sslrootcert", str(ca_file), *extra)


def token_host(paths: Paths, host: str) -> str:
    tokens = pgpass.parse_tokens(paths.pgpass.read_text())
    return tokeninfo.decode(tokens[pgpass.Key(host, "5432", "alice")]).host


def test_a_token_minted_for_a_service_that_changed_meanwhile_is_not_written(run_cli, home: Path, ca_file: Path) -> None:
    """Issue 20 repro 5: `add prod --replace --host B` landed while a refresh minted for host A; the refresh
    wrote A's token under B's line and said "renewed". Now A's token is dropped: B's line keeps B's token."""
    assert add(run_cli, ca_file, "prod", SANDBOX_HOST)[0] == ExitCode.OK
    paths = Paths.from_env()

    def slow_mint(svc: Service) -> token.Minted:
        m = token.mint(svc)  # signed for host A ...
        code, out, err = add(run_cli, ca_file, "prod", HOST_B, "--replace")  # ... while prod moves to B
        assert code == ExitCode.OK, err
        return m

    result = refresh.refresh(paths, time.time(), slow_mint, ["prod"], wait=5)
    assert token_host(paths, HOST_B) == HOST_B.lower()
    assert [(o.name, o.status) for o in result.outcomes] == [("prod", "fresh")]
    assert result.code == ExitCode.OK


def test_editing_the_profile_during_a_mint_mints_again(run_cli, home: Path, ca_file: Path) -> None:
    """Issue 20 repro 5, by hand: config.toml edited during a mint (another profile, same line). The token
    signed with the old identity is not written; the service is minted again with the new one."""
    assert add(run_cli, ca_file, "prod", SANDBOX_HOST)[0] == ExitCode.OK
    paths = Paths.from_env()
    seen: list[str | None] = []

    def mint(svc: Service) -> token.Minted:
        seen.append(svc.profile)
        if len(seen) == 1:
            text = paths.config_file.read_text().replace("[services.prod]\n", '[services.prod]\nregion = "us-east-1"\n')
            paths.config_file.write_text(text)
        return token.mint(svc)

    result = refresh.refresh(paths, time.time(), mint, ["prod"], wait=5)
    assert len(seen) == 2
    assert [(o.name, o.status) for o in result.outcomes] == [("prod", "renewed")]
    info = tokeninfo.decode(pgpass.parse_tokens(paths.pgpass.read_text())[pgpass.Key(SANDBOX_HOST, "5432", "alice")])
    assert info.region == "us-east-1"


def test_after_waiting_for_a_minter_that_failed_the_caller_judges_again(run_cli, home: Path, ca_file: Path,
                                                                        monkeypatch) -> None:
    """Issue 20 repro 6: a background refresh held the mint slot and failed; a hand-run `refresh prod` that
    waited for it printed "still fresh ... (expired)" and exited 0. Now it judges the file and the clock
    again and mints itself; a hook's `--if-needed` reports the other's failure with its exit class."""
    import datetime

    import botocore.auth

    signed = datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None) - datetime.timedelta(seconds=700)
    with monkeypatch.context() as m:
        m.setattr(botocore.auth, "get_current_datetime", lambda *a, **k: signed)
        assert add(run_cli, ca_file, "prod", SANDBOX_HOST)[0] == ExitCode.OK  # 200 s left: due, not expired
    paths = Paths.from_env()
    config = load_config(paths.config_file, scope=paths.scope)
    now = time.time()

    import fcntl

    real_flock = fcntl.flock
    refused = threading.Event()  # the refresh below found the slot taken and is waiting for it

    def flock(fd: int, op: int) -> None:  # the real flock; a refusal in this (the refresh's) thread is noted
        try:
            real_flock(fd, op)
        except BlockingIOError:
            if threading.current_thread() is threading.main_thread():
                refused.set()
            raise

    monkeypatch.setattr(fcntl, "flock", flock)

    def background_failure() -> None:
        with minting.slot(paths, minting.key_of(config.services["prod"]), 0):
            held.set()
            waited.append(refused.wait(10))  # not a sleep: the failure lands while the refresh waits for it
            row = ServiceState(store.key_str(config.services["prod"]), error="the STS call timed out",
                               hint="check the network", failed_at=time.time(), code=int(ExitCode.NETWORK), failures=1)
            paths.state_file.write_bytes(render_state({"prod": row}))

    for if_needed, status, code in ((True, "failed", ExitCode.NETWORK), (False, "renewed", ExitCode.OK)):
        held, waited = threading.Event(), []
        refused.clear()
        other = threading.Thread(target=background_failure)
        other.start()
        held.wait(5)
        minted: list[str] = []
        result = refresh.refresh(paths, now, lambda svc: minted.append(svc.name) or token.mint(svc), ["prod"],
                                 if_needed=if_needed, wait=5)
        other.join()
        assert waited == [True], "the refresh never waited for the slot"
        assert [(o.name, o.status) for o in result.outcomes] == [("prod", status)], result.outcomes
        assert result.code == code
        assert minted == ([] if if_needed else ["prod"])


def test_a_second_service_on_the_same_line_with_another_profile_is_refused(run_cli, home: Path, ca_file: Path) -> None:
    """Issue 20 repro 7: r1 and r3 (same host, port and user, other profiles) shared one ~/.pgpass line:
    `refresh r1 r3` minted once with r1's profile. Now `add r3` is refused (exit 3) naming r1, and the
    same profile (one token for both) is still allowed."""
    assert add(run_cli, ca_file, "r1", SANDBOX_HOST, "--profile", "one", "--no-refresh")[0] == ExitCode.OK
    code, out, err = add(run_cli, ca_file, "r3", SANDBOX_HOST, "--profile", "three", "--no-refresh")
    assert code == ExitCode.CONFIG, err
    assert "r3 would share r1's ~/.pgpass line" in err and "profile 'one'" in err
    assert "hint: " in err
    assert add(run_cli, ca_file, "r2", SANDBOX_HOST, "--profile", "one", "--no-refresh")[0] == ExitCode.OK
    assert add(run_cli, ca_file, "r1", SANDBOX_HOST, "--profile", "other", "--no-refresh", "--replace")[0] == ExitCode.CONFIG


def test_the_mint_lock_message_names_the_holders_pid(run_cli, home: Path, ca_file: Path) -> None:
    """Issue 20 repro 8: "another pgiam (another process) holds the mint lock", though the README promises
    the holder's pid. Each identity's slot is a lock file holding its holder's pid; the message names the
    profile and region too."""
    import subprocess
    import sys

    from pgiam.errors import LockedError
    from tests.unit.test_minting import HOLDER

    assert add(run_cli, ca_file, "prod", SANDBOX_HOST, "--no-refresh")[0] == ExitCode.OK
    paths = Paths.from_env()
    key = minting.key_of(load_config(paths.config_file, scope=paths.scope).services["prod"])
    fileio.ensure_private_dir(paths.mint_dir, scope=paths.scope)
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(minting.slot_file(paths, key))], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline() == "held\n"
        with pytest.raises(LockedError) as exc:
            refresh.refresh(paths, time.time(), token.mint, ["prod"], wait=0.05)
        assert exc.value.message == f"another pgiam (pid {proc.pid}) holds the mint lock of {minting.label(key)} (waited 0.05 s)"
        assert exc.value.hint == f"wait for it to finish, or check it with `ps -p {proc.pid}`"
    finally:
        assert proc.stdin is not None
        proc.stdin.close()
        proc.wait(30)


HOST_C = SANDBOX_HOST.replace("abc123", "ccc333")


def _unprofiled(svc: Service) -> token.Minted:
    """Real botocore signing with the test's dummy keys, whatever profile the service names."""
    import dataclasses

    return token.mint(dataclasses.replace(svc, profile=None))


def test_profiles_are_minted_at_once(run_cli, home: Path, ca_file: Path) -> None:
    """Issue 20 repro 8: profiles were resolved one after another (three unanswering role profiles took 19.6 s).
    Each profile's mint here waits for the other's to have started: only minting them at once passes."""
    assert add(run_cli, ca_file, "p1", SANDBOX_HOST, "--profile", "one", "--no-refresh")[0] == ExitCode.OK
    assert add(run_cli, ca_file, "p2", HOST_C, "--profile", "two", "--no-refresh")[0] == ExitCode.OK
    both = threading.Barrier(2, timeout=10)

    def mint(svc: Service) -> token.Minted:
        both.wait()
        return _unprofiled(svc)

    result = refresh.refresh(Paths.from_env(), time.time(), mint, wait=5)
    assert sorted((o.name, o.status) for o in result.outcomes) == [("p1", "renewed"), ("p2", "renewed")]
    assert result.code == ExitCode.OK


def test_a_background_refresh_renews_what_no_other_minter_holds(run_cli, home: Path, ca_file: Path) -> None:
    """Issue 20 repro 8: a profile another pgiam is minting for holds only its own services. A background
    `--if-needed` (which never waits) renews the others, then steps aside as before (MintBusy, exit 6:
    silent for hooks and timers), recording no failure and no prompt notice for the held one."""
    assert add(run_cli, ca_file, "p1", SANDBOX_HOST, "--profile", "one", "--no-refresh")[0] == ExitCode.OK
    assert add(run_cli, ca_file, "p2", HOST_C, "--profile", "two", "--no-refresh")[0] == ExitCode.OK
    paths = Paths.from_env()
    config = load_config(paths.config_file, scope=paths.scope)
    key = minting.key_of(config.services["p1"])
    with minting.slot(paths, key, 0):
        with pytest.raises(minting.MintBusy) as exc:
            refresh.refresh(paths, time.time(), _unprofiled, if_needed=True, wait=0)
        assert f"holds the mint lock of {minting.label(key)}" in exc.value.message
        tokens = pgpass.parse_tokens(paths.pgpass.read_text())
        assert set(tokens) == {pgpass.Key(HOST_C, "5432", "alice")}  # p2's, written
        snap = store.read(paths)
        assert not any(st.error for st in snap.states.values()), snap.states
        assert not paths.notice_file.exists()
    again = refresh.refresh(paths, time.time(), _unprofiled, if_needed=True, wait=0)
    assert {o.name: o.status for o in again.outcomes} == {"p1": "renewed", "p2": "fresh"}


def test_a_slow_profile_does_not_hold_back_the_others_tokens(run_cli, home: Path, ca_file: Path, monkeypatch) -> None:
    """Issue 20 repro 8, within one refresh (a timer's or `pgiam run`'s, which mint every profile): a helper
    that takes its time for one profile held the other profiles' new tokens back until it was done. Now
    they are written while it is still at work: p1's mint here waits to see p2's token in ~/.pgpass."""
    monkeypatch.setattr(refresh, "EARLY", 0.1)  # written 0.1 s after p2 is done, not 2 s: the test need not wait
    assert add(run_cli, ca_file, "p1", SANDBOX_HOST, "--profile", "one", "--no-refresh")[0] == ExitCode.OK
    assert add(run_cli, ca_file, "p2", HOST_C, "--profile", "two", "--no-refresh")[0] == ExitCode.OK
    paths = Paths.from_env()
    key = pgpass.Key(HOST_C, "5432", "alice")

    def mint(svc: Service) -> token.Minted:
        if svc.name == "p1":
            deadline = time.monotonic() + 30
            while key not in pgpass.parse_tokens(paths.pgpass.read_text() if paths.pgpass.exists() else ""):
                assert time.monotonic() < deadline, "p2's token was not written while p1 was at work"
                time.sleep(0.01)
        return _unprofiled(svc)

    result = refresh.refresh(paths, time.time(), mint, wait=5)
    assert sorted((o.name, o.status) for o in result.outcomes) == [("p1", "renewed"), ("p2", "renewed")]
    tokens = pgpass.parse_tokens(paths.pgpass.read_text())
    assert key in tokens and pgpass.Key(SANDBOX_HOST, "5432", "alice") in tokens
