"""The man page and the shell completions cover the real parser, and the man page lints clean (issue 6).

Everything here is derived from `pgiam.cli.build_parser()`, `ExitCode` and `Paths`: adding a
subcommand, an option or an exit code without documenting it fails a test.
"""

from __future__ import annotations

import argparse
import re
import subprocess
from pathlib import Path
from typing import Iterator

import pytest

from tests.tools import require_tool

from pgiam.cli import build_parser
from pgiam.errors import ExitCode
from pgiam.paths import Paths

ROOT = Path(__file__).resolve().parents[2]
MAN = ROOT / "man" / "pgiam.1"
BASH = ROOT / "completions" / "pgiam.bash"
ZSH = ROOT / "completions" / "_pgiam"
FISH = ROOT / "completions" / "pgiam.fish"
COMPLETIONS = (BASH, ZSH, FISH)


# ---------------------------------------------------------------- the parser


def walk(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], argparse.ArgumentParser]]:
    """(words, parser) for the top parser and every nested subparser: (), ("add",), ("timer", "install")..."""
    yield path, parser
    # argparse has no public API to list subparsers; _actions is stable since Python 3.2.
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from walk(sub, path + (name,))


def long_options(parser: argparse.ArgumentParser) -> set[str]:
    """The parser's own long options, --help included."""
    return {o for a in parser._actions for o in a.option_strings if o.startswith("--")}


PARSERS = dict(walk(build_parser()))
COMMANDS = sorted(p for p in PARSERS if len(p) == 1)
ACTIONS = sorted(p for p in PARSERS if len(p) == 2)
OPTIONS = sorted((path, opt) for path, parser in PARSERS.items() for opt in long_options(parser))


def test_the_walk_sees_nested_subparsers() -> None:
    """Guards the walker itself: a silent empty walk would make every other test pass."""
    assert ("add",) in PARSERS and ("timer", "install") in PARSERS and ("certs", "update") in PARSERS
    assert "--no-enable" in long_options(PARSERS[("timer", "install")])
    assert len(COMMANDS) >= 10 and len(ACTIONS) >= 8


# ---------------------------------------------------------------- the man page


def man_text() -> str:
    """The page's source with roff's escaped hyphens and quotes made plain."""
    return MAN.read_text().replace("\\-", "-").replace("\\(aq", "'")


def man_section(name: str) -> str:
    """The text of one .SH section."""
    text = man_text()
    m = re.search(rf"^\.SH \"?{re.escape(name)}\"?\n(.*?)(?=^\.SH |\Z)", text, re.M | re.S)
    assert m, f"man page has no {name} section"
    return m.group(1)


def man_subsection(command: str) -> str:
    """The COMMANDS subsection `.SS "pgiam COMMAND ..."`."""
    text = man_section("COMMANDS")
    m = re.search(rf"^\.SS \"pgiam {re.escape(command)}\b.*?\n(.*?)(?=^\.SS |\Z)", text, re.M | re.S)
    assert m, f"COMMANDS has no .SS \"pgiam {command} ...\" subsection"
    return m.group(0)


def man_action_item(command: str, action: str) -> str:
    """The `.TP` / `.B ACTION ...` item of one action inside its command's subsection, up to the next action."""
    actions = [p[1] for p in ACTIONS if p[0] == command]
    text = man_subsection(command)
    m = re.search(rf"^\.TP\n\.B {re.escape(action)}\b.*?(?=^\.TP\n\.B (?:{'|'.join(map(re.escape, actions))})\b|\Z)",
                  text, re.M | re.S)
    assert m, f"the man page's `pgiam {command}` subsection has no `.TP/.B {action}` item"
    return m.group(0)


def test_man_action_items_are_separate() -> None:
    """Guards man_action_item: each action's item holds its own options and not its siblings'."""
    assert "--every" in man_action_item("timer", "install") and "--every" not in man_action_item("timer", "remove")
    assert "--url" in man_action_item("certs", "update") and "--url" not in man_action_item("certs", "status")


