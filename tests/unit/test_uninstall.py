"""`pgiam uninstall` (issue 14): undoes every kind of timer, both libpq blocks and pgiam's directories,
keeping every foreign byte; without --yes it changes nothing. Driven through the CLI in process (`main(argv)`
with the environment a subprocess would get); the only processes are the stand-in launchctl, crontab and
systemctl that pgiam runs (issue 22: the fast tier starts no pgiam process)."""

from __future__ import annotations

import os
import plistlib
import subprocess
from pathlib import Path

import pytest

from pgiam import launchd, timer
from tests.conftest import SANDBOX_HOST, in_process
from tests.unit.test_launchd import FAKE_CRONTAB, FAKE_LAUNCHCTL, FAKE_SYSTEMCTL

FOREIGN_PGPASS = "# mine\r\nother.example.com:5432:*:bob:s3cret\r\n*:*:*:carol:pw"  # CRLF, no final newline
FOREIGN_SERVICES = "lead line=1\n[mine]\nhost=other.example.com\n"
FOREIGN_TABLE = "MAILTO=me@example.com\n0 4 * * * /bin/true\n"
BASHRC = '# my bashrc\nalias ll="ls -l"\neval "$(pgiam hook bash)"\n'


@pytest.fixture
def env(isolated_env: Path, tmp_path: Path) -> dict[str, str]:
    """The subprocess environment: the tmp HOME, stand-in launchctl/crontab/systemctl first on PATH."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, text in (("launchctl", FAKE_LAUNCHCTL), ("crontab", FAKE_CRONTAB), ("systemctl", FAKE_SYSTEMCTL)):
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod(0o755)
    (isolated_env / "systemd-down").touch()
    (isolated_env / "gui-session").touch()
    return {**os.environ, "PATH": f"{bin_dir}:/usr/bin:/bin"}


def pgiam(env: dict[str, str], *argv: str) -> subprocess.CompletedProcess[str]:
    """`pgiam ARGV` in this process with `env` as its environment and HOME as its working directory."""
    return in_process(*argv, env=env, cwd=env["HOME"])


def snapshot(home: Path) -> dict[str, bytes]:
    return {str(p.relative_to(home)): p.read_bytes() for p in sorted(home.rglob("*"))
            if p.is_file() and not p.name.endswith(".argv")}


def install_everything(home: Path, env: dict[str, str], ca_file: Path) -> None:
    """Two services, every kind of timer at once (as an older pgiam or a hand could leave them), certs, a hook line."""
    (home / ".pgpass").write_text(FOREIGN_PGPASS, newline="")
    (home / ".pgpass").chmod(0o600)
    (home / ".pg_service.conf").write_text(FOREIGN_SERVICES)
    for name, user in (("prod", "alice"), ("dev", "dave")):
        proc = pgiam(env, "add", name, "--host", SANDBOX_HOST, "--user", user, "--sslrootcert", str(ca_file))
        assert proc.returncode == 0, proc.stderr
    assert pgiam(env, "timer", "install", "--systemd", "--no-enable").returncode == 0
    (home / ".table").write_text(FOREIGN_TABLE + timer.render_cron_line(["/opt/pgiam"], 240, {}) + "\n")
    plist = home / "Library" / "LaunchAgents" / f"{launchd.LABEL}.plist"
    plist.parent.mkdir(parents=True)
    plist.write_bytes(launchd.render_plist(["/opt/pgiam"], 240, {}, home / "log"))
    (home / ".launchd").mkdir()
    (home / ".launchd" / f"gui_{os.getuid()}_{launchd.LABEL}").write_bytes(plist.read_bytes())
    certs = home / ".local" / "share" / "pgiam" / "certs"
    certs.mkdir(parents=True)
    (certs / "rds-aws.pem").write_text("bundle\n")
    (home / ".bashrc").write_text(BASHRC)


def test_uninstall_shows_then_undoes_everything(env: dict[str, str], ca_file: Path) -> None:
    home = Path(env["HOME"])
    install_everything(home, env, ca_file)
    assert "BEGIN pgiam" in (home / ".pgpass").read_text() and "[prod]" in (home / ".pg_service.conf").read_text()
    before = snapshot(home)

    proc = pgiam(env, "uninstall")  # without --yes: the plan, nothing changed
    assert proc.returncode == 0, proc.stderr
    for item in ("pgiam-refresh.timer", "crontab line", "pgiam.refresh.plist", f"block in {home / '.pgpass'}",
                 f"block in {home / '.pg_service.conf'}", str(home / ".config" / "pgiam"),
                 str(home / ".local" / "state" / "pgiam"), str(home / ".local" / "share" / "pgiam"),
                 f"{home / '.bashrc'}:3: eval \"$(pgiam hook bash)\""):
        assert item in proc.stdout, item
    assert "nothing changed" in proc.stderr and "--yes" in proc.stderr
    assert snapshot(home) == before

    proc = pgiam(env, "uninstall", "--yes")
    assert proc.returncode == 0, proc.stderr
    assert (home / ".pgpass").read_bytes() == FOREIGN_PGPASS.encode()
    assert oct((home / ".pgpass").stat().st_mode & 0o777) == "0o600"
    assert (home / ".pg_service.conf").read_text() == FOREIGN_SERVICES
    assert (home / ".table").read_text() == FOREIGN_TABLE
    assert not (home / ".config" / "systemd" / "user" / timer.TIMER).exists()
    assert not (home / ".config" / "systemd" / "user" / timer.SERVICE).exists()
    assert not (home / "Library" / "LaunchAgents" / f"{launchd.LABEL}.plist").exists()
    assert not any((home / ".launchd").iterdir())  # booted out
    for d in (".config/pgiam", ".local/state/pgiam", ".local/share/pgiam"):
        assert not (home / d).exists(), d
    assert (home / ".bashrc").read_text() == BASHRC  # never edited: named for the user to delete
    assert f"{home / '.bashrc'}:3:" in proc.stdout and "delete the prompt hook" in proc.stderr

    again = pgiam(env, "uninstall")
    assert again.returncode == 0 and "nothing installed" in again.stdout and "--yes" not in again.stderr
    assert pgiam(env, "list", "--names").stdout == ""


def test_files_holding_only_pgiam_are_left_empty_and_said(env: dict[str, str], ca_file: Path) -> None:
    home = Path(env["HOME"])
    assert pgiam(env, "add", "prod", "--host", SANDBOX_HOST, "--user", "alice", "--sslrootcert", str(ca_file)).returncode == 0
    proc = pgiam(env, "uninstall", "--yes")
    assert proc.returncode == 0, proc.stderr
    assert (home / ".pgpass").read_bytes() == b"" and (home / ".pg_service.conf").read_bytes() == b""
    assert f"{home / '.pgpass'} is now empty" in proc.stderr


def test_busy_lock_changes_nothing(env: dict[str, str], ca_file: Path) -> None:
    """Another pgiam holds the lock: exit 6 and every file, timer included, as it was."""
    home = Path(env["HOME"])
    install_everything(home, env, ca_file)
    before = snapshot(home)
    # The holder: pgiam's own lock taken on another open file description (flock(2) locks belong to it, so
    # this process's second open of the file is refused exactly as another process's would be).
    from pgiam.fileio import locked
    from pgiam.paths import Paths
    from tests.conftest import environment

    with environment(env):
        scope = Paths.from_env().scope
    with locked(home / ".local" / "state" / "pgiam" / "lock", 5, scope=scope):
        proc = pgiam({**env, "PGIAM_LOCK_WAIT": "0"}, "uninstall", "--yes")
        assert proc.returncode == 6, proc.stderr
        unlocked = lambda snap: {k: v for k, v in snap.items() if not k.endswith("/lock")}  # noqa: E731
        assert unlocked(snapshot(home)) == unlocked(before)  # the holder writes its pid into the lock file
    assert plistlib.loads((home / "Library" / "LaunchAgents" / f"{launchd.LABEL}.plist").read_bytes())


def test_symlinked_config_dir_loses_only_the_link(env: dict[str, str], tmp_path: Path) -> None:
    home = Path(env["HOME"])
    dotfiles = tmp_path / "dotfiles" / "pgiam"
    dotfiles.mkdir(parents=True)
    (dotfiles / "config.toml").write_text("[defaults]\nregion = \"us-east-1\"\n")
    (home / ".config").mkdir(exist_ok=True)
    (home / ".config" / "pgiam").symlink_to(dotfiles)
    proc = pgiam(env, "uninstall", "--yes")
    assert proc.returncode == 0, proc.stderr
    assert not (home / ".config" / "pgiam").exists() and (dotfiles / "config.toml").is_file()
    assert "was a symlink" in proc.stderr


def test_macos_layout_one_directory_for_all(isolated_env: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """platformdirs on macOS: config, state and data share ~/Library/Application Support/pgiam; listed and
    removed once, with the LaunchAgent (its stand-in launchctl records the bootout)."""
    from pgiam import uninstall
    from pgiam.paths import Paths

    home = isolated_env
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, text in (("launchctl", FAKE_LAUNCHCTL), ("crontab", FAKE_CRONTAB), ("systemctl", FAKE_SYSTEMCTL)):
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:/usr/bin:/bin")
    (home / "systemd-down").touch()
    (home / "gui-session").touch()
    support = home / "Library" / "Application Support" / "pgiam"
    paths = Paths(config_file=support / "config.toml", state_dir=support, data_dir=support,
                  pgpass=home / ".pgpass", service_file=home / ".pg_service.conf", home=home)
    support.mkdir(parents=True)
    (support / "state.json").write_text("{}")
    timer.install(paths, method=None, every=None, enable=True, exe=["/opt/pgiam"], env={}, platform="darwin",
                  uid=os.getuid())
    plan = uninstall.plan(paths)
    assert plan.directories == (support,) and len(plan.timers) == 1 and "LaunchAgent" in plan.timers[0]
    result = uninstall.run(paths, wait=0)
    assert not support.exists() and not launchd.plist_path(paths).exists() and not any((home / ".launchd").iterdir())
    assert result.removed.count(str(support)) == 1


def test_a_config_named_by_pgiam_config_is_left_alone(env: dict[str, str], tmp_path: Path, ca_file: Path) -> None:
    """PGIAM_CONFIG=/etc/pgiam/config.toml (an operator's file, a ConfigMap): uninstall keeps it and its directory."""
    etc = tmp_path / "etc" / "pgiam"
    etc.mkdir(parents=True)
    config = etc / "config.toml"
    config.write_text("# the operator's\n")
    env = {**env, "PGIAM_CONFIG": str(config)}
    proc = pgiam(env, "add", "prod", "--host", SANDBOX_HOST, "--user", "alice", "--sslrootcert", str(ca_file),
                 "--no-refresh")
    assert proc.returncode == 0, proc.stderr
    text = config.read_text()
    proc = pgiam(env, "uninstall", "--yes")
    assert proc.returncode == 0, proc.stderr
    assert config.read_text() == text and etc.is_dir()
    assert "[prod]" not in (Path(env["HOME"]) / ".pg_service.conf").read_text()


def test_an_existing_directory_of_the_users_is_refused_not_adopted(env: dict[str, str], ca_file: Path) -> None:
    """Issue 20 repro 2: `PGIAM_STATE_DIR=~/src` over an existing ~/src/pgiam holding notes.txt: `add` used it
    as pgiam's own and `uninstall --yes` then removed it whole. Now `add` refuses it (exit 5, naming the
    directory and the file), and so does uninstall, leaving it, notes included."""
    home = Path(env["HOME"])
    mine = home / "src" / "pgiam"
    mine.mkdir(parents=True)
    (mine / "notes.txt").write_text("notes\n")
    env = {**env, "PGIAM_STATE_DIR": str(home / "src")}
    proc = pgiam(env, "add", "prod", "--host", SANDBOX_HOST, "--user", "alice", "--sslrootcert", str(ca_file))
    assert proc.returncode == 5, proc.stderr
    assert f"{mine} already exists and holds files pgiam did not write (notes.txt)" in proc.stderr
    assert "hint: " in proc.stderr and "PGIAM_STATE_DIR" in proc.stderr
    assert sorted(os.listdir(mine)) == ["notes.txt"]
    assert not (home / ".pgpass").exists() and not (home / ".config" / "pgiam" / "config.toml").exists()

    proc = pgiam(env, "uninstall", "--yes")  # not pgiam's: not even its lock goes there
    assert proc.returncode == 5, proc.stderr
    assert f"{mine} already exists and holds files pgiam did not write (notes.txt)" in proc.stderr
    assert sorted(os.listdir(mine)) == ["notes.txt"] and (mine / "notes.txt").read_text() == "notes\n"


def test_uninstall_removes_pgiams_files_one_by_one_and_keeps_a_users_file(env: dict[str, str], ca_file: Path) -> None:
    """A directory pgiam created (marked) where the user later put a file: pgiam's files go, the user's
    file and so its directory stay, and uninstall says so (issue 20)."""
    home = Path(env["HOME"])
    assert pgiam(env, "add", "prod", "--host", SANDBOX_HOST, "--user", "alice", "--sslrootcert", str(ca_file)).returncode == 0
    state = home / ".local" / "state" / "pgiam"
    assert (state / ".pgiam-owned").is_file() and (home / ".config" / "pgiam" / ".pgiam-owned").is_file()
    (state / "mine.txt").write_text("mine\n")
    proc = pgiam(env, "uninstall", "--yes")
    assert proc.returncode == 0, proc.stderr
    assert sorted(os.listdir(state)) == ["mine.txt"]
    assert f"kept {state}: it holds files pgiam did not write (mine.txt)" in proc.stderr
    assert not (home / ".config" / "pgiam").exists()


def test_an_empty_or_0_2_0_directory_is_adopted(env: dict[str, str], ca_file: Path) -> None:
    """An empty `pgiam` directory, or one holding only files pgiam writes (0.2.0 made them without a
    marker), becomes pgiam's: marked at first use and removed by uninstall (issue 20)."""
    home = Path(env["HOME"])
    (home / ".config" / "pgiam").mkdir(parents=True)  # empty
    state = home / ".local" / "state" / "pgiam"
    state.mkdir(parents=True)
    (state / "state.json").write_text("{}")
    (state / "next-due").write_text("0\n")
    proc = pgiam(env, "add", "prod", "--host", SANDBOX_HOST, "--user", "alice", "--sslrootcert", str(ca_file))
    assert proc.returncode == 0, proc.stderr
    assert (state / ".pgiam-owned").is_file() and (home / ".config" / "pgiam" / ".pgiam-owned").is_file()
    proc = pgiam(env, "uninstall", "--yes")
    assert proc.returncode == 0, proc.stderr
    assert not state.exists() and not (home / ".config" / "pgiam").exists()
