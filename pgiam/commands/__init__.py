"""One module per command: `register(sub)` builds its parser, `run(args, paths, out)` calls one
operation and renders its report. The order here is the order of `pgiam --help`."""

from __future__ import annotations

from types import ModuleType


def modules() -> list[ModuleType]:
    from pgiam.commands import add, certs, completion, hook, list_, refresh, remove, run, sandbox, status, timer, token
    from pgiam.commands import discover, doctor, env, export, uninstall, url

    return [add, remove, list_, status, refresh, token, env, url, export, run, sandbox, hook, timer, certs, discover, doctor,
            completion, uninstall]
