"""pgiam.timer: units checked by the real systemd-analyze, crontab merges, install/remove/status."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pgiam import freshness, timer
from pgiam.errors import EnvironmentProblem, UsageError
from pgiam.paths import Paths
from tests.tools import require_tool

SECRET = "wJalrXUtnFEMI-SECRET-do-not-leak"
LINE = "*/5 * * * * '/opt/pgiam' refresh --if-needed --quiet # pgiam: managed; remove with pgiam timer remove"
ODD = "dir with 'quotes\" 100% $HOME \\back"  # every character systemd, sh or cron treats specially


def make_exe(directory: Path) -> Path:
    """A dummy executable that prints its argv and the carried variables, one per line."""
    directory.mkdir(parents=True, exist_ok=True)
    exe = directory / "pgiam"
    exe.write_text('#!/bin/sh\nfor a in "$@"; do echo "arg=$a"; done\necho "PGPASSFILE=$PGPASSFILE"\n'
                   'echo "AWS_PROFILE=${AWS_PROFILE-unset}"\necho "SECRET=${AWS_SECRET_ACCESS_KEY-unset}"\n'
                   'echo "PATH=$PATH"\n')
    exe.chmod(0o755)
    return exe


def test_units_pass_systemd_analyze_verify(tmp_path: Path) -> None:
    """The real `systemd-analyze --user verify` accepts both units and finds ExecStart's odd path."""
    analyze = require_tool("systemd-analyze", "systemd")
    # systemd refuses quotes and backslashes in an executable's path (see the next test); the rest must work.
    exe = make_exe(tmp_path / "dir with 100% $HOME")
    env = {"PGPASSFILE": str(tmp_path / "pg 100%.pass"), "AWS_PROFILE": "dev", "AWS_SECRET_ACCESS_KEY": SECRET,
           "PATH": f"bin::{tmp_path}/odd 100% $x:/usr/bin:."}
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
    assert "AWS_PROFILE" not in service  # the profile is recorded per service in pgiam's config (issue 12)
    assert 'Environment="PATH=/bin"\n' in service  # first, so a credential_process named bare is found
    assert service.index("PATH=/bin") < service.index("PGPASSFILE")
    assert SECRET not in service
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
    path = f"{tmp_path}/it's 5% $HOME:/usr/bin:/bin"
    env = {"PGPASSFILE": str(tmp_path / "it's 50% done"), "AWS_PROFILE": "dev", "AWS_SECRET_ACCESS_KEY": SECRET,
           "PATH": f"::relative/bin:{path}:."}
    line = timer.render_cron_line([str(exe), "--x=a%b"], 300, env)
    assert line.startswith("*/5 * * * * ") and line.endswith(timer.CRON_COMMENT)
    assert SECRET not in line and "\n" not in line
    command = line.split(" ", 5)[5]
    assert "%" not in command.replace("\\%", "")  # every % escaped, else cron cuts the line there
    shell_text = command.replace("\\%", "%")  # what cron hands to sh (it drops the backslash of \%)
    out = subprocess.run(["/bin/sh", "-c", shell_text], capture_output=True, text=True,
                         env={"PATH": "/usr/bin:/bin"}, timeout=10).stdout.splitlines()
    assert out == ["arg=--x=a%b", "arg=refresh", "arg=--if-needed", "arg=--quiet",
                   f"PGPASSFILE={env['PGPASSFILE']}", "AWS_PROFILE=unset", "SECRET=unset", f"PATH={path}"]


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
  -r) if [ -f "$HOME/.table" ]; then rm "$HOME/.table"; else echo "no crontab for $(id -un)" >&2; exit 1; fi ;;
  *) echo "usage: crontab [-l | - | -r]" >&2; exit 2 ;;
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
    assert timer.status(paths).cron == timer.CronStatus(True, None)  # "no crontab for" is empty

    result = timer.install(paths, method=None, every=240, enable=True, exe=["/opt/pgiam"], env=env)
    assert result.method == "cron" and result.enabled
    assert (home / ".table").read_text() == result.cron_line + "\n"

    foreign = "MAILTO=me@example.com\n# keep me\n\n0 4 * * * /bin/true"
    (home / ".table").write_text(foreign)
    timer.install(paths, method="cron", every=180, enable=True, exe=["/opt/pgiam"], env=env)
    timer.install(paths, method="cron", every=180, enable=True, exe=["/opt/pgiam"], env=env)
    table = (home / ".table").read_text()
    assert table.count(timer.CRON_MARKER) == 1 and "*/3 * * * * PGPASSFILE=" in table
    assert timer.strip_crontab(table) == foreign

    state = timer.status(paths)
    assert state.cron.line and state.cron.line.startswith("*/3 ")
    assert state.systemd == timer.SystemdStatus({timer.SERVICE: False, timer.TIMER: False}, False, None, None)

    assert timer.remove(paths).removed == ("crontab line",)
    assert (home / ".table").read_text() == foreign
    assert timer.remove(paths).removed == ()
    assert set(argv_log(home, "crontab")) == {"-l", "-"}  # only through crontab -l and crontab -
    assert_no_secret(home)