def has_word(text: str, word: str) -> bool:
    return re.search(rf"(?<![\w-]){re.escape(word)}(?![\w-])", text) is not None


@pytest.mark.parametrize("section", ["NAME", "SYNOPSIS", "DESCRIPTION", "COMMANDS", "SHELL SETUP", "FILES",
                                     "ENVIRONMENT", "EXIT STATUS", "EXAMPLES", "SEE ALSO"])
def test_man_has_section(section: str) -> None:
    assert man_section(section).strip()


@pytest.mark.parametrize("path", COMMANDS + ACTIONS, ids=" ".join)
def test_man_documents_command(path: tuple[str, ...]) -> None:
    synopsis = man_section("SYNOPSIS")
    assert has_word(synopsis, path[0]), f"SYNOPSIS lacks `{path[0]}`"
    assert has_word(synopsis, path[-1]), f"SYNOPSIS lacks `{' '.join(path)}`"
    assert has_word(man_subsection(path[0]), path[-1]), f"COMMANDS lacks `pgiam {' '.join(path)}`"


@pytest.mark.parametrize(("path", "option"), OPTIONS, ids=lambda v: " ".join(v) if isinstance(v, tuple) else v)
def test_man_documents_option(path: tuple[str, ...], option: str) -> None:
    """Each option is in its own command's subsection (global ones under Global options)."""
    if not path:
        where = man_section("COMMANDS").split(".SS \"pgiam", 1)[0]
    elif len(path) == 2:
        where = man_action_item(*path)
    else:
        where = man_subsection(path[0])
    if option == "--help" and path:
        where = man_section("COMMANDS")  # said once: "every command accepts it too"
    assert has_word(where, option), f"man page lacks {option} for `pgiam {' '.join(path)}`"


def test_man_exit_status_lists_every_exit_code() -> None:
    listed = {int(n) for n in re.findall(r"^\.TP\n\.B (\d+)$", man_section("EXIT STATUS"), re.M)}
    codes = {int(c) for c in ExitCode}
    assert listed == codes, f"EXIT STATUS lacks {sorted(codes - listed)}, or lists unknown {sorted(listed - codes)}"


def test_man_files_lists_every_pgiam_path() -> None:
    p = Paths(config_file=Path("/C/pgiam/config.toml"), state_dir=Path("/S/pgiam"), data_dir=Path("/D/pgiam"),
              pgpass=Path("/H/.pgpass"), service_file=Path("/H/.pg_service.conf"), home=Path("/H"))
    files = man_section("FILES")
    for path in (p.config_file, p.state_file, p.next_due_file, p.notice_file, p.lock_file, p.sandbox_dir,
                 p.certs_dir, p.pgpass, p.service_file):
        assert path.name in files, f"FILES lacks {path.name}"
    assert "$XDG_CONFIG_HOME/systemd/user/pgiam-refresh.service" in files
    assert "crontab" in files


def test_man_environment_lists_every_pgiam_variable() -> None:
    """Each PGIAM_* variable the code reads, and the ones the brief promises, are documented."""
    env = man_section("ENVIRONMENT")
    read = set()
    for src in (ROOT / "pgiam").rglob("*.py"):
        read |= set(re.findall(r"\bPGIAM_[A-Z_]+\b", src.read_text()))
    read.discard("PGIAM_ALLOW_SKIP_E2E")  # tests only
    promised = {"PGSERVICEFILE", "PGPASSFILE", "AWS_PROFILE", "AWS_REGION", "AWS_CONFIG_FILE",
                "AWS_SHARED_CREDENTIALS_FILE", "XDG_CONFIG_HOME", "XDG_STATE_HOME", "XDG_DATA_HOME",
                "SSL_CERT_FILE", "NO_COLOR"}
    missing = sorted(v for v in read | promised if not has_word(env, v))
    assert not missing, f"ENVIRONMENT lacks {missing}"


