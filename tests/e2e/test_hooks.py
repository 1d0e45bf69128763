"""The prompt hooks in the real bash, zsh and fish: installation, cost, refresh and notices."""

from __future__ import annotations

import errno
import os
import re
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.tools import require_tool

from pgiam.hooks import render_hook

SHELLS = ("bash", "zsh", "fish")
MARGIN = 300


need = require_tool


@dataclass
class Setup:
    """One isolated hook installation: a fake pgiam, its log, the state files."""

    root: Path
    fake: Path
    log: Path
    done: Path
    due_file: Path
    notice_file: Path
    watched: Path | None = None

    def snippet(self, shell: str) -> Path:
        """Write the rendered hook for `shell` to a file and return its path."""
        path = self.root / f"hook.{shell}"
        path.write_text(render_hook(shell, exe=[str(self.fake)], next_due_file=self.due_file,
                                    notice_file=self.notice_file, margin=MARGIN,
                                    watch=[self.watched] if self.watched else ()))
        return path

    def set_due(self, offset: int, age: int = 0) -> None:
        """Make the earliest token due `offset` seconds from now, in a file written `age` seconds ago."""
        now = int(time.time())
        self.due_file.write_text(f"{now + offset}\n")
        if age:
            os.utime(self.due_file, (now - age, now - age))

    def runs(self) -> list[str]:
        """The lines the fake pgiam logged."""
        return self.log.read_text().splitlines() if self.log.exists() else []


@pytest.fixture
def setup(tmp_path: Path) -> Setup:
    """A directory whose name needs quoting in every shell, with a fake pgiam inside."""
    root = tmp_path / "it's a \"dir\" with $pace\\s"
    state = root / "state"
    state.mkdir(parents=True)
    log, done, due = root / "log", root / "done", state / "next-due"

    def q(p: Path) -> str:
        return "'" + str(p).replace("'", "'\\''") + "'"

    fake = root / "fake pgiam"
    # Logs its start, waits for its gate (a FIFO the test writes to, when $FAKE_GATE is set) or sleeps
    # ($FAKE_SLEEP), rewrites next-due 600 s ahead, then marks itself done.
    fake.write_text(
        "#!/bin/sh\n"
        f"echo \"start $*\" >> {q(log)}\n"
        "if [ -n \"${FAKE_GATE:-}\" ]; then read _ < \"$FAKE_GATE\"; fi\n"
        "sleep \"${FAKE_SLEEP:-0}\"\n"
        f"echo $(( $(date +%s) + 600 )) > {q(due)}\n"
        f"echo end >> {q(log)}\n"
        f": > {q(done)}\n"
    )
    fake.chmod(0o755)
    return Setup(root, fake, log, done, due, state / "notice")


# Per-shell script fragments. `sim N` runs N prompts the way the shell would.
PRELUDE = {
    "bash": (
        "__mine() { __mine_n=$((${__mine_n:-0} + 1)); }\n"
        "PROMPT_COMMAND='__mine; # a trailing comment'\n"
        "sim() { local __i __c; for ((__i = 0; __i < $1; __i++)); do"
        " for __c in \"${PROMPT_COMMAND[@]}\"; do eval \"$__c\"; done; done; }\n"
    ),
    "zsh": (
        "__mine() { (( ++__mine_n )) }\n"
        "typeset -g __mine_n=0\n"
        "precmd_functions=(__mine)\n"
        "sim() { local __i __f; for (( __i = 0; __i < $1; __i++ )); do"
        " for __f in $precmd_functions; do $__f; done; done }\n"
    ),
    "fish": (
        "set -g __mine_n 0\n"
        "function __mine --on-event fish_prompt; set -g __mine_n (math $__mine_n + 1); end\n"
        # A builtin-only counter: fish's `seq` is a function that may run an external command.
        "function sim; set -l i 0; while test $i -lt $argv[1]; emit fish_prompt; set i (math $i + 1); end; end\n"
    ),
}

SOURCE = {
    "bash": 'eval "$(cat {f})"\n',
    "zsh": 'eval "$(cat {f})"\n',
    "fish": "cat {f} | source\n",
}
REPORT = {
    "bash": 'echo "MINE=$__mine_n"; echo "HOOKS=$(declare -p PROMPT_COMMAND)"\n',
    "zsh": 'echo "MINE=$__mine_n"; echo "HOOKS=$precmd_functions"\n',
    "fish": 'echo "MINE=$__mine_n"; echo "HOOKS="(functions --handlers | string match "fish_prompt*")\n',
}
IF_EXISTS = {
    "bash": "if [[ -e {f} ]]; then echo {tag}=yes; else echo {tag}=no; fi\n",
    "zsh": "if [[ -e {f} ]]; then echo {tag}=yes; else echo {tag}=no; fi\n",
    "fish": "if test -e {f}; echo {tag}=yes; else; echo {tag}=no; end\n",
}
COMMAND = {"bash": ["bash", "--norc", "--noprofile"], "zsh": ["zsh", "-f"], "fish": ["fish", "--no-config"]}


