"""One module per command: `register(sub)` builds its parser, `run(args, paths, out)` calls one
operation and renders its report. The order here is the order of `pgiam --help`."""

from __future__ import annotations

from types import ModuleType


def modules() -> list[ModuleType]:
    from pgiam.commands import add, certs, doctor, hook, list_, refresh, remove, sandbox, status, timer, token

    return [add, remove, list_, status, refresh, token, sandbox, hook, timer, certs, doctor]
