"""What a wheel installs (issue 14): the man page at share/man/man1/pgiam.1 and the completion scripts,
which `pgiam completion SHELL` prints byte for byte. Builds the real wheel and installs it into a fresh venv."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPTS = {"bash": ROOT / "completions" / "pgiam.bash", "zsh": ROOT / "completions" / "_pgiam",
           "fish": ROOT / "completions" / "pgiam.fish"}


@pytest.mark.parametrize("shell", sorted(SCRIPTS))
def test_completion_prints_the_file_byte_for_byte(shell: str, tmp_path: Path) -> None:
    """From the source tree (editable install): stdout is exactly completions/*."""
    proc = subprocess.run([sys.executable, "-m", "pgiam", "completion", shell], capture_output=True, timeout=60,
                          cwd=tmp_path, env={**os.environ, "LC_ALL": "C"})
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == SCRIPTS[shell].read_bytes()


def test_completion_refuses_other_shells(run_cli) -> None:  # type: ignore[no-untyped-def]
    code, _, err = run_cli("completion", "tcsh")
    assert code == 2 and "invalid choice" in err


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A fresh venv holding only the wheel built from this tree; its dependencies come from the test venv's
    site-packages through a .pth line (a plain path: the editable install's own .pth is not processed)."""
    tmp = tmp_path_factory.mktemp("wheel")
    dist = tmp / "dist"
    build = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(dist), str(ROOT)],
                           capture_output=True, text=True, timeout=600)
    assert build.returncode == 0, build.stderr[-2000:]
    (wheel,) = dist.glob("pgiam-*.whl")
    venv = tmp / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    py = venv / "bin" / "python"
    site = Path(subprocess.run([str(py), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                               capture_output=True, text=True, check=True).stdout.strip())
    (site / "deps.pth").write_text(sysconfig.get_path("purelib") + "\n")
    inst = subprocess.run([sys.executable, "-m", "pip", "--python", str(py), "install", "--no-deps", "-q", str(wheel)],
                          capture_output=True, text=True, timeout=300)
    assert inst.returncode == 0, inst.stderr[-2000:]
    yield venv
    shutil.rmtree(tmp, ignore_errors=True)


def test_wheel_installs_the_man_page(installed: Path, tmp_path: Path) -> None:
    page = installed / "share" / "man" / "man1" / "pgiam.1"
    assert page.read_bytes() == (ROOT / "man" / "pgiam.1").read_bytes()
    # man finds it on the prefix's MANPATH (pipx 1.5+ links share/man/man1 into ~/.local/share/man/man1).
    man = shutil.which("man")
    if man:
        found = subprocess.run([man, "-w", "pgiam"], capture_output=True, text=True, timeout=30,
                               env={**os.environ, "MANPATH": str(installed / "share" / "man")})
        assert found.returncode == 0 and found.stdout.strip() == str(page), found.stderr


@pytest.mark.parametrize("shell", sorted(SCRIPTS))
def test_wheel_pgiam_completion_prints_the_installed_script(installed: Path, shell: str, tmp_path: Path) -> None:
    """The console script of the installed wheel, run outside the source tree, prints the data file."""
    where = subprocess.run([str(installed / "bin" / "python"), "-c", "import pgiam; print(pgiam.__file__)"],
                           capture_output=True, text=True, cwd=tmp_path, check=True).stdout
    assert where.startswith(str(installed)), where  # the wheel's copy, not this checkout
    proc = subprocess.run([str(installed / "bin" / "pgiam"), "completion", shell], capture_output=True,
                          cwd=tmp_path, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == SCRIPTS[shell].read_bytes()
    data_dir = {"bash": "share/bash-completion/completions", "zsh": "share/zsh/site-functions",
                "fish": "share/fish/vendor_completions.d"}[shell]
    assert (installed / data_dir / SCRIPTS[shell].name).read_bytes() == SCRIPTS[shell].read_bytes()


def test_missing_script_is_an_environment_problem(installed: Path, tmp_path: Path) -> None:
    """A wheel install whose data file was deleted: exit 7 naming the shell, not a traceback."""
    script = installed / "share" / "fish" / "vendor_completions.d" / "pgiam.fish"
    saved = script.read_bytes()
    script.unlink()
    try:
        proc = subprocess.run([str(installed / "bin" / "pgiam"), "completion", "fish"], capture_output=True,
                              text=True, cwd=tmp_path, timeout=60)
    finally:
        script.write_bytes(saved)
    assert proc.returncode == 7 and "fish completion script is not installed" in proc.stderr