def test_a_crontab_that_held_only_pgiam_is_removed_not_left_empty(home: Path, run_cli) -> None:
    """Issue 24: a user with no crontab before `timer install --cron` has none after `timer remove` or
    `uninstall --yes` (`crontab -r`), not an empty table; a table with anything else in it stays."""
    (home / "systemd-down").touch()
    paths = paths_for(home)
    timer.install(paths, method="cron", every=240, enable=True, exe=["/opt/pgiam"], env={})
    assert (home / ".table").read_text().count(timer.CRON_MARKER) == 1
    assert timer.remove(paths).removed == ("crontab line",)
    assert not (home / ".table").exists() and argv_log(home, "crontab")[-2:] == ["-l", "-r"]
    assert timer.remove(paths).removed == ()  # nothing there: nothing done
    assert argv_log(home, "crontab")[-1] == "-l"

    code, _, err = run_cli("timer", "install", "--cron")
    assert code == 0, err
    assert (home / ".table").exists()
    code, _, err = run_cli("uninstall", "--yes")
    assert code == 0, err
    assert not (home / ".table").exists() and argv_log(home, "crontab")[-1] == "-r"

    (home / ".table").write_text("\n")  # a table of its own, even a blank one, is kept
    timer.install(paths, method="cron", every=240, enable=True, exe=["/opt/pgiam"], env={})
    assert timer.remove(paths).removed == ("crontab line",)
    assert (home / ".table").read_text() == "\n"


def test_systemd_install_remove_status(home: Path) -> None:
    """A reachable manager is the default: units written, reloaded, enabled; remove undoes it all."""
    paths = paths_for(home)
    (home / ".table").write_text("MAILTO=x\n" + LINE + "\n")  # an earlier cron install
    env = {"XDG_CONFIG_HOME": str(home / ".config"), "AWS_SECRET_ACCESS_KEY": SECRET}
    result = timer.install(paths, method=None, every=240, enable=True, exe=["/opt/pgiam", "-m"], env=env)
    assert result.method == "systemd" and result.enabled
    unit_dir = home / ".config" / "systemd" / "user"
    assert sorted(p.name for p in result.files) == [timer.SERVICE, timer.TIMER]
    assert (unit_dir / timer.TIMER).read_text() == timer.render_units(["/opt/pgiam", "-m"], 240, env)[timer.TIMER]
    assert oct((unit_dir / timer.SERVICE).stat().st_mode & 0o777) == "0o644"
    calls = argv_log(home, "systemctl")
    assert calls[-2:] == ["--user daemon-reload", f"--user enable --now {timer.TIMER}"]
    assert (home / ".table").read_text() == "MAILTO=x\n"  # one scheduler only

    state = timer.status(paths)
    assert state.systemd == timer.SystemdStatus({timer.SERVICE: True, timer.TIMER: True}, True, "enabled", "active")

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
        timer.install(paths, method="systemd", every=240, enable=True, exe=["/opt/pgiam"], env={})
    assert "no systemd user manager is reachable" in caught.value.message
    assert "loginctl enable-linger" in caught.value.hint and "--cron" in caught.value.hint
    assert not paths.systemd_user_dir.exists()

    result = timer.install(paths, method="systemd", every=240, enable=False, exe=["/opt/pgiam"], env={})
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
        timer.install(paths_for(home), method="cron", every=240, enable=True, exe=["/opt/pgiam"], env={})


