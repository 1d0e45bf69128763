"""macOS timers (issue 14): the LaunchAgent plist through plistlib, and launchctl through a stand-in on PATH."""

from __future__ import annotations

import os
import plistlib
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from pgiam import launchd, timer
from pgiam.errors import EnvironmentProblem, UsageError
from pgiam.paths import Paths

SECRET = "wJalrXUtnFEMI-SECRET-do-not-leak"
ODD = "dir with 'quotes\" <&> 100% $HOME \\back é"
UID = 501

FAKE_LAUNCHCTL = """#!/bin/sh
# Stand-in for launchctl(1): loaded agents are files under $HOME/.launchd; every call is logged.
printf '%s\\n' "$*" >> "$HOME/launchctl.argv"
state="$HOME/.launchd"; mkdir -p "$state"
key() { printf '%s' "$1" | tr / _; }
case "$1" in
  print)
    case "$2" in
      gui/*/*|user/*/*) [ -f "$state/$(key "$2")" ] && { echo "$2 = {"; exit 0; }
                        echo "Could not find service in domain" >&2; exit 113 ;;
      gui/*) [ -e "$HOME/gui-session" ] && exit 0; echo "Could not find domain for" >&2; exit 113 ;;
      user/*) exit 0 ;;
    esac ;;
  bootstrap)
    case "$2" in gui/*) [ -e "$HOME/gui-session" ] || { echo "Bootstrap failed: 125: Domain does not support specified action" >&2; exit 125; } ;; esac
    [ -e "$HOME/bootstrap-fails" ] && { echo "Bootstrap failed: 5: Input/output error" >&2; exit 5; }
    label=$(basename "$3" .plist)
    [ -f "$state/$(key "$2/$label")" ] && { echo "Bootstrap failed: 5: Input/output error" >&2; exit 5; }
    cp "$3" "$state/$(key "$2/$label")" ;;
  bootout)
    [ -f "$state/$(key "$2")" ] || { echo "Boot-out failed: 3: No such process" >&2; exit 3; }
    rm "$state/$(key "$2")" ;;
  *) echo "Unrecognized subcommand: $1" >&2; exit 64 ;;
esac
"""
FAKE_CRONTAB = """#!/bin/sh
printf '%s\\n' "$*" >> "$HOME/crontab.argv"
case "$1" in
  -l) if [ -f "$HOME/.table" ]; then cat "$HOME/.table"; else echo "no crontab for you" >&2; exit 1; fi ;;
  -) cat > "$HOME/.table" ;;
  -r) if [ -f "$HOME/.table" ]; then rm "$HOME/.table"; else echo "no crontab for you" >&2; exit 1; fi ;;
esac
"""
FAKE_SYSTEMCTL = """#!/bin/sh
printf '%s\\n' "$*" >> "$HOME/systemctl.argv"
[ -e "$HOME/systemd-down" ] && { echo "Failed to connect to bus" >&2; exit 1; }
exit 0
"""


