"""Issues 16 and 11 (5): under PGIAM_CONFIG (a pod, a systemd unit) the config file is the operator's, like
~/.pgpass: its directory (a ConfigMap mount, world-writable with the sticky bit; /etc/pgiam owned by root)
is not one of pgiam's own directories and is not held to their rules. The `pgiam` directory pgiam keeps
inside PGIAM_STATE_DIR still is: owned by the user, writable by nobody else, else exit 5 and nothing written.

`pgiam run --once` in a real subprocess; tokens are signed locally with dummy static keys (no AWS call).
"""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

import pytest

from tests.reliability.conftest import HOSTS, need_root, pgiam_env, run

pytestmark = pytest.mark.reliability

NOBODY = 65534


def _pod(tmp_path: Path, ca: Path, *, config_mode: int = 0o1777, config_owner: int | None = None) -> tuple[dict[str, str], Path]:
    """A ConfigMap-like mount (config.toml -> ..data/config.toml) in a directory of `config_mode`, and a
    world-writable shared volume (an emptyDir) as PGIAM_STATE_DIR holding both libpq files."""
    cm = tmp_path / "configmap"
    (cm / "..2026_11_30").mkdir(parents=True)
    (cm / "..2026_11_30" / "config.toml").write_text(f"""\
[services.app]
host = "{HOSTS[0]}"
port = 5432
user = "app_user"
dbname = "postgres"
region = "us-west-2"
sslrootcert = "{ca}"
""")
    (cm / "..data").symlink_to("..2026_11_30")
    (cm / "config.toml").symlink_to("..data/config.toml")
    os.chmod(cm, config_mode)
    if config_owner is not None:
        os.lchown(cm, config_owner, config_owner)
    shared = tmp_path / "shared"
    shared.mkdir()
    os.chmod(shared, 0o1777)  # an emptyDir is world-writable
    env = pgiam_env(tmp_path / "no-such-home", PGIAM_CONFIG=str(cm / "config.toml"), PGIAM_STATE_DIR=str(shared),
                    PGPASSFILE=str(shared / "pgpass"), PGSERVICEFILE=str(shared / "pg_service.conf"))
    return env, shared


def _assert_renewed(p: subprocess.CompletedProcess[str], shared: Path) -> None:
    assert p.returncode == 0, p.stderr
    assert "app_user:" in (shared / "pgpass").read_text()
    assert "[app]" in (shared / "pg_service.conf").read_text()
    own = shared / "pgiam"
    st = own.stat()
    assert stat.S_IMODE(st.st_mode) == 0o700 and st.st_uid == os.geteuid()


def test_config_in_a_world_writable_sticky_mount_is_read(tmp_path: Path, ca: Path) -> None:
    """A ConfigMap mount is drwxrwxrwt: `pgiam run --once` reads the config from it and renews (was exit 5)."""
    env, shared = _pod(tmp_path, ca)
    _assert_renewed(run(env, "run", "--once"), shared)


def test_config_in_a_directory_owned_by_another_user_is_read(tmp_path: Path, ca: Path) -> None:
    """/etc/pgiam owned by root while pgiam runs as its own account (here: the directory belongs to
    another uid than the one pgiam runs as)."""
    need_root()  # giving the directory away needs root
    env, shared = _pod(tmp_path, ca, config_mode=0o755, config_owner=NOBODY)
    _assert_renewed(run(env, "run", "--once"), shared)


@pytest.mark.parametrize("owner", [None, NOBODY])
def test_reads_keep_the_operator_config_directory_exempt(tmp_path: Path, ca: Path, owner: int | None) -> None:
    """Issue 19 (8): reads check pgiam's own directories as writes do, and no more: with the config in a
    sticky world-writable ConfigMap mount (or a directory another user owns), the no-op, `status`, `list`
    and `token` (both through its full path and its fast path) answer."""
    if owner is not None:
        need_root()
    env, shared = _pod(tmp_path, ca, config_mode=0o1777 if owner is None else 0o755, config_owner=owner)
    _assert_renewed(run(env, "run", "--once"), shared)
    for argv in (["refresh", "--if-needed", "--quiet"], ["status"], ["list"], ["token", "app"], ["token", "app"]):
        p = run(env, *argv)
        assert p.returncode == 0, (argv, p.stderr)
    assert "app_user" in run(env, "list").stdout


@pytest.mark.parametrize("problem", ["world-writable", "another owner"])
def test_own_state_directory_is_still_checked(tmp_path: Path, ca: Path, problem: str) -> None:
    """The `pgiam` directory inside PGIAM_STATE_DIR is pgiam's own: world-writable or someone else's, it
    is refused (exit 5, naming it) and nothing is written."""
    env, shared = _pod(tmp_path, ca)
    own = shared / "pgiam"
    own.mkdir()
    if problem == "world-writable":
        os.chmod(own, 0o777)
    else:
        need_root()
        os.chmod(own, 0o700)
        os.chown(own, NOBODY, NOBODY)
    p = run(env, "run", "--once")
    assert p.returncode == 5, (p.returncode, p.stderr)
    assert str(own) in p.stderr, p.stderr
    assert not (shared / "pgpass").exists() and not (shared / "pg_service.conf").exists()
    assert os.listdir(own) == []