def quote(shell: str, path: Path) -> str:
    """Quote a path for the test scripts (same rules the hook uses)."""
    if shell == "fish":
        return "'" + str(path).replace("\\", "\\\\").replace("'", "\\'") + "'"
    return "'" + str(path).replace("'", "'\\''") + "'"


def run(shell: str, setup: Setup, body: str, *, strace_to: Path | None = None,
        fake_sleep: float = 0, gate: Path | None = None, timeout: float = 20) -> subprocess.CompletedProcess[str]:
    """Run prelude + body in a non-interactive `shell`, optionally under strace."""
    exe = need(shell)
    script = setup.root / f"script.{shell}"
    script.write_text(PRELUDE[shell] + body)
    argv = [exe, *COMMAND[shell][1:], str(script)]
    if strace_to is not None:
        argv = [need("strace"), "-f", "-qq", "-e", "trace=execve,clone,clone3,fork,vfork,openat",
                "-o", str(strace_to), *argv]
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(setup.root), "LC_ALL": "C.UTF-8",
           "FAKE_SLEEP": str(fake_sleep), "TERM": "dumb", "FAKE_GATE": str(gate or "")}
    return subprocess.run(argv, capture_output=True, text=True, env=env, timeout=timeout, cwd=setup.root)


def value(out: str, tag: str) -> str:
    """The value of the last `TAG=value` line the script printed."""
    found = re.findall(rf"^{tag}=(.*)$", out, re.M)
    assert found, f"no {tag}= in output:\n{out}"
    return found[-1]


def spawned_between(trace: Path, start: Path, end: Path) -> list[str]:
    """execve and fork-like calls (not threads) between the openat of `start` and of `end`."""
    lines = trace.read_text(errors="replace").splitlines()
    begin = next(i for i, line in enumerate(lines) if "openat(" in line and str(start) in line)
    stop = next(i for i, line in enumerate(lines) if "openat(" in line and str(end) in line)
    assert begin < stop
    return [line for line in lines[begin:stop]
            if re.search(r"\b(execve|clone3?|v?fork)\(", line) and "CLONE_THREAD" not in line]


def markers(setup: Setup) -> tuple[Path, Path]:
    """Two files whose openat brackets the measured prompts in the strace log."""
    # In tmp_path, not in the odd directory: strace escapes quotes and backslashes in its log.
    start, end = setup.root.parent / "marker-start", setup.root.parent / "marker-end"
    start.touch()
    end.touch()
    return start, end


def install(shell: str, setup: Setup) -> str:
    """Script text that sources the hook twice (the second must not add a second hook)."""
    f = quote(shell, setup.snippet(shell))
    return SOURCE[shell].format(f=f) * 2


@pytest.mark.parametrize("shell", SHELLS)
def test_fresh_token_300_prompts_spawn_nothing(shell: str, setup: Setup) -> None:
    """Sourced twice in a non-interactive shell: one hook, the user's hook kept, no process while fresh."""
    setup.set_due(600, age=60)  # an old file: fish's hook caches it (the other test uses a new one)
    start, end = markers(setup)
    body = install(shell, setup)
    body += f"true < {quote(shell, start)}\nsim 300\ntrue < {quote(shell, end)}\n" + REPORT[shell]
    trace = setup.root / "strace.txt"
    proc = run(shell, setup, body, strace_to=trace)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    assert value(proc.stdout, "MINE") == "300"  # the existing hook ran at every prompt
    assert value(proc.stdout, "HOOKS").count("__pgiam_hook") == 1
    assert spawned_between(trace, start, end) == []
    assert setup.runs() == []


@pytest.mark.parametrize("shell", SHELLS)
@pytest.mark.parametrize("content", ["missing", "garbage", "empty"])
def test_missing_or_bad_next_due_spawns_nothing(shell: str, content: str, setup: Setup) -> None:
    """No next-due file, or one that is not a number: nothing runs and nothing is printed."""
    if content == "garbage":
        setup.due_file.write_text("$(touch /tmp/pgiam-pwned) 12\n")
    elif content == "empty":
        setup.due_file.write_text("")
    start, end = markers(setup)
    body = install(shell, setup) + f"true < {quote(shell, start)}\nsim 20\ntrue < {quote(shell, end)}\n"
    trace = setup.root / "strace.txt"
    proc = run(shell, setup, body, strace_to=trace)
    assert (proc.returncode, proc.stderr) == (0, "")
    assert spawned_between(trace, start, end) == []
    assert setup.runs() == []


