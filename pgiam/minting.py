"""The minting protocol shared by hooks, timers, `refresh`, `token` and `run`: one minter at a time.

Resolving credentials can mean an SSO or STS call, an MFA prompt or a credential_process; twenty
shells reaching an expired token together must cause one of those, not twenty. So minting happens
in a slot (a flock on the state directory itself: separate from the short write lock, and no
file of its own). Whoever finds the slot taken:
- a background `refresh --if-needed` (prompt hook before expiry, timer) returns at once: the
  minter in progress will write what it would have written;
- a caller that needs a token now (an expired token at the prompt, `pgiam token`, a hand-run
  `refresh`) waits a bounded time for the slot, then judges the files again: usually the other
  minter has just written a fresh token and nothing is left to mint.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from pgiam.errors import LockedError
from pgiam.fileio import locked_directory
from pgiam.paths import Paths


class MintBusy(LockedError):
    """Another pgiam is minting and this caller does not wait."""


@contextlib.contextmanager
def slot(paths: Paths, wait: float) -> Iterator[bool]:
    """Hold the mint slot; yield whether another minter had it first (then judge the files again).

    wait=0: raise MintBusy at once when the slot is taken; else wait up to `wait` seconds and raise
    LockedError (naming the holder) if it is still taken.
    """
    path = paths.state_dir
    with contextlib.ExitStack() as stack:
        try:
            stack.enter_context(locked_directory(path, 0, scope=paths.scope))
            waited = False
        except LockedError as err:
            if not wait:
                raise MintBusy(err.message, err.hint) from None
            stack.enter_context(locked_directory(path, wait, scope=paths.scope))
            waited = True
        yield waited
