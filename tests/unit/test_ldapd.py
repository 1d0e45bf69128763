"""The LDAP simple-bind responder, spoken to in BER over a real socket."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from pgiam.sandbox import ldapd
from tests.conftest import botocore_session

AK = "AKIALDAPDTEST0000001"
SK = "ldapdTestSecretKey0000000000000000000000"
HOST = "sandbox.cluster-pgiam.us-east-1.rds.amazonaws.com"
REPO = Path(__file__).resolve().parents[2]


def mint(user: str, host: str = HOST) -> str:
    session = botocore_session()
    session.set_credentials(AK, SK)
    return session.create_client("rds", region_name="us-east-1").generate_db_auth_token(host, 5432, user)


@dataclass
class Responder:
    proc: subprocess.Popen[bytes]
    port: int
    log: Path
    pid_file: Path

    def connect(self) -> socket.socket:
        s = socket.create_connection(("127.0.0.1", self.port), timeout=5)
        return s


@pytest.fixture(scope="module")
def responder(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Responder]:
    d = tmp_path_factory.mktemp("ldapd")
    cfg = d / "ldapd.json"
    config = {
        "port": 0, "access_key": AK, "secret_key": SK, "region": "us-east-1", "endpoint_host": HOST,
        "endpoint_port": 5432, "log_file": str(d / "ldapd.log"), "pid_file": str(d / "ldapd.pid"),
        "port_file": str(d / "ldapd.port"),
    }
    fd = os.open(cfg, os.O_WRONLY | os.O_CREAT, 0o600)
    os.write(fd, json.dumps(config).encode())
    os.close(fd)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, "-m", "pgiam.sandbox.ldapd", str(cfg)], env=env)
    deadline = time.monotonic() + 10
    while not (d / "ldapd.port").exists():
        assert proc.poll() is None and time.monotonic() < deadline, "ldapd did not start"
        time.sleep(0.02)
    port = int((d / "ldapd.port").read_text())
    r = Responder(proc, port, d / "ldapd.log", d / "ldapd.pid")
    yield r
    if proc.poll() is None:
        proc.kill()
        proc.wait()


def exchange(sock: socket.socket, data: bytes) -> bytes:
    """Send one request, read one complete response element."""
    sock.sendall(data)
    buf = b""
    while (n := ldapd.element_length(buf)) is None or len(buf) < n:
        chunk = sock.recv(4096)
        assert chunk, "connection closed"
        buf += chunk
    return buf


def bind(r: Responder, dn: str, password: str, mid: int = 1) -> tuple[int, int, int, str]:
    with r.connect() as s:
        return ldapd.decode_result(exchange(s, ldapd.encode_bind_request(mid, dn, password)))


@pytest.mark.parametrize("user", ["pgiam_sandbox", "it's a:b\\c d"])
def test_valid_token_binds(responder: Responder, user: str) -> None:
    """An accepted token is logged with its X-Amz-Date (issue 23: a load test counts distinct tokens), never
    with its signature."""
    token = mint(user)
    mid, op, code, _ = bind(responder, user, token, mid=7)
    assert (mid, op, code) == (7, 0x61, ldapd.SUCCESS)
    stamp = token.split("X-Amz-Date=", 1)[1].split("&", 1)[0]
    assert len(stamp) == 16 and stamp.endswith("Z")
    log = responder.log.read_text()
    assert f"accepted user={user} signed={stamp}\n" in log
    assert token.split("X-Amz-Signature=", 1)[1] not in log


@pytest.mark.parametrize(
    ("dn", "password", "reason"),
    [
        ("pgiam_sandbox", "garbage", "malformed token"),
        ("pgiam_sandbox", mint("other_role"), "signed for another database user"),
        ("pgiam_sandbox", mint("pgiam_sandbox", host="localhost"), "signed for host"),
        ("pgiam_sandbox", "", "empty password"),
    ],
    ids=["garbage", "other-user", "other-host", "anonymous"],
)
def test_bad_password_is_invalid_credentials(responder: Responder, dn: str, password: str, reason: str) -> None:
    _, op, code, diag = bind(responder, dn, password)
    assert (op, code, diag) == (0x61, ldapd.INVALID_CREDENTIALS, "")  # the reason goes to the log only
    log = responder.log.read_text()
    assert f"refused user={dn}: {reason}" in log
    if password:
        assert password not in log
    assert SK not in log


def test_several_binds_then_unbind_on_one_connection(responder: Responder) -> None:
    with responder.connect() as s:
        assert ldapd.decode_result(exchange(s, ldapd.encode_bind_request(1, "u", "x")))[2] == 49
        assert ldapd.decode_result(exchange(s, ldapd.encode_bind_request(2, "u", mint("u"))))[:3] == (2, 0x61, 0)
        s.sendall(ldapd.encode_unbind_request(3))
        assert s.recv(10) == b""  # the server closes after unbind


def test_ldapv2_bind_is_a_protocol_error(responder: Responder) -> None:
    with responder.connect() as s:
        reply = exchange(s, ldapd.encode_bind_request(1, "u", mint("u"), version=2))
    assert ldapd.decode_result(reply)[2] == ldapd.PROTOCOL_ERROR


def test_search_is_refused(responder: Responder) -> None:
    search = ldapd.tlv(0x30, ldapd.encode_int(0x02, 5) + ldapd.tlv(0x63, ldapd.tlv(0x04, b"dc=x")))
    with responder.connect() as s:
        assert ldapd.decode_result(exchange(s, search))[:3] == (5, 0x65, ldapd.UNWILLING_TO_PERFORM)


@pytest.mark.parametrize("junk", [b"GET / HTTP/1.0\r\n\r\n", b"\x30\x84\xff\xff\xff\xff", b"\x30\x03\x02\x01"])
def test_garbage_closes_the_connection_and_server_survives(responder: Responder, junk: bytes) -> None:
    with responder.connect() as s:
        s.sendall(junk)
        s.shutdown(socket.SHUT_WR)
        assert s.recv(10) == b""
    assert bind(responder, "u", mint("u"))[2] == 0


def test_abrupt_close_mid_message(responder: Responder) -> None:
    with responder.connect() as s:
        s.sendall(ldapd.encode_bind_request(1, "u", mint("u"))[:20])
    assert bind(responder, "u", mint("u"))[2] == 0


def test_ber_roundtrip() -> None:
    for n in (0, 1, 127, 128, 255, 256, 65535, 2**31 - 1):
        tag, value, _ = ldapd.decode_tlv(ldapd.encode_int(0x02, n))
        assert ldapd.decode_int(value) == n
    long = ldapd.tlv(0x04, b"x" * 70000)
    assert ldapd.element_length(long) == len(long)
    req = ldapd.parse_message(ldapd.encode_bind_request(9, "dn", "pw"))
    assert req == ldapd.BindRequest(9, 3, "dn", b"pw")


def test_sigterm_exits_cleanly(responder: Responder) -> None:
    """Runs last in this module: stops the shared responder."""
    assert responder.pid_file.read_text().strip() == str(responder.proc.pid)
    responder.proc.send_signal(signal.SIGTERM)
    assert responder.proc.wait(timeout=5) == 0
    assert not responder.pid_file.exists()
    assert responder.log.read_text().rstrip().endswith("stopped")
