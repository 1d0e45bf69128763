"""pgiam.certs against a real HTTPS server on 127.0.0.1 with CAs made by the openssl command."""

from __future__ import annotations

import json
import os
import socket
import ssl
import stat
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from pgiam import certs, fileio
from pgiam.errors import EnvironmentProblem, FileError, NetworkError, UsageError
from pgiam.libpq import LibpqVersion
from pgiam.paths import Paths
from tests.tools import require_tool



@pytest.fixture(autouse=True)
def _openssl() -> None:
    """The CAs are made by the openssl command: missing, it fails (tests/tools.py's rule)."""
    require_tool("openssl")

OPENSSL_CNF = """\
[req]
distinguished_name = dn
prompt = no
[dn]
CN = placeholder
[v3_ca]
basicConstraints = critical,CA:TRUE
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash
[v3_server]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = IP:127.0.0.1,DNS:localhost
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
"""


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


def _make_ca(d: Path, name: str, cn: str, days: int) -> tuple[Path, Path]:
    """A self-signed EC CA; days < 0 makes one that has already expired."""
    key, cert = d / f"{name}.key", d / f"{name}.pem"
    _openssl(
        "req", "-x509", "-config", "openssl.cnf", "-extensions", "v3_ca", "-newkey", "ec",
        "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", key.name, "-out", cert.name,
        "-days", str(max(days, 1)), "-subj", f"/O=pgiam tests/CN={cn}", cwd=d,
    )
    if days < 0:
        # `x509 -signkey -days -1` re-signs it with notAfter one day in the past (openssl 3.0
        # has no -not_after); the extensions, CA:TRUE included, are kept.
        _openssl("x509", "-in", cert.name, "-signkey", key.name, "-days", str(days), "-out", cert.name, cwd=d)
    return cert, key


def _make_server_cert(d: Path, name: str, ca: tuple[Path, Path]) -> tuple[Path, Path]:
    """A leaf certificate for 127.0.0.1 signed by `ca`."""
    key, csr, cert = d / f"{name}.key", d / f"{name}.csr", d / f"{name}.pem"
    _openssl(
        "req", "-new", "-config", "openssl.cnf", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
        "-nodes", "-keyout", key.name, "-out", csr.name, "-subj", "/CN=127.0.0.1", cwd=d,
    )
    _openssl(
        "x509", "-req", "-in", csr.name, "-CA", str(ca[0]), "-CAkey", str(ca[1]), "-set_serial", "1001",
        "-days", "2", "-extfile", "openssl.cnf", "-extensions", "v3_server", "-out", cert.name, cwd=d,
    )
    return cert, key


def _not_after(cert: Path) -> float:
    out = subprocess.run(
        ["openssl", "x509", "-in", str(cert), "-noout", "-enddate"], check=True, capture_output=True, text=True
    ).stdout
    return float(ssl.cert_time_to_seconds(out.strip().split("=", 1)[1]))


@dataclass
class Pki:
    server_ca: Path
    server: tuple[Path, Path]
    rogue_server: tuple[Path, Path]  # signed by a CA nobody trusts
    ca_30d: Path
    ca_2y: Path
    ca_expired: Path
    good: bytes  # the three bundle CAs
    good2: bytes  # only the 2-year CA
    leaf: bytes


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    d = tmp_path_factory.mktemp("pki")
    (d / "openssl.cnf").write_text(OPENSSL_CNF)
    server_ca = _make_ca(d, "server-ca", "pgiam test server root", 30)
    rogue_ca = _make_ca(d, "rogue-ca", "pgiam rogue root", 30)
    ca_30d = _make_ca(d, "ca30", "Test RDS Root 30d", 30)[0]
    ca_2y = _make_ca(d, "ca2y", "Test RDS Root 2y", 730)[0]
    ca_expired = _make_ca(d, "caexp", "Test RDS Root expired", -1)[0]
    server = _make_server_cert(d, "server", server_ca)
    good = b"".join(p.read_bytes() for p in (ca_30d, ca_2y, ca_expired))
    return Pki(
        server_ca=server_ca[0],
        server=server,
        rogue_server=_make_server_cert(d, "rogue", rogue_ca),
        ca_30d=ca_30d,
        ca_2y=ca_2y,
        ca_expired=ca_expired,
        good=good,
        good2=ca_2y.read_bytes(),
        leaf=server[0].read_bytes(),
    )