def open_gate(gate: Path, timeout: float = 30) -> None:
    """Let the fake pgiam go on: write to the FIFO it is blocked reading. Opening a FIFO for writing
    without blocking fails (ENXIO) until a reader has it open: that is the event "the fake is waiting"."""
    deadline = time.monotonic() + timeout  # a safety net for a hung test, not a bound on speed
    while True:
        try:
            fd = os.open(gate, os.O_WRONLY | os.O_NONBLOCK)
            break
        except OSError as err:
            if err.errno != errno.ENXIO or time.monotonic() > deadline:
                raise
            time.sleep(0.01)
    try:
        os.write(fd, b"go\n")
    finally:
        os.close(fd)


@pytest.mark.parametrize("shell", SHELLS)
def test_due_within_margin_refreshes_in_background(shell: str, setup: Setup) -> None:
    """Due but not expired: one detached refresh; the prompt does not wait for it; no job noise.

    No wall-clock bound (issue 10): the fake refresh blocks on a FIFO until the test opens it, so the
    shell can only have exited, and its output pipes closed, if it neither waited for the child nor
    handed it the pipes (else subprocess.run times out)."""
    gate = setup.root / "gate"
    os.mkfifo(gate)
    setup.set_due(-10)
    body = install(shell, setup) + "sim 1\n" + IF_EXISTS[shell].format(f=quote(shell, setup.done), tag="DONE")
    body += "sim 20\n" + REPORT[shell]
    proc = run(shell, setup, body, gate=gate)
    assert (proc.returncode, proc.stderr) == (0, ""), proc.stderr
    assert value(proc.stdout, "DONE") == "no"
    assert value(proc.stdout, "MINE") == "21"
    assert not setup.done.exists(), "the refresh is still held at its gate"
    open_gate(gate)
    deadline = time.monotonic() + 30
    while not setup.done.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert setup.runs() == ["start refresh --if-needed --quiet", "end"]


@pytest.mark.parametrize("shell", SHELLS)
def test_expired_token_refreshes_synchronously(shell: str, setup: Setup) -> None:
    """Past due + margin: the refresh has finished when the prompt returns."""
    setup.set_due(-MARGIN - 5)
    body = install(shell, setup) + "sim 1\n" + IF_EXISTS[shell].format(f=quote(shell, setup.done), tag="DONE")
    body += "sim 20\n"
    proc = run(shell, setup, body, fake_sleep=0.5)
    assert (proc.returncode, proc.stderr) == (0, ""), proc.stderr
    assert value(proc.stdout, "DONE") == "yes"
    # The fake moved next-due ahead, so the next 20 prompts ran nothing.
    assert setup.runs() == ["start refresh --if-needed --quiet --wait 3", "end"]


@pytest.mark.parametrize("shell", SHELLS)
def test_next_due_from_another_clock_refreshes_synchronously(shell: str, setup: Setup) -> None:
    """A next-due further ahead than a token lives (the clock jumped back, a restored backup):
    the hook does not trust it and runs the full check at once, waiting for it."""
    setup.set_due(86400, age=60)
    body = install(shell, setup) + "sim 1\n" + IF_EXISTS[shell].format(f=quote(shell, setup.done), tag="DONE")
    body += "sim 20\n"
    proc = run(shell, setup, body)
    assert (proc.returncode, proc.stderr) == (0, ""), proc.stderr
    assert value(proc.stdout, "DONE") == "yes"
    assert setup.runs() == ["start refresh --if-needed --quiet --wait 3", "end"]


