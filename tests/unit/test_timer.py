"""pgiam.timer: units checked by the real systemd-analyze, crontab merges, install/remove/status."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pgiam import timer
from pgiam.errors import EnvironmentProblem, UsageError
from pgiam.paths import Paths

SECRET = "wJalrXUtnFEMI-SECRET-do-not-leak"
LINE = "*/5 * * * * '/opt/pgiam' refresh --if-needed --quiet # pgiam: managed; remove with pgiam timer remove"
ODD = "dir with 'quotes\" 100% $HOME \\back"  # every character systemd, sh or cron treats specially


def make_exe(directory: Path) -> Path:
    """A dummy executable that prints its argv and the carried variables, one per line."""
    directory.mkdir(parents=True, exist_ok=True)
    exe = directory / "pgiam"
    exe.write_text('#!/bin/sh\nfor a in "$@"; do echo "arg=$a"; done\necho "PGPASSFILE=$PGPASSFILE"\n'
                   'echo "AWS_PROFILE=$AWS_PROFILE"\necho "SECRET=${AWS_SECRET_ACCESS_KEY-unset}"\n')
    exe.chmod(0o755)
    return exe


def test_units_pass_systemd_analyze_verify(tmp_path: Path) -> None:
    """The real `systemd-analyze --user verify` accepts both units and finds ExecStart's odd path."""
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        if os.environ.get("PGIAM_ALLOW_SKIP_E2E") == "1":
            pytest.skip("systemd-analyze is not installed")
        pytest.fail("systemd-analyze is not installed (apt-get install -y systemd)")
    # systemd refuses quotes and backslashes in an executable's path (see the next test); the rest must work.
    exe = make_exe(tmp_path / "dir with 100% $HOME")
    env = {"PGPASSFILE": str(tmp_path / "pg 100%.pass"), "AWS_PROFILE": "dev", "AWS_SECRET_ACCESS_KEY": SECRET}
    units = timer.render_units([str(exe), "-X", ODD], 300, env)
    unit_dir = tmp_path / "units"
    unit_dir.mkdir()
    for name, text in units.items():
        (unit_dir / name).write_text(text)
    run_dir = tmp_path / "run"
    run_dir.mkdir(mode=0o700)
    # --user needs a runtime directory even offline; this machine runs the tests as root.
    verify_env = {**os.environ, "XDG_RUNTIME_DIR": str(run_dir)}
    argv = [analyze, "--user", "verify", *(str(unit_dir / n) for n in units)]
    proc = subprocess.run(argv, capture_output=True, text=True, env=verify_env, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "pgiam-refresh" not in proc.stderr  # no warning (unknown key, bad value) about our units
    # Control: the same units pointing at a path that does not exist fail, so the quoting is what passed.
    exe.rename(exe.with_name("gone"))
    proc = subprocess.run(argv, capture_output=True, text=True, env=verify_env, timeout=60)
    assert proc.returncode != 0 and "is not executable" in proc.stderr


@pytest.mark.parametrize("bad", ["it's", 'a"b', "a\\b", "a\tb"])
def test_units_refuse_paths_systemd_cannot_run(bad: str) -> None:
    """A quote, backslash or control character in the program's path: a UsageError naming --cron."""
    with pytest.raises(UsageError) as caught:
        timer.render_units([f"/opt/{bad}/pgiam"], 300, {})
    assert "--cron" in caught.value.hint


@pytest.mark.parametrize("every", [60, 300, 420, 900, 3600])
def test_on_calendar_is_valid_for_systemd(every: int) -> None:
    """systemd-analyze calendar parses every OnCalendar= value pgiam writes."""
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.fail("systemd-analyze is not installed")
    proc = subprocess.run([analyze, "calendar", timer.on_calendar(every)], capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0, proc.stderr


def test_render_units_content() -> None:
    """Oneshot, quoted ExecStart, path variables only, persistent timer, banner naming the removal command."""
    env = {"PGPASSFILE": '/h/a "b" 5%.pass', "XDG_STATE_HOME": "/h/$state", "AWS_PROFILE": "dev",
           "AWS_SECRET_ACCESS_KEY": SECRET, "AWS_SESSION_TOKEN": SECRET, "PATH": "/bin", "PGSERVICEFILE": ""}
    units = timer.render_units(["/opt/my pgiam/bin/pgiam", "-X", "100%"], 300, env)
    service, tmr = units[timer.SERVICE], units[timer.TIMER]
    assert 'ExecStart="/opt/my pgiam/bin/pgiam" "-X" "100%%" refresh --if-needed --quiet\n' in service
    assert "Type=oneshot\n" in service
    assert 'Environment="PGPASSFILE=/h/a \\"b\\" 5%%.pass"\n' in service
    assert 'Environment="XDG_STATE_HOME=/h/$state"\n' in service  # Environment= does not expand $
    assert 'Environment="AWS_PROFILE=dev"\n' in service
    assert SECRET not in service and "PATH=" not in service.replace("PGPASSFILE=", "")
    assert "PGSERVICEFILE" not in service  # empty means unset
    for text in (service, tmr):
        assert text.startswith("# Managed by pgiam") and "`pgiam timer remove`" in text
    for needed in ("OnCalendar=*:0/5\n", "Persistent=true\n", "AccuracySec=15s\n", "WantedBy=timers.target\n"):
        assert needed in tmr
    assert timer.render_units(["/p"], 3600, {})[timer.TIMER].count("OnCalendar=*:00\n") == 1
    with pytest.raises(UsageError):
        timer.render_units(["pgiam"], 300, {})  # relative: systemd needs an absolute path


@pytest.mark.parametrize(("text", "seconds"), [
    ("5m", 300), ("1m", 60), ("60m", 3600), ("1h", 3600), ("120s", 120), ("15 min", 900), (" 10M ", 600),
])
def test_parse_every(text: str, seconds: int) -> None:
    assert timer.parse_every(text) == seconds


@pytest.mark.parametrize("text", ["90s", "30s", "0m", "61m", "2h", "5", "m", "", "five minutes", "-5m", "5x", "1.5m"])
def test_parse_every_refuses(text: str) -> None:
    """Nonsense, sub-minute or not whole minutes (refused, never rounded), out of 1m..60m."""
    with pytest.raises(UsageError):
        timer.parse_every(text)


@pytest.mark.parametrize(("every", "fields"), [(60, "* * * * *"), (300, "*/5 * * * *"), (3600, "0 * * * *")])
def test_cron_schedule(every: int, fields: str) -> None:
    assert timer.cron_schedule(every) == fields


def test_cron_line_runs_as_cron_would(tmp_path: Path) -> None:
    """After cron's % handling, /bin/sh runs exactly our argv with the path variables set."""
    exe = make_exe(tmp_path / ODD)
    env = {"PGPASSFILE": str(tmp_path / "it's 50% done"), "AWS_PROFILE": "dev", "AWS_SECRET_ACCESS_KEY": SECRET}
    line = timer.render_cron_line([str(exe), "--x=a%b"], 300, env)
    assert line.startswith("*/5 * * * * ") and line.endswith(timer.CRON_COMMENT)
    assert SECRET not in line and "\n" not in line
    command = line.split(" ", 5)[5]
    assert "%" not in command.replace("\\%", "")  # every % escaped, else cron cuts the line there
    shell_text = command.replace("\\%", "%")  # what cron hands to sh (it drops the backslash of \%)
    out = subprocess.run(["/bin/sh", "-c", shell_text], capture_output=True, text=True,
                         env={"PATH": "/usr/bin:/bin"}, timeout=10).stdout.splitlines()
    assert out == ["arg=--x=a%b", "arg=refresh", "arg=--if-needed", "arg=--quiet",
                   f"PGPASSFILE={env['PGPASSFILE']}", "AWS_PROFILE=dev", "SECRET=unset"]


FOREIGN = "MAILTO=ops@example.com\n# nightly backup\n\n0 3 * * * /usr/bin/backup --all\n"


@pytest.mark.parametrize(("before", "after"), [
    ("", LINE + "\n"),
    (FOREIGN, FOREIGN + LINE + "\n"),
    # no final newline: the foreign last line is kept as it is, ours goes before it
    ("MAILTO=a\n0 1 * * * /bin/x", "MAILTO=a\n" + LINE + "\n0 1 * * * /bin/x"),
    ("0 1 * * * /bin/x", LINE + "\n0 1 * * * /bin/x"),
    # CRLF lines are foreign bytes too
    ("MAILTO=a\r\n# c\r\n", "MAILTO=a\r\n# c\r\n" + LINE + "\n"),
    # an older pgiam line is replaced in place; a second copy is dropped
    ("A=1\n*/9 * * * * '/old' refresh # pgiam: managed\nB=2\n",
     "A=1\n" + LINE + "\nB=2\n"),
    ("x\n# pgiam: managed 1\ny\n# pgiam: managed 2\n", "x\n" + LINE + "\ny\n"),
    ("\n\n", "\n\n" + LINE + "\n"),
])
def test_merge_crontab(before: str, after: str) -> None:
    """Table-driven merge, plus idempotence on each case."""
    assert timer.merge_crontab(before, LINE) == after
    assert timer.merge_crontab(after, LINE) == after


@pytest.mark.parametrize(("before", "after"), [
    ("", ""),
    (FOREIGN + LINE + "\n", FOREIGN),
    ("MAILTO=a\n" + LINE + "\n0 1 * * * /bin/x", "MAILTO=a\n0 1 * * * /bin/x"),
    ("A\r\n" + LINE + "\r\nB", "A\r\nB"),
    ("a\n" + LINE, "a\n"),  # ours hand-edited into an unterminated last line
    (FOREIGN, FOREIGN),
])
def test_strip_crontab(before: str, after: str) -> None:
    assert timer.strip_crontab(before) == after


foreign_line = st.text(st.characters(blacklist_characters="\n", blacklist_categories=("Cs",)), max_size=40).filter(
    lambda s: timer.CRON_MARKER not in s)
foreign_table = st.builds(lambda lines, final: "\n".join(lines) + ("\n" if final and lines else ""),
                          st.lists(foreign_line, max_size=8), st.booleans())


@given(foreign_table)
def test_merge_strip_properties(text: str) -> None:
    """Foreign bytes survive a merge; merge is idempotent; strip undoes merge; exactly one line is ours."""
    merged = timer.merge_crontab(text, LINE)
    assert timer.strip_crontab(merged) == text
    assert timer.merge_crontab(merged, LINE) == merged
    assert merged.split("\n").count(LINE) == 1
    assert timer.strip_crontab(text) == text


# ---------------------------------------------------------------- install / remove / status

FAKE_CRONTAB = """#!/bin/sh
# Stand-in for crontab(1): the table lives in $HOME/.table; every call is logged.
printf '%s\\n' "$*" >> "$HOME/crontab.argv"
case "$1" in
  -l) if [ -f "$HOME/.table" ]; then cat "$HOME/.table"; else echo "no crontab for $(id -un)" >&2; exit 1; fi ;;
  -) cat > "$HOME/.table.new" && mv "$HOME/.table.new" "$HOME/.table" ;;
  *) echo "usage: crontab [-l | -]" >&2; exit 2 ;;
esac
"""
FAKE_SYSTEMCTL = """#!/bin/sh
# Stand-in for systemctl: reachable unless $HOME/systemd-down exists; every call is logged.
printf '%s\\n' "$*" >> "$HOME/systemctl.argv"
if [ -e "$HOME/systemd-down" ]; then echo "Failed to connect to bus: No medium found" >&2; exit 1; fi
case "$2" in
  is-enabled) echo enabled ;;
  is-active) echo active ;;
esac
exit 0
"""


@pytest.fixture
def home(isolated_env: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The tmp HOME (tests/conftest.py) with stand-in crontab and systemctl first on PATH, and a secret set."""
    home = isolated_env
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, text in (("crontab", FAKE_CRONTAB), ("systemctl", FAKE_SYSTEMCTL)):
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod(0o755)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("PATH", f"{bin_dir}:/usr/bin:/bin")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    return home


def paths_for(home: Path) -> Paths:
    """Paths rooted in the tmp HOME (XDG defaults)."""
    return Paths(config_file=home / ".config" / "pgiam" / "config.toml", state_dir=home / ".local/state/pgiam",
                 data_dir=home / ".local/share/pgiam", pgpass=home / ".pgpass",
                 service_file=home / ".pg_service.conf", home=home)


def argv_log(home: Path, program: str) -> list[str]:
    log = home / f"{program}.argv"
    return log.read_text().splitlines() if log.exists() else []


def assert_no_secret(home: Path) -> None:
    """The secret reached no argv, no unit file and no crontab."""
    for path in home.rglob("*"):
        if path.is_file():
            assert SECRET not in path.read_text(errors="replace"), path


def test_cron_install_remove_status(home: Path) -> None:
    """No user manager: cron; installing twice leaves one line; remove restores the table byte for byte."""
    (home / "systemd-down").touch()
    paths = paths_for(home)
    env = {"PGPASSFILE": str(home / "p ass"), "AWS_SECRET_ACCESS_KEY": SECRET}
    assert timer.status(paths)["cron"] == {"available": True, "line": None}  # "no crontab for" is empty

    result = timer.install(paths, method=None, every=300, enable=True, exe=["/opt/pgiam"], env=env)
    assert result.method == "cron" and result.enabled
    assert (home / ".table").read_text() == result.cron_line + "\n"

    foreign = "MAILTO=me@example.com\n# keep me\n\n0 4 * * * /bin/true"
    (home / ".table").write_text(foreign)
    timer.install(paths, method="cron", every=600, enable=True, exe=["/opt/pgiam"], env=env)
    timer.install(paths, method="cron", every=600, enable=True, exe=["/opt/pgiam"], env=env)
    table = (home / ".table").read_text()
    assert table.count(timer.CRON_MARKER) == 1 and "*/10 * * * * PGPASSFILE=" in table
    assert timer.strip_crontab(table) == foreign

    state = timer.status(paths)
    assert state["cron"]["line"].startswith("*/10 ")
    assert state["systemd"] == {"units": {timer.SERVICE: False, timer.TIMER: False}, "manager_reachable": False,
                                "enabled": None, "active": None}

    assert timer.remove(paths).removed == ("crontab line",)
    assert (home / ".table").read_text() == foreign
    assert timer.remove(paths).removed == ()
    assert set(argv_log(home, "crontab")) == {"-l", "-"}  # only through crontab -l and crontab -
    assert_no_secret(home)


def test_systemd_install_remove_status(home: Path) -> None:
    """A reachable manager is the default: units written, reloaded, enabled; remove undoes it all."""
    paths = paths_for(home)
    (home / ".table").write_text("MAILTO=x\n" + LINE + "\n")  # an earlier cron install
    env = {"XDG_CONFIG_HOME": str(home / ".config"), "AWS_SECRET_ACCESS_KEY": SECRET}
    result = timer.install(paths, method=None, every=300, enable=True, exe=["/opt/pgiam", "-m"], env=env)
    assert result.method == "systemd" and result.enabled
    unit_dir = home / ".config" / "systemd" / "user"
    assert sorted(p.name for p in result.files) == [timer.SERVICE, timer.TIMER]
    assert (unit_dir / timer.TIMER).read_text() == timer.render_units(["/opt/pgiam", "-m"], 300, env)[timer.TIMER]
    assert oct((unit_dir / timer.SERVICE).stat().st_mode & 0o777) == "0o644"
    calls = argv_log(home, "systemctl")
    assert calls[-2:] == ["--user daemon-reload", f"--user enable --now {timer.TIMER}"]
    assert (home / ".table").read_text() == "MAILTO=x\n"  # one scheduler only

    state = timer.status(paths)
    assert state["systemd"] == {"units": {timer.SERVICE: True, timer.TIMER: True}, "manager_reachable": True,
                                "enabled": "enabled", "active": "active"}

    removed = timer.remove(paths)
    assert sorted(Path(p).name for p in removed.removed) == [timer.SERVICE, timer.TIMER]
    assert not any(unit_dir.iterdir())
    assert argv_log(home, "systemctl")[-2:] == [f"--user disable --now {timer.TIMER}", "--user daemon-reload"]
    assert_no_secret(home)


def test_systemd_requested_without_manager(home: Path) -> None:
    """--systemd without a user manager: an EnvironmentProblem naming the fixes; --no-enable only writes."""
    (home / "systemd-down").touch()
    paths = paths_for(home)
    with pytest.raises(EnvironmentProblem) as caught:
        timer.install(paths, method="systemd", every=300, enable=True, exe=["/opt/pgiam"], env={})
    assert "no systemd user manager is reachable" in caught.value.message
    assert "loginctl enable-linger" in caught.value.hint and "--cron" in caught.value.hint
    assert not paths.systemd_user_dir.exists()

    result = timer.install(paths, method="systemd", every=300, enable=False, exe=["/opt/pgiam"], env={})
    assert not result.enabled and all(p.exists() for p in result.files)
    assert not any("enable" in call for call in argv_log(home, "systemctl"))
    # remove without a manager still deletes the files (and says the manager could not be told)
    removed = timer.remove(paths, method="systemd")
    assert len(removed.removed) == 2 and removed.notes


def test_cron_failure_is_reported(home: Path) -> None:
    """crontab refusing the table is an EnvironmentProblem, not a silent success."""
    (home / "systemd-down").touch()
    (home.parent / "bin" / "crontab").write_text("#!/bin/sh\n[ \"$1\" = -l ] && exit 0\necho 'bad minute' >&2\nexit 1\n")
    with pytest.raises(EnvironmentProblem, match="bad minute"):
        timer.install(paths_for(home), method="cron", every=300, enable=True, exe=["/opt/pgiam"], env={})


def test_unknown_method_is_usage_error(home: Path) -> None:
    with pytest.raises(UsageError):
        timer.install(paths_for(home), method="launchd", every=300, enable=True, exe=["/opt/pgiam"], env={})


def test_cron_no_enable_touches_nothing(home: Path) -> None:
    """--cron --no-enable only renders the line; the crontab is not read or written."""
    result = timer.install(paths_for(home), method="cron", every=300, enable=False, exe=["/opt/pgiam"], env={})
    assert not result.enabled and result.cron_line and result.cron_line.startswith("*/5 * * * * '/opt/pgiam' ")
    assert argv_log(home, "crontab") == [] and argv_log(home, "systemctl") == []


def test_default_install_with_neither_systemd_nor_cron_says_both(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(timer, "systemd_reachable", lambda: False)
    monkeypatch.setattr(timer, "crontab_available", lambda: False)
    paths = Paths.from_env()
    exe = tmp_path / "pgiam"
    exe.write_text("#!/bin/sh\n")
    exe.chmod(0o755)
    with pytest.raises(EnvironmentProblem) as err:
        timer.install(paths, method=None, every=300, enable=True, exe=[str(exe)], env={})
    assert "no crontab" in err.value.message and "enable-linger" in (err.value.hint or "")
    assert not paths.systemd_user_dir.exists()
