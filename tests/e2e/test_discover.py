"""`pgiam discover` against a moto account (issue 15): exactly the right endpoints, and --add makes entries
whose tokens the sandbox's independent SigV4 judge accepts.

moto implements DescribeDBInstances, DescribeDBClusters, DescribeDBProxies and DSQL List/GetCluster,
but not DescribeDBClusterEndpoints nor DescribeDBProxyEndpoints: a thin HTTP stand-in in front of moto
answers those two (one item per page, so pagination is exercised) and forwards everything else. It
can also refuse one API with AccessDenied, as IAM does.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import boto3
import jsonschema
import pytest

from pgiam import pgpass
from pgiam.errors import ExitCode
from pgiam.sandbox.sigv4check import check_dsql_token, check_token
from tests.awsfake import DUMMY_KEY_ID, DUMMY_SECRET, env_for, reset

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
SCHEMA = json.loads((ROOT / "pgiam" / "schemas" / "discover.schema.json").read_text())
RDS_NS = "http://rds.amazonaws.com/doc/2014-10-31/"


@dataclass
class StandIn:
    """What the stand-in adds to moto: cluster and proxy endpoints, and APIs to refuse."""

    moto: str
    cluster_endpoints: list[dict[str, str]] = field(default_factory=list)
    proxy_endpoints: list[dict[str, str]] = field(default_factory=list)
    deny: set[str] = field(default_factory=set)  # Action names answered with AccessDenied
    seen: list[str] = field(default_factory=list)  # Action names and markers asked for
    url: str = ""


def _member(tag: str, item: dict[str, str]) -> str:
    return f"<{tag}>" + "".join(f"<{k}>{v}</{k}>" for k, v in item.items()) + f"</{tag}>"


def _page(stand: StandIn, action: str, form: dict[str, str]) -> bytes | None:
    """One page of a list moto lacks: one item per page, the next index as the Marker."""
    lists = {"DescribeDBClusterEndpoints": ("DBClusterEndpoints", "DBClusterEndpointList", stand.cluster_endpoints),
             "DescribeDBProxyEndpoints": ("DBProxyEndpoints", "member", stand.proxy_endpoints)}
    if action not in lists:
        return None
    key, tag, items = lists[action]
    start = int(form.get("Marker") or 0)
    stand.seen.append(f"{action}@{start}")
    body = _member(tag, items[start]) if start < len(items) else ""
    marker = f"<Marker>{start + 1}</Marker>" if start + 1 < len(items) else ""
    return (f'<{action}Response xmlns="{RDS_NS}"><{action}Result><{key}>{body}</{key}>{marker}'
            f"</{action}Result><ResponseMetadata><RequestId>standin</RequestId></ResponseMetadata>"
            f"</{action}Response>").encode()


def _denied(action: str) -> bytes:
    return (f'<ErrorResponse xmlns="{RDS_NS}"><Error><Type>Sender</Type><Code>AccessDenied</Code>'
            f"<Message>User is not authorized to perform: rds:{action}</Message></Error>"
            "<RequestId>standin</RequestId></ErrorResponse>").encode()


def serve(stand: StandIn) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *a: Any) -> None:
            pass

        def _forward(self, body: bytes | None) -> None:
            req = urllib.request.Request(stand.moto + self.path, data=body, method=self.command,
                                         headers={k: v for k, v in self.headers.items() if k.lower() != "host"})
            try:
                with urllib.request.urlopen(req, timeout=30) as r:
                    status, headers, data = r.status, r.headers, r.read()
            except urllib.error.HTTPError as e:
                status, headers, data = e.code, e.headers, e.read()
            self.send_response(status)
            for k, v in headers.items():
                if k.lower() not in ("transfer-encoding", "connection", "content-length", "server", "date"):
                    self.send_header(k, v)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _answer(self, status: int, data: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Type", "text/xml")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            form = dict(urllib.parse.parse_qsl(body.decode("utf-8", "replace")))
            action = form.get("Action", "")
            if action in stand.deny:
                stand.seen.append(f"{action}!denied")
                return self._answer(403, _denied(action))
            page = _page(stand, action, form)
            if page is not None:
                return self._answer(200, page)
            if action:
                stand.seen.append(action)
            self._forward(body)

        def do_GET(self) -> None:
            self._forward(None)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    stand.url = f"http://127.0.0.1:{server.server_address[1]}"
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@pytest.fixture
def stand(moto_url: str) -> Iterator[StandIn]:
    reset(moto_url)
    s = StandIn(moto_url)
    server = serve(s)
    yield s
    server.shutdown()
    server.server_close()


def aws(stand: StandIn, service: str, region: str = "us-east-1") -> Any:
    return boto3.session.Session(aws_access_key_id=DUMMY_KEY_ID, aws_secret_access_key=DUMMY_SECRET).client(
        service, region_name=region, endpoint_url=stand.moto)


def make_account(stand: StandIn, region: str = "us-east-1") -> dict[str, str]:
    """IAM-enabled and disabled instances, clusters and proxies, a MySQL instance, a DSQL cluster."""
    rds = aws(stand, "rds", region)
    common = dict(DBInstanceClass="db.t3.micro", MasterUsername="m", MasterUserPassword="password123", AllocatedStorage=20)
    rds.create_db_instance(DBInstanceIdentifier="pg-iam", Engine="postgres", EnableIAMDatabaseAuthentication=True, **common)
    rds.create_db_instance(DBInstanceIdentifier="pg-noiam", Engine="postgres", **common)
    rds.create_db_instance(DBInstanceIdentifier="mysql-iam", Engine="mysql", EnableIAMDatabaseAuthentication=True, **common)
    rds.create_db_cluster(DBClusterIdentifier="aur", Engine="aurora-postgresql", MasterUsername="m",
                          MasterUserPassword="password123", EnableIAMDatabaseAuthentication=True)
    rds.create_db_instance(DBInstanceIdentifier="aur-1", DBClusterIdentifier="aur", Engine="aurora-postgresql",
                           DBInstanceClass="db.r6g.large")
    rds.create_db_cluster(DBClusterIdentifier="aur-noiam", Engine="aurora-postgresql", MasterUsername="m",
                          MasterUserPassword="password123")
    rds.create_db_cluster(DBClusterIdentifier="aur-mysql", Engine="aurora-mysql", MasterUsername="m",
                          MasterUserPassword="password123", EnableIAMDatabaseAuthentication=True)
    ec2 = aws(stand, "ec2", region)
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    subnets = [ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.0.{n}.0/24", AvailabilityZone=f"{region}{z}")["Subnet"]["SubnetId"]
               for n, z in ((1, "a"), (2, "b"))]
    proxy = dict(RoleArn="arn:aws:iam::123456789012:role/r", VpcSubnetIds=subnets)
    secret = "arn:aws:secretsmanager:us-east-1:123456789012:secret:x"
    px = rds.create_db_proxy(DBProxyName="px-iam", EngineFamily="POSTGRESQL", **proxy,
                             Auth=[{"AuthScheme": "SECRETS", "SecretArn": secret, "IAMAuth": "REQUIRED"}])["DBProxy"]
    rds.create_db_proxy(DBProxyName="px-noiam", EngineFamily="POSTGRESQL", **proxy,
                        Auth=[{"AuthScheme": "SECRETS", "SecretArn": secret, "IAMAuth": "DISABLED"}])
    rds.create_db_proxy(DBProxyName="px-mysql", EngineFamily="MYSQL", **proxy,
                        Auth=[{"AuthScheme": "SECRETS", "SecretArn": secret, "IAMAuth": "REQUIRED"}])
    cluster = rds.describe_db_clusters(DBClusterIdentifier="aur")["DBClusters"][0]
    suffix = cluster["Endpoint"].split(".", 1)[1].replace("cluster-", "cluster-custom-")
    stand.cluster_endpoints += [
        {"DBClusterEndpointIdentifier": "aur-analytics", "DBClusterIdentifier": "aur", "Endpoint": f"aur-analytics.{suffix}",
         "EndpointType": "CUSTOM", "CustomEndpointType": "READER", "Status": "available"},
        {"DBClusterEndpointIdentifier": "aur-writer", "DBClusterIdentifier": "aur", "Endpoint": cluster["Endpoint"],
         "EndpointType": "WRITER", "Status": "available"},
        {"DBClusterEndpointIdentifier": "mysql-custom", "DBClusterIdentifier": "aur-mysql",
         "Endpoint": f"mysql-custom.{suffix}", "EndpointType": "CUSTOM", "Status": "available"},
    ]
    px_suffix = px["Endpoint"].split(".", 1)[1]
    stand.proxy_endpoints += [
        {"DBProxyEndpointName": "px-iam-ro", "DBProxyName": "px-iam", "Endpoint": f"px-iam-ro.endpoint.{px_suffix}",
         "TargetRole": "READ_ONLY", "IsDefault": "false", "Status": "available"},
        {"DBProxyEndpointName": "default", "DBProxyName": "px-iam", "Endpoint": px["Endpoint"],
         "TargetRole": "READ_WRITE", "IsDefault": "true", "Status": "available"},
        {"DBProxyEndpointName": "px-mysql-ro", "DBProxyName": "px-mysql", "Endpoint": f"px-mysql-ro.endpoint.{px_suffix}",
         "TargetRole": "READ_ONLY", "IsDefault": "false", "Status": "available"},
    ]
    d = aws(stand, "dsql", region).create_cluster(tags={"Name": "orders"})
    return {"dsql": d["identifier"], "dsql_arn": d["arn"], "cluster_res": cluster["DbClusterResourceId"],
            "proxy_arn": px["DBProxyArn"]}


def pgiam(home: Path, stand: StandIn, *argv: str, **extra: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, **env_for(stand.url), AWS_SHARED_CREDENTIALS_FILE=str(home / ".aws" / "credentials"),
               AWS_CONFIG_FILE=str(home / ".aws" / "config"))
    env.update(extra)
    env.pop("AWS_PROFILE", None)
    return subprocess.run([sys.executable, "-m", "pgiam", *argv], env=env, capture_output=True, text=True,
                          timeout=120, stdin=subprocess.DEVNULL)


def rows(p: subprocess.CompletedProcess[str]) -> dict[str, dict[str, Any]]:
    doc = json.loads(p.stdout)
    jsonschema.validate(doc, SCHEMA)
    return {e["name"]: e for e in doc["endpoints"]}


def test_discover_lists_exactly_the_postgresql_endpoints(stand: StandIn, home: Path) -> None:
    ids = make_account(stand)
    p = pgiam(home, stand, "discover", "--region", "us-east-1", "--json")
    assert p.returncode == ExitCode.OK, p.stderr
    got = rows(p)
    kinds = {n: (e["kind"], e["iam"]) for n, e in got.items()}
    dsql_name = "orders"
    assert kinds == {
        "pg-iam": ("instance", True), "pg-noiam": ("instance", False), "aur-1": ("instance", True),
        "aur": ("cluster-writer", True), "aur-ro": ("cluster-reader", True), "aur-analytics": ("cluster-custom", True),
        "aur-noiam": ("cluster-writer", False), "aur-noiam-ro": ("cluster-reader", False),
        "px-iam": ("proxy", True), "px-iam-ro": ("proxy-endpoint", True), "px-noiam": ("proxy", False),
        dsql_name: ("dsql", True),
    }
    assert got[dsql_name]["host"] == f"{ids['dsql']}.dsql.us-east-1.on.aws"  # built, not copied from `endpoint`
    assert got[dsql_name]["resource_arn"] == ids["dsql_arn"]
    assert got["aur"]["resource_arn"] == f"arn:aws:rds-db:us-east-1:123456789012:dbuser:{ids['cluster_res']}/"
    assert got["aur-1"]["resource_arn"] == got["aur"]["resource_arn"]  # Aurora: the cluster's resource id
    prx = ids["proxy_arn"].rsplit(":", 1)[1]
    assert got["px-iam"]["resource_arn"] == got["px-iam-ro"]["resource_arn"] == f"arn:aws:rds-db:us-east-1:123456789012:dbuser:{prx}/"
    assert got["px-iam-ro"]["target_role"] == "READ_ONLY" and got["px-iam"]["port"] == 5432
    assert got["pg-iam"]["ca_identifier"] == "rds-ca-default" and got["aur"]["ca_identifier"] is None
    assert got["pg-iam"]["resource_arn"].startswith("arn:aws:rds-db:us-east-1:123456789012:dbuser:db-")
    assert all(e["region"] == "us-east-1" and e["profile"] is None for e in got.values())
    # The stand-in's one-item pages were all followed.
    assert {"DescribeDBClusterEndpoints@0", "DescribeDBClusterEndpoints@1", "DescribeDBClusterEndpoints@2",
            "DescribeDBProxyEndpoints@2"} <= set(stand.seen)


def test_text_output_says_iam_on_and_off(stand: StandIn, home: Path) -> None:
    make_account(stand)
    p = pgiam(home, stand, "discover", "--region", "us-east-1")
    assert p.returncode == ExitCode.OK, p.stderr
    lines = {ln.split()[0]: ln.split() for ln in p.stdout.splitlines()}
    assert lines["NAME"][:4] == ["NAME", "KIND", "IAM", "HOST"]
    assert lines["pg-noiam"][2] == "off" and lines["pg-iam"][2] == "on"
    assert lines["pg-iam"][-1].endswith("/USER")
    assert "\r" not in p.stderr  # no progress line when stderr is not a terminal


def test_an_api_the_caller_may_not_use_is_a_warning(stand: StandIn, home: Path) -> None:
    make_account(stand)
    stand.deny.add("DescribeDBProxies")
    p = pgiam(home, stand, "discover", "--region", "us-east-1", "--json")
    assert p.returncode == ExitCode.PARTIAL, p.stderr
    got = rows(p)
    assert "pg-iam" in got and "aur-analytics" in got and "orders" in got
    assert not any(e["kind"].startswith("proxy") for e in got.values())
    (w,) = json.loads(p.stdout)["warnings"]
    assert w["api"] == "rds:DescribeDBProxies" and "AccessDenied" in w["error"] and w["error_code"] == ExitCode.AUTH
    assert "pgiam: warning: us-east-1: rds:DescribeDBProxies: not allowed (AccessDenied)" in p.stderr


def test_a_region_without_dsql_is_skipped_quietly(stand: StandIn, home: Path) -> None:
    """Issue 19 (repro 5): where Aurora DSQL is not offered its endpoint name does not resolve; when RDS
    answered in that region, that is "no DSQL here": no warning, exit 0 (it was a warning and exit 1)."""
    aws(stand, "rds").create_db_instance(DBInstanceIdentifier="pg-iam", Engine="postgres", DBInstanceClass="db.t3.micro",
                                         MasterUsername="m", MasterUserPassword="password123", AllocatedStorage=20,
                                         EnableIAMDatabaseAuthentication=True)
    p = pgiam(home, stand, "discover", "--region", "eu-north-1", "--region", "us-east-1", "--json",
              AWS_ENDPOINT_URL_DSQL="http://dsql.pgiam.invalid")
    assert p.returncode == ExitCode.OK, p.stderr
    assert set(rows(p)) == {"pg-iam"} and json.loads(p.stdout)["warnings"] == []
    assert "warning" not in p.stderr
    # The same name failure where RDS did not answer either is the network's, not "no DSQL": exit 8.
    p = pgiam(home, stand, "discover", "--region", "us-east-1", AWS_ENDPOINT_URL="http://aws.pgiam.invalid")
    assert p.returncode == ExitCode.NETWORK, p.stderr
    assert "cannot reach" in p.stderr and "check the network" in p.stderr


def test_several_regions_and_profiles_at_once(stand: StandIn, home: Path) -> None:
    make_account(stand, "us-east-1")
    make_account(stand, "us-east-2")
    (home / ".aws").mkdir()
    (home / ".aws" / "credentials").write_text(
        f"[a]\naws_access_key_id = {DUMMY_KEY_ID}\naws_secret_access_key = {DUMMY_SECRET}\n"
        f"[b]\naws_access_key_id = {DUMMY_KEY_ID}\naws_secret_access_key = {DUMMY_SECRET}\n")
    p = pgiam(home, stand, "discover", "--profile", "a", "--profile", "b", "--region", "us-east-1",
              "--region", "us-east-2", "--json", "--prefix", "x-")
    assert p.returncode == ExitCode.OK, p.stderr
    got = rows(p)
    assert len(got) == 4 * 12  # every row of both accounts seen through both profiles, each named once
    assert {"x-pg-iam-us-east-1-a", "x-pg-iam-us-east-2-b"} <= set(got)
    assert {(e["profile"], e["region"]) for e in got.values()} == {(a, r) for a in "ab" for r in ("us-east-1", "us-east-2")}


def test_unknown_profile_and_missing_region_are_refused(stand: StandIn, home: Path) -> None:
    p = pgiam(home, stand, "discover", "--profile", "nope", "--region", "us-east-1")
    assert p.returncode == ExitCode.CONFIG and "'nope' not found" in p.stderr and "Traceback" not in p.stderr
    p = pgiam(home, stand, "discover", AWS_DEFAULT_REGION="")
    assert p.returncode == ExitCode.USAGE and "--region" in p.stderr


def test_add_makes_working_entries_for_the_iam_enabled_rows_only(stand: StandIn, home: Path) -> None:
    ids = make_account(stand)
    bundle = home / ".local" / "share" / "pgiam" / "certs"
    bundle.mkdir(parents=True)
    (bundle / "rds-aws.pem").write_text("-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n")  # no download
    p = pgiam(home, stand, "discover", "--region", "us-east-1", "--add", "--user", "alice", "--prefix", "p-",
              PGIAM_LIBPQ_VERSION="16.4")
    assert p.returncode == ExitCode.OK, p.stderr
    expected = {"p-pg-iam", "p-aur-1", "p-aur", "p-aur-ro", "p-aur-analytics", "p-px-iam", "p-px-iam-ro", "p-orders"}
    listed = json.loads(pgiam(home, stand, "list", "--json").stdout)["services"]
    assert {s["name"] for s in listed} == expected
    svc = {s["name"]: s for s in listed}
    assert svc["p-orders"]["dbname"] == "postgres" and svc["p-orders"]["sslrootcert"] == "system"
    assert svc["p-pg-iam"]["sslrootcert"].endswith("rds-aws.pem") and svc["p-pg-iam"]["dbname"] is None
    tokens = pgpass.parse_tokens((home / ".pgpass").read_text())
    now = time.time()
    for s in listed:
        token = tokens[pgpass.Key(s["host"], str(s["port"]), "alice")]
        if s["name"] == "p-orders":
            assert s["host"] == f"{ids['dsql']}.dsql.us-east-1.on.aws"
            reason = check_dsql_token(token, access_key=DUMMY_KEY_ID, secret_key=DUMMY_SECRET, region="us-east-1",
                                      host=s["host"], user="alice", now=now)
        else:
            reason = check_token(token, access_key=DUMMY_KEY_ID, secret_key=DUMMY_SECRET, region="us-east-1",
                                 host=s["host"], port=int(s["port"]), user="alice", now=now)
        assert reason is None, (s["name"], reason)
    assert "added 8 service(s)" in p.stdout
    doc = json.loads(pgiam(home, stand, "discover", "--region", "us-east-1", "--json", "--add", "--user", "alice",
                           "--prefix", "p-", "--replace", PGIAM_LIBPQ_VERSION="16.4").stdout)
    jsonschema.validate(doc, SCHEMA)
    assert sorted(doc["added"]) == sorted(expected)


def test_add_is_all_or_nothing_and_refuses_conflicts(stand: StandIn, home: Path, ca_file: Path) -> None:
    make_account(stand)
    p = pgiam(home, stand, "add", "pg-iam", "--host", "mine.cluster-x.us-east-1.rds.amazonaws.com", "--user", "u",
              "--sslrootcert", str(ca_file), "--no-refresh")
    assert p.returncode == ExitCode.OK, p.stderr
    before = {f: (home / f).read_bytes() for f in (".pg_service.conf", ".pgpass") if (home / f).exists()}
    config = (home / ".config" / "pgiam" / "config.toml").read_bytes()
    p = pgiam(home, stand, "discover", "--region", "us-east-1", "--add", "--user", "alice", PGIAM_LIBPQ_VERSION="16.4")
    assert p.returncode == ExitCode.CONFIG and "'pg-iam' already exists" in p.stderr
    # issue 24: the hint is this discover command with its own --replace, not `pgiam add pg-iam --replace`
    assert p.stderr.splitlines()[-1] == ("hint: run `pgiam discover --region us-east-1 --add --user alice --replace` "
                                         "to replace it, or `pgiam remove pg-iam` first")
    assert (home / ".config" / "pgiam" / "config.toml").read_bytes() == config
    assert {f: (home / f).read_bytes() for f in before} == before


def test_flags_that_need_add(stand: StandIn, home: Path) -> None:
    p = pgiam(home, stand, "discover", "--region", "us-east-1", "--user", "alice")
    assert p.returncode == ExitCode.USAGE and "--add" in p.stderr
    p = pgiam(home, stand, "discover", "--region", "us-east-1", "--add")
    assert p.returncode == ExitCode.USAGE and "--user" in p.stderr


def test_no_credentials_at_all_exits_with_the_auth_code(stand: StandIn, home: Path) -> None:
    p = pgiam(home, stand, "discover", "--region", "us-east-1", AWS_ACCESS_KEY_ID="", AWS_SECRET_ACCESS_KEY="")
    assert p.returncode == ExitCode.AUTH, p.stderr
    assert "no AWS credentials found" in p.stderr and "\nhint: " in p.stderr and "Traceback" not in p.stderr


def test_a_progress_line_on_a_terminal_only(stand: StandIn, home: Path) -> None:
    import pty

    make_account(stand)
    env = dict(os.environ, **env_for(stand.url))
    leader, follower = pty.openpty()
    try:
        p = subprocess.run([sys.executable, "-m", "pgiam", "discover", "--region", "us-east-1", "--region", "us-east-2"],
                           env=env, stdout=subprocess.PIPE, stderr=follower, text=True, timeout=120,
                           stdin=subprocess.DEVNULL)
        os.close(follower)
        err = b""
        while True:
            try:
                chunk = os.read(leader, 4096)
            except OSError:  # EIO: the terminal's other side is closed and drained
                break
            if not chunk:
                break
            err += chunk
    finally:
        os.close(leader)
    assert p.returncode == ExitCode.OK
    assert b"\r\x1b[Kpgiam: scanned 1/2 (" in err and b"scanned 2/2" in err and err.endswith(b"\r\x1b[K")
    assert "\r" not in p.stdout and "pg-iam" in p.stdout  # the table on stdout stays clean


def test_suggested_names_are_prefixed_and_unique() -> None:
    from pgiam.discover import Endpoint, _unique_names

    def e(name: str, region: str, profile: str | None, kind: str = "instance") -> Endpoint:
        return Endpoint(name, kind, f"{name}.x.{region}.rds.amazonaws.com", 5432, True, None, profile, region, name, "postgres")

    rows = [e("db", "us-east-1", "a"), e("db", "eu-west-1", "a"), e("db", "us-east-1", "b"), e("other", "us-east-1", "a")]
    assert [r.name for r in _unique_names(rows, "p-")] == ["p-db-us-east-1-a", "p-db-eu-west-1", "p-db-us-east-1-b", "p-other"]


def test_scans_run_concurrently_and_within_the_bound() -> None:
    """Up to MAX_WORKERS profile/region scans at once (a barrier that size must be reached), never more."""
    from pgiam import discover

    barrier = threading.Barrier(discover.MAX_WORKERS, timeout=60)
    active = [0, 0]  # running now, most at once
    lock = threading.Lock()

    class Paginator:
        def __init__(self, op: str) -> None:
            self.op = op

        def paginate(self, **kwargs: Any) -> Iterator[dict[str, Any]]:
            if self.op == "describe_db_clusters":  # the first call of every scan
                with lock:
                    active[0] += 1
                    active[1] = max(active)
                barrier.wait()
                with lock:
                    active[0] -= 1
            return iter([{}])

    class Client:  # an AWS edge that lists nothing
        def get_paginator(self, op: str) -> Paginator:
            return Paginator(op)

    regions = [f"us-east-{n}" for n in range(1, 3 * discover.MAX_WORKERS + 1)]
    report = discover.discover([None], regions, clients=lambda p, r, s: Client())
    assert report.endpoints == () and report.warnings == ()
    assert active[1] == discover.MAX_WORKERS