# Issue 19 (7), transcribed: a next-due later than now + lifetime - min(margin, lifetime / 2) + 5 is not trusted.
LIMIT = 900 - min(MARGIN, 900 // 2) + 5


@pytest.mark.parametrize("shell", SHELLS)
@pytest.mark.parametrize("ahead", [LIMIT + 3, LIMIT - 10])
def test_next_due_bound_is_the_shared_one(shell: str, ahead: int, setup: Setup) -> None:
    """Issue 19 (7): the hooks believe a next-due exactly as far ahead as the fast path does. Just past
    the bound (a token signed a few seconds ahead of the clock: the clock stepped back by less than a
    token's life) the full check runs at once, waiting for it (the hooks used to believe anything up to
    900 s + margin ahead); within it (a token signed now is due 600 s ahead), nothing runs."""
    setup.set_due(ahead, age=60)
    body = install(shell, setup) + "sim 1\n" + IF_EXISTS[shell].format(f=quote(shell, setup.done), tag="DONE")
    body += "sim 20\n"
    proc = run(shell, setup, body)
    assert (proc.returncode, proc.stderr) == (0, ""), proc.stderr
    if ahead > LIMIT:
        assert value(proc.stdout, "DONE") == "yes"
        assert setup.runs() == ["start refresh --if-needed --quiet --wait 3", "end"]
    else:
        assert value(proc.stdout, "DONE") == "no"
        assert setup.runs() == []


@pytest.mark.parametrize("shell", SHELLS)
def test_watched_file_changed_after_next_due_runs_the_full_check(shell: str, setup: Setup) -> None:
    """~/.pgpass edited (a block deleted) after pgiam wrote next-due: the next prompt checks, once."""
    setup.watched = setup.root / ".pgpass"
    setup.watched.write_text("")
    setup.set_due(600, age=60)
    old = time.time() - 120
    os.utime(setup.watched, (old, old))
    w = quote(shell, setup.watched)
    body = install(shell, setup) + "sim 5\n"
    body += IF_EXISTS[shell].format(f=quote(shell, setup.done), tag="BEFORE")
    body += f"echo edited > {w}\nsim 1\n" + IF_EXISTS[shell].format(f=quote(shell, setup.done), tag="DONE")
    body += "sim 20\n"
    proc = run(shell, setup, body)
    assert (proc.returncode, proc.stderr) == (0, ""), proc.stderr
    assert value(proc.stdout, "BEFORE") == "no"
    assert value(proc.stdout, "DONE") == "yes"
    # The fake rewrote next-due after the edit, so the 20 prompts after it ran nothing.
    assert setup.runs() == ["start refresh --if-needed --quiet --wait 3", "end"]


@pytest.mark.parametrize("shell", SHELLS)
def test_notice_printed_once_per_text(shell: str, setup: Setup) -> None:
    """A notice shows once over many prompts; a new text shows once more; after removal, again."""
    setup.set_due(600)
    n = quote(shell, setup.notice_file)
    body = install(shell, setup)
    body += f"echo 'refresh failed: run aws sso login' > {n}\nsim 50\n"
    body += f"echo 'pgiam: second problem' > {n}\nsim 50\n"
    body += f"rm {n}\nsim 1\necho 'pgiam: second problem' > {n}\nsim 5\n"
    proc = run(shell, setup, body)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.splitlines() == [
        "pgiam: refresh failed: run aws sso login",
        "pgiam: second problem",
        "pgiam: second problem",
    ]
    assert setup.runs() == []


def test_bash_prompt_command_array(setup: Setup) -> None:
    """bash 5.1+ PROMPT_COMMAND array: one element appended, the others kept and still run."""
    bash = need("bash")
    version = subprocess.run([bash, "-c", "echo ${BASH_VERSINFO[0]}${BASH_VERSINFO[1]}"],
                             capture_output=True, text=True).stdout.strip()
    assert int(version) >= 51, f"bash {version} is older than 5.1: no PROMPT_COMMAND arrays"
    setup.set_due(-10)
    body = "__two() { __two_n=$((${__two_n:-0} + 1)); }\nPROMPT_COMMAND=(__mine '__two')\n"
    body += install("bash", setup) + "sim 3\n" + 'echo "TWO=$__two_n"\n' + REPORT["bash"]
    proc = run("bash", setup, body)
    assert (proc.returncode, proc.stderr) == (0, "")
    hooks = value(proc.stdout, "HOOKS")
    assert hooks == 'declare -a PROMPT_COMMAND=([0]="__mine" [1]="__two" [2]="__pgiam_hook")'
    assert (value(proc.stdout, "MINE"), value(proc.stdout, "TWO")) == ("3", "3")
    deadline = time.monotonic() + 10
    while not setup.done.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert setup.runs() == ["start refresh --if-needed --quiet", "end"]


def test_bash_keeps_exit_status_and_nounset(setup: Setup) -> None:
    """The bash hook leaves $? as it found it and works under set -u (user shells may set it)."""
    setup.set_due(600)
    body = "set -u\nunset PROMPT_COMMAND\n" + install("bash", setup)
    body += "(exit 7); eval \"$PROMPT_COMMAND\"; echo \"STATUS=$?\"\n"
    proc = run("bash", setup, body)
    assert (proc.returncode, proc.stderr) == (0, ""), proc.stderr
    assert value(proc.stdout, "STATUS") == "7"


@pytest.mark.parametrize("shell", SHELLS)
def test_rewritten_next_due_is_noticed(shell: str, setup: Setup) -> None:
    """A next-due file rewritten between prompts is read again (fish caches by mtime)."""
    setup.set_due(600, age=60)
    expired = int(time.time()) - MARGIN - 5
    body = install(shell, setup) + "sim 5\n"
    body += f"echo {expired} > {quote(shell, setup.due_file)}\nsim 1\n"
    body += IF_EXISTS[shell].format(f=quote(shell, setup.done), tag="DONE")
    proc = run(shell, setup, body)
    assert (proc.returncode, proc.stderr) == (0, ""), proc.stderr
    assert value(proc.stdout, "DONE") == "yes"
    assert setup.runs() == ["start refresh --if-needed --quiet --wait 3", "end"]