Route = tuple[int, dict[str, str], bytes]


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    routes: dict[str, Route]
    hits: list[str]


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def do_GET(self) -> None:
        self.server.hits.append(self.path)
        status, headers, body = self.server.routes.get(
            self.path, (404, {"Content-Type": "text/html"}, b"<html><body>Not Found</body></html>")
        )
        self.send_response(status)
        headers = {"Content-Length": str(len(body)), **headers}
        for key, value in headers.items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:  # keep pytest output clean
        pass


@pytest.fixture
def serve() -> Iterator[Callable[[tuple[Path, Path]], _Server]]:
    """Start HTTPS servers on 127.0.0.1 with a given certificate; stopped after the test."""
    started: list[_Server] = []

    def start(cert: tuple[Path, Path]) -> _Server:
        httpd = _Server(("127.0.0.1", 0), _Handler)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(str(cert[0]), str(cert[1]))
        httpd.socket = ctx.wrap_socket(httpd.socket, server_side=True)
        httpd.routes, httpd.hits = {}, []
        # shutdown() waits for serve_forever's next poll: 0.5 s by default, per server, per test (issue 10).
        threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True).start()
        started.append(httpd)
        return httpd

    yield start
    for httpd in started:
        httpd.shutdown()
        httpd.server_close()


def _base(httpd: _Server) -> str:
    return f"https://127.0.0.1:{httpd.server_address[1]}"


@pytest.fixture
def server(pki: Pki, serve: Callable[[tuple[Path, Path]], _Server], monkeypatch: pytest.MonkeyPatch) -> _Server:
    """The trusted server (its CA in SSL_CERT_FILE) with every good and bad body."""
    for var in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("SSL_CERT_FILE", str(pki.server_ca))
    httpd = serve(pki.server)
    pem = {"Content-Type": "application/x-pem-file"}
    html = {"Content-Type": "text/html"}
    base = _base(httpd)
    httpd.routes.update(
        {
            "/good.pem": (200, pem, pki.good),
            "/good2.pem": (200, pem, pki.good2),
            "/html200": (200, html, b"<!DOCTYPE html>\n<html><body>Service Unavailable</body></html>"),
            "/html404": (404, html, b"<html><body>Not Found</body></html>"),
            "/truncated.pem": (200, pem, pki.good[: len(pki.good) - 60]),
            "/leaf.pem": (200, pem, pki.leaf),
            "/empty": (200, pem, b""),
            "/nocert": (200, {"Content-Type": "text/plain"}, b"hello, no certificates here\n"),
            "/binary": (200, {"Content-Type": "application/octet-stream"}, bytes(range(256))),
            # Content-Length promises more than is sent: the connection closes mid-body.
            "/cutoff": (200, {**pem, "Content-Length": str(len(pki.good) + 500)}, pki.good),
            "/huge": (200, pem, b"-----BEGIN CERTIFICATE-----\n" + b"A" * (certs.MAX_DOWNLOAD + 10)),
            "/to-http": (302, {"Location": f"http://127.0.0.1:{httpd.server_address[1]}/good.pem"}, b""),
            "/to-good2": (302, {"Location": f"{base}/good2.pem"}, b""),
        }
    )
    return httpd


@pytest.fixture
def paths(tmp_path: Path) -> Paths:
    home = tmp_path / "home"
    return Paths(
        config_file=tmp_path / "config" / "pgiam" / "config.toml",
        state_dir=tmp_path / "state" / "pgiam",
        data_dir=tmp_path / "data" / "pgiam",
        pgpass=home / ".pgpass",
        service_file=home / ".pg_service.conf",
        home=home,
    )


def _listing(paths: Paths) -> list[str]:
    """The certs directory's files, without pgiam's marker of its own directories (issue 20)."""
    from pgiam.fileio import MARKER

    return sorted(n for n in os.listdir(paths.certs_dir) if n != MARKER) if paths.certs_dir.exists() else []


# --------------------------------------------------------------------------- pure parts


@pytest.mark.parametrize(
    ("region", "partition"),
    [
        ("eu-west-1", "aws"),
        ("us-east-1", "aws"),
        ("us-gov-west-1", "aws-us-gov"),
        ("us-gov-east-1", "aws-us-gov"),
        ("cn-north-1", "aws-cn"),
        ("cn-northwest-1", "aws-cn"),
        ("ap-southeast-5", "aws"),
    ],
)
def test_partition_for_region(region: str, partition: str) -> None:
    assert certs.partition_for_region(region) == partition


