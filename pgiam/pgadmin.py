"""pgAdmin 4's servers.json, as `setup.py load-servers` reads it; pure.

The format is pgAdmin's "Import/Export Servers" documentation: `{"Servers": {"1": {...}, ...}}` with
`Name`, `Group`, `Host`, `Port`, `Username`, `MaintenanceDB`, the libpq keywords under
`ConnectionParameters`, and `PasswordExecCommand` / `PasswordExecExpiration` (seconds): pgAdmin runs the
command through a shell when it needs a password and keeps the answer that long. pgAdmin imports the
password-exec fields only in desktop mode (`SERVER_MODE = False`); in server mode an administrator must
enable them (`ENABLE_SERVER_PASS_EXEC_CMD`).
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from pgiam.facts import MIN_INTERVAL, renewal_window

GROUP = "pgiam"
# The libpq keywords of an entry that go under ConnectionParameters (pgAdmin passes them to libpq);
# host, port, user and dbname have their own fields.
PARAMETERS = ("hostaddr", "sslmode", "sslrootcert", "require_auth")


@dataclass(frozen=True)
class Server:
    """One service as pgAdmin should see it."""

    name: str
    keys: Mapping[str, str]  # the service-file keys pgiam writes for it (pgiam.store.service_entry)
    command: Sequence[str]  # argv that prints a valid token: `pgiam token NAME`, absolute
    env: Mapping[str, str]  # variables the command needs to find pgiam's and libpq's files


def expiration(margin: int) -> int:
    """Seconds pgAdmin may keep a password from `pgiam token`, below the shortest life such a token has left.

    `pgiam token` prints a token only while it is not due, that is with more than min(margin, life / 2)
    seconds left (pgiam.freshness.due_at; a token lives TOKEN_LIFETIME at most, less when the credentials
    that signed it expire sooner, but never due before MIN_INTERVAL): half of that bound, at least
    MIN_INTERVAL / 2, keeps pgAdmin's copy well inside the token's life.
    """
    bound = renewal_window(margin)
    return max(MIN_INTERVAL // 2, bound // 2)


def render_command(command: Sequence[str], env: Mapping[str, str]) -> str:
    """A POSIX shell command line: `VAR='value' … '/abs/pgiam' 'token' 'NAME'`, every word quoted."""
    words = [f"{k}={shlex.quote(v)}" for k, v in env.items()] + [shlex.quote(w) for w in command]
    return " ".join(words)


def render_servers(servers: Sequence[Server], margin: int) -> dict[str, object]:
    """The servers.json document for `servers`, numbered from 1 in the order given."""
    out: dict[str, object] = {}
    for i, s in enumerate(servers, 1):
        k = s.keys
        entry: dict[str, object] = {
            "Name": s.name,
            "Group": GROUP,
            "Host": k["host"],
            "Port": int(k["port"]),
            "Username": k["user"],
            # pgAdmin needs a maintenance database; libpq's default dbname is the user name.
            "MaintenanceDB": k.get("dbname", k["user"]),
            "ConnectionParameters": {p: k[p] for p in PARAMETERS if p in k},
            "PasswordExecCommand": render_command(s.command, s.env),
            "PasswordExecExpiration": expiration(margin),
        }
        out[str(i)] = entry
    return {"Servers": out}
