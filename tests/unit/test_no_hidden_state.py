"""No hidden process-wide state (issue 19): which directories are pgiam's own (checked, never reached
through a symlink, adopted; the home never created) is decided by the command's own locations, not by
every location an earlier command of the same process used. (Two commands run here one after the other
in one process, as a library user, a long-running process or a test worker would.)"""

from __future__ import annotations

import os
from pathlib import Path

from pgiam.errors import ExitCode
from tests.conftest import SANDBOX_HOST, in_process


def _env(home: Path, **extra: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PGIAM_", "PGPASSFILE", "PGSERVICEFILE", "XDG_"))}
    env["HOME"] = str(home)
    env.update({k: str(v) for k, v in extra.items()})
    return env


def test_an_earlier_commands_state_dir_does_not_make_a_users_symlink_unfollowed(home: Path, tmp_path: Path, ca_file: Path) -> None:
    """Issue 19: a command with PGIAM_STATE_DIR=S left S/pgiam registered as pgiam's state directory for the
    rest of the process, so a later command (another PGIAM_STATE_DIR) replaced its user's ~/.pgpass symlink
    living there by a regular file instead of writing through it (the user's own files keep their symlinks)."""
    shared = tmp_path / "shared"
    earlier = in_process("list", env=_env(home, PGIAM_STATE_DIR=shared))
    assert earlier.returncode == ExitCode.OK, earlier.stderr
    (shared / "pgiam").mkdir(parents=True, exist_ok=True)
    real = tmp_path / "dotfiles" / "pgpass"
    real.parent.mkdir()
    real.write_text("other.example.com:5432:*:bob:mine\n")
    os.chmod(real, 0o600)
    link = shared / "pgiam" / "pgpass"
    link.symlink_to(real)

    later = in_process("add", "prod", "--host", SANDBOX_HOST, "--user", "alice", "--sslrootcert", str(ca_file),
                       env=_env(home, PGIAM_STATE_DIR=tmp_path / "own-state", PGPASSFILE=link))
    assert later.returncode == ExitCode.OK, later.stderr
    assert link.is_symlink() and os.readlink(link) == str(real)
    assert f"{SANDBOX_HOST}:5432:*:alice:" in real.read_text()


def test_an_earlier_commands_missing_home_is_not_refused_for_a_later_command(home: Path, tmp_path: Path, ca_file: Path) -> None:
    """Issue 19: a command run with HOME=G (a home that does not exist) left G registered as a home for the
    rest of the process, so a later command with another, existing home was refused (exit 6, "the home
    directory G does not exist") for creating its state directory under G, which is not its home."""
    gone = tmp_path / "gone"
    in_process("list", env=_env(gone))  # whatever it answers: its Paths was built
    later = in_process("add", "prod", "--host", SANDBOX_HOST, "--user", "alice", "--sslrootcert", str(ca_file),
                       env=_env(home, PGIAM_STATE_DIR=gone / "state"))
    assert later.returncode == ExitCode.OK, later.stderr
    assert (gone / "state" / "pgiam" / "state.json").is_file()


def test_an_earlier_commands_names_do_not_make_a_later_command_adopt_a_foreign_directory(home: Path, tmp_path: Path, ca_file: Path) -> None:
    """Issue 19: the names pgiam writes in its directories were pooled over every Paths of the process, so
    after a command that owns its config directory (config.toml is pgiam's), a command whose config is the
    operator's (PGIAM_CONFIG) adopted an unmarked state directory holding someone's config.toml as
    pgiam's own, instead of refusing it (exit 5) as it does when run first."""
    shared = tmp_path / "shared"
    earlier = in_process("list", env=_env(home, PGIAM_STATE_DIR=shared))
    assert earlier.returncode == ExitCode.OK, earlier.stderr
    (shared / "pgiam").mkdir(parents=True)
    (shared / "pgiam" / "config.toml").write_text("# someone else's\n")
    operator = tmp_path / "etc" / "config.toml"
    operator.parent.mkdir()
    later = in_process("add", "prod", "--host", SANDBOX_HOST, "--user", "alice", "--sslrootcert", str(ca_file),
                       env=_env(home, PGIAM_STATE_DIR=shared, PGIAM_CONFIG=operator))
    assert later.returncode == ExitCode.FILE, later.stderr
    assert "holds files pgiam did not write (config.toml)" in later.stderr
    assert sorted(os.listdir(shared / "pgiam")) == ["config.toml"]
