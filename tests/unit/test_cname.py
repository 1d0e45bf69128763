"""Names that cannot be signed (issue 15): a CNAME is followed to the first AWS endpoint name, anything
else is refused; an --sslrootcert that is missing or holds no PEM certificate is refused at add."""

from __future__ import annotations

import socket
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdatatype
import dns.rrset
import pytest

from pgiam import endpoints, pgpass, tokeninfo
from pgiam.errors import ExitCode, UsageError
from tests.conftest import in_process

CLUSTER = "orders.cluster-abc123.eu-west-1.rds.amazonaws.com"
INSTANCE = "orders-1.abc123.eu-west-1.rds.amazonaws.com"  # what Aurora's cluster name is itself a CNAME for
CHAINS = {
    "db.corp.example": "db-alias.corp.example",
    "db-alias.corp.example": CLUSTER,
    CLUSTER: INSTANCE,
    "intranet.corp.example": "lb.corp.example",
    "loop-a.corp.example": "loop-b.corp.example",
    "loop-b.corp.example": "loop-a.corp.example",
}
EXISTING = {"lb.corp.example", INSTANCE}  # names with an address but no CNAME


def fake(calls: list[str]) -> endpoints.Resolver:
    def resolve(name: str) -> str | None:
        calls.append(name)
        if name in CHAINS:
            return CHAINS[name] + "."
        if name in EXISTING:
            return None
        raise LookupError("no such name")

    return resolve


# ---------------------------------------------------------------- the rule, with a substituted resolver


@pytest.mark.parametrize("host", [
    CLUSTER, INSTANCE, "orders.cluster-ro-abc123.eu-west-1.rds.amazonaws.com",
    "px.proxy-abc123.us-east-1.rds.amazonaws.com", "db.abc.cn-north-1.rds.amazonaws.com.cn",
    "abcdefghijklmnopqrstuvwxyz.dsql.us-east-1.on.aws", "not-there.cluster-zzz.us-east-1.rds.amazonaws.com",
])
def test_aws_shaped_names_are_kept_without_any_lookup(host: str) -> None:
    calls: list[str] = []
    notices: list[str] = []
    assert endpoints.signing_name(host, notices, fake(calls)) == host
    assert calls == [] and notices == []


def test_the_first_aws_name_of_the_chain_wins_not_the_last() -> None:
    calls: list[str] = []
    notices: list[str] = []
    assert endpoints.signing_name("db.corp.example", notices, fake(calls)) == CLUSTER
    assert calls == ["db.corp.example", "db-alias.corp.example"]  # stops at the cluster name
    (note,) = notices
    assert "db.corp.example is a CNAME" in note and CLUSTER in note and "signed for" in note


@pytest.mark.parametrize(("host", "words"), [
    ("intranet.corp.example", "intranet.corp.example -> lb.corp.example"),
    ("nowhere.corp.example", "no such name"),
    ("loop-a.corp.example", "loop-a.corp.example -> loop-b.corp.example"),
    ("10.1.2.3", "IP address"),
    ("::1", "IP address"),
    ("localhost", "localhost"),
])
def test_names_without_an_aws_endpoint_are_refused_with_the_hint(host: str, words: str) -> None:
    calls: list[str] = []
    with pytest.raises(UsageError) as e:
        endpoints.signing_name(host, [], fake(calls))
    assert words in e.value.message
    assert "--host" in (e.value.hint or "") and "--via ADDR:PORT" in (e.value.hint or "")
    if host in ("10.1.2.3", "::1", "localhost"):
        assert calls == []


# ---------------------------------------------------------------- the real resolver against a local DNS server


