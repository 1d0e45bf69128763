"""The completion files in the real bash, fish and zsh, with real configured services (issue 6).

Service names come from the real `pgiam list --names`: a `pgiam` on PATH runs this checkout's
`python -m pgiam` against a config.toml with two services under the test's XDG_CONFIG_HOME.
A missing shell fails the test (skips only with PGIAM_ALLOW_SKIP_E2E=1).
"""

from __future__ import annotations

import argparse
import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from tests.tools import require_tool

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from pgiam.cli import build_parser  # noqa: E402

COMPLETIONS = ROOT / "completions"
SERVICES = ["prod", "stage"]


need = require_tool


# ---------------------------------------------------------------- the parser, the truth


def walk(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()):
    """(words, parser) for the top parser and every nested subparser."""
    yield path, parser
    for action in parser._actions:  # no public API for subparsers
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from walk(sub, path + (name,))


PARSERS = dict(walk(build_parser()))
COMMANDS = sorted(p[0] for p in PARSERS if len(p) == 1)


def long_options(path: tuple[str, ...]) -> set[str]:
    return {o for a in PARSERS[path]._actions for o in a.option_strings if o.startswith("--")}


def leaves() -> list[tuple[str, ...]]:
    """Every command line prefix after which options are completed: `add`, `timer install`..."""
    return [p for p in PARSERS if p and not any(q[:len(p)] == p and len(q) > len(p) for q in PARSERS)]


def name_commands() -> list[str]:
    """Commands whose positional is a configured service (metavar NAME), from the parser."""
    out = []
    for cmd in COMMANDS:
        for a in PARSERS[(cmd,)]._actions:
            if not a.option_strings and a.metavar == "NAME" and cmd != "add":  # add's NAME is a new one
                out.append(cmd)
    return out


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    """The environment of a user with two services and this checkout's pgiam first on PATH."""
    config = Path(os.environ["XDG_CONFIG_HOME"]) / "pgiam" / "config.toml"
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text("".join(f'[services.{n}]\nhost = "x.cluster-abc.us-east-1.rds.amazonaws.com"\nuser = "u"\n\n'
                              for n in SERVICES))
    bindir = tmp_path / "bin"
    bindir.mkdir()
    exe = bindir / "pgiam"
    exe.write_text(f"#!/bin/sh\nPYTHONPATH={shlex.quote(str(ROOT))} exec {shlex.quote(sys.executable)} -m pgiam \"$@\"\n")
    exe.chmod(0o755)
    e = dict(os.environ, PATH=f"{bindir}{os.pathsep}{os.environ['PATH']}")
    check = subprocess.run(["pgiam", "list", "--names"], env=e, capture_output=True, text=True, timeout=120)
    assert check.stdout.split() == SERVICES, check.stderr
    return e


# ---------------------------------------------------------------- bash


