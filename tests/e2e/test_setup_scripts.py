"""The README's set-up scripts (issue 26): scripts/apt-install installs what is missing as root or through sudo
and otherwise names the one command to run; scripts/test names every missing tool before any test runs.

apt-get, dpkg-query, sudo and id are stand-ins on PATH that record their arguments: nothing is installed.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def fake_bin(tmp_path: Path, uid: int, sudo: bool, installed: set[str]) -> tuple[Path, Path]:
    """A PATH directory with recording stand-ins for id, dpkg-query, apt-get (and sudo); the log they write."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    log = tmp_path / "calls.log"
    log.write_text("")
    scripts = {
        "id": f'#!/bin/sh\n[ "$1" = -u ] && echo {uid}\n',
        # dpkg-query -W -f='${Status}' PKG: the status line for installed packages, an error for the rest.
        "dpkg-query": "#!/bin/sh\nfor a; do pkg=$a; done\ncase \" " + " ".join(sorted(installed)) + " \" in\n"
                      "  *\" $pkg \"*) printf 'install ok installed' ;;\n  *) echo \"no packages found matching $pkg\" >&2; exit 1 ;;\nesac\n",
        "apt-get": f'#!/bin/sh\necho "apt-get $* DEBIAN_FRONTEND=$DEBIAN_FRONTEND" >> {log}\n',
    }
    if sudo:
        scripts["sudo"] = f'#!/bin/sh\necho "sudo $*" >> {log}\nexec "$@"\n'
    for name, text in scripts.items():
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod(0o755)
    env_path = shutil.which("env")
    assert env_path
    os.symlink(env_path, bin_dir / "env")
    return bin_dir, log


def apt_install(bin_dir: Path, *packages: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["/bin/sh", str(ROOT / "scripts" / "apt-install"), *packages], capture_output=True,
                          text=True, timeout=60, env={"PATH": str(bin_dir), "LANG": "C"})


def test_apt_install_as_root_installs_only_what_is_missing(tmp_path: Path) -> None:
    bin_dir, log = fake_bin(tmp_path, uid=0, sudo=False, installed={"postgresql"})
    p = apt_install(bin_dir, "postgresql", "python3-venv")
    assert p.returncode == 0, p.stderr
    assert log.read_text().splitlines() == ["apt-get update -qq DEBIAN_FRONTEND=noninteractive",
                                            "apt-get install -y -qq python3-venv DEBIAN_FRONTEND=noninteractive"]
    assert p.stderr == "scripts/apt-install: installing python3-venv\n"


def test_apt_install_goes_through_sudo_when_not_root(tmp_path: Path) -> None:
    bin_dir, log = fake_bin(tmp_path, uid=1000, sudo=True, installed=set())
    p = apt_install(bin_dir, "postgresql", "python3-venv")
    assert p.returncode == 0, p.stderr
    calls = log.read_text().splitlines()
    assert calls[0] == "sudo env DEBIAN_FRONTEND=noninteractive apt-get update -qq"
    assert "sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql python3-venv" in calls


def test_apt_install_without_root_or_sudo_names_the_command_and_stops(tmp_path: Path) -> None:
    """Nothing can be installed: one line saying what is missing, the command to run as root, exit 1."""
    bin_dir, log = fake_bin(tmp_path, uid=1000, sudo=False, installed={"postgresql"})
    p = apt_install(bin_dir, "postgresql", "python3-venv")
    assert p.returncode == 1
    assert p.stderr == ("scripts/apt-install: missing system packages: python3-venv\n"
                        "hint: as root, run: apt-get update && apt-get install -y python3-venv\n")
    assert log.read_text() == ""


def test_apt_install_with_everything_there_does_nothing(tmp_path: Path) -> None:
    bin_dir, log = fake_bin(tmp_path, uid=1000, sudo=False, installed={"postgresql", "python3-venv"})
    p = apt_install(bin_dir, "postgresql", "python3-venv")
    assert (p.returncode, p.stdout, p.stderr, log.read_text()) == (0, "", "", "")


def path_without(tmp_path: Path, *hidden: str) -> str:
    """This PATH, with every command in it but `hidden` linked into one directory (bash, python3 … stay)."""
    bin_dir = tmp_path / "path"
    bin_dir.mkdir()
    for d in os.environ["PATH"].split(os.pathsep):
        if not os.path.isdir(d):
            continue
        for name in os.listdir(d):
            target = os.path.join(d, name)
            if name not in hidden and not (bin_dir / name).exists() and os.access(target, os.X_OK):
                os.symlink(target, bin_dir / name)
    return str(bin_dir)


def test_scripts_test_names_a_missing_tool_before_any_test_runs(tmp_path: Path) -> None:
    """scripts/test --check (what scripts/test does after installing, before mypy and pytest): the tool
    that is not there, who needs it and the apt-get line; exit 1."""
    hidden = "fish"
    work = tmp_path / "tree"
    shutil.copytree(ROOT / "scripts", work / "scripts")
    p = subprocess.run(["bash", str(work / "scripts" / "test"), "--check"], capture_output=True, text=True,
                       timeout=300, cwd=tmp_path, env={**os.environ, "PATH": path_without(tmp_path, hidden)})
    assert p.returncode == 1, p.stderr
    lines = p.stderr.splitlines()
    assert lines[0] == "scripts/test: missing, so no test runs:"
    assert lines[1:-1] == ["  prompt hooks and completions in fish: apt-get install -y fish"]
    assert lines[-1].startswith("hint: ")
    assert not (work / ".venv").exists()