class TinyDNS:
    """A UDP DNS server on 127.0.0.1 answering CNAME queries from CHAINS (dnspython builds the wire format)."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.queries: list[str] = []
        self.thread = threading.Thread(target=self.serve, daemon=True)

    def serve(self) -> None:
        while True:
            try:
                data, peer = self.sock.recvfrom(4096)
            except OSError:
                return
            q = dns.message.from_wire(data)
            r = dns.message.make_response(q)
            r.flags |= dns.flags.RA
            question = q.question[0]
            name = question.name.to_text(omit_final_dot=True).lower()
            self.queries.append(name)
            if name in CHAINS:
                r.answer.append(dns.rrset.from_text(question.name, 60, "IN", "CNAME", CHAINS[name] + "."))
            elif name not in EXISTING:
                r.set_rcode(dns.rcode.NXDOMAIN)
            self.sock.sendto(r.to_wire(), peer)


@pytest.fixture
def tiny_dns(monkeypatch: pytest.MonkeyPatch) -> Iterator[TinyDNS]:
    server = TinyDNS()
    server.thread.start()
    monkeypatch.setenv(endpoints.NAMESERVER_ENV, f"127.0.0.1:{server.port}")
    yield server
    server.sock.close()


def pgiam(*argv: str) -> subprocess.CompletedProcess[str]:
    """`pgiam ARGV` in this process (the unit tier starts no pgiam process)."""
    return in_process(*argv)


def test_add_signs_a_cname_host_for_its_aws_name(tiny_dns: TinyDNS, home: Path, ca_file: Path) -> None:
    p = pgiam("add", "orders", "--host", "db.corp.example", "--user", "alice", "--sslrootcert", str(ca_file))
    assert p.returncode == ExitCode.OK, p.stderr
    assert f"db.corp.example is a CNAME for the AWS endpoint {CLUSTER}" in p.stderr
    assert tiny_dns.queries == ["db.corp.example", "db-alias.corp.example"]
    svc = (home / ".pg_service.conf").read_text().split("\n")
    assert f"host={CLUSTER}" in svc
    (key, token), = pgpass.parse_tokens((home / ".pgpass").read_text()).items()
    assert key.host == CLUSTER
    info = tokeninfo.decode(token)
    assert (info.host, info.port, info.region, info.user) == (CLUSTER, 5432, "eu-west-1", "alice")
    assert f'host = "{CLUSTER}"' in (home / ".config" / "pgiam" / "config.toml").read_text()


def test_add_refuses_a_name_whose_chain_has_no_aws_endpoint(tiny_dns: TinyDNS, home: Path, ca_file: Path) -> None:
    p = pgiam("add", "intra", "--host", "intranet.corp.example", "--user", "alice", "--region", "eu-west-1",
              "--sslrootcert", str(ca_file))
    assert p.returncode == ExitCode.USAGE
    assert "intranet.corp.example -> lb.corp.example" in p.stderr and "--via ADDR:PORT" in p.stderr
    assert "Traceback" not in p.stderr
    assert not (home / ".pg_service.conf").exists() and not (home / ".pgpass").exists()


def test_an_aws_name_that_does_not_resolve_is_accepted(tiny_dns: TinyDNS, home: Path, ca_file: Path) -> None:
    p = pgiam("add", "priv", "--host", "private.cluster-xyz.eu-west-1.rds.amazonaws.com", "--user", "u",
              "--sslrootcert", str(ca_file), "--no-refresh")
    assert p.returncode == ExitCode.OK, p.stderr
    assert tiny_dns.queries == []


# ---------------------------------------------------------------- --sslrootcert at add


@pytest.mark.parametrize(("content", "words"), [
    (None, "does not exist"),
    ("just some text\n", "holds no PEM certificate"),
    ("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n", "holds no PEM certificate"),
])
def test_add_refuses_an_sslrootcert_without_a_certificate(run_cli, home: Path, content: str | None, words: str) -> None:
    ca = home / "ca.pem"
    if content is not None:
        ca.write_text(content)
    code, _, err = run_cli("add", "p", "--host", CLUSTER, "--user", "u", "--sslrootcert", str(ca))
    assert code == ExitCode.USAGE
    assert f"sslrootcert {ca} {words}" in err and "\nhint: " in err
    assert not (home / ".pg_service.conf").exists() and not (home / ".pgpass").exists()


def test_add_accepts_a_real_pem_bundle(run_cli, home: Path, tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(tmp_path / "k.pem"),
                    "-out", str(ca), "-subj", "/CN=test CA", "-days", "2"], check=True, capture_output=True)
    code, _, err = run_cli("add", "p", "--host", CLUSTER, "--user", "u", "--sslrootcert", str(ca), "--no-refresh")
    assert code == ExitCode.OK, err


@pytest.mark.parametrize(("libpq", "code"), [("16.4", ExitCode.OK), ("15.18", ExitCode.ENVIRONMENT)])
def test_add_takes_sslrootcert_system_as_the_keyword(run_cli, home: Path, monkeypatch: pytest.MonkeyPatch,
                                                     libpq: str, code: ExitCode) -> None:
    """`--sslrootcert system` is libpq 16's OS trust store, not a file named system in the current directory."""
    monkeypatch.setenv("PGIAM_LIBPQ_VERSION", libpq)
    c, _, err = run_cli("add", "p", "--host", "px.proxy-abc.us-east-1.rds.amazonaws.com", "--user", "u",
                        "--sslrootcert", "system", "--no-refresh")
    assert c == code, err
    if code == ExitCode.OK:
        assert "sslrootcert=system" in (home / ".pg_service.conf").read_text().split("\n")
    else:
        assert "sslrootcert=system needs libpq 16" in err