def test_default_sources_are_the_official_https_urls() -> None:
    assert certs.DEFAULT_SOURCES == {
        "aws": "https://truststore.pki.rds.amazonaws.com/global/global-bundle.pem",
        "aws-us-gov": "https://truststore.pki.us-gov-west-1.rds.amazonaws.com/global/global-bundle.pem",
        "aws-cn": "https://rds-truststore.s3.cn-north-1.amazonaws.com.cn/cn-north-1/cn-north-1-bundle.pem",
    }


def test_bundle_path_is_absolute_under_certs_dir(paths: Paths, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for partition in certs.PARTITIONS:
        path = certs.bundle_path(paths, partition)
        assert path.is_absolute() and path.parent == paths.certs_dir
        assert path.name == f"rds-{partition}.pem"
    monkeypatch.chdir(tmp_path)
    relative = Paths(Path("c.toml"), Path("s"), Path("d"), Path("p"), Path("sf"), Path("h"))
    assert certs.bundle_path(relative, "aws") == tmp_path / "d" / "certs" / "rds-aws.pem"
    with pytest.raises(UsageError, match="aws-moon"):
        certs.bundle_path(paths, "aws-moon")


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("empty", "empty"),
        ("html", "HTML"),
        ("nocert", "no PEM certificate"),
        ("truncated", "truncated"),
        ("leaf", "not a CA"),
        ("corrupt", "does not parse"),
    ],
)
def test_parse_bundle_rejects(pki: Pki, name: str, reason: str) -> None:
    good = pki.good.decode()
    text = {
        "empty": " \n",
        "html": "<html><head><title>403 Forbidden</title></head></html>",
        "nocert": "just words\n",
        "truncated": good[: len(good) - 60],
        "leaf": pki.leaf.decode(),
        "corrupt": good.replace("MII", "xyz", 1),
    }[name]
    with pytest.raises(certs.BundleError, match=reason):
        certs.parse_bundle(text)


def test_describe_bundle_lists_soon_expiring_and_expired(pki: Pki) -> None:
    now = time.time()
    desc = certs.describe_bundle(pki.good.decode(), now)
    assert desc.ca_count == 3
    assert [(ca.subject, ca.expired) for ca in desc.expiring] == [
        ("Test RDS Root expired", True),
        ("Test RDS Root 30d", False),
    ]
    soon = desc.expiring[1]
    assert soon.not_after == _not_after(pki.ca_30d)
    assert soon.not_after_iso == time.strftime("%Y-%m-%d", time.gmtime(_not_after(pki.ca_30d)))
    assert desc.expired and not desc.all_expired
    # Three years on, every CA has expired.
    later = certs.describe_bundle(pki.good.decode(), now + 3 * 365 * 86400)
    assert later.all_expired and len(later.expiring) == 3


# --------------------------------------------------------------------------- update


def test_update_stores_a_good_bundle_atomically(server: _Server, paths: Paths) -> None:
    url = f"{_base(server)}/good.pem"
    result = certs.update(paths, "aws", url)
    target = certs.bundle_path(paths, "aws")
    assert result == certs.UpdateResult("aws", target, url, 3, True)
    assert target.read_bytes() == server.routes["/good.pem"][2]
    assert stat.S_IMODE(target.stat().st_mode) == 0o644
    assert stat.S_IMODE(paths.certs_dir.stat().st_mode) == 0o700
    assert _listing(paths) == ["rds-aws.pem", "sources.json"]
    # Same bytes again: nothing rewritten.
    inode = target.stat().st_ino
    again = certs.update(paths, "aws")
    assert again.changed is False and again.url == url and target.stat().st_ino == inode
    # New bytes: replaced by rename (new inode), not rewritten in place.
    server.routes["/good.pem"] = server.routes["/good2.pem"]
    third = certs.update(paths, "aws")
    assert third.changed and third.ca_count == 1 and target.stat().st_ino != inode


