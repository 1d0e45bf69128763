"""Issue 7 ("never leak a token"): modes under umask 000, no secret in output, state, logs, argv; no FIFO followed."""

from __future__ import annotations

import os
import re
import stat
import subprocess
from pathlib import Path

import pytest

from tests.reliability.conftest import HOSTS, SECRET_KEY, _traced, add_args, assert_one_error, need, pgiam_argv, pgiam_env, run, snapshot

pytestmark = pytest.mark.reliability


def _signatures(pgpass: bytes) -> list[str]:
    return re.findall(r"X-Amz-Signature=([0-9a-f]{64})", pgpass.decode("utf-8", "replace"))


def test_modes_under_umask_000(home: Path, ca: Path) -> None:
    """Issue 7: ~/.pgpass 0600 and pgiam's directories 0700 even when the caller's umask is 000."""
    env = pgiam_env(home)
    for argv in (add_args("a", HOSTS[0], "u", ca), ["refresh"]):
        p = subprocess.run(pgiam_argv(*argv), env=env, capture_output=True, text=True, preexec_fn=lambda: os.umask(0))
        assert p.returncode == 0, p.stderr
    assert stat.S_IMODE((home / ".pgpass").stat().st_mode) == 0o600
    for d in (home / ".config/pgiam", home / ".local/state/pgiam"):
        assert stat.S_IMODE(d.stat().st_mode) == 0o700, d
    for f in (home / ".local/state/pgiam").iterdir():
        assert f.stat().st_mode & 0o077 == 0, f


def test_no_secret_anywhere(sandbox, tmp_path: Path) -> None:
    """Issue 7: no token, token signature, AWS secret key or sandbox secret in output, state, logs or argv."""
    env = dict(sandbox.env)
    secrets = [SECRET_KEY, sandbox.secret_key()]
    outputs = [sandbox.up_output]
    for argv in (["refresh"], ["refresh", "--json"], ["status"], ["status", "--json"], ["list", "--json"],
                 add_args("extra", HOSTS[0], "u", sandbox.ca), ["refresh", "--debug", "nope"], ["remove", "extra"]):
        p = run(env, *argv)
        outputs.append(p.stdout + p.stderr)
    trace = tmp_path / "strace-refresh.txt"
    code, out = _traced(need("strace"), trace, env, tmp_path, "refresh")
    assert code == 0, out
    outputs.append(out)
    # An unexpected error after minting, with --debug: the traceback must not carry the token. store.commit
    # is patched as well as write_all: a refresh in the same second as the one before mints the same token,
    # has nothing to write and never reaches write_all, but always calls commit (with the new tokens).
    hook = tmp_path / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(
        "import pgiam.fileio as f\n"
        "def boom(*changes, **journal):\n    raise RuntimeError('forced unexpected error')\n"
        "f.write_all = boom\nimport pgiam.store as s\ns.write_all = boom\ns.commit = boom\n"
        "import sys\nprint('HOOK', s.__file__, file=sys.stderr)\n")
    p = run(dict(env, PYTHONPATH=f"{hook}:{env['PYTHONPATH']}"), "--debug", "refresh")
    assert p.returncode != 0 and "forced unexpected error" in p.stderr, p.stderr
    outputs.append(p.stdout + p.stderr)
    sigs = _signatures((sandbox.home / ".pgpass").read_bytes())
    assert sigs
    logs = [p for p in (sandbox.state_dir / "sandbox").glob("*.log")]
    haystacks = {
        "outputs": "\n".join(outputs),
        "state": (sandbox.state_dir / "state.json").read_text(),
        "strace sandbox up": sandbox.trace.read_text(errors="replace"),
        "strace refresh": trace.read_text(errors="replace"),
        **{str(p): p.read_text(errors="replace") for p in logs},
    }
    for where, text in haystacks.items():
        for s in [*secrets, *sigs, "X-Amz-Signature="]:
            assert s not in text, (where, s[:12])
    tok = run(env, "token", "sandbox")
    assert tok.returncode == 0 and "X-Amz-Signature=" in tok.stdout  # the one command that prints a token


@pytest.mark.parametrize("kind", ["fifo", "dir"])
def test_pgpass_never_replaced_by_non_regular(home: Path, ca: Path, kind: str) -> None:
    """Issue 7: a FIFO or directory at ~/.pgpass: clear error (exit 5), no hang, left alone."""
    env = pgiam_env(home)
    assert run(env, *add_args("a", HOSTS[0], "u", ca)).returncode == 0
    (home / ".pgpass").unlink()
    if kind == "fifo":
        os.mkfifo(home / ".pgpass", 0o600)
    else:
        (home / ".pgpass").mkdir(mode=0o700)
    before = snapshot(home)
    for argv in (["refresh"], add_args("b", HOSTS[1], "u", ca), ["remove", "a"]):
        p = run(env, *argv, timeout=20)
        assert_one_error(p.stderr, p.returncode, 5)
        assert str(home / ".pgpass") in p.stderr
        assert snapshot(home) == before