def bash(env: dict[str, str], cases: list[list[str]], prelude: str = "") -> tuple[str, list[list[str]]]:
    """Source pgiam.bash in a bare bash; for each case (COMP_WORDS, the last being the word under the
    cursor) call the function `complete -p pgiam` registered. Returns (complete -p, COMPREPLY per case)."""
    need("bash")
    lines = [prelude, f"source {shlex.quote(str(COMPLETIONS / 'pgiam.bash'))}",
             "spec=$(complete -p pgiam) || exit 9", 'printf "%s\\n" "$spec"',
             'fn=${spec#*-F }; fn=${fn%% *}',
             "case_() {",
             '  COMP_WORDS=("$@"); COMP_CWORD=$((${#COMP_WORDS[@]} - 1))',
             '  COMP_LINE="${COMP_WORDS[*]}"; COMP_POINT=${#COMP_LINE}; COMPREPLY=()',
             '  "$fn" pgiam "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD - 1]}"',
             '  printf "%s\\n" "${COMPREPLY[@]}" "--end--"',
             "}"]
    lines += ["case_ " + " ".join(shlex.quote(w) for w in words) for words in cases]
    p = subprocess.run(["bash", "--norc", "--noprofile", "-c", "\n".join(lines)], env=env,
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0 and p.stderr == "", p.stderr
    spec, _, rest = p.stdout.partition("\n")
    replies = [[w for w in chunk.split("\n") if w] for chunk in rest.split("--end--\n")[:-1]]
    assert len(replies) == len(cases), p.stdout
    return spec, replies


def test_bash_registers_without_bash_completion(env: dict[str, str]) -> None:
    spec, _ = bash(env, [], prelude="declare -F _init_completion && exit 8")
    assert spec == "complete -F _pgiam pgiam"


def test_bash_offers_subcommands(env: dict[str, str]) -> None:
    _, [top, re_, dash] = bash(env, [["pgiam", ""], ["pgiam", "re"], ["pgiam", "-"]])
    assert sorted(top) == COMMANDS
    assert sorted(re_) == ["refresh", "remove"]
    assert set(dash) == {"--debug", "--version", "--help", "-h"}


def test_bash_offers_configured_services(env: dict[str, str]) -> None:
    cmds = name_commands()
    assert {"refresh", "remove", "token"} <= set(cmds)
    cases = [["pgiam", cmd, ""] for cmd in cmds] + [["pgiam", "refresh", "prod", ""], ["pgiam", "refresh", "--quiet", "s"]]
    _, replies = bash(env, cases)
    for cmd, reply in zip(cmds, replies):
        assert reply == SERVICES, cmd
    assert replies[-2:] == [["stage"], ["stage"]]  # each service once


def test_bash_offers_shells_for_hook(env: dict[str, str]) -> None:
    _, [reply, z] = bash(env, [["pgiam", "hook", ""], ["pgiam", "hook", "z"]])
    assert reply == ["bash", "zsh", "fish"] and z == ["zsh"]


def test_bash_offers_add_options(env: dict[str, str]) -> None:
    _, [all_, after_host] = bash(env, [["pgiam", "add", "--"], ["pgiam", "add", "prod", "--host", "h", "--"]])
    assert set(all_) == long_options(("add",))
    assert set(after_host) == long_options(("add",)) - {"--host"}


def test_bash_offers_each_commands_options(env: dict[str, str]) -> None:
    paths = leaves()
    _, replies = bash(env, [["pgiam", *p, "--"] for p in paths])
    for path, reply in zip(paths, replies):
        assert set(reply) == long_options(path), path


def test_bash_offers_actions_partitions_and_files(env: dict[str, str], tmp_path: Path) -> None:
    ca = tmp_path / "my ca.pem"
    ca.write_text("x")
    cases = [["pgiam", "sandbox", ""], ["pgiam", "timer", ""], ["pgiam", "certs", ""],
             ["pgiam", "certs", "update", "--partition", ""],
             ["pgiam", "certs", "update", "--partition", "=", "aws-"],  # plain bash splits --partition=aws-
             ["pgiam", "add", "p", "--sslrootcert", str(tmp_path / "my")],
             ["pgiam", "timer", "install", "--cron", "--"],
             ["pgiam", "timer", "install", "--every", ""]]
    _, r = bash(env, cases)
    assert r[0] == ["up", "down", "status"] and r[1] == ["install", "remove", "status"] and r[2] == ["update", "status"]
    assert r[3] == ["aws", "aws-us-gov", "aws-cn"] and r[4] == ["aws-us-gov", "aws-cn"]
    assert r[5] == [str(ca)]
    assert "--systemd" not in r[6] and "--launchd" not in r[6] and "--every" in r[6]  # exclusive in the parser
    assert "4m" in r[7] and "60m" not in r[7]  # 7m at most: the renewal margin (<= 450 s) minus 30 s


# ---------------------------------------------------------------- fish


def fish(env: dict[str, str], lines: list[str]) -> list[list[str]]:
    """`complete -C LINE` in fish for each line, after sourcing pgiam.fish; the candidates per line."""
    need("fish")

    def q(s: str) -> str:
        return "'" + s.replace("\\", "\\\\").replace("'", "\\'") + "'"

    script = [f"source {q(str(COMPLETIONS / 'pgiam.fish'))}"]
    for line in lines:
        script += [f"complete -C {q(line)}", "echo --end--"]
    p = subprocess.run(["fish", "--no-config", "-c", "\n".join(script)], env=env, capture_output=True, text=True, timeout=120)
    assert p.returncode == 0 and p.stderr == "", p.stderr
    out = [[w.split("\t")[0] for w in chunk.split("\n") if w] for chunk in p.stdout.split("--end--\n")[:-1]]
    assert len(out) == len(lines), p.stdout
    return out


def test_fish_offers_subcommands_and_services(env: dict[str, str]) -> None:
    cmds = name_commands()
    top, *names, again, hook, part = fish(env, ["pgiam ", *[f"pgiam {c} " for c in cmds], "pgiam refresh prod ",
                                               "pgiam hook ", "pgiam certs update --partition "])
    assert sorted(top) == COMMANDS
    for cmd, reply in zip(cmds, names):
        assert sorted(reply) == SERVICES, cmd
    assert again == ["stage"]
    assert sorted(hook) == ["bash", "fish", "zsh"]
    assert sorted(part) == ["aws", "aws-cn", "aws-us-gov"]


def test_fish_offers_each_commands_options(env: dict[str, str]) -> None:
    paths = leaves()
    for path, reply in zip(paths, fish(env, [f"pgiam {' '.join(p)} --" for p in paths])):
        assert set(reply) == long_options(path), path


# ---------------------------------------------------------------- zsh


def test_zsh_parses_and_loads_under_compinit(env: dict[str, str], tmp_path: Path) -> None:
    need("zsh")
    p = subprocess.run(["zsh", "-n", str(COMPLETIONS / "_pgiam")], capture_output=True, text=True, timeout=120)
    assert (p.returncode, p.stderr) == (0, "")
    script = (f"fpath=({shlex.quote(str(COMPLETIONS))} $fpath); autoload -U compinit; compinit -u -d {shlex.quote(str(tmp_path / 'zcd'))}\n"
              "print -r -- $_comps[pgiam]; autoload +X _pgiam && print loaded")
    p = subprocess.run(["zsh", "-f", "-c", script], env=env, capture_output=True, text=True, timeout=120)
    assert (p.returncode, p.stdout, p.stderr) == (0, "_pgiam\nloaded\n", "")


# Driven through zsh/zpty: an interactive zsh with compinit, a compadd wrapper that appends each
# completion's matches to a file, and TAB bound to a widget that completes then writes a marker.
ZPTY_DRIVER = r"""
out=$1; shift
zmodload zsh/zpty || exit 9
zpty z zsh -f -i
zpty -w z "PS1='> '; unsetopt auto_list auto_menu; fpath=(${(q)COMPDIR} \$fpath); autoload -U compinit; compinit -u -D"
zpty -w z "compadd() { if [[ \${@[1,(i)(-|--)]} == *-(O|A|D)\\ * ]]; then builtin compadd \"\$@\"; return; fi; local -a h; builtin compadd -A h \"\$@\"; (( \$#h )) && print -rl -- \$h >> ${(q)out}; builtin compadd \"\$@\"; }"
zpty -w z "_t() { zle complete-word; print -r -- --end-- >> ${(q)out}; }; zle -N _t; bindkey '^I' _t"
n=0
for line in "$@"; do
  (( n++ ))
  zpty -wn z "$line"$'\t'
  for i in {1..80}; do
    while zpty -rt z chunk 2>/dev/null; do :; done   # keep the pty drained
    (( $(grep -c -- '^--end--$' $out) >= n )) && break
    sleep 0.05
  done
  zpty -wn z $'\C-u'
done
zpty -d z
"""


def zsh(env: dict[str, str], tmp_path: Path, lines: list[str]) -> list[list[str]]:
    need("zsh")
    out = tmp_path / "zsh-matches"
    out.write_text("")
    p = subprocess.run(["zsh", "-f", "-c", ZPTY_DRIVER, "zsh", str(out), *lines],
                       env=dict(env, COMPDIR=str(COMPLETIONS)), capture_output=True, text=True, timeout=20)
    assert p.returncode == 0, p.stderr
    chunks = out.read_text().split("--end--\n")[:-1]
    assert len(chunks) == len(lines), out.read_text()
    return [[w for w in c.split("\n") if w] for c in chunks]


def test_zsh_offers_subcommands_services_and_shells(env: dict[str, str], tmp_path: Path) -> None:
    cmds = name_commands()
    top, *names, again, hook, part = zsh(env, tmp_path, ["pgiam ", *[f"pgiam {c} " for c in cmds], "pgiam refresh prod ",
                                                         "pgiam hook ", "pgiam certs update --partition="])
    assert sorted(top) == COMMANDS
    for cmd, reply in zip(cmds, names):
        assert reply == SERVICES, cmd
    assert again == ["stage"]
    assert hook == ["bash", "zsh", "fish"]
    assert part == ["aws", "aws-us-gov", "aws-cn"]


def test_zsh_offers_each_commands_options(env: dict[str, str], tmp_path: Path) -> None:
    paths = leaves()
    for path, reply in zip(paths, zsh(env, tmp_path, [f"pgiam {' '.join(p)} --" for p in paths])):
        assert set(reply) == long_options(path), path
