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
    # The same locations as pgiam.paths: PGIAM_STATE_DIR / PGIAM_CONFIG first, else XDG.
    state = os.path.join(env["PGIAM_STATE_DIR"], "pgiam") if env.get("PGIAM_STATE_DIR") else platformdirs.user_state_dir("pgiam")
    due_file = os.path.join(state, "next-due")
    watched = (
        env.get("PGIAM_CONFIG") or os.path.join(platformdirs.user_config_dir("pgiam"), "config.toml"),
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


# What the fast path reads, with the standard library only: no dataclasses (whose import of `inspect`
# alone costs as much as the rest), so not pgiam.pgpass/tokeninfo/freshness themselves. Their rules
# are mirrored below and tests/unit/test_token_callback.py checks the mirror against them.
# pgiam.pgpass.BEGIN_LINE and END_LINE: the marker lines, exactly (pgiam.block)
_BEGIN = ("# BEGIN pgiam: IAM tokens managed by pgiam, rewritten on every refresh. "
          "`pgiam remove NAME` drops a service; lines outside this block are yours.")
_END = "# END pgiam"


def _pgpass_fields(line: str) -> list[str]:
    """One ~/.pgpass line's unescaped fields, as pgiam.pgpass.split_fields (libpq's passwordFromFile)."""
    fields: list[str] = []
    cur: list[str] = []
    i, n = 0, len(line)
    while i < n:
        c = line[i]
        if c == "\\" and i + 1 < n:
            cur.append(line[i + 1])
            i += 2
            continue
        if c == ":":
            if len(fields) == 4:  # the password ends at the first unescaped `:`
                break
            fields.append("".join(cur))
            cur = []
        else:
            cur.append(c)
        i += 1
    fields.append("".join(cur))
    return fields


def _pgpass_token(text: str, host: str, port: str, user: str) -> str | None:
    """The token of pgiam's block for host:port:user, as pgiam.pgpass.parse_tokens reads it (the first
    block's first line for the key); None also for a damaged file, which the full path reports."""
    raw = text.split("\n")
    # pgiam.block compares a marker without its line ending: `\n` or `\r\n` (a last line has none)
    marks = [ln[:-1] if ln.endswith("\r") and k < len(raw) - 1 else ln for k, ln in enumerate(raw)]
    found: str | None = None
    first = True
    i = 0
    while i < len(raw):
        if marks[i] == _BEGIN:
            j = i + 1
            while j < len(raw) and marks[j] not in (_END, _BEGIN):
                j += 1
            if j == len(raw) or marks[j] != _END:
                return None  # a BEGIN line without its END line: pgiam.block.Damaged
            if first:
                for line in raw[i + 1:j]:
                    line = line.rstrip("\r\n")
                    if line and not line.startswith("#"):
                        f = _pgpass_fields(line)
                        if len(f) == 5 and (f[0], f[1], f[3]) == (host, port, user):
                            found = f[4]
                            break
                first = False
            i = j + 1
            continue
        i += 1
    return found


def _token_facts(token: str) -> tuple[str, int | None, str | None, str, str, float, int] | None:
    """(host, port, DBUser, region, signing service, signed at, lifetime) of a presigned SigV4 token,
    as pgiam.tokeninfo.decode reads them; None for anything it would refuse."""
    from urllib.parse import parse_qs, urlsplit

    if not token or any(c.isspace() for c in token):
        return None
    try:
        parts = urlsplit("https://" + token)
        host, port = parts.hostname or "", parts.port
    except ValueError:
        return None
    q = parse_qs(parts.query, keep_blank_values=True)
    one = {k: v[0] for k, v in q.items() if len(v) == 1}
    need = ("X-Amz-Algorithm", "X-Amz-Credential", "X-Amz-Date", "X-Amz-Expires", "X-Amz-Signature", "Action")
    if any(k not in one for k in need) or one["X-Amz-Algorithm"] != "AWS4-HMAC-SHA256" or not host:
        return None
    scope = one["X-Amz-Credential"].split("/")
    stamp = one["X-Amz-Date"]
    if len(scope) != 5 or scope[4] != "aws4_request" or not stamp.startswith(scope[1]):
        return None
    import datetime  # a built-in module; time.strptime would import _strptime, calendar and locale

    if len(stamp) != 16 or stamp[8] != "T" or stamp[15] != "Z" or not (stamp[:8] + stamp[9:15]).isdigit():
        return None
    try:
        fields = (int(stamp[0:4]), int(stamp[4:6]), int(stamp[6:8]), int(stamp[9:11]), int(stamp[11:13]), int(stamp[13:15]))
        signed = datetime.datetime(*fields, tzinfo=datetime.timezone.utc).timestamp()
        lifetime = int(one["X-Amz-Expires"], 10)
    except ValueError:
        return None
    if lifetime <= 0:
        return None
    return host.lower(), port, q.get("DBUser", [None])[0], scope[2], scope[3], signed, lifetime


def _fresh(now: float, facts: tuple[str, int | None, str | None, str, str, float, int], *, host: str,
           port: int, user: str, region: str, margin: int, creds: float | None) -> bool:
    """pgiam.freshness.judge(...).due is False, for a token pgiam.store.verdict would judge."""
    t_host, t_port, t_user, t_region, service, signed, lifetime = facts
    dsql = service == "dsql"
    if (t_host != host.lower().rstrip(".") or t_port != (None if dsql else port) or t_region != region
            or (not dsql and t_user != user)):
        return False  # "mismatch"
    expires = signed + lifetime if creds is None else min(signed + lifetime, creds)
    if signed > now + 5 or lifetime > 900:  # freshness.CLOCK_TOLERANCE, TOKEN_LIFETIME: "future"
        return False
    life = max(0.0, expires - signed)
    due = max(expires - min(float(margin), life / 2), signed + 30)  # freshness.due_at, MIN_INTERVAL
    return now < due


def cached_token(name: str) -> str | None:
    """The token ~/.pgpass holds for service `name` when the freshness rule says it is not due
    (as `refresh --if-needed` judges it); None sends the caller to the full path."""
    import json

    import platformdirs

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
        text = _read_regular(pgpass_path).decode("utf-8", "surrogateescape")
        token = _pgpass_token(text, host, str(dial_port), user)
        facts = _token_facts(token) if token is not None else None
        if token is None or facts is None:
            return None
        # pgiam's note of the credentials' expiry applies only to the very token it wrote (as in
        # pgiam.store.verdict): a token is refused once the credentials that signed it expire.
        creds = None
        try:
            row = json.loads(_read_regular(os.path.join(state_dir, "state.json")))["services"][name]
            if row.get("key") == f"{host}:{dial_port}:{user}" and row.get("minted") == facts[5]:
                creds = row.get("expires")
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            pass
        if creds is not None and (type(creds) not in (int, float) or creds != creds):
            return None
        fresh = _fresh(time.time(), facts, host=host, port=port, user=user, region=region, margin=margin, creds=creds)
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None
    return token if fresh else None


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