@pytest.fixture
def home(isolated_env: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The tmp HOME with stand-in launchctl, crontab and systemctl first on PATH, and a secret set."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, text in (("launchctl", FAKE_LAUNCHCTL), ("crontab", FAKE_CRONTAB), ("systemctl", FAKE_SYSTEMCTL)):
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:/usr/bin:/bin")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    monkeypatch.setenv("AWS_PROFILE", "dev")
    (isolated_env / "gui-session").touch()
    return isolated_env


def paths_for(home: Path) -> Paths:
    return Paths(config_file=home / ".config" / "pgiam" / "config.toml", state_dir=home / ".local/state/pgiam",
                 data_dir=home / ".local/share/pgiam", pgpass=home / ".pgpass",
                 service_file=home / ".pg_service.conf", home=home)


def calls(home: Path, program: str = "launchctl") -> list[str]:
    log = home / f"{program}.argv"
    return log.read_text().splitlines() if log.exists() else []


def loaded(home: Path) -> list[str]:
    state = home / ".launchd"
    return sorted(p.name for p in state.iterdir()) if state.is_dir() else []


# ---------------------------------------------------------------- the plist


def test_render_parses_with_plistlib_and_has_every_key(tmp_path: Path) -> None:
    env = {"PATH": "bin::/usr/local/bin:/usr/bin", "PGPASSFILE": f"/Users/a/{ODD}", "AWS_PROFILE": "dev",
           "AWS_SECRET_ACCESS_KEY": SECRET}
    log = tmp_path / "state" / "timer.log"
    data = launchd.render_plist(["/opt/pg iam/bin/pgiam", ODD, *timer.REFRESH_ARGS], 240, timer.carried_env(env), log)
    doc = plistlib.loads(data)
    assert doc == {
        "Label": launchd.LABEL,
        "ProgramArguments": ["/opt/pg iam/bin/pgiam", ODD, "refresh", "--if-needed", "--quiet"],
        "StartCalendarInterval": [{"Minute": m} for m in range(0, 60, 4)],
        "RunAtLoad": True,
        "EnvironmentVariables": {"PATH": "/usr/local/bin:/usr/bin", "PGPASSFILE": f"/Users/a/{ODD}"},
        "StandardErrorPath": str(log),
    }
    assert SECRET.encode() not in data and b"AWS_PROFILE" not in data
    assert data.startswith(b"<?xml") and b"<!-- Managed by pgiam" in data and b"pgiam timer remove" in data
    agent = launchd.parse_plist(data)
    assert agent.every == 240 and agent.run_at_load and agent.argv[0] == "/opt/pg iam/bin/pgiam"


@pytest.mark.parametrize(("every", "minutes"), [(60, list(range(60))), (420, [0, 7, 14, 21, 28, 35, 42, 49, 56]),
                                                (3600, [0])])
def test_calendar(every: int, minutes: list[int]) -> None:
    """Minute marks of every hour, like OnCalendar=*:0/M and cron's */M (the last gap of an hour may be shorter)."""
    assert [c["Minute"] for c in launchd.calendar(every)] == minutes
    agent = launchd.parse_plist(launchd.render_plist(["/p"], every, {}, Path("/l")))
    assert agent.every == every


def test_render_refuses_what_a_plist_cannot_hold() -> None:
    with pytest.raises(UsageError, match="control characters"):
        launchd.render_plist(["/opt/pgiam\x01"], 240, {}, Path("/l"))
    with pytest.raises(UsageError, match="absolute"):
        launchd.render_plist(["pgiam"], 240, {}, Path("/l"))
    with pytest.raises(UsageError):
        launchd.parse_plist(b"not a plist")


# ---------------------------------------------------------------- install / remove / status


def test_install_loads_into_the_gui_domain_and_remove_boots_it_out(home: Path) -> None:
    paths = paths_for(home)
    env = {"PATH": os.environ["PATH"], "AWS_PROFILE": "dev", "AWS_SECRET_ACCESS_KEY": SECRET}
    result = timer.install(paths, method="launchd", every=None, enable=True, exe=["/opt/pgiam"], env=env, uid=UID)
    plist = home / "Library" / "LaunchAgents" / "pgiam.refresh.plist"
    assert result.method == "launchd" and result.every == 240 and result.files == (plist,)
    assert stat.S_IMODE(plist.stat().st_mode) == 0o644
    doc = plistlib.loads(plist.read_bytes())
    assert doc["StandardErrorPath"] == str(paths.state_dir / "timer.log") and paths.state_dir.is_dir()
    assert doc["EnvironmentVariables"]["PATH"].startswith(str(home.parent / "bin"))
    assert calls(home)[-1] == f"bootstrap gui/{UID} {plist}"
    assert loaded(home) == [f"gui_{UID}_pgiam.refresh"]
    assert "gui/501" in " ".join(result.notes)

    st = timer.status(paths, uid=UID).launchd
    assert st == timer.LaunchdStatus(str(plist), True, True, f"gui/{UID}", 240)

    # Installing again reloads: bootstrap refuses a loaded label, so pgiam boots it out first.
    timer.install(paths, method="launchd", every=180, enable=True, exe=["/opt/pgiam"], env=env, uid=UID)
    tail = calls(home)[-3:]
    assert tail[0] == f"bootout gui/{UID}/pgiam.refresh" and tail[2] == f"bootstrap gui/{UID} {plist}"
    assert timer.status(paths, uid=UID).launchd.every == 180

    removed = timer.remove(paths, uid=UID)
    assert removed.removed == (str(plist),) and not plist.exists() and loaded(home) == []
    assert f"bootout gui/{UID}/pgiam.refresh" in calls(home)
    assert timer.status(paths, uid=UID).launchd == timer.LaunchdStatus(str(plist), False, True, None, None)
    assert timer.remove(paths, uid=UID).removed == ()
    for path in home.rglob("*"):
        if path.is_file():
            assert SECRET not in path.read_text(errors="replace"), path


def test_over_ssh_the_user_domain_is_used(home: Path) -> None:
    """No GUI session (SSH): `launchctl print gui/UID` fails, so the agent goes to user/UID."""
    (home / "gui-session").unlink()
    paths = paths_for(home)
    timer.install(paths, method="launchd", every=240, enable=True, exe=["/opt/pgiam"], env={}, uid=UID)
    assert calls(home)[-1].startswith(f"bootstrap user/{UID} ") and loaded(home) == [f"user_{UID}_pgiam.refresh"]
    assert timer.status(paths, uid=UID).launchd.loaded == f"user/{UID}"
    # Later, from a GUI login, remove still finds it in the user domain.
    (home / "gui-session").touch()
    timer.remove(paths, method="launchd", uid=UID)
    assert loaded(home) == []


def test_macos_default_is_launchd_and_never_probes_systemd(home: Path) -> None:
    (home / ".table").write_text("MAILTO=x\n*/5 * * * * '/old' refresh # pgiam: managed\n")
    result = timer.install(paths_for(home), method=None, every=None, enable=True, exe=["/opt/pgiam"], env={},
                           platform="darwin", uid=UID)
    assert result.method == "launchd" and calls(home, "systemctl") == []
    assert (home / ".table").read_text() == "MAILTO=x\n"  # one scheduler: the earlier cron line is gone
    assert any("crontab" in n for n in result.notes)
    linux = timer.install(paths_for(home), method=None, every=None, enable=True, exe=["/opt/pgiam"], env={},
                          platform="linux", uid=UID)
    assert linux.method == "systemd"
    assert not launchd.plist_path(paths_for(home)).exists() and loaded(home) == []  # the agent was replaced


def test_no_enable_writes_without_loading(home: Path) -> None:
    result = timer.install(paths_for(home), method="launchd", every=240, enable=False, exe=["/opt/pgiam"], env={},
                           uid=UID)
    assert not result.enabled and result.files[0].exists() and loaded(home) == []
    assert not any(c.startswith("bootstrap") for c in calls(home))
    assert "launchctl bootstrap gui/501" in result.notes[0]


def test_bootstrap_failure_is_an_environment_problem(home: Path) -> None:
    (home / "bootstrap-fails").touch()
    with pytest.raises(EnvironmentProblem, match="Input/output error") as caught:
        timer.install(paths_for(home), method="launchd", every=240, enable=True, exe=["/opt/pgiam"], env={}, uid=UID)
    assert "pgiam timer remove" in (caught.value.hint or "")


def test_remove_without_launchctl_deletes_the_plist(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    paths = paths_for(home)
    timer.install(paths, method="launchd", every=240, enable=False, exe=["/opt/pgiam"], env={}, uid=UID)
    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    removed = timer.remove(paths, method="launchd", uid=UID)
    assert removed.removed and not launchd.plist_path(paths).exists() and "no launchctl" in removed.notes[0]


def test_cli_install_status_remove(home: Path) -> None:
    """Through the CLI (in process), on Linux: `--launchd` works on any platform."""
    from tests.conftest import in_process

    env = {**os.environ, "PATH": f"relative:{os.environ['PATH']}"}

    def pgiam(*argv: str) -> subprocess.CompletedProcess[str]:
        return in_process(*argv, env=env, cwd=home)

    proc = pgiam("timer", "install", "--launchd", "--every", "3m")
    assert proc.returncode == 0, proc.stderr
    plist = home / "Library" / "LaunchAgents" / "pgiam.refresh.plist"
    assert "LaunchAgent every 3 min: loaded" in proc.stdout and str(plist) in proc.stdout
    doc = plistlib.loads(plist.read_bytes())
    assert doc["ProgramArguments"][-3:] == ["refresh", "--if-needed", "--quiet"]
    assert os.path.isabs(doc["ProgramArguments"][0])
    assert "relative" not in doc["EnvironmentVariables"]["PATH"] and "AWS_PROFILE" not in doc["EnvironmentVariables"]
    uid = os.getuid()
    status = pgiam("timer", "status").stdout
    assert f"launchd: {plist} every 3 min (loaded in gui/{uid})" in status
    proc = pgiam("timer", "remove", "--launchd")
    assert proc.returncode == 0 and f"removed {plist}" in proc.stdout and not plist.exists()


def test_no_launchctl_changes_nothing(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """--launchd where there is no launchctl: exit 7 before anything is written; --no-enable still writes."""
    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    paths = paths_for(home)
    with pytest.raises(EnvironmentProblem, match="no launchctl") as caught:
        timer.install(paths, method="launchd", every=240, enable=True, exe=["/opt/pgiam"], env={}, uid=UID)
    assert "--no-enable" in (caught.value.hint or "")
    assert not (home / "Library").exists() and not paths.state_dir.exists()
    result = timer.install(paths, method="launchd", every=240, enable=False, exe=["/opt/pgiam"], env={}, uid=UID)
    assert result.files[0].is_file()
