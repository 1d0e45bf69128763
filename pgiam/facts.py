"""The facts every path of pgiam shares, each defined once; standard library only.

The import-light fast path (pgiam.entry), the prompt hooks (rendered by pgiam.hooks from these
numbers), the full commands and the token index writer read these names instead of retyping
them: where pgiam's files are, how long a token lives, when a next-due can be believed, the rule
for pgiam's own directories, the marker lines, the argv of the no-op, the token index format.

Importing this module costs nothing beyond `os`: no dataclasses, typing or json at import time
(the fast path measures every millisecond); platformdirs (the XDG rules) and json are imported
only by the functions that need them.
"""

from __future__ import annotations

import os

TYPE_CHECKING = False  # typing itself costs the fast path about 4 ms; mypy reads the block below
if TYPE_CHECKING:
    from collections.abc import Mapping

APP = "pgiam"

# ---------------------------------------------------------------- tokens and time

# botocore hard-codes X-Amz-Expires=900 for RDS tokens (`generate_db_auth_token`); the AWS RDS user
# guide: "An authentication token is valid for 15 minutes".
TOKEN_LIFETIME = 900
# What pgiam asks Aurora DSQL for (`ExpiresIn`, botocore's default too): the same life as an RDS
# token, so one freshness rule and one next-due bound serve both.
DSQL_EXPIRES_IN = TOKEN_LIFETIME
# Seconds a token may be dated ahead of this clock (SigV4 dates have one-second resolution).
CLOCK_TOLERANCE = 5
# A token is never due sooner than this after it was signed: nothing spins.
MIN_INTERVAL = 30


