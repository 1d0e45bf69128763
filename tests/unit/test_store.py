"""pgiam.store directly (issue 22: it was reached only through the CLI): the snapshot, the freshness verdict
of the token in the file, the state row that agrees with the file, and the planned writes. Real files under
the test's HOME; tokens signed by botocore with the dummy keys at a fixed clock."""

from __future__ import annotations

import calendar
import datetime
import functools
from pathlib import Path

import botocore.auth
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pgiam import pgpass, servicefile, store
from pgiam.config import Config, Defaults, Service, Via
from pgiam.errors import ConfigError, ExitCode
from pgiam.paths import Paths
from pgiam.state import ServiceState, parse_state
from tests.conftest import botocore_session, SANDBOX_HOST

SIGNED = datetime.datetime(2026, 11, 26, 12, 0, 0)  # naive UTC, as botocore's clock
T0 = float(calendar.timegm(SIGNED.timetuple()))
PROD = Service(name="prod", host=SANDBOX_HOST, user="alice", region="us-west-2", sslrootcert="/ca.pem")
TUN = Service(name="tun", host=SANDBOX_HOST, user="bob", region="us-west-2", port=5432, dbname="app",
              via=Via("127.0.0.1", 15432), sslrootcert="/ca.pem", require_auth=True)
FOREIGN_PGPASS = b"# mine\r\nother:5432:*:me:s\\:ecret\r\nx:1:*:y:\xff\xfe"  # CRLF, not UTF-8, no final newline
FOREIGN_SERVICES = b"# my services\n[local]\nhost=localhost\n"


@functools.cache
def _signed(host: str, port: int, user: str, region: str, at: datetime.datetime) -> str:
    """botocore's token for the dummy keys at `at`; one client for the module (making one costs ~0.3 s)."""
    saved = botocore.auth.get_current_datetime
    botocore.auth.get_current_datetime = lambda *a, **k: at  # type: ignore[assignment]
    try:
        return _client().generate_db_auth_token(host, port, user, Region=region)
    finally:
        botocore.auth.get_current_datetime = saved  # type: ignore[assignment]


@functools.cache
def _client():  # type: ignore[no-untyped-def]
    s = botocore_session()
    s.set_credentials("AKIAPGIAMTESTEXAMPLE", "pgiamTestSecretKey/ExampleOnly0123456789ab")
    return s.create_client("rds", region_name="us-west-2")


def sign(svc: Service, at: datetime.datetime = SIGNED) -> str:
    return _signed(svc.host, svc.dial_port, svc.user, svc.region, at)


def config(paths: Paths, *svcs: Service, margin: int = 300) -> Config:
    return Config(paths.config_file, Defaults(renewal_margin=margin), {s.name: s for s in svcs})


@pytest.fixture
def paths(home: Path) -> Paths:
    return Paths.from_env()


def write(paths: Paths, changes: list[store.Change], cfg: Config) -> None:
    store.commit(paths, changes, cfg)


# ---------------------------------------------------------------- naming and keys


def test_select_checks_each_name_and_defaults_to_all(paths: Paths) -> None:
    cfg = config(paths, PROD, TUN)
    assert store.select(paths, cfg, None) == store.select(paths, cfg, []) == ["prod", "tun"]
    assert store.select(paths, cfg, ["tun"]) == ["tun"]
    with pytest.raises(ConfigError) as caught:
        store.select(paths, cfg, ["tun", "nope"])
    assert (caught.value.code, caught.value.message) == (ExitCode.CONFIG, f"no service named 'nope' in {paths.config_file}")


def test_the_pgpass_key_is_the_host_name_and_the_dialled_port() -> None:
    """libpq matches ~/.pgpass on `host` (not hostaddr) and the port it dials: the tunnel's for --via."""
    assert store.key_of(PROD) == pgpass.Key(SANDBOX_HOST, "5432", "alice")
    assert store.key_of(TUN) == pgpass.Key(SANDBOX_HOST, "15432", "bob")
    assert store.key_str(TUN) == f"{SANDBOX_HOST}:15432:bob"