def test_man_shell_setup_matches_the_hook_usage() -> None:
    setup = man_section("SHELL SETUP")
    for line in ('eval "$(pgiam hook bash)"', 'eval "$(pgiam hook zsh)"', "pgiam hook fish | source"):
        assert line in setup


def need(tool: str) -> str:
    return require_tool(tool)


@pytest.mark.parametrize("argv", [["mandoc", "-Tlint", "-Wwarning"], ["groff", "-man", "-ww", "-z"]], ids=lambda a: a[0])
def test_man_lints_clean(argv: list[str]) -> None:
    need(argv[0])
    p = subprocess.run([*argv, str(MAN)], capture_output=True, text=True, timeout=30)
    assert (p.returncode, p.stdout + p.stderr) == (0, "")


# ---------------------------------------------------------------- the completion files


def option_in(path: Path, option: str) -> bool:
    """bash and zsh spell options as --name; fish as `-l name`."""
    text = path.read_text()
    if path == FISH:
        return re.search(rf"-l {re.escape(option[2:])}(?![\w-])", text) is not None
    return has_word(text, option)


@pytest.mark.parametrize("completion", COMPLETIONS, ids=lambda p: p.name)
@pytest.mark.parametrize("path", COMMANDS + ACTIONS, ids=" ".join)
def test_completion_has_command(completion: Path, path: tuple[str, ...]) -> None:
    assert has_word(completion.read_text(), path[-1]), f"{completion.name} lacks `{' '.join(path)}`"


# Each completion file is read per command: which options it offers where. The readers follow the
# files' own structure (bash `case` labels around `opts+=(...)`, zsh `case` labels around `_arguments`
# specs, fish `-n '__pgiam_in CMD ACTION'` conditions) so that a flag offered under the wrong command,
# or only under another one, fails (issue 10: "anywhere in the file" passed before).

Scoped = dict[tuple[str, ...], set[str]]
NAMES = {p[0] for p in COMMANDS}


def _case_scopes(text: str) -> Iterator[tuple[int, list[list[str]], str]]:
    """(offset, enclosing case labels outermost first, line) for every line of a bash/zsh script."""
    stack: list[tuple[int, list[str]]] = []
    offset = 0
    for line in text.splitlines(keepends=True):
        indent = len(line) - len(line.lstrip())
        s = line.strip()
        if s.startswith("esac"):
            stack = [e for e in stack if e[0] < indent]
        m = re.match(r"^([\w'|: *-]+)\)(\s|$)", s)
        if m and not s.startswith(("(", "-")) and "=" not in m.group(1):
            stack = [e for e in stack if e[0] < indent]
            stack.append((indent, [a.strip().strip("'") for a in m.group(1).split("|")]))
        yield offset, [alts for _, alts in stack], line
        offset += len(line)


def _paths_of(labels: list[list[str]], line: str) -> set[tuple[str, ...]]:
    """The command paths a line belongs to, from its case labels (`cmd`, then `action`, or `cmd:action`)."""
    for alts in reversed(labels):
        if any(":" in a for a in alts):
            return {tuple(a.split(":")) for a in alts}
    cmds = next((alts for alts in labels if set(alts) & NAMES), None)
    if cmds is None:
        return {()}
    only = re.search(r"\[\[ \$cmd == (\w+) \]\]", line)
    cmds = [c for c in cmds if c in NAMES and (not only or c == only.group(1))]
    inner = labels[labels.index(next(a for a in labels if set(a) & NAMES)) + 1:]
    actions = [a for alts in inner for a in alts if any((c, a) in PARSERS for c in cmds)]
    return {(c, a) for c in cmds for a in actions} if actions else {(c,) for c in cmds}


def scoped_bash(text: str) -> Scoped:
    out: Scoped = {}
    lines = list(_case_scopes(text))
    for m in re.finditer(r"opts\+?=\(([^)]*)\)", text):
        _, labels, line = max((ln for ln in lines if ln[0] <= m.start()), key=lambda ln: ln[0])
        for path in _paths_of(labels, line):
            out.setdefault(path, set()).update(re.findall(r"--[\w-]+", m.group(1)))
    return out