def test_unknown_method_is_usage_error(home: Path) -> None:
    with pytest.raises(UsageError):
        timer.install(paths_for(home), method="anacron", every=240, enable=True, exe=["/opt/pgiam"], env={})


def test_cron_no_enable_touches_nothing(home: Path) -> None:
    """--cron --no-enable only renders the line; the crontab is not read or written."""
    result = timer.install(paths_for(home), method="cron", every=240, enable=False, exe=["/opt/pgiam"], env={})
    assert not result.enabled and result.cron_line and result.cron_line.startswith("*/4 * * * * '/opt/pgiam' ")
    assert argv_log(home, "crontab") == [] and argv_log(home, "systemctl") == []


def test_default_install_with_neither_systemd_nor_cron_says_both(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(timer, "systemd_reachable", lambda: False)
    monkeypatch.setattr(timer, "crontab_available", lambda: False)
    paths = Paths.from_env()
    exe = tmp_path / "pgiam"
    exe.write_text("#!/bin/sh\n")
    exe.chmod(0o755)
    with pytest.raises(EnvironmentProblem) as err:
        timer.install(paths, method=None, every=240, enable=True, exe=[str(exe)], env={})
    assert "no crontab" in err.value.message and "enable-linger" in (err.value.hint or "")
    assert not paths.systemd_user_dir.exists()


# ---------------------------------------------------------------- PATH and path variables (issue 12)


@pytest.mark.parametrize(("given", "carried"), [
    ("/usr/local/bin:/usr/bin:/bin", "/usr/local/bin:/usr/bin:/bin"),
    ("::/a::b:./c:/d:.:", "/a:/d"),  # empty and relative entries name the shell's working directory
    ("/a:/b:/a", "/a:/b"),  # repeats dropped, first place kept
    ("bin:.", ""),
    ("", ""),
])
def test_clean_path(given: str, carried: str) -> None:
    assert timer.clean_path(given) == carried


def test_carried_env_has_path_first_and_no_profile() -> None:
    """PATH goes first (cleaned); AWS_PROFILE and secrets are never carried; empty variables mean unset."""
    env = {"AWS_PROFILE": "dev", "AWS_SECRET_ACCESS_KEY": SECRET, "PGPASSFILE": "/p", "PGSERVICEFILE": "",
           "PATH": "x:/usr/bin", "AWS_CONFIG_FILE": "~/.aws/config"}
    assert list(timer.carried_env(env).items()) == [("PATH", "/usr/bin"), ("PGPASSFILE", "/p"),
                                                     ("AWS_CONFIG_FILE", "~/.aws/config")]
    assert timer.carried_env({"PATH": "bin"}) == {}  # nothing absolute: cron's and systemd's defaults apply


@pytest.mark.parametrize("name", ["PGPASSFILE", "PGSERVICEFILE", "XDG_CONFIG_HOME", "XDG_STATE_HOME",
                                  "XDG_DATA_HOME", "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE"])
@pytest.mark.parametrize("method", ["systemd", "cron", "launchd"])
def test_relative_path_variables_are_refused(home: Path, name: str, method: str) -> None:
    """A relative PGPASSFILE (etc.) would name other files from the timer's directory: refused, nothing written."""
    env = {name: "rel/file", "PATH": "/usr/bin"}
    with pytest.raises(UsageError) as caught:
        timer.install(paths_for(home), method=method, every=240, enable=True, exe=["/opt/pgiam"], env=env,
                      uid=501)
    assert name in caught.value.message and "relative" in caught.value.message
    assert "absolute" in (caught.value.hint or "")
    assert argv_log(home, "crontab") == [] and argv_log(home, "systemctl") == []
    assert not (home / ".config" / "systemd").exists() and not (home / "Library").exists()
    # libpq expands no `~` (PGPASSFILE...): refused too; botocore expands it in its two file variables.
    tilde = {name: "~/file"}
    if name in timer.TILDE_OK:
        assert timer.carried_env(tilde) == tilde
    else:
        with pytest.raises(UsageError):
            timer.carried_env(tilde)


# ---------------------------------------------------------------- the longest safe interval (issue 12)


def simulate(every: int, margin: int, minted_at: float, runs: list[tuple[float, float, float]],
             hours: int = 4) -> float | None:
    """`refresh --if-needed` at each calendar run, judged by freshness.due_at: when the file first
    held no valid token (None: never).

    The timer fires at minute 0, M, 2M... of every hour (OnCalendar=*:0/M, cron's */M, launchd's
    minute list); each run starts `delay` late, signs its token `sign` seconds after starting and
    has it in the file `took` seconds after starting (sign <= took), cycling through `runs`.
    """
    signed, expires = minted_at, minted_at + freshness.TOKEN_LIFETIME
    k = 0
    for hour in range(hours):
        for minute in range(0, 60, every // 60):
            delay, took, sign_frac = runs[k % len(runs)]
            k += 1
            start = hour * 3600 + minute * 60 + delay
            if start < minted_at:
                continue
            if start >= expires:
                return expires
            if start >= freshness.due_at(signed, expires, margin):
                if start + took >= expires:
                    return expires
                signed = start + sign_frac * took
                expires = signed + freshness.TOKEN_LIFETIME
    return None


run_variation = st.tuples(st.floats(0, timer.START_DELAY), st.floats(0, timer.REFRESH_TIME), st.floats(0, 1))


@given(margin=st.integers(timer.MIN_EVERY + timer.ACCURACY, freshness.TOKEN_LIFETIME - 60),
       pick=st.integers(0, 59), minted_at=st.floats(0, 3600), runs=st.lists(run_variation, min_size=1, max_size=7))
def test_accepted_intervals_never_let_a_token_expire(margin: int, pick: int, minted_at: float,
                                                     runs: list[tuple[float, float, float]]) -> None:
    """Every interval check_every accepts keeps a valid token in the file at every instant, whatever the
    margin, the phase of the first token, the start delays and the refresh durations within ACCURACY."""
    longest = timer.max_every(margin)
    every = 60 * (1 + pick % (longest // 60))
    timer.check_every(every, margin)
    assert simulate(every, margin, minted_at, runs) is None


@pytest.mark.parametrize("margin", [90, 120, 300, 420, 450, 600, 840])
def test_the_limit_is_tight(margin: int) -> None:
    """One minute more than max_every lets a token expire: a run finds it just short of due and the
    next run starts START_DELAY late and takes REFRESH_TIME. At max_every the same worst case holds."""
    longest = timer.max_every(margin)
    window = timer.margin_window(margin)
    assert window == min(margin, freshness.TOKEN_LIFETIME // 2)  # due_at renews half-way at the latest
    for every, expires in ((longest, False), (longest + 60, True)):
        # A run on the hour (3600) finds the token due 0.5 s later; the next run is `every` later.
        minted_at = 3600 + 0.5 - (freshness.TOKEN_LIFETIME - window)
        per_hour = len(range(0, 60, every // 60))
        on_time, late = (0.0, 0.0, 0.0), (float(timer.START_DELAY), float(timer.REFRESH_TIME), 1.0)
        runs = [on_time] * (per_hour + 1) + [late] + [on_time] * (4 * per_hour)  # run per_hour is 1:00
        got = simulate(every, margin, minted_at, runs)
        assert (got is not None) == expires, (every, got)
        if expires:
            with pytest.raises(UsageError) as caught:
                timer.check_every(every, margin)
            assert f"at most {window - timer.ACCURACY} s apart" in caught.value.message
            assert f"--every {longest // 60}m" in (caught.value.hint or "")
        else:
            timer.check_every(every, margin)


@pytest.mark.parametrize(("margin", "default"), [(90, 60), (300, 240), (360, 300), (450, 420), (840, 420)])
def test_default_interval_is_the_longest_safe_one(margin: int, default: int) -> None:
    assert timer.max_every(margin) == default


def test_old_default_and_an_hour_are_refused_at_the_default_margin() -> None:
    """The issue's cases: 60m leaves tokens expired most of the hour; 5m too can miss by the accuracy."""
    for every in (3600, 300):
        with pytest.raises(UsageError, match="could let tokens expire"):
            timer.check_every(every, 300)
        minted_at = 3600 + 0.5 - (freshness.TOKEN_LIFETIME - 300)
        per_hour = len(range(0, 60, every // 60))
        runs = [(0.0, 0.0, 0.0)] * (per_hour + 1) + [(float(timer.START_DELAY), float(timer.REFRESH_TIME), 1.0)]
        assert simulate(every, 300, minted_at, runs + [(0.0, 0.0, 0.0)] * 4 * per_hour) is not None


def test_margin_too_short_for_any_timer() -> None:
    with pytest.raises(UsageError) as caught:
        timer.check_every(60, 60)
    assert "too short for any timer" in caught.value.message and "90 s" in (caught.value.hint or "")


def test_install_default_every_follows_the_margin(home: Path) -> None:
    (home / "systemd-down").touch()
    result = timer.install(paths_for(home), method="cron", every=None, margin=450, enable=False,
                           exe=["/opt/pgiam"], env={})
    assert result.every == 420 and result.cron_line and result.cron_line.startswith("*/7 ")
    with pytest.raises(UsageError):
        timer.install(paths_for(home), method="cron", every=300, margin=300, enable=False, exe=["/opt/pgiam"], env={})


# ---------------------------------------------------------------- the CLI, as a subprocess


def pgiam(home: Path, *argv: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """`pgiam ARGV` in this process (the unit tier starts no pgiam process), with `env` added to the environment."""
    from tests.conftest import in_process

    return in_process(*argv, env={**os.environ, **(env or {})}, cwd=home)


def test_cli_refuses_an_unsafe_interval_naming_the_limit(home: Path) -> None:
    """`--every 60m` (issue 12): exit 2, the limit and the margin named, nothing installed."""
    cfg = home / ".config" / "pgiam"
    cfg.mkdir(parents=True)
    (cfg / "config.toml").write_text("[defaults]\nrenewal_margin = 400\n")
    proc = pgiam(home, "timer", "install", "--cron", "--every", "60m")
    assert proc.returncode == 2, proc.stderr
    assert "could let tokens expire" in proc.stderr and "renewal_margin 400 s" in proc.stderr
    assert "at most 370 s apart" in proc.stderr and "hint: use --every 6m or less" in proc.stderr
    assert argv_log(home, "crontab") == []
    proc = pgiam(home, "timer", "install", "--cron")
    assert proc.returncode == 0, proc.stderr
    assert "crontab line every 6 min" in proc.stdout and (home / ".table").read_text().startswith("*/6 * * * * PATH=")


def test_cli_status_json_and_text(home: Path) -> None:
    """`timer status --json`: the envelope with systemd, cron and launchd records; text names all three."""
    import json

    (home / "systemd-down").touch()
    assert pgiam(home, "timer", "install", "--cron", "--every", "2m").returncode == 0
    proc = pgiam(home, "timer", "status", "--json")
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["schema"] == 1 and doc["command"] == "timer status"
    assert set(doc["timer"]) == {"systemd", "cron", "launchd"}
    assert doc["timer"]["cron"]["line"].startswith("*/2 ") and doc["timer"]["cron"]["error"] is None
    assert doc["timer"]["systemd"]["manager_reachable"] is False
    assert doc["timer"]["launchd"]["installed"] is False
    text = pgiam(home, "timer", "status").stdout
    assert "cron: */2 " in text and "launchd: no LaunchAgent" in text