def renewal_window(margin: int, lifetime: int = TOKEN_LIFETIME) -> int:
    """Seconds before expiry a full-life token is renewed: the margin, at most half the token's life."""
    return min(margin, lifetime // 2)


def next_due_limit(margin: int, lifetime: int = TOKEN_LIFETIME) -> int:
    """How far ahead of the clock a next-due may lie and still be believed.

    A token signed by this clock (give or take CLOCK_TOLERANCE) is due at most `lifetime - window`
    after now; a next-due further ahead was computed from a token dated ahead of the clock (the
    clock stepped back, a restored backup) and the full check must judge it. The fast path, the
    prompt hooks and the writer of next-due (which never writes beyond `limit - CLOCK_TOLERANCE`)
    all use this one number.
    """
    return lifetime - renewal_window(margin, lifetime) + CLOCK_TOLERANCE


def next_due_trusted(now: float, due: int, margin: int) -> bool:
    """True when next-due `due` lies ahead of `now`, but not so far that the clock must have jumped."""
    return now < due <= now + next_due_limit(margin)


# ---------------------------------------------------------------- the next-due file

NEXT_DUE = "next-due"  # in the state directory


def render_next_due(due: int, margin: int) -> bytes:
    """The next-due file: the earliest renewal instant (epoch seconds) on the first line, which is all
    the prompt hooks read (`read` takes one line), then the renewal margin it was computed with."""
    return f"{due}\n{margin}\n".encode()


def parse_next_due(data: bytes) -> tuple[int, int] | None:
    """(due, margin) from a next-due file; None for anything else (a half-written or foreign file)."""
    lines = data.split(b"\n")
    if len(lines) != 3 or lines[2] != b"" or not lines[0].isdigit() or not lines[1].isdigit():
        return None
    return int(lines[0]), int(lines[1])


# ---------------------------------------------------------------- locations

PGPASS_NAME = ".pgpass"  # in the home directory, when PGPASSFILE is not set
SERVICEFILE_NAME = ".pg_service.conf"  # likewise, when PGSERVICEFILE is not set
STATE_FILE = "state.json"
NOTICE = "notice"
LOCK = "lock"
TOKEN_INDEX = "token-index.json"
JOURNAL = "journal"  # a commit being written, or one a kill cut short (pgiam.fileio.write_all, store.recover)


def home_dir(env: Mapping[str, str]) -> str:
    """$HOME (libpq 15+ takes the home directory from it), else the passwd entry's."""
    return env.get("HOME") or os.path.expanduser("~")


def pgpass_file(env: Mapping[str, str]) -> str:
    """libpq's password file: PGPASSFILE if set, else ~/.pgpass (no `~` or `$VAR` expansion; libpq docs,
    "The Password File"). A relative value is returned as is: callers refuse it."""
    return env.get("PGPASSFILE") or os.path.join(home_dir(env), PGPASS_NAME)


def service_file(env: Mapping[str, str]) -> str:
    """libpq's per-user service file: PGSERVICEFILE if set, else ~/.pg_service.conf (libpq docs,
    "The Connection Service File")."""
    return env.get("PGSERVICEFILE") or os.path.join(home_dir(env), SERVICEFILE_NAME)


def config_file(env: Mapping[str, str]) -> str:
    """PGIAM_CONFIG (an operator's file, e.g. a mounted ConfigMap), else $XDG_CONFIG_HOME/pgiam/config.toml."""
    if env.get("PGIAM_CONFIG"):
        return env["PGIAM_CONFIG"]
    import platformdirs  # the XDG rules, not hand-rolled

    return os.path.join(platformdirs.user_config_dir(APP), "config.toml")


def own_config_dir(env: Mapping[str, str]) -> bool:
    """Is the config file's directory pgiam's own? Not when PGIAM_CONFIG names the file: the directory
    is then the operator's (a ConfigMap mount is root-owned or sticky world-writable; /etc/pgiam)."""
    return not env.get("PGIAM_CONFIG")


def state_dir(env: Mapping[str, str]) -> str:
    """PGIAM_STATE_DIR/pgiam (pgiam's own directory inside a shared volume), else $XDG_STATE_HOME/pgiam."""
    if env.get("PGIAM_STATE_DIR"):
        return os.path.join(env["PGIAM_STATE_DIR"], APP)
    import platformdirs

    return platformdirs.user_state_dir(APP)


def data_dir(env: Mapping[str, str]) -> str:
    """PGIAM_STATE_DIR/pgiam as well, else $XDG_DATA_HOME/pgiam (the managed CA bundles)."""
    if env.get("PGIAM_STATE_DIR"):
        return os.path.join(env["PGIAM_STATE_DIR"], APP)
    import platformdirs

    return platformdirs.user_data_dir(APP)


def own_dirs(env: Mapping[str, str]) -> list[str]:
    """pgiam's own directories, which every read and write checks (dir_problem): config (unless the
    operator's), state, data."""
    dirs = [state_dir(env), data_dir(env)]
    return [os.path.dirname(config_file(env)), *dirs] if own_config_dir(env) else dirs


def dir_problem(path: str) -> str | None:
    """Why pgiam must not use its own directory `path`: "type", "owner" (another user's) or "mode"
    (writable by group or others); None when it is fine or does not exist yet. Raises OSError when it
    cannot be looked at."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    if (st.st_mode & 0o170000) != 0o040000:  # stat.S_ISDIR, without importing stat
        return "type"
    if st.st_uid != os.geteuid():
        return "owner"
    if st.st_mode & 0o022:
        return "mode"
    return None


# ---------------------------------------------------------------- the marker lines (pgiam.block)

PGPASS_BEGIN = ("# BEGIN pgiam: IAM tokens managed by pgiam, rewritten on every refresh. "
                "`pgiam remove NAME` drops a service; lines outside this block are yours.")
SERVICEFILE_BEGIN = ("# BEGIN pgiam: services managed by pgiam, rewritten from its config (see `pgiam list`). "
                     "`pgiam remove NAME` deletes one; sections outside this block are yours.")
END = "# END pgiam"

# ---------------------------------------------------------------- the no-op

# What prompt hooks, timers and cron run, and what pgiam.entry answers without argparse (either order
# of the two options).
REFRESH_ARGS = ("refresh", "--if-needed", "--quiet")
FAST_ARGVS = (list(REFRESH_ARGS), ["refresh", "--quiet", "--if-needed"])

# ---------------------------------------------------------------- the token index

# What each service name means, for `pgiam token`'s fast path: written by the full `pgiam token`,
# valid only for the config file it names by identity (device, inode, size, mtime). No token in it.
TOKEN_INDEX_VERSION = 1


def config_stamp(path: str) -> list[int] | None:
    """The identity of the config file as the token index records it; None when it is missing."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return [st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns]


def render_token_index(stamp: list[int], margin: int, services: Mapping[str, tuple[str, int, int, str, str]]) -> bytes:
    """The token index for config `stamp`: per name (host, port, dial_port, user, region), and the margin."""
    import json

    doc = {
        "version": TOKEN_INDEX_VERSION,
        "config": stamp,
        "margin": margin,
        "services": {n: dict(zip(("host", "port", "dial_port", "user", "region"), s)) for n, s in sorted(services.items())},
    }
    return (json.dumps(doc, indent=1, sort_keys=True) + "\n").encode()


def parse_token_index(data: bytes, stamp: list[int] | None, name: str) -> tuple[str, int, int, str, str, int] | None:
    """(host, port, dial_port, user, region, margin) of service `name` from a token index made for the
    config `stamp`; None for another config, another version, an unknown name or a damaged file."""
    import json

    try:
        index = json.loads(data)
        if index.get("version") != TOKEN_INDEX_VERSION or stamp is None or index.get("config") != stamp:
            return None
        svc = index["services"][name]
        host, port, dial_port, user, region = (svc["host"], svc["port"], svc["dial_port"], svc["user"], svc["region"])
        margin = index["margin"]
    except (ValueError, KeyError, TypeError, AttributeError, RecursionError):
        return None
    if not all(isinstance(v, str) for v in (host, user, region)) or not all(type(v) is int for v in (port, dial_port, margin)):
        return None
    return host, port, dial_port, user, region, margin