def test_service_entry_keys_in_order() -> None:
    assert store.service_entry(PROD, "/ca.pem").keys == [
        ("host", SANDBOX_HOST), ("port", "5432"), ("user", "alice"), ("sslmode", "verify-full"), ("sslrootcert", "/ca.pem")]
    assert store.service_entry(TUN, "system").keys == [
        ("host", SANDBOX_HOST), ("hostaddr", "127.0.0.1"), ("port", "15432"), ("user", "bob"), ("dbname", "app"),
        ("sslmode", "verify-full"), ("sslrootcert", "system"), ("require_auth", "password")]


_text = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\n"), min_size=1, max_size=6)


@settings(max_examples=150)
@given(st.lists(st.builds(Service, name=st.text(alphabet="ab-_.@+%{}0", min_size=1, max_size=5), host=_text, user=_text,
                          region=st.just("us-east-1"), port=st.integers(1, 65535), dbname=st.none() | _text,
                          via=st.none() | st.builds(Via, st.sampled_from(["127.0.0.1", "::1"]), st.integers(1, 65535)),
                          sslrootcert=st.none() | _text, require_auth=st.booleans()),
                max_size=4, unique_by=lambda s: s.name))
def test_sections_are_what_render_section_writes_of_each_service_entry(svcs: list[Service]) -> None:
    """Issue 25: the service file's sections are rendered by one format per set of keys; each must be what
    servicefile.render_section writes of store.service_entry (`%` and `{}` in names and values included)."""
    paths = Paths.from_env()  # the test's home (no file is read or written)
    cfg = config(paths, *svcs)
    expected = ["\n".join(servicefile.render_section(store.service_entry(s, s.sslrootcert or store.default_sslrootcert(paths, s))))
                for _, s in sorted(cfg.services.items())]
    assert list(store._sections(paths, cfg)) == expected


def test_state_of_only_for_the_same_host_port_and_user() -> None:
    row = ServiceState(store.key_str(PROD), minted=T0, expires=T0 + 900)
    assert store.state_of(PROD, {"prod": row}) == row
    moved = Service(name="prod", host=SANDBOX_HOST, user="alice", region="us-west-2", port=6543)
    assert store.state_of(moved, {"prod": row}) is None  # a changed service is judged afresh
    assert store.state_of(PROD, {}) is None


# ---------------------------------------------------------------- reading


def test_read_of_a_new_home_is_empty_and_creates_nothing(paths: Paths, home: Path) -> None:
    snap = store.read(paths)
    assert (snap.pgpass_text, snap.service_text, snap.tokens, snap.sections, snap.states) == ("", "", {}, frozenset(), {})
    assert not any(p.is_file() for p in home.rglob("*"))


def test_read_sees_pgiam_blocks_beside_foreign_bytes(paths: Paths) -> None:
    token = sign(PROD)
    paths.pgpass.write_bytes(FOREIGN_PGPASS)
    paths.service_file.write_bytes(FOREIGN_SERVICES)
    cfg = config(paths, PROD)
    write(paths, store.plan_libpq(paths, cfg, {store.key_of(PROD): token}, []), cfg)
    snap = store.read(paths)
    assert snap.tokens == {store.key_of(PROD): token}
    assert snap.sections == frozenset({"prod"})  # [local] is not pgiam's
    # pgiam's block first (libpq takes the first matching line), the foreign bytes after it, \xff\xfe included
    assert store.encode(snap.pgpass_text) == store.encode(f"{pgpass.BEGIN_LINE}\n{pgpass.render_line(store.key_of(PROD), token)}\n"
                                                         f"{pgpass.END_LINE}\n") + FOREIGN_PGPASS


