"""Independent transcriptions of libpq's readers (fe-connect.c), over bytes, for issue 7's checks.

Written from the C, not from pgiam: `password_from_file` follows passwordFromFile / pwdfMatchesString
(libpq 13+: lines of any length), `service_lookup` follows parseServiceFile (libpq 15: a line of more
than 1,021 visible characters read while looking is an error; leading and trailing isspace() stripped).
"""

from __future__ import annotations

C_SPACE = b" \t\n\r\f\v"  # C isspace() in the C locale
SERVICE_KEYS = {
    "host", "hostaddr", "port", "dbname", "user", "password", "passfile", "channel_binding", "connect_timeout",
    "client_encoding", "options", "application_name", "fallback_application_name", "keepalives",
    "keepalives_idle", "keepalives_interval", "keepalives_count", "tcp_user_timeout", "sslmode", "sslcompression",
    "sslcert", "sslkey", "sslpassword", "sslrootcert", "sslcrl", "sslcrldir", "sslsni", "requirepeer",
    "ssl_min_protocol_version", "ssl_max_protocol_version", "gssencmode", "krbsrvname", "gsslib",
    "target_session_attrs", "require_auth",
}
LINE_MAX_15 = 1021


def _c_lines(data: bytes) -> list[bytes]:
    """What successive fgets() calls return: split after each \\n; a C string stops at NUL."""
    out = []
    for part in data.split(b"\n"):
        out.append(part)
    if out and out[-1] == b"":
        out.pop()
    return [p.split(b"\0", 1)[0] for p in out]


def _matches(buf: bytes, token: bytes) -> bytes | None:
    """pwdfMatchesString: the rest of the line after the matched field and its `:`, or None."""
    if buf[:2] == b"*:":
        return buf[2:]
    t = 0
    i = 0
    bslash = False
    while i < len(buf):
        if buf[i : i + 1] == b"\\" and not bslash:
            i += 1
            bslash = True
            if i >= len(buf):
                return None
        if buf[i : i + 1] == b":" and t == len(token) and not bslash:
            return buf[i + 1 :]
        bslash = False
        if t == len(token):
            return None
        if buf[i] == token[t]:
            i += 1
            t += 1
        else:
            return None
    return None


def password_from_file(data: bytes, host: bytes, port: bytes, dbname: bytes, user: bytes) -> bytes | None:
    """passwordFromFile: the first matching line's de-escaped password, or None."""
    for line in _c_lines(data):
        if line[:1] == b"#":
            continue
        line = line.rstrip(b"\r\n")  # pg_strip_crlf
        if not line:
            continue
        t: bytes | None = line
        for want in (host, port, dbname, user):
            t = _matches(t, want)
            if t is None:
                break
        if t is None:
            continue
        out = bytearray()
        i = 0
        while i < len(t) and t[i : i + 1] != b":":
            if t[i : i + 1] == b"\\" and i + 1 < len(t):
                i += 1
            out += t[i : i + 1]
            i += 1
        return bytes(out)
    return None


class ServiceFileError(Exception):
    pass


def service_lookup(data: bytes, service: bytes) -> dict[bytes, bytes] | None:
    """parseServiceFile: the keys of the first section named `service` (None: not found)."""
    found = False
    options: dict[bytes, bytes] = {}
    for linenr, raw in enumerate(_c_lines(data), start=1):
        if len(raw.rstrip(b"\n")) > LINE_MAX_15:
            raise ServiceFileError(f"line {linenr} too long")
        line = raw.rstrip(C_SPACE).lstrip(C_SPACE)
        if not line or line[:1] == b"#":
            continue
        if line[:1] == b"[":
            if found:
                return options
            found = line[1 : 1 + len(service)] == service and line[1 + len(service) : 2 + len(service)] == b"]"
            continue
        if not found:
            continue
        key, eq, val = line.partition(b"=")
        if not eq:
            raise ServiceFileError(f"syntax error in service file, line {linenr}")
        if key == b"service":
            raise ServiceFileError(f"nested service specifications not supported, line {linenr}")
        if key.decode("latin-1") not in SERVICE_KEYS:
            raise ServiceFileError(f"syntax error in service file, line {linenr}: unknown key {key!r}")
        options.setdefault(key, val)
    return options if found else None
