"""The minting protocol shared by hooks, timers, `refresh`, `token` and `run`: one minter per identity at a time.

Resolving credentials can mean an SSO or STS call, an MFA prompt or a credential_process; twenty
shells reaching an expired token together must cause one of those, not twenty. So minting happens
in a slot, one per credential identity (profile, region and credentials file: what one botocore
session resolves), a lock file under the state directory's `mint` directory, separate from the
short write lock (which the commit of the files still takes, briefly). A helper that hangs for one
profile holds only the services that sign with it. Whoever finds a slot taken:
- a background `refresh --if-needed` (prompt hook before expiry, timer) does not wait: the minter in
  progress will write what it would have written;
- a caller that needs a token now (an expired token at the prompt, `pgiam token`, a hand-run
  `refresh`) waits a bounded time for the slot, then judges the files again: usually the other
  minter has just written a fresh token and nothing is left to mint.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterator
from pathlib import Path

from pgiam.config import Service
from pgiam.errors import LockedError
from pgiam.fileio import locked
from pgiam.paths import Paths

SlotKey = tuple[str | None, str, str | None]  # (profile, region, credentials file): token.Minter's session key


class MintBusy(LockedError):
    """Another pgiam is minting for this identity and this caller does not wait."""


def key_of(svc: Service) -> SlotKey:
    """The credential identity `svc` signs with: services with the same key share one mint slot."""
    return (svc.profile, svc.region, svc.aws_credentials_file)


def label(key: SlotKey) -> str:
    """`profile P in R`, as a message names the slot (no profile: AWS_PROFILE or default, as botocore picks)."""
    profile, region, _ = key
    return f"profile {profile or os.environ.get('AWS_PROFILE') or 'default'} in {region}"


def slot_file(paths: Paths, key: SlotKey) -> Path:
    """The slot's lock file: readable for a person listing the directory, safe for any profile name."""
    profile, region, creds = key
    name = "@".join(re.sub(r"[^A-Za-z0-9_.-]", lambda m: f"%{ord(m.group()):02x}", part)
                    for part in (profile or os.environ.get("AWS_PROFILE") or "default", region))
    if creds or len(name) > 100 or name.startswith("."):
        import hashlib

        name = name[:60] + "-" + hashlib.sha256(repr(key).encode()).hexdigest()[:16]
    return paths.mint_dir / f"{name}.lock"


@contextlib.contextmanager
def slot(paths: Paths, key: SlotKey, wait: float, until: float | None = None) -> Iterator[bool]:
    """Hold the mint slot of `key`; yield whether another minter had it first (then judge the files again).

    wait=0: raise MintBusy at once when the slot is taken; else wait up to `wait` seconds (or until the
    monotonic `until`, when given: several slots share one wait) and raise LockedError (naming the holder's
    pid and the profile) if it is still taken.
    """
    path, what = slot_file(paths, key), f"the mint lock of {label(key)}"
    with contextlib.ExitStack() as stack:
        try:
            stack.enter_context(locked(path, 0, what, guard=False, scope=paths.scope))
            waited = False
        except LockedError as err:
            if not wait:
                raise MintBusy(err.message, err.hint) from None
            stack.enter_context(locked(path, wait, what, guard=False, until=until, scope=paths.scope))
            waited = True
        yield waited