def test_a_damaged_block_is_named_with_its_file(paths: Paths) -> None:
    paths.pgpass.write_text(f"{pgpass.BEGIN_LINE}\nh:1:*:u:t\n")  # BEGIN without END
    with pytest.raises(ConfigError) as caught:
        store.read(paths)
    assert caught.value.message == (f"{paths.pgpass}, line 1: pgiam's block starts here but its end line "
                                    f"`{pgpass.END_LINE}` is missing")


# ---------------------------------------------------------------- the verdict and the state row


def snap_with(paths: Paths, token: str | None, states: dict[str, ServiceState] | None = None) -> store.Snapshot:
    tokens = {store.key_of(PROD): token} if token else {}
    return store.Snapshot("", "", tokens, frozenset(), states or {})


@pytest.mark.parametrize(("offset", "due", "reason"), [
    (0, False, "fresh"),
    (599, False, "fresh"),  # the 300 s margin starts at 600 s
    (600, True, "renew"),
    (1000, True, "renew"),  # expired
    (-6, True, "future"),  # signed more than the 5 s tolerance ahead of the clock
])
def test_verdict_follows_the_clock(paths: Paths, offset: int, due: bool, reason: str) -> None:
    v = store.verdict(PROD, snap_with(paths, sign(PROD)), T0 + offset, 300)
    assert (v.due, v.reason, v.expires) == (due, reason, T0 + 900)


def test_verdict_without_a_usable_token(paths: Paths) -> None:
    assert store.verdict(PROD, snap_with(paths, None), T0, 300).reason == "missing"
    assert store.verdict(PROD, snap_with(paths, "not-a-token"), T0, 300).reason == "malformed"
    other = Service(name="prod", host=SANDBOX_HOST, user="alice", region="us-east-1")  # same key, other region
    assert store.verdict(other, snap_with(paths, sign(PROD)), T0, 300).reason == "mismatch"


def test_credentials_expiry_counts_only_for_the_token_it_was_noted_for(paths: Paths) -> None:
    """Credentials that expire at T0+400 cut the token's life short: due at T0+200 (half its life), not T0+600;
    the same note against another token (another signing time) is ignored."""
    token = sign(PROD)
    noted = {"prod": ServiceState(store.key_str(PROD), minted=T0, expires=T0 + 400)}
    v = store.verdict(PROD, snap_with(paths, token, noted), T0 + 199, 300)
    assert (v.due, v.expires, v.due_at) == (False, T0 + 400, T0 + 200)
    assert store.verdict(PROD, snap_with(paths, token, noted), T0 + 200, 300).due
    elsewhere = {"prod": ServiceState(store.key_str(PROD), minted=T0 - 60, expires=T0 + 400)}
    assert store.verdict(PROD, snap_with(paths, token, elsewhere), T0 + 500, 300).expires == T0 + 900


def test_reconcile_notes_a_token_pgiam_did_not_write_and_forgets_a_missing_one(paths: Paths) -> None:
    token = sign(PROD)
    snap = snap_with(paths, token)  # a restored backup: no state row
    row = store.reconcile(PROD, snap, store.verdict(PROD, snap, T0, 300))
    assert row == ServiceState(store.key_str(PROD), minted=T0, expires=T0 + 900)
    failed = ServiceState(store.key_str(PROD), minted=T0, expires=T0 + 900, error="boom", code=4, failures=2)
    gone = snap_with(paths, None, {"prod": failed})
    row = store.reconcile(PROD, gone, store.verdict(PROD, gone, T0, 300))
    assert row == ServiceState(store.key_str(PROD), error="boom", code=4, failures=2)  # the failure is kept
    assert store.reconcile(PROD, snap_with(paths, None), store.verdict(PROD, snap_with(paths, None), T0, 300)) is None


# ---------------------------------------------------------------- planning and committing


