"""The console entry point. Two calls made often are answered here without argparse, TOML or botocore:

- `pgiam refresh --if-needed --quiet` (timers, prompt hooks): when nothing is due it reads one tiny
  file and stats the config, both libpq files and pgiam's own directories, and writes nothing. The "next due" file is rewritten under the lock by
  every refresh/add/remove, so it is at least as new as the state; a config edited by hand afterwards
  is newer than it and takes the full path.
- `pgiam token NAME` (a connection pool's password callback): when ~/.pgpass holds a token for NAME
  that is valid beyond the renewal margin, it is printed from the file. What NAME means (host, port,
  user, region, margin) comes from the token index that the full `pgiam token` writes; the index
  names the config file's identity (device, inode, size, mtime) it was made from, so any change to
  the config sends the call down the full path, which writes a new index.

Both read the locations, the limits and the formats from pgiam.facts (standard library only), as the
full commands do, and both hand over to the full path (which refuses, exit 5) when one of pgiam's own
directories belongs to another user or is writable by others.
"""

from __future__ import annotations

import os
import sys
import time

from pgiam import facts


def _own_dirs_ok() -> bool:
    """pgiam.facts.dir_problem finds nothing wrong with any of pgiam's own directories."""
    try:
        return not any(facts.dir_problem(d) for d in facts.own_dirs(os.environ))
    except OSError:
        return False


def nothing_due(now: float | None = None) -> bool:
    """True only when the next-due epoch is ahead of `now` (default: the clock), but no further than
    pgiam.facts.next_due_limit allows, neither the config nor either libpq file changed since it was
    written, and pgiam's own directories pass their check; anything else takes the full path."""
    env = os.environ
    due_file = os.path.join(facts.state_dir(env), facts.NEXT_DUE)
    if os.path.lexists(os.path.join(facts.state_dir(env), facts.JOURNAL)):
        return False  # a pgiam was killed mid-change: the full path undoes it first (pgiam.store.recover)
    # libpq's locations; the full path refuses relative ones, so they never count as unchanged here.
    watched = (facts.config_file(env), facts.pgpass_file(env), facts.service_file(env))
    try:
        with open(due_file, "rb") as f:
            parsed = facts.parse_next_due(f.read(64))
            due_mtime = os.fstat(f.fileno()).st_mtime_ns
        if parsed is None:
            return False
        for path in watched:
            # Written in the same clock tick counts as older; a missing file is a change.
            if not os.path.isabs(path) or os.stat(path).st_mtime_ns > due_mtime:
                return False
    except (OSError, ValueError):
        return False
    due, margin = parsed
    return facts.next_due_trusted(time.time() if now is None else now, due, margin) and _own_dirs_ok()


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
# alone costs as much as the rest), so not pgiam.pgpass/tokeninfo/freshness themselves. Their parsing
# is mirrored below (their constants come from pgiam.facts) and tests/unit/test_token_callback.py
# checks the mirror against them.
_BEGIN, _END = facts.PGPASS_BEGIN, facts.END  # pgiam.pgpass.BEGIN_LINE and END_LINE (pgiam.block)


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


def _fresh(now: float, said: tuple[str, int | None, str | None, str, str, float, int], *, host: str,
           port: int, user: str, region: str, margin: int, creds: float | None) -> bool:
    """pgiam.freshness.judge(...).due is False, for a token pgiam.store.verdict would judge."""
    t_host, t_port, t_user, t_region, service, signed, lifetime = said
    dsql = service == "dsql"
    if (t_host != host.lower().rstrip(".") or t_port != (None if dsql else port) or t_region != region
            or (not dsql and t_user != user)):
        return False  # "mismatch"
    expires = signed + lifetime if creds is None else min(signed + lifetime, creds)
    if signed > now + facts.CLOCK_TOLERANCE or lifetime > facts.TOKEN_LIFETIME:  # freshness.judge: "future"
        return False
    life = max(0.0, expires - signed)
    due = max(expires - min(float(margin), life / 2), signed + facts.MIN_INTERVAL)  # freshness.due_at
    return now < due


def cached_token(name: str) -> str | None:
    """The token ~/.pgpass holds for service `name` when the freshness rule says it is not due
    (as `refresh --if-needed` judges it); None sends the caller to the full path."""
    import json

    env = os.environ
    # The same locations as the full path (PGIAM_CONFIG, PGIAM_STATE_DIR, PGPASSFILE, else XDG and the
    # home directory); relative libpq paths take the full path, which refuses them.
    state_dir = facts.state_dir(env)
    pgpass_path = facts.pgpass_file(env)
    if not os.path.isabs(pgpass_path) or not _own_dirs_ok():
        return None
    if os.path.lexists(os.path.join(state_dir, facts.JOURNAL)):
        return None  # a pgiam was killed mid-change: the full path undoes it first (pgiam.store.recover)
    try:
        meaning = facts.parse_token_index(_read_regular(os.path.join(state_dir, facts.TOKEN_INDEX)),
                                          facts.config_stamp(facts.config_file(env)), name)
        if meaning is None:
            return None
        host, port, dial_port, user, region, margin = meaning
        text = _read_regular(pgpass_path).decode("utf-8", "surrogateescape")
        token = _pgpass_token(text, host, str(dial_port), user)
        said = _token_facts(token) if token is not None else None
        if token is None or said is None:
            return None
        # pgiam's note of the credentials' expiry applies only to the very token it wrote (as in
        # pgiam.store.verdict): a token is refused once the credentials that signed it expire.
        creds = None
        try:
            row = json.loads(_read_regular(os.path.join(state_dir, facts.STATE_FILE)))["services"][name]
            if row.get("key") == f"{host}:{dial_port}:{user}" and row.get("minted") == said[5]:
                creds = row.get("expires")
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            pass
        if creds is not None and (type(creds) not in (int, float) or creds != creds):
            return None
        fresh = _fresh(time.time(), said, host=host, port=port, user=user, region=region, margin=margin, creds=creds)
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
    if sys.argv[1:] in facts.FAST_ARGVS and nothing_due():
        sys.exit(0)
    if _fast_token(sys.argv[1:]):
        sys.exit(0)
    from pgiam.cli import main as cli_main

    sys.exit(cli_main())
