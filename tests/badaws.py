"""Answers that are not AWS's, served on loopback: what a captive portal, a proxy or a broken network gives botocore.

`python -m tests.badaws` starts one listener per kind on 127.0.0.1 (free ports), prints one JSON line
{kind: url} when all listen, and serves until killed: one process for a whole test module. Kinds
that need no server are URLs too: a closed port, and a name under `.invalid` (RFC 6761: never resolves).
Nothing here reaches AWS or leaves the machine.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator

PORTAL = (b"<!DOCTYPE html><html><head><title>Sign in to the hotel Wi-Fi</title></head>"
          b"<body><form action='/login'>Accept the terms</form></body></html>")
PROXY_502 = b"<html><head><title>502 Bad Gateway</title></head><body><h1>502 Bad Gateway</h1><hr>nginx</body></html>"
ERROR_500 = b"<html><body><h1>500 Internal Server Error</h1><p>Something went wrong.</p></body></html>"
TRUNCATED_XML = (b'<GetCallerIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">'
                 b"<GetCallerIdentityResult><Arn>arn:aws:iam::123456789012:user/al")
JSON_GARBAGE = b'{"not": "what AWS says", [1, 2,'

HANGS = ("hang", "drip")  # kinds that never finish an answer


def _response(status: str, ctype: str, body: bytes, length: int | None = None) -> bytes:
    head = (f"HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {len(body) if length is None else length}\r\n"
            "Connection: close\r\n\r\n").encode()
    return head + body


def _read_request(conn: socket.socket) -> None:
    """Read the request head and its body (botocore sends Content-Length), so the answer is not a reset."""
    data = b""
    conn.settimeout(10)
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            return
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        k, _, v = line.partition(b":")
        if k.strip().lower() == b"content-length":
            length = int(v.strip() or 0)
    while len(body) < length:
        chunk = conn.recv(65536)
        if not chunk:
            return
        body += chunk


def _answer(kind: str) -> Callable[[socket.socket], None]:
    def static(payload: bytes) -> Callable[[socket.socket], None]:
        def serve(conn: socket.socket) -> None:
            _read_request(conn)
            conn.sendall(payload)
        return serve

    if kind == "html200":
        return static(_response("200 OK", "text/html; charset=utf-8", PORTAL))
    if kind == "html502":
        return static(_response("502 Bad Gateway", "text/html", PROXY_502))
    if kind == "html500":
        return static(_response("500 Internal Server Error", "text/html", ERROR_500))
    if kind == "truncated":
        return static(_response("200 OK", "text/xml", TRUNCATED_XML))
    if kind == "json":
        return static(_response("200 OK", "application/json", JSON_GARBAGE))
    if kind == "empty":
        return static(_response("200 OK", "text/xml", b""))
    if kind == "reset":
        def reset(conn: socket.socket) -> None:
            _read_request(conn)
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        return reset
    if kind == "hang":
        def hang(conn: socket.socket) -> None:
            _read_request(conn)
            time.sleep(3600)
        return hang
    if kind == "drip":
        def drip(conn: socket.socket) -> None:  # an answer that never stops arriving: one byte a second
            _read_request(conn)
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/xml\r\nContent-Length: 100000\r\n\r\n")
            while True:
                conn.sendall(b" ")
                time.sleep(1)
        return drip
    raise ValueError(kind)


SERVED = ("html200", "html502", "html500", "truncated", "json", "empty", "reset", "hang", "drip")
KINDS = (*SERVED, "closed", "dns")


def _listen(kind: str) -> str:
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", 0))
    srv.listen(128)
    serve = _answer(kind)

    def one(conn: socket.socket) -> None:
        with contextlib.suppress(OSError):
            serve(conn)
        with contextlib.suppress(OSError):
            conn.close()

    def loop() -> None:
        while True:
            conn, _ = srv.accept()
            threading.Thread(target=one, args=(conn,), daemon=True).start()

    threading.Thread(target=loop, daemon=True).start()
    return f"http://127.0.0.1:{srv.getsockname()[1]}"


def _closed_port() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}"


def main() -> None:
    urls = {kind: _listen(kind) for kind in SERVED}
    urls["closed"] = _closed_port()
    urls["dns"] = "http://aws-stand-in.pgiam.invalid"
    print(json.dumps(urls), flush=True)
    signal.sigwait({signal.SIGTERM, signal.SIGINT})


@contextlib.contextmanager
def stand_in() -> Iterator[dict[str, str]]:
    """Run `python -m tests.badaws` in its own process; yield {kind: url}; stop it."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    proc = subprocess.Popen([sys.executable, "-m", "tests.badaws"], stdout=subprocess.PIPE, text=True, cwd=root,
                            env=dict(os.environ, PYTHONPATH=root))
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if not line:
            raise RuntimeError("the bad-answer stand-in did not start")
        yield json.loads(line)
    finally:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


if __name__ == "__main__":
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM, signal.SIGINT})
    main()