def test_plan_writes_both_files_keeping_foreign_bytes_then_nothing(paths: Paths) -> None:
    paths.pgpass.write_bytes(FOREIGN_PGPASS)
    paths.pgpass.chmod(0o600)
    paths.service_file.write_bytes(FOREIGN_SERVICES)
    cfg = config(paths, PROD, TUN)
    tokens = {store.key_of(PROD): sign(PROD), store.key_of(TUN): sign(TUN)}
    notices: list[str] = []
    changes = store.plan_libpq(paths, cfg, tokens, notices)
    assert [(p, mode) for p, _, mode in changes] == [(paths.pgpass, 0o600), (paths.service_file, 0o644)]
    assert notices == []
    write(paths, changes, cfg)
    assert pgpass.parse_tokens(paths.pgpass.read_text(errors="surrogateescape")) == tokens
    assert paths.pgpass.read_bytes().startswith(store.encode(pgpass.BEGIN_LINE)) and paths.pgpass.read_bytes().endswith(FOREIGN_PGPASS)
    assert paths.service_file.read_bytes().endswith(FOREIGN_SERVICES)  # the first section of a name wins: ours first
    assert servicefile.managed_names(paths.service_file.read_text()) == ["prod", "tun"]
    assert store.plan_libpq(paths, cfg, {}, []) == []  # in line: nothing to write, the tokens are kept


def test_plan_drops_what_the_config_no_longer_has(paths: Paths) -> None:
    both = config(paths, PROD, TUN)
    write(paths, store.plan_libpq(paths, both, {store.key_of(PROD): sign(PROD),
                                                store.key_of(TUN): sign(TUN)}, []), both)
    only = config(paths, PROD)
    write(paths, store.plan_libpq(paths, only, {}, []), only)
    assert list(pgpass.parse_tokens(paths.pgpass.read_text())) == [store.key_of(PROD)]
    assert servicefile.managed_names(paths.service_file.read_text()) == ["prod"]


def test_a_loose_password_file_is_tightened_and_said(paths: Paths) -> None:
    cfg = config(paths, PROD)
    write(paths, store.plan_libpq(paths, cfg, {store.key_of(PROD): sign(PROD)}, []), cfg)
    paths.pgpass.chmod(0o644)
    notices: list[str] = []
    changes = store.plan_libpq(paths, cfg, {}, notices)
    assert [(p, mode) for p, _, mode in changes] == [(paths.pgpass, 0o600)]
    assert notices == [f"{paths.pgpass} was readable by group/others (libpq ignores such a file); pgiam made it 0600"]
    write(paths, changes, cfg)
    assert paths.pgpass.stat().st_mode & 0o777 == 0o600


def test_plan_state_keeps_configured_rows_and_next_due(paths: Paths) -> None:
    cfg = config(paths, PROD)
    rows = {"prod": ServiceState(store.key_str(PROD), minted=T0, expires=T0 + 900),
            "gone": ServiceState("h:1:u", minted=T0, expires=T0 + 900)}
    changes = store.plan_state(paths, cfg, rows, T0)
    assert [p for p, _, _ in changes] == [paths.state_file, paths.next_due_file]
    write(paths, changes, cfg)
    assert parse_state(paths.state_file.read_bytes()) == {"prod": rows["prod"]}
    assert paths.next_due_file.read_text().split("\n")[0] == str(int(T0) + 600)  # the line the prompt hooks read
    assert oct(paths.state_dir.stat().st_mode & 0o777) == "0o700"
    assert store.plan_state(paths, cfg, rows, T0) == []  # nothing changed
    assert [p for p, _, _ in store.plan_state(paths, cfg, rows, T0, force=True)] == [paths.next_due_file]


def test_commit_without_services_clears_next_due(paths: Paths) -> None:
    cfg = config(paths, PROD)
    write(paths, store.plan_state(paths, cfg, {}, T0), cfg)
    assert paths.next_due_file.exists()
    empty = config(paths)
    write(paths, store.plan_state(paths, empty, {}, T0), empty)
    assert not paths.next_due_file.exists()
    assert parse_state(paths.state_file.read_bytes()) == {}