def test_update_with_an_explicit_context_needs_no_ssl_cert_file(
    server: _Server, paths: Paths, pki: Pki, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SSL_CERT_FILE")
    ctx = ssl.create_default_context(cafile=str(pki.server_ca))
    assert certs.update(paths, "aws-cn", f"{_base(server)}/good.pem", context=ctx).ca_count == 3


def test_redirect_to_https_is_followed(server: _Server, paths: Paths) -> None:
    assert certs.update(paths, "aws", f"{_base(server)}/to-good2").ca_count == 1


@pytest.mark.parametrize("url", ["http://127.0.0.1:{port}/good.pem", "HTTP://127.0.0.1:{port}/x", "ftp://127.0.0.1:{port}/x", "file:///etc/passwd", "https:///nohost", "127.0.0.1:{port}/x"])
def test_non_https_is_refused_without_any_connection(paths: Paths, url: str) -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        listener.setblocking(False)
        url = url.format(port=listener.getsockname()[1])
        with pytest.raises(UsageError, match="only https"):
            certs.update(paths, "aws", url)
        with pytest.raises(BlockingIOError):
            listener.accept()  # nobody connected
    assert _listing(paths) == []


def test_remembered_http_source_is_refused_too(paths: Paths) -> None:
    paths.certs_dir.mkdir(parents=True)
    (paths.certs_dir / "sources.json").write_text(json.dumps({"version": 1, "sources": {"aws": "http://x/y.pem"}}))
    with pytest.raises(UsageError, match="only https"):
        certs.update(paths, "aws")


def _bad_cases(base: str, rogue_base: str) -> list[tuple[str, type[Exception], str]]:
    return [
        (f"{base}/html200", NetworkError, "HTML"),
        (f"{base}/html404", NetworkError, "HTTP 404"),
        (f"{base}/truncated.pem", NetworkError, "truncated"),
        (f"{base}/leaf.pem", NetworkError, "not a CA"),
        (f"{base}/empty", NetworkError, "empty"),
        (f"{base}/nocert", NetworkError, "no PEM certificate"),
        (f"{base}/binary", NetworkError, "not ASCII"),
        (f"{base}/cutoff", NetworkError, "cut off"),
        (f"{base}/huge", NetworkError, "more than"),
        (f"{base}/to-http", NetworkError, "not https"),
        (f"{rogue_base}/good.pem", NetworkError, "did not verify"),
    ]


def test_every_failure_leaves_the_previous_bundle_byte_identical(
    server: _Server, serve: Callable[[tuple[Path, Path]], _Server], paths: Paths, pki: Pki
) -> None:
    rogue = serve(pki.rogue_server)
    rogue.routes["/good.pem"] = server.routes["/good2.pem"]
    good_url = f"{_base(server)}/good.pem"
    certs.update(paths, "aws", good_url)
    target = certs.bundle_path(paths, "aws")
    before = target.read_bytes()
    sources_before = (paths.certs_dir / "sources.json").read_bytes()
    for url, kind, reason in _bad_cases(_base(server), _base(rogue)):
        with pytest.raises(kind, match=reason) as info:
            certs.update(paths, "aws", url)
        assert url in info.value.message
        assert target.read_bytes() == before, url
        assert (paths.certs_dir / "sources.json").read_bytes() == sources_before, url
        assert _listing(paths) == ["rds-aws.pem", "sources.json"], url  # no temp file left
    assert rogue.hits == []  # the TLS handshake failed before any request was sent


def test_untrusted_server_names_url_and_tls_reason(
    server: _Server, serve: Callable[[tuple[Path, Path]], _Server], paths: Paths, pki: Pki
) -> None:
    rogue = serve(pki.rogue_server)
    url = f"{_base(rogue)}/good.pem"
    with pytest.raises(NetworkError) as info:
        certs.update(paths, "aws", url)
    err = info.value
    assert url in err.message and "local issuer" in err.message  # OpenSSL's verify reason
    assert err.hint and "SSL_CERT_FILE" in err.hint and "--sslrootcert" in err.hint
    assert not certs.bundle_path(paths, "aws").exists()


def test_write_failure_keeps_bundle_and_sources(server: _Server, paths: Paths, monkeypatch: pytest.MonkeyPatch) -> None:
    certs.update(paths, "aws", f"{_base(server)}/good.pem")
    target = certs.bundle_path(paths, "aws")
    before = target.read_bytes()
    sources_before = (paths.certs_dir / "sources.json").read_bytes()
    import errno

    def read_only(src: object, dst: object) -> None:  # what a read-only file system answers (root ignores modes)
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(fileio.os, "replace", read_only)
    with pytest.raises(FileError):
        certs.update(paths, "aws", f"{_base(server)}/good2.pem")
    monkeypatch.undo()
    assert target.read_bytes() == before
    assert (paths.certs_dir / "sources.json").read_bytes() == sources_before
    assert [n for n in os.listdir(paths.certs_dir) if fileio.TMP_MARK in n] == []


def test_url_is_remembered_per_partition(server: _Server, paths: Paths) -> None:
    url = f"{_base(server)}/good2.pem"
    certs.update(paths, "aws-us-gov", url)
    data = json.loads((paths.certs_dir / "sources.json").read_text())
    assert data == {"version": 1, "sources": {"aws-us-gov": url}}
    assert certs.load_sources(paths) == {"aws-us-gov": url}
    server.hits.clear()
    assert certs.update(paths, "aws-us-gov").url == url
    assert server.hits == ["/good2.pem"]


def test_broken_sources_file_is_a_config_error(paths: Paths) -> None:
    paths.certs_dir.mkdir(parents=True)
    (paths.certs_dir / "sources.json").write_text("{not json")
    from pgiam.errors import ConfigError

    with pytest.raises(ConfigError, match="sources.json") as info:
        certs.update(paths, "aws")
    assert info.value.hint and "delete" in info.value.hint


# --------------------------------------------------------------------------- ensure_bundle


def test_ensure_bundle_downloads_only_when_absent(server: _Server, paths: Paths) -> None:
    paths.certs_dir.mkdir(parents=True)
    (paths.certs_dir / "sources.json").write_text(
        json.dumps({"version": 1, "sources": {"aws": f"{_base(server)}/good.pem"}})
    )
    path = certs.ensure_bundle(paths, "aws")
    assert path == certs.bundle_path(paths, "aws") and path.read_bytes() == server.routes["/good.pem"][2]
    assert server.hits == ["/good.pem"]
    assert certs.ensure_bundle(paths, "aws") == path
    assert server.hits == ["/good.pem"]  # present: no second download


def test_ensure_bundle_offline_suggests_sslrootcert(paths: Paths) -> None:
    with socket.socket() as s:  # a loopback port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    paths.certs_dir.mkdir(parents=True)
    (paths.certs_dir / "sources.json").write_text(
        json.dumps({"version": 1, "sources": {"aws": f"https://127.0.0.1:{port}/global-bundle.pem"}})
    )
    with pytest.raises(NetworkError) as info:
        certs.ensure_bundle(paths, "aws", timeout=5)
    assert f"127.0.0.1:{port}" in info.value.message
    assert info.value.hint and "--sslrootcert PATH" in info.value.hint
    assert _listing(paths) == ["sources.json"]


# --------------------------------------------------------------------------- status


def test_status_lists_expiring_cas_and_flags_expired(server: _Server, paths: Paths, pki: Pki) -> None:
    certs.update(paths, "aws", f"{_base(server)}/good.pem")
    target = certs.bundle_path(paths, "aws")
    [st] = certs.status(paths, time.time(), in_use={target})
    assert (st.path, st.partition, st.exists, st.in_use, st.ca_count) == (target, "aws", True, True, 3)
    assert st.expired and not st.missing_in_use and st.error is None
    by_cn = {ca.subject: ca for ca in st.expiring}
    assert set(by_cn) == {"Test RDS Root 30d", "Test RDS Root expired"}
    soon = by_cn["Test RDS Root 30d"]
    assert not soon.expired
    assert soon.not_after_iso == time.strftime("%Y-%m-%d", time.gmtime(_not_after(pki.ca_30d)))
    assert by_cn["Test RDS Root expired"].expired
    # One current CA remains, so OpenSSL still verifies: a problem only when strict.
    assert certs.status_problems([st]) == []
    [strict] = certs.status_problems([st], strict=True)
    assert "Test RDS Root expired" in strict and str(target) in strict


def test_status_without_use_is_not_a_problem(server: _Server, paths: Paths) -> None:
    certs.update(paths, "aws", f"{_base(server)}/good.pem")
    statuses = certs.status(paths, time.time() + 3 * 365 * 86400)
    assert [s.partition for s in statuses] == ["aws"] and statuses[0].all_expired
    assert certs.status_problems(statuses) == []


def test_all_expired_bundle_in_use_is_a_problem(paths: Paths, pki: Pki, tmp_path: Path) -> None:
    own = tmp_path / "own.pem"
    own.write_bytes(pki.ca_expired.read_bytes())
    [st] = certs.status(paths, time.time(), in_use={own})
    assert st.partition is None and st.all_expired
    [problem] = certs.status_problems([st])
    assert str(own) in problem and "expired" in problem


def test_missing_in_use_bundle_is_a_problem(paths: Paths, tmp_path: Path) -> None:
    gone = tmp_path / "gone.pem"
    managed = certs.bundle_path(paths, "aws-cn")
    statuses = certs.status(paths, time.time(), in_use={gone, managed, Path("system")})
    assert {s.path for s in statuses} == {gone, managed}
    assert all(s.missing_in_use and not s.exists for s in statuses)
    problems = certs.status_problems(statuses)
    assert len(problems) == 2
    assert any(str(gone) in p and "missing" in p for p in problems)
    assert any(str(managed) in p and "pgiam certs update --partition aws-cn" in p for p in problems)
    assert not paths.certs_dir.exists()  # reading never creates anything


def test_invalid_in_use_bundle_is_a_problem(paths: Paths, tmp_path: Path) -> None:
    bad = tmp_path / "bad.pem"
    bad.write_text("<html>oops</html>")
    [st] = certs.status(paths, time.time(), in_use={bad})
    assert st.error and "HTML" in st.error
    [problem] = certs.status_problems([st])
    assert "invalid" in problem


# --------------------------------------------------------------------------- RDS Proxy


def test_proxy_sslrootcert_system_from_16() -> None:
    assert certs.proxy_sslrootcert(LibpqVersion(16, 0)) == "system"
    assert certs.proxy_sslrootcert(LibpqVersion(18, 1)) == "system"


def test_proxy_sslrootcert_file_before_16(monkeypatch: pytest.MonkeyPatch, pki: Pki) -> None:
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    path = certs.proxy_sslrootcert(LibpqVersion(15, 18))
    assert os.path.isabs(path) and os.path.isfile(path)
    assert certs.proxy_sslrootcert(None) == path  # unknown version: the safe answer
    monkeypatch.setenv("SSL_CERT_FILE", str(pki.server_ca))
    assert certs.proxy_sslrootcert(LibpqVersion(9, 24, branch=6)) == str(pki.server_ca)


def test_proxy_sslrootcert_without_system_store(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    fake = ssl.DefaultVerifyPaths(None, None, "SSL_CERT_FILE", str(tmp_path / "none.pem"), "SSL_CERT_DIR", str(tmp_path))
    monkeypatch.setattr(ssl, "get_default_verify_paths", lambda: fake)
    with pytest.raises(EnvironmentProblem, match="no system CA file") as info:
        certs.proxy_sslrootcert(LibpqVersion(15, 18))
    assert info.value.hint and "--sslrootcert" in info.value.hint


def test_bundle_write_failure_rolls_back_the_new_source(
    server: _Server, paths: Paths, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Fault injected at the disk edge (works as root, unlike a read-only directory)."""
    certs.update(paths, "aws", f"{_base(server)}/good.pem")
    target = certs.bundle_path(paths, "aws")
    before = target.read_bytes()
    sources_before = (paths.certs_dir / "sources.json").read_bytes()
    real_write = certs.atomic_write

    def failing_write(path: Path, data: bytes, mode: int = 0o600, *, scope: fileio.Scope) -> Path:
        if path.suffix == ".pem":
            raise FileError(f"cannot write {path}: No space left on device")
        return real_write(path, data, mode, scope=scope)

    monkeypatch.setattr(certs, "atomic_write", failing_write)
    with pytest.raises(FileError, match="No space"):
        certs.update(paths, "aws", f"{_base(server)}/good2.pem")
    assert target.read_bytes() == before
    assert (paths.certs_dir / "sources.json").read_bytes() == sources_before
    assert _listing(paths) == ["rds-aws.pem", "sources.json"]


def test_status_reports_a_directory_instead_of_crashing(paths: Paths, tmp_path: Path) -> None:
    odd = tmp_path / "dir.pem"
    odd.mkdir()
    [st] = certs.status(paths, time.time(), in_use={odd})
    assert st.exists and st.error and "directory" in st.error
    assert len(certs.status_problems([st])) == 1
