"""`pgiam completion bash|zsh|fish`: print the shell completion script shipped with pgiam."""

from __future__ import annotations

import argparse
from pathlib import Path

from pgiam.commands._common import Out, Subparsers, command
from pgiam.errors import EnvironmentProblem, ExitCode
from pgiam.paths import Paths

# The scripts in the source tree's completions/ directory; a wheel installs them as data files
# (pyproject.toml, [tool.hatch.build.targets.wheel.shared-data]) under these directories of its prefix.
FILES = {"bash": "pgiam.bash", "zsh": "_pgiam", "fish": "pgiam.fish"}
INSTALLED = {"bash": "share/bash-completion/completions", "zsh": "share/zsh/site-functions",
             "fish": "share/fish/vendor_completions.d"}
WHERE = {
    "bash": "pgiam completion bash > ~/.local/share/bash-completion/completions/pgiam",
    "zsh": "pgiam completion zsh > ~/.zfunc/_pgiam   # with fpath=(~/.zfunc $fpath) before compinit in ~/.zshrc",
    "fish": "pgiam completion fish > ~/.config/fish/completions/pgiam.fish",
}


def register(sub: Subparsers) -> None:
    c = command(sub, "completion", "print the completion script for bash, zsh or fish", "examples:\n"
                + "\n".join(f"  {line}" for line in WHERE.values()))
    c.add_argument("shell", choices=list(FILES), metavar="SHELL", help="bash, zsh or fish")


def script_path(shell: str) -> Path:
    """Where this pgiam's script for `shell` is: the source tree's completions/, else the installed data file."""
    name = FILES[shell]
    # A source checkout (editable install, `python -m pgiam` in the tree) reads the files themselves.
    tree = Path(__file__).resolve().parents[2]
    if (tree / "pyproject.toml").is_file() and (tree / "completions" / name).is_file():
        return tree / "completions" / name
    # An installed wheel: its RECORD lists the data files, relative to site-packages.
    from importlib import metadata

    try:
        files = metadata.files("pgiam") or []
    except metadata.PackageNotFoundError:
        files = []
    for f in files:
        if f.name == name and "/".join(f.parts).endswith(f"{INSTALLED[shell]}/{name}"):
            located = Path(str(f.locate()))
            if located.is_file():
                return located
    raise EnvironmentProblem(f"the {shell} completion script is not installed with this pgiam",
                             f"install pgiam from its wheel (pip or pipx), or take completions/{name} "
                             "from pgiam's source")


def run(args: argparse.Namespace, paths: Paths, out: Out) -> int:
    data = script_path(args.shell).read_bytes()
    # Byte for byte: the very file, whatever the locale's encoding.
    buffer = getattr(out.stdout, "buffer", None)
    if buffer is not None:
        out.stdout.flush()
        buffer.write(data)
        buffer.flush()
    else:
        out.stdout.write(data.decode("utf-8"))
    return ExitCode.OK
