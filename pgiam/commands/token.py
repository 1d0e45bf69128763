"""`pgiam token`: print a valid token (the one command that prints one); cheap enough for a password callback.

When ~/.pgpass holds a token for the service that the freshness rule says is not due, that token is
printed (pgiam.entry answers that case without this module: see its token index). Otherwise a
token is minted in the mint slot, waiting a bounded time for a minter already at work and judging
the files again after waiting, written to ~/.pgpass and the service file exactly as `refresh` writes
them, and printed.
"""

from __future__ import annotations

import argparse
import time

from pgiam.commands._common import Out, Subparsers, command
from pgiam.config import Config, Service
from pgiam.errors import ExitCode, PgiamError
from pgiam.paths import Paths


def register(sub: Subparsers) -> None:
    tk = command(sub, "token", "print a valid token on stdout (password callbacks, PGPASSWORD)", """\
The token in ~/.pgpass is printed while it is valid for longer than the renewal margin; otherwise a
new one is minted, written to ~/.pgpass as `pgiam refresh` writes it, and printed.

examples:
  PGPASSWORD="$(pgiam token prod)" some-tool-without-libpq
  asyncpg.create_pool(..., password=lambda: subprocess.check_output(["pgiam", "token", "prod"], text=True).strip())""")
    tk.add_argument("name", metavar="NAME")


def run(args: argparse.Namespace, paths: Paths, out: Out) -> int:
    from pgiam import refresh, store
    from pgiam.config import load_config
    from pgiam.facts import config_stamp

    stamp = config_stamp(str(paths.config_file))  # before reading: a later edit invalidates the index
    config = load_config(paths.config_file, scope=paths.scope)
    svc = config.services.get(args.name)
    if svc is None:
        raise store.no_such_service(paths, args.name)
    save_index(paths, config, stamp)
    token = fresh_token(paths, svc, config.defaults.renewal_margin)
    if token is None:
        def mint(s: Service) -> refresh.Minted:
            from pgiam import token as tokens  # botocore, only when a token is really due

            return tokens.mint(s)

        result = refresh.refresh(paths, time.time(), mint, [args.name])
        for n in result.notices:
            out.note(n)
        failed = [o for o in result.outcomes if o.status == "failed"]
        if failed:
            err = PgiamError(failed[0].error or "minting a token failed", failed[0].hint)
            err.code = failed[0].code or ExitCode.AUTH
            raise err
        token = fresh_token(paths, svc, config.defaults.renewal_margin, due_ok=True)
        if token is None:
            raise PgiamError(f"{paths.pgpass} holds no valid token for {args.name!r} after minting one",
                             f"check that nothing else rewrites {paths.pgpass}, then run `pgiam token {args.name}` again")
    out.secret(token)  # the one command whose job is to print a token: past the redactor
    return ExitCode.OK


def fresh_token(paths: Paths, svc: Service, margin: int, due_ok: bool = False) -> str | None:
    """The token ~/.pgpass holds for `svc` when it is not due (with due_ok: any token signed for this
    entry, as after a refresh that just wrote it: the signer's clock, not this one, dated it)."""
    from pgiam import store

    snap = store.read(paths)
    v = store.verdict(svc, snap, time.time(), margin)
    if v.due and not (due_ok and v.reason == "renew"):
        return None
    return snap.tokens.get(store.key_of(svc))


def save_index(paths: Paths, config: Config, stamp: list[int] | None) -> None:
    """The token index pgiam.entry reads: what each service name means, for the config file `stamp`."""
    from pgiam.facts import render_token_index
    from pgiam.fileio import atomic_write, ensure_private_dir, read_bytes

    if stamp is None:
        return
    data = render_token_index(stamp, config.defaults.renewal_margin,
                              {n: (s.host, s.port, s.dial_port, s.user, s.region) for n, s in config.services.items()})
    path = paths.token_index
    if read_bytes(path, scope=paths.scope) != data:
        ensure_private_dir(paths.state_dir, scope=paths.scope)
        atomic_write(path, data, 0o600, scope=paths.scope)
