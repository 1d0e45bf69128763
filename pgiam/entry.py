"""The console entry point. Two calls made often are answered here without argparse, TOML or botocore:

- `pgiam refresh --if-needed --quiet` (timers, prompt hooks): when nothing is due it reads one tiny
  file and stats the config, and writes nothing. The "next due" file is rewritten under the lock by
  every refresh/add/remove, so it is at least as new as the state; a config edited by hand afterwards
  is newer than it and takes the full path.
- `pgiam token NAME` (a connection pool's password callback): when ~/.pgpass holds a token for NAME
  that is valid beyond the renewal margin, it is printed from the file. What NAME means (host, port,
  user, region, margin) comes from the token index that the full `pgiam token` writes; the index
  names the config file's identity (device, inode, size, mtime) it was made from, so any change to
  the config sends the call down the full path, which writes a new index.
"""

from __future__ import annotations

import os
import sys
import time

_FAST = (["refresh", "--if-needed", "--quiet"], ["refresh", "--quiet", "--if-needed"])


def nothing_due() -> bool:
    """True only when the next-due epoch is ahead (by no more than a token lives) and neither the
    config nor either libpq file changed since it was written; anything else takes the full path."""
    import platformdirs  # the XDG rules, not hand-rolled (about 3 ms)

    env = os.environ
    home = env.get("HOME", "")
    due_file = os.path.join(platformdirs.user_state_dir("pgiam"), "next-due")
    watched = (
        os.path.join(platformdirs.user_config_dir("pgiam"), "config.toml"),
        # libpq's locations (PGPASSFILE / PGSERVICEFILE, else the home directory); the full path
        # refuses relative ones, so they never count as unchanged here.
        env.get("PGPASSFILE") or os.path.join(home, ".pgpass"),
        env.get("PGSERVICEFILE") or os.path.join(home, ".pg_service.conf"),
    )
    try:
        with open(due_file, "rb") as f:
            due = int(f.read(64))
            due_mtime = os.fstat(f.fileno()).st_mtime_ns
        for path in watched:
            # Written in the same clock tick counts as older; a missing file is a change.
            if not os.path.isabs(path) or os.stat(path).st_mtime_ns > due_mtime:
                return False
    except (OSError, ValueError):
        return False
    now = time.time()
    # next-due is written at most one token life (900 s) ahead: later means the clock stepped back.
    return now < due <= now + 900


TOKEN_INDEX = "token-index.json"  # in the state directory


def config_stamp(path: str) -> list[int] | None:
    """The identity of the config file as the token index records it; None when it is missing."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return [st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns]


def _read_regular(path: str, limit: int = 1 << 22) -> bytes:
    """The bytes of a regular file; a FIFO or device never blocks this (OSError instead)."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    try:
        import stat

        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(f"{path} is not a regular file")
        chunks = []
        while data := os.read(fd, 1 << 16):
            chunks.append(data)
            limit -= len(data)
            if limit < 0:
                raise OSError(f"{path} is too large")
        return b"".join(chunks)
    finally:
        os.close(fd)


def cached_token(name: str) -> str | None:
    """The token ~/.pgpass holds for service `name` when the freshness rule says it is not due
    (pgiam.freshness, as `refresh --if-needed` judges it); None sends the caller to the full path."""
    import json

    import platformdirs

    from pgiam import freshness, pgpass, tokeninfo

    env = os.environ
    home = env.get("HOME", "")
    state_dir = platformdirs.user_state_dir("pgiam")
    config = os.path.join(platformdirs.user_config_dir("pgiam"), "config.toml")
    # libpq's location (PGPASSFILE, else the home directory); relative paths take the full path.
    pgpass_path = env.get("PGPASSFILE") or os.path.join(home, ".pgpass")
    if not os.path.isabs(pgpass_path):
        return None
    try:
        index = json.loads(_read_regular(os.path.join(state_dir, TOKEN_INDEX)))
        if index.get("version") != 1 or index.get("config") != config_stamp(config):
            return None
        svc = index["services"][name]
        host, port, dial_port, user, region = (svc["host"], svc["port"], svc["dial_port"], svc["user"], svc["region"])
        margin = index["margin"]
        if not all(isinstance(v, str) for v in (host, user, region)) or not all(
                type(v) is int for v in (port, dial_port, margin)):
            return None
        tokens = pgpass.parse_tokens(_read_regular(pgpass_path).decode("utf-8", "surrogateescape"))
        token = tokens.get(pgpass.Key(host, str(dial_port), user))
        info = tokeninfo.try_decode(token)
        if token is None or info is None:
            return None
        # pgiam's note of the credentials' expiry applies only to the very token it wrote (as in
        # pgiam.store.verdict): a token is refused once the credentials that signed it expire.
        creds = None
        try:
            row = json.loads(_read_regular(os.path.join(state_dir, "state.json")))["services"][name]
            if row.get("key") == f"{host}:{dial_port}:{user}" and row.get("minted") == info.signed_at:
                creds = row.get("expires")
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            pass
        if creds is not None and (type(creds) not in (int, float) or creds != creds):
            return None
        dsql = info.service == "dsql"
        verdict = freshness.judge(time.time(), info, host=host, port=None if dsql else port,
                                  user=None if dsql else user, region=region, margin=margin,
                                  credentials_expire=creds)
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None
    return None if verdict.due else token


def _fast_token(argv: list[str]) -> bool:
    """Answer `pgiam token NAME` from the files when the token there is fresh; False: take the full path."""
    if len(argv) != 2 or argv[0] != "token" or argv[1].startswith("-"):
        return False
    token = cached_token(argv[1])
    if token is None:
        return False
    sys.stdout.write(token + "\n")  # the one command whose job is to print a token
    sys.stdout.flush()
    return True


def main() -> None:
    """Run pgiam and exit with its status."""
    if sys.argv[1:] in _FAST and nothing_due():
        sys.exit(0)
    if _fast_token(sys.argv[1:]):
        sys.exit(0)
    from pgiam.cli import main as cli_main

    sys.exit(cli_main())
