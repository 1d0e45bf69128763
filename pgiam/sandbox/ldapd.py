"""A minimal LDAPv3 simple-bind responder that accepts a bind when its password is a valid RDS IAM token.

PostgreSQL's `ldap` auth method in simple-bind mode binds as `<prefix><role><suffix>` with the
password the client sent; this server answers success (0) when sigv4check accepts the password as a
token for that role, invalidCredentials (49) otherwise. Hand-written BER, standard library only.

Run: python -m pgiam.sandbox.ldapd CONFIG.json   (the JSON, mode 0600, carries the secret key, so no
secret ever appears in argv).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import socketserver
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from pgiam.sandbox.sigv4check import check_dsql_token, check_token, signed_stamp

SUCCESS = 0
PROTOCOL_ERROR = 2
AUTH_METHOD_NOT_SUPPORTED = 7
INVALID_CREDENTIALS = 49
UNWILLING_TO_PERFORM = 53

_BIND_REQUEST = 0x60  # [APPLICATION 0] constructed
_BIND_RESPONSE = 0x61
_UNBIND_REQUEST = 0x42  # [APPLICATION 2] primitive (NULL)
_SEARCH_REQUEST = 0x63
_SEARCH_DONE = 0x65
_EXTENDED_REQUEST = 0x77
_EXTENDED_RESPONSE = 0x78
_SIMPLE_AUTH = 0x80  # [0] primitive: simple password
MAX_MESSAGE = 64 * 1024  # a session-token token is < 2 KB; refuse to buffer anything absurd
IO_TIMEOUT = 30.0


class BerError(ValueError):
    """The peer sent bytes that are not the BER we understand."""


# ---- BER encoding / decoding (definite lengths only, as LDAP requires) ----


def encode_length(n: int) -> bytes:
    """BER definite length octets."""
    if n < 0x80:
        return bytes([n])
    body = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(body)]) + body


def tlv(tag: int, value: bytes) -> bytes:
    """One BER element."""
    return bytes([tag]) + encode_length(len(value)) + value


def encode_int(tag: int, n: int) -> bytes:
    """A BER INTEGER / ENUMERATED (two's complement, minimal)."""
    length = max(1, (n.bit_length() + 8) // 8)
    return tlv(tag, n.to_bytes(length, "big", signed=True))


def decode_tlv(data: bytes, pos: int = 0) -> tuple[int, bytes, int]:
    """(tag, value, next position) of the element at `pos`; BerError when truncated or malformed."""
    if pos + 2 > len(data):
        raise BerError("truncated element")
    tag = data[pos]
    if tag & 0x1F == 0x1F:
        raise BerError("multi-byte tags are not used by LDAP")
    first = data[pos + 1]
    pos += 2
    if first < 0x80:
        length = first
    else:
        count = first & 0x7F
        if count == 0 or count > 4:
            raise BerError("indefinite or oversized length")
        if pos + count > len(data):
            raise BerError("truncated length")
        length = int.from_bytes(data[pos : pos + count], "big")
        pos += count
    if pos + length > len(data):
        raise BerError("truncated value")
    return tag, data[pos : pos + length], pos + length


def decode_int(value: bytes) -> int:
    """A BER INTEGER's value."""
    if not value or len(value) > 8:
        raise BerError("bad integer")
    return int.from_bytes(value, "big", signed=True)


def element_length(buf: bytes) -> int | None:
    """Total bytes of the first element in `buf`, or None when more bytes are needed."""
    if len(buf) < 2:
        return None
    first = buf[1]
    if first < 0x80:
        return 2 + first
    count = first & 0x7F
    if count == 0 or count > 4:
        raise BerError("indefinite or oversized length")
    if len(buf) < 2 + count:
        return None
    return 2 + count + int.from_bytes(buf[2 : 2 + count], "big")


# ---- LDAP messages ----


@dataclass(frozen=True)
class BindRequest:
    message_id: int
    version: int
    name: str
    password: bytes | None  # None: not a simple bind (SASL)


@dataclass(frozen=True)
class OtherRequest:
    message_id: int
    op_tag: int


def parse_message(data: bytes) -> BindRequest | OtherRequest:
    """One LDAPMessage: SEQUENCE { messageID, protocolOp, [controls] }."""
    tag, body, end = decode_tlv(data)
    if tag != 0x30 or end != len(data):
        raise BerError("not an LDAPMessage")
    tag, value, pos = decode_tlv(body)
    if tag != 0x02:
        raise BerError("no messageID")
    message_id = decode_int(value)
    op_tag, op, _ = decode_tlv(body, pos)
    if op_tag != _BIND_REQUEST:
        return OtherRequest(message_id, op_tag)
    tag, value, pos = decode_tlv(op)
    if tag != 0x02:
        raise BerError("no bind version")
    version = decode_int(value)
    tag, value, pos = decode_tlv(op, pos)
    if tag != 0x04:
        raise BerError("no bind name")
    name = value.decode("utf-8", "replace")
    auth_tag, auth, _ = decode_tlv(op, pos)
    return BindRequest(message_id, version, name, auth if auth_tag == _SIMPLE_AUTH else None)


def encode_result(message_id: int, op_tag: int, code: int, message: str = "") -> bytes:
    """An LDAPResult-shaped response: resultCode, matchedDN '', diagnosticMessage."""
    result = encode_int(0x0A, code) + tlv(0x04, b"") + tlv(0x04, message.encode("utf-8"))
    return tlv(0x30, encode_int(0x02, message_id) + tlv(op_tag, result))


def encode_bind_request(message_id: int, name: str, password: str | bytes, version: int = 3) -> bytes:
    """A simple BindRequest (used by the tests, the way libldap sends it)."""
    pw = password.encode("utf-8") if isinstance(password, str) else password
    op = encode_int(0x02, version) + tlv(0x04, name.encode("utf-8")) + tlv(_SIMPLE_AUTH, pw)
    return tlv(0x30, encode_int(0x02, message_id) + tlv(_BIND_REQUEST, op))


def encode_unbind_request(message_id: int) -> bytes:
    """An UnbindRequest."""
    return tlv(0x30, encode_int(0x02, message_id) + tlv(_UNBIND_REQUEST, b""))


def decode_result(data: bytes) -> tuple[int, int, int, str]:
    """(messageID, op tag, resultCode, diagnosticMessage) of a response (used by the tests)."""
    _, body, _ = decode_tlv(data)
    _, mid, pos = decode_tlv(body)
    op_tag, op, _ = decode_tlv(body, pos)
    _, code, p = decode_tlv(op)
    _, _, p = decode_tlv(op, p)
    _, diag, _ = decode_tlv(op, p)
    return decode_int(mid), op_tag, decode_int(code), diag.decode("utf-8")


# ---- the server ----


@dataclass(frozen=True)
class Config:
    port: int
    access_key: str
    secret_key: str
    region: str
    endpoint_host: str
    endpoint_port: int
    log_file: Path
    pid_file: Path | None = None
    port_file: Path | None = None  # where the bound port is written once listening (port 0: any free one)
    dn_prefix: str = ""  # stripped from the bind DN to get the role (pg_hba's ldapprefix / ldapsuffix)
    dn_suffix: str = ""
    dsql_host: str | None = None  # also play an Aurora DSQL endpoint: tokens without a port, scope dsql

    @classmethod
    def load(cls, path: Path) -> "Config":
        """Read the 0600 JSON config."""
        raw = json.loads(Path(path).read_text(encoding="utf-8"))

        def opt(key: str) -> Path | None:
            return Path(raw[key]) if raw.get(key) else None

        return cls(
            port=int(raw["port"]),
            access_key=raw["access_key"],
            secret_key=raw["secret_key"],
            region=raw["region"],
            endpoint_host=raw["endpoint_host"],
            endpoint_port=int(raw["endpoint_port"]),
            log_file=Path(raw["log_file"]),
            pid_file=opt("pid_file"),
            port_file=opt("port_file"),
            dn_prefix=raw.get("dn_prefix", ""),
            dn_suffix=raw.get("dn_suffix", ""),
            dsql_host=raw.get("dsql_host"),
        )


def _printable(text: str) -> str:
    """`text` with control characters escaped, so a role name cannot forge a log line."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


class Judge:
    """Decides binds and appends one line per decision to the log (never the password)."""

    def __init__(self, config: Config, clock: Callable[[], float] = time.time) -> None:
        self.config = config
        self.clock = clock
        self._lock = threading.Lock()

    def role_of(self, dn: str) -> str | None:
        """The role name inside the bind DN, or None when the DN lacks the configured prefix/suffix."""
        pre, suf = self.config.dn_prefix, self.config.dn_suffix
        if not dn.startswith(pre) or not dn.endswith(suf) or len(dn) < len(pre) + len(suf):
            return None
        return dn[len(pre) : len(dn) - len(suf)]

    def decide(self, dn: str, password: bytes | None) -> str | None:
        """None to accept, else the refusal reason (logged either way)."""
        role = self.role_of(dn)
        if password is None:
            reason: str | None = "not a simple bind"
        elif role is None:
            reason = "bind DN does not have the configured prefix/suffix"
        elif not password:
            reason = "empty password (anonymous bind)"
        else:
            try:
                token = password.decode("utf-8")
            except UnicodeDecodeError:
                reason = "malformed token: not UTF-8"
            else:
                c = self.config
                if c.dsql_host and ":" not in token.partition("/?")[0]:  # no port: a DSQL token
                    reason = check_dsql_token(token, access_key=c.access_key, secret_key=c.secret_key,
                                              region=c.region, host=c.dsql_host, user=role, now=self.clock())
                else:
                    reason = check_token(
                        token,
                        access_key=c.access_key,
                        secret_key=c.secret_key,
                        region=c.region,
                        host=c.endpoint_host,
                        port=c.endpoint_port,
                        user=role,
                        now=self.clock(),
                    )
        who = _printable(role if role is not None else dn)
        # An accepted token is named by its X-Amz-Date (not secret), so a test can count distinct tokens.
        self.log(f"accepted user={who} signed={signed_stamp(token)}" if reason is None else f"refused user={who}: {reason}")
        return reason

    def log(self, line: str) -> None:
        """Append one timestamped line to the log file (created 0600)."""
        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        with self._lock:
            fd = os.open(self.config.log_file, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
            try:
                os.write(fd, f"{stamp} {line}\n".encode("utf-8"))
            finally:
                os.close(fd)


class _Handler(socketserver.BaseRequestHandler):
    """One LDAP connection: answer binds until unbind, EOF or garbage."""

    server: "LdapServer"

    def handle(self) -> None:
        sock: socket.socket = self.request
        sock.settimeout(IO_TIMEOUT)
        buf = b""
        while True:
            try:
                need = element_length(buf)
                while need is None or len(buf) < need:
                    if need is not None and need > MAX_MESSAGE:
                        return
                    chunk = sock.recv(65536)
                    if not chunk:
                        return
                    buf += chunk
                    need = element_length(buf)
                message, buf = buf[:need], buf[need:]
                request = parse_message(message)
            except (BerError, OSError):
                return  # not LDAP, or the peer went away: just close
            try:
                if not self._answer(sock, request):
                    return
            except OSError:
                return

    def _answer(self, sock: socket.socket, request: BindRequest | OtherRequest) -> bool:
        """Send the reply; False when the connection should close."""
        if isinstance(request, BindRequest):
            if request.version != 3:
                sock.sendall(encode_result(request.message_id, _BIND_RESPONSE, PROTOCOL_ERROR, "LDAPv3 only"))
                return True
            if request.password is None:
                self.server.judge.decide(request.name, None)
                sock.sendall(
                    encode_result(request.message_id, _BIND_RESPONSE, AUTH_METHOD_NOT_SUPPORTED, "simple bind only")
                )
                return True
            reason = self.server.judge.decide(request.name, request.password)
            code = SUCCESS if reason is None else INVALID_CREDENTIALS
            # The reason goes to the log, not to the client: RDS tells a client nothing either.
            sock.sendall(encode_result(request.message_id, _BIND_RESPONSE, code))
            return True
        if request.op_tag == _UNBIND_REQUEST:
            return False
        if request.op_tag == _SEARCH_REQUEST:
            sock.sendall(encode_result(request.message_id, _SEARCH_DONE, UNWILLING_TO_PERFORM, "bind only"))
            return True
        if request.op_tag == _EXTENDED_REQUEST:  # e.g. StartTLS: refuse, PostgreSQL then fails cleanly
            sock.sendall(encode_result(request.message_id, _EXTENDED_RESPONSE, UNWILLING_TO_PERFORM, "bind only"))
            return True
        return False  # anything else (abandon, modify...): close the connection


class LdapServer(socketserver.ThreadingTCPServer):
    """Threaded TCP server on 127.0.0.1 carrying the Judge."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, judge: Judge, port: int, host: str = "127.0.0.1") -> None:
        self.judge = judge
        super().__init__((host, port), _Handler)

    @property
    def port(self) -> int:
        return self.server_address[1]


def _write_private(path: Path, text: str) -> None:
    """Write a small file born 0600, atomically."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    try:
        os.write(fd, text.encode())
    finally:
        os.close(fd)
    os.replace(tmp, path)


def serve(config: Config) -> int:
    """Listen, write the pid (and port) files, serve until SIGTERM/SIGINT, then clean up."""
    server = LdapServer(Judge(config), config.port)
    stop = threading.Event()

    def on_signal(signum: int, frame: object) -> None:
        # shutdown() waits for serve_forever to return, so it must run off the serving thread.
        if not stop.is_set():
            stop.set()
            threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        if config.pid_file:
            _write_private(config.pid_file, f"{os.getpid()}\n")
        if config.port_file:
            _write_private(config.port_file, f"{server.port}\n")
        server.judge.log(f"listening on 127.0.0.1:{server.port} pid={os.getpid()}")
        server.serve_forever(poll_interval=0.2)
    finally:
        server.server_close()
        for path in (config.pid_file, config.port_file):
            if path:
                try:
                    if path == config.pid_file and path.read_text().strip() != str(os.getpid()):
                        continue  # a newer responder owns it now
                    path.unlink()
                except OSError:
                    pass
        server.judge.log("stopped")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point: `python -m pgiam.sandbox.ldapd CONFIG.json`."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m pgiam.sandbox.ldapd CONFIG.json", file=sys.stderr)
        return 2
    try:
        config = Config.load(Path(args[0]))
    except (OSError, ValueError, KeyError) as err:
        print(f"pgiam ldapd: cannot read config {args[0]}: {err}", file=sys.stderr)
        return 2
    return serve(config)


if __name__ == "__main__":
    sys.exit(main())