def scoped_zsh(text: str) -> Scoped:
    out: Scoped = {}
    for _, labels, line in _case_scopes(text):
        opts = re.findall(r"(--[\w-]+)(?:=?\[|')", line)
        if opts:
            for path in _paths_of(labels, line):
                out.setdefault(path, set()).update(opts)
    return out


def scoped_fish(text: str) -> Scoped:
    out: Scoped = {}
    for line in text.splitlines():
        if not line.startswith("complete -c pgiam") or " -l " not in line:
            continue
        m = re.search(r"-n (?:'__pgiam_(?:in|at)((?: [\w-]+)*)[;']|__pgiam_(?:in|at) )", line)
        paths = {tuple((m.group(1) or "").split())} if m else set(PARSERS)  # no condition: every command
        for path in paths:
            out.setdefault(path, set()).update("--" + o for o in re.findall(r"-l ([\w-]+)", line))
    return out


SCOPED = {BASH: scoped_bash, ZSH: scoped_zsh, FISH: scoped_fish}


def offered(completion: Path) -> Scoped:
    return SCOPED[completion](completion.read_text())


def test_the_completion_readers_see_the_scopes() -> None:
    """Guards the readers: an empty or confused reading would make the tests below pass or fail for nothing."""
    for completion in COMPLETIONS:
        got = offered(completion)
        assert "--every" in got.get(("timer", "install"), set()), completion.name
        assert "--every" not in got.get(("timer", "remove"), set()), completion.name
        assert "--if-needed" in got.get(("refresh",), set()) and "--if-needed" not in got.get(("status",), set()), completion.name
        assert "--names" in got.get(("list",), set()) and "--names" not in got.get(("status",), set()), completion.name
        assert {"--debug", "--version"} <= got.get((), set()), completion.name


@pytest.mark.parametrize("completion", COMPLETIONS, ids=lambda p: p.name)
@pytest.mark.parametrize(("path", "option"), OPTIONS, ids=lambda v: " ".join(v) if isinstance(v, tuple) else v)
def test_completion_offers_option_under_its_command(completion: Path, path: tuple[str, ...], option: str) -> None:
    if option == "--help":
        assert option_in(completion, option)  # every command accepts it; the files offer it once
        return
    assert option in offered(completion).get(path, set()), f"{completion.name} does not offer {option} for `pgiam {' '.join(path)}`"


@pytest.mark.parametrize("completion", COMPLETIONS, ids=lambda p: p.name)
def test_completion_offers_no_option_a_command_lacks(completion: Path) -> None:
    """The other way round: nothing offered under a command that its parser would refuse."""
    stale = {(path, o) for path, opts in offered(completion).items() for o in opts
             if path in PARSERS and o not in long_options(PARSERS[path])}
    assert not stale, f"{completion.name} offers {sorted(stale)}"


@pytest.mark.parametrize("completion", COMPLETIONS, ids=lambda p: p.name)
def test_completion_has_every_choice(completion: Path) -> None:
    """Fixed value lists (hook's shells, --partition's partitions) are offered."""
    text = completion.read_text()
    for parser in PARSERS.values():
        for action in parser._actions:
            if action.choices and not isinstance(action, argparse._SubParsersAction):
                for choice in action.choices:
                    assert has_word(text, choice), f"{completion.name} lacks the choice {choice}"


@pytest.mark.parametrize("completion", COMPLETIONS, ids=lambda p: p.name)
def test_completion_asks_the_fast_path_for_names(completion: Path) -> None:
    assert "pgiam list --names 2>/dev/null" in completion.read_text()


def test_completion_headers() -> None:
    assert ZSH.read_text().startswith("#compdef pgiam\n")
    assert re.search(r"^complete -F _pgiam pgiam$", BASH.read_text(), re.M)
