"""Whose home, whose files (issue 20): root in another user's home is refused before anything is
written; files an operator names (PGIAM_CONFIG, PGIAM_STATE_DIR) keep their owner and mode."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from pgiam.errors import ExitCode
from tests.conftest import SANDBOX_HOST

OTHER_UID = 65534  # `nobody`: a home that is not the running user's



@pytest.fixture(autouse=True)
def need_root() -> None:
    """Handing a directory to another uid needs root (CI runs as root); the tools rule decides a skip."""
    from tests.tools import skip_or_fail

    if os.geteuid() != 0:
        skip_or_fail("this test needs root (it hands a directory to another uid)", "run it as root, as CI does")


def tree(root: Path) -> dict[str, tuple[int, int, bytes | None]]:
    """Every path under `root` with its owner, mode and (for files) bytes."""
    out = {}
    for p in sorted(root.rglob("*")):
        st = os.lstat(p)
        out[str(p.relative_to(root))] = (st.st_uid, stat.S_IMODE(st.st_mode), p.read_bytes() if p.is_file() else None)
    return out


def add(run_cli, ca_file: Path, *extra: str) -> tuple[int, str, str]:
    return run_cli("add", "prod", "--host", SANDBOX_HOST, "--user", "alice", "--sslrootcert", str(ca_file), *extra)


@pytest.mark.parametrize("argv", [
    ("add",),
    ("refresh",),
    ("uninstall", "--yes"),
])
def test_root_in_another_users_home_is_refused_before_writing(run_cli, home: Path, tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch, argv: tuple[str, ...]) -> None:
    """Issue 20 repro 1: `sudo -E pgiam add` in alice's home made her ~/.pgpass root's; now exit 5, nothing changes."""
    ca = tmp_path / "ca.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n")
    (home / ".pgpass").write_text("other.example.com:5432:*:alice:mine\n")
    os.chmod(home / ".pgpass", 0o600)
    assert add(run_cli, ca)[0] == ExitCode.OK  # alice's own setup, made while the home was hers
    for p in [home, *home.rglob("*")]:
        os.lchown(p, OTHER_UID, OTHER_UID)
    before = tree(home)

    full = {"add": ("add", "prod", "--replace", "--host", SANDBOX_HOST, "--user", "alice", "--sslrootcert", str(ca))}
    code, out, err = run_cli(*full.get(argv[0], argv))

    assert code == ExitCode.FILE, err
    assert f"{home} belongs to uid {OTHER_UID}" in err
    assert "`sudo -H -u nobody pgiam" in err and "`sudo -H pgiam" in err
    assert tree(home) == before


def test_every_location_outside_a_foreign_home_is_fine(run_cli, home: Path, tmp_path: Path, ca_file: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """A container running as one uid with HOME=/ (another's): every file named explicitly, nothing under HOME."""
    ops = tmp_path / "ops"
    ops.mkdir()
    monkeypatch.setenv("PGIAM_STATE_DIR", str(ops / "state"))
    monkeypatch.setenv("PGIAM_CONFIG", str(ops / "config.toml"))
    monkeypatch.setenv("PGPASSFILE", str(ops / "pgpass"))
    monkeypatch.setenv("PGSERVICEFILE", str(ops / "services"))
    os.chown(home, OTHER_UID, OTHER_UID)
    code, out, err = add(run_cli, ca_file)
    assert code == ExitCode.OK, err
    assert (ops / "pgpass").exists() and list(home.iterdir()) == [ca_file]


def test_operators_config_keeps_its_owner_and_mode(run_cli, home: Path, tmp_path: Path, ca_file: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 20 repro 3: a PGIAM_CONFIG file 0644 owned by the operator stayed neither after `add` (root 0600)."""
    etc = tmp_path / "etc" / "pgiam"
    etc.mkdir(parents=True)
    config = etc / "config.toml"
    config.write_text('[defaults]\nregion = "us-west-2"\n')
    os.chown(config, OTHER_UID, OTHER_UID)
    os.chmod(config, 0o644)
    monkeypatch.setenv("PGIAM_CONFIG", str(config))

    code, out, err = add(run_cli, ca_file)
    assert code == ExitCode.OK, err
    st = os.stat(config)
    assert "[services.prod]" in config.read_text()
    assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (OTHER_UID, OTHER_UID, 0o644)
    assert run_cli("remove", "prod")[0] == ExitCode.OK
    st = os.stat(config)
    assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (OTHER_UID, OTHER_UID, 0o644)


def test_named_pgpass_and_service_file_keep_their_owner(run_cli, home: Path, tmp_path: Path, ca_file: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """PGPASSFILE / PGSERVICEFILE owned by another account (the daemon's) stay that account's when rewritten."""
    shared = tmp_path / "shared"
    shared.mkdir()
    for name, mode in (("pgpass", 0o600), ("services", 0o640)):
        (shared / name).write_text("# theirs\n")
        os.chown(shared / name, OTHER_UID, OTHER_UID)
        os.chmod(shared / name, mode)
    monkeypatch.setenv("PGPASSFILE", str(shared / "pgpass"))
    monkeypatch.setenv("PGSERVICEFILE", str(shared / "services"))
    code, out, err = add(run_cli, ca_file)
    assert code == ExitCode.OK, err
    for name, mode in (("pgpass", 0o600), ("services", 0o640)):
        st = os.stat(shared / name)
        assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (OTHER_UID, OTHER_UID, mode), name
        assert "# theirs\n" in (shared / name).read_text()


def test_an_operators_state_dir_keeps_its_owner_and_mode(run_cli, home: Path, tmp_path: Path, ca_file: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """PGIAM_STATE_DIR (a root-owned, world-writable emptyDir): pgiam keeps a 0700 `pgiam` directory inside
    and leaves the operator's directory as it was."""
    empty = tmp_path / "emptydir"
    empty.mkdir()
    os.chown(empty, OTHER_UID, OTHER_UID)
    os.chmod(empty, 0o1777)
    monkeypatch.setenv("PGIAM_STATE_DIR", str(empty))
    code, out, err = add(run_cli, ca_file)
    assert code == ExitCode.OK, err
    st = os.stat(empty)
    assert (st.st_uid, stat.S_IMODE(st.st_mode)) == (OTHER_UID, 0o1777)
    assert stat.S_IMODE(os.stat(empty / "pgiam").st_mode) == 0o700
