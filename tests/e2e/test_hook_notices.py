"""Issue 11 (7): the real prompt hook (`pgiam hook SHELL`, running the real pgiam) in real bash, zsh and fish
shows a notice for every failure class, not only for credentials: a config error, a file error, a lock
that is a directory. Each text once per shell."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.tools import require_tool

SRC = str(Path(__file__).resolve().parents[2])
HOST = "db1.cluster-abc.us-west-2.rds.amazonaws.com"
COMMAND = {"bash": ["bash", "--norc", "--noprofile"], "zsh": ["zsh", "-f"], "fish": ["fish", "--no-config"]}
# `sim N` runs N prompts the way the shell would.
SIM = {
    "bash": "sim() { local i c; for ((i = 0; i < $1; i++)); do for c in \"${PROMPT_COMMAND[@]}\"; do eval \"$c\"; done; done; }\n",
    "zsh": "sim() { local i f; for (( i = 0; i < $1; i++ )); do for f in $precmd_functions; do $f; done; done }\n",
    "fish": "function sim; set -l i 0; while test $i -lt $argv[1]; emit fish_prompt; set i (math $i + 1); end; end\n",
}
SOURCE = {"bash": 'eval "$(cat {f})"\n', "zsh": 'eval "$(cat {f})"\n', "fish": "cat {f} | source\n"}
# Wait (an event, not a delay) until the refresh the hook started has written the notice file.
WAIT_FOR = {
    "bash": "while [[ ! -s {f} ]]; do sleep 0.05; done\n",
    "zsh": "while [[ ! -s {f} ]]; do sleep 0.05; done\n",
    "fish": "while not test -s {f}; sleep 0.05; end\n",
}


def _env(home: Path) -> dict[str, str]:
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8", "PYTHONPATH": SRC,
        "PYTHONDONTWRITEBYTECODE": "1", "HOME": str(home), "XDG_CONFIG_HOME": str(home / ".config"),
        "XDG_STATE_HOME": str(home / ".local/state"), "XDG_DATA_HOME": str(home / ".local/share"),
        "AWS_ACCESS_KEY_ID": "AKIAHOOKNOTICETEST01", "AWS_SECRET_ACCESS_KEY": "hookNoticeSecret/0123456789",
        "AWS_CONFIG_FILE": str(home / ".aws/config"), "AWS_SHARED_CREDENTIALS_FILE": str(home / ".aws/credentials"),
        "AWS_EC2_METADATA_DISABLED": "true", "TMPDIR": "/tmp",
    }


def _pgiam(env: dict[str, str], *argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pgiam", *argv], env=env, capture_output=True, text=True,
                          timeout=60, stdin=subprocess.DEVNULL)


def _break_config(home: Path) -> str:
    cfg = home / ".config/pgiam/config.toml"
    cfg.write_text(cfg.read_text() + "\n[services.broken\n")
    return str(cfg)


def _break_pgpass(home: Path) -> str:
    (home / ".pgpass").unlink()
    (home / ".pgpass").mkdir()
    return f"{home / '.pgpass'} is a directory"


def _break_lock(home: Path) -> str:
    lock = home / ".local/state/pgiam/lock"
    lock.unlink(missing_ok=True)
    lock.mkdir()
    return f"lock file {lock} is a directory"


BREAK = {"config error": _break_config, "file error": _break_pgpass, "lock is a directory": _break_lock}


@pytest.mark.parametrize("failure", list(BREAK))
@pytest.mark.parametrize("shell", list(COMMAND))
def test_every_failure_class_reaches_the_prompt_once(tmp_path: Path, shell: str, failure: str) -> None:
    """Issue 11 (7): with the token expired and refreshing impossible for `failure`, the real hook prints
    `pgiam: …` naming the problem at the prompt, once over many prompts."""
    exe = require_tool(shell)
    home = tmp_path / "home"  # made by the autouse fixture of tests/conftest.py
    env = _env(home)
    ca = tmp_path / "ca.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n")
    p = _pgiam(env, "add", "prod", "--host", HOST, "--user", "alice", "--sslrootcert", str(ca))
    assert p.returncode == 0, p.stderr
    hook = tmp_path / f"hook.{shell}"
    p = _pgiam(env, "hook", shell)
    assert p.returncode == 0, p.stderr
    hook.write_text(p.stdout)
    expected = BREAK[failure](home)
    state = home / ".local/state/pgiam"
    (state / "next-due").write_text(f"{int(time.time()) - 3600}\n")  # long expired: the hook waits for a refresh
    (state / "notice").unlink(missing_ok=True)
    notice = str(state / "notice").replace("'", "'\\''")
    script = tmp_path / f"script.{shell}"
    script.write_text(SIM[shell] + SOURCE[shell].format(f=f"'{hook}'") + "sim 1\n"
                      + WAIT_FOR[shell].format(f=f"'{notice}'") + "sim 20\n")
    proc = subprocess.run([exe, *COMMAND[shell][1:], str(script)], env=env, capture_output=True, text=True,
                          timeout=120, stdin=subprocess.DEVNULL, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("pgiam: ") and expected in lines[0], (lines, expected)


@pytest.mark.parametrize("shell", list(COMMAND))
def test_notice_printed_without_control_characters(tmp_path: Path, shell: str) -> None:
    """Issue 11 (5): a notice file holding escape sequences (written by anything but pgiam, which strips
    them) is printed without them: no terminal escape reaches the prompt."""
    exe = require_tool(shell)
    home = tmp_path / "home"  # made by the autouse fixture of tests/conftest.py
    env = _env(home)
    p = _pgiam(env, "hook", shell)
    assert p.returncode == 0, p.stderr
    hook = tmp_path / f"hook.{shell}"
    hook.write_text(p.stdout)
    state = home / ".local/state/pgiam"
    state.mkdir(parents=True, mode=0o700)
    (state / "notice").write_bytes(b"pgiam: \x1b]0;owned\x07\x1b[2Jcleared\n")
    script = tmp_path / f"script.{shell}"
    script.write_text(SIM[shell] + SOURCE[shell].format(f=f"'{hook}'") + "sim 2\n")
    proc = subprocess.run([exe, *COMMAND[shell][1:], str(script)], env=env, capture_output=True,
                          timeout=60, stdin=subprocess.DEVNULL, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert b"cleared" in proc.stderr
    assert not any(c < 0x20 and c != 0x0A for c in proc.stderr), proc.stderr


@pytest.mark.parametrize("shell", list(COMMAND))
def test_relative_libpq_path_reaches_the_prompt_once(tmp_path: Path, shell: str) -> None:
    """Issue 11 (6, 7): pgiam refuses a relative PGPASSFILE / PGSERVICEFILE before it knows which service is
    due, so a refresh cannot leave a notice; the hook itself says so once (no token is written into the
    current directory), and again only when the text changes."""
    exe = require_tool(shell)
    home = tmp_path / "home"  # made by the autouse fixture of tests/conftest.py
    env = _env(home)
    ca = tmp_path / "ca.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n")
    p = _pgiam(env, "add", "prod", "--host", HOST, "--user", "alice", "--sslrootcert", str(ca))
    assert p.returncode == 0, p.stderr
    p = _pgiam(env, "hook", shell)
    assert p.returncode == 0, p.stderr
    hook = tmp_path / f"hook.{shell}"
    hook.write_text(p.stdout)
    state = home / ".local/state/pgiam"
    (state / "next-due").write_text(f"{int(time.time()) - 3600}\n")  # expired: the hook runs a refresh
    work = tmp_path / "work"
    work.mkdir()
    export = {"bash": "export {v}={x}\n", "zsh": "export {v}={x}\n", "fish": "set -gx {v} {x}\n"}
    unset = {"bash": "unset {v}\n", "zsh": "unset {v}\n", "fish": "set -e {v}\n"}
    script = tmp_path / f"script.{shell}"
    script.write_text(SIM[shell] + SOURCE[shell].format(f=f"'{hook}'")
                      + export[shell].format(v="PGPASSFILE", x="rel.pgpass") + "sim 5\n"
                      + export[shell].format(v="PGSERVICEFILE", x="svc.conf") + "sim 5\n"
                      + unset[shell].format(v="PGPASSFILE") + unset[shell].format(v="PGSERVICEFILE") + "sim 5\n")
    proc = subprocess.run([exe, *COMMAND[shell][1:], str(script)], env=env, capture_output=True, text=True,
                          timeout=120, stdin=subprocess.DEVNULL, cwd=work)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stderr.splitlines()
    assert len(lines) == 2, lines
    assert lines[0] == "pgiam: PGPASSFILE=rel.pgpass: a relative path, so pgiam renews no token; export it as an absolute path", lines
    assert lines[1].startswith("pgiam: PGPASSFILE=rel.pgpass, PGSERVICEFILE=svc.conf: a relative path"), lines
    assert os.listdir(work) == []  # nothing written relative to the shell's directory
