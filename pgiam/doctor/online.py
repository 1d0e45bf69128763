"""`pgiam doctor --online`: the AWS side, with the service's own profile.

- STS GetCallerIdentity: who signs, and the clock skew from the response's Date header (SigV4
  requests more than 5 minutes off are refused: AWS General Reference, "Signature Version 4").
- The RDS resource owning the endpoint (DescribeDBInstances / DescribeDBClusters / DescribeDBProxies):
  IAM authentication enabled (for Aurora, at the cluster), its resource id and so the exact policy
  resource `arn:aws:rds-db:REGION:ACCOUNT:dbuser:RESOURCE_ID/USER` (RDS user guide, "Creating and using
  an IAM policy for IAM database access"), its port, its CA identifier against the bundle.
- IAM SimulatePrincipalPolicy for rds-db:connect on that ARN (an assumed-role session maps to its role).
A denied describe or simulate call is a warning: the caller may lack read rights, not connect rights.
"""

from __future__ import annotations

import email.utils
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pgiam import dsql
from pgiam.config import Service
from pgiam.doctor import Check, fail, ok, warn
from pgiam.errors import PgiamError

SKEW_LIMIT = 300
_DENIED = {"AccessDenied", "AccessDeniedException", "UnauthorizedOperation", "UnauthorizedAccess",
           "NotAuthorized", "InvalidClientTokenId"}
# The bundle CA subject words for each RDS CA identifier (RDS user guide, "Certificate authorities").
CA_SUBJECTS = {
    "rds-ca-rsa2048-g1": "RSA2048 G1", "rds-ca-rsa4096-g1": "RSA4096 G1", "rds-ca-ecc384-g1": "ECC384 G1",
    "rds-ca-2019": "Root 2019 CA",
}


@dataclass
class Resource:
    kind: str  # "instance", "cluster", "proxy"
    name: str
    resource_id: str
    iam: bool | None
    port: int | None
    ca: str | None


class _Aws:
    """The service's own session (pgiam.awscreds, as minting uses it), and its failures classified as
    every command classifies them (pgiam.awserrors): a network failure is exit 8, never a traceback."""

    def __init__(self, svc: Service) -> None:
        from pgiam import awscreds

        self.svc = svc
        self.session = awscreds.new_session(svc.profile, svc.region)
        self.retry = f"`pgiam doctor {svc.name} --online`"

    def client(self, service: str) -> Any:
        from pgiam import awscreds

        return awscreds.client(self.session, service, self.svc.region)

    def classify(self, err: BaseException, action: str | None = None) -> PgiamError:
        from pgiam import awserrors, token

        return awserrors.classify(err, token.context(self.svc, self.session, self.retry, action))


def _code(err: BaseException) -> str:
    return str(getattr(err, "response", {}).get("Error", {}).get("Code", type(err).__name__))


def _denied(err: BaseException) -> bool:
    import botocore.exceptions as bx

    return isinstance(err, bx.ClientError) and _code(err) in _DENIED


def _failure(id: str, err: PgiamError) -> Check:
    return fail(id, err.message, err.hint, code=int(err.code))


def _pages(client: Any, op: str, key: str) -> Iterator[dict[str, Any]]:
    for page in client.get_paginator(op).paginate():
        yield from page.get(key, [])


def check_online(svc: Service, sslrootcert: str | None) -> list[Check]:
    from pgiam import awscreds, awserrors

    if svc.aws_credentials_file:  # the sandbox: a random local key pair, useless against AWS; nothing to ask
        return [ok("online.skipped", f"{svc.name} signs with a local key ({svc.aws_credentials_file}): no AWS side")]
    out: list[Check] = []
    aws = _Aws(svc)
    try:
        with awscreds.deadline():
            sts = aws.client("sts")
            before = time.time()
            ident = sts.get_caller_identity()
            after = time.time()
    except (Exception, awserrors.DeadlinePassed) as err:  # noqa: BLE001 - botocore and helpers raise anything
        return [_failure("online.identity", aws.classify(err))]
    arn = str(ident["Arn"])
    account = str(ident["Account"])
    partition = arn.split(":")[1] if arn.count(":") >= 5 else "aws"
    out.append(ok("online.identity", f"signing as {arn}"))
    date = ident.get("ResponseMetadata", {}).get("HTTPHeaders", {}).get("date")
    if date:
        server = email.utils.parsedate_to_datetime(date).timestamp()
        skew = server - (before + after) / 2
        if abs(skew) > SKEW_LIMIT:
            out.append(fail("online.clock", f"this machine's clock is {abs(int(skew))} s "
                            f"{'behind' if skew > 0 else 'ahead of'} AWS's: tokens it signs are refused",
                            "sync the clock (timedatectl set-ntp true)"))
        else:
            out.append(ok("online.clock", f"clock within {abs(skew):.0f} s of AWS"))
    else:
        out.append(warn("online.clock", "the STS response had no Date header: clock skew not measured"))
    if dsql.is_dsql_host(svc.host):
        return out
    res, checks = find_resource(svc, aws)
    out += checks
    if res is None:
        return out
    dbarn = f"arn:{partition}:rds-db:{svc.region}:{account}:dbuser:{res.resource_id}/{svc.user}"
    if res.iam is False:
        where = "cluster" if res.kind == "cluster" else res.kind
        flag = "--enable-iam-database-authentication"
        cmd = {"instance": f"aws rds modify-db-instance --db-instance-identifier {res.name} {flag} --apply-immediately",
               "cluster": f"aws rds modify-db-cluster --db-cluster-identifier {res.name} {flag} --apply-immediately",
               "proxy": f"aws rds modify-db-proxy --db-proxy-name {res.name} (IAMAuth=REQUIRED in --auth)"}[res.kind]
        out.append(fail("online.iam_enabled", f"IAM database authentication is off on the {where} {res.name}", cmd))
    elif res.iam:
        out.append(ok("online.iam_enabled", f"IAM database authentication is on ({res.kind} {res.name})"))
    out.append(ok("online.policy_arn", f"the policy resource this login needs: {dbarn}"))
    if res.port is not None and res.port != svc.port:
        via = f" --via {svc.via}" if svc.via else " --via 127.0.0.1:LOCALPORT"
        out.append(fail("online.port", f"the {res.kind} listens on {res.port}, tokens are signed for port {svc.port}",
                        f"pgiam add {svc.name} --replace --host {svc.host} --user {svc.user} --port {res.port}{via}"))
    if res.ca:
        out.append(_ca_check(res.ca, sslrootcert))
    out.append(simulate(svc, aws, arn, dbarn))
    return out


def _ca_check(ca: str, sslrootcert: str | None) -> Check:
    words = CA_SUBJECTS.get(ca)
    if words is None:
        return ok("online.ca", f"the server uses CA {ca} (an identifier pgiam cannot match to a bundle CA)")
    if sslrootcert in (None, "system"):
        return ok("online.ca", f"the server uses CA {ca}; the entry verifies with the system store")
    from pgiam import certs

    try:
        subjects = [c.subject for c in certs.parse_bundle(Path(sslrootcert).read_text(errors="replace"))]
    except (OSError, ValueError):
        subjects = []
    if any(words in s for s in subjects):
        return ok("online.ca", f"the server's CA {ca} is in {sslrootcert}")
    return fail("online.ca", f"the server uses CA {ca}, which is not in {sslrootcert}", "pgiam certs update")


def find_resource(svc: Service, aws: _Aws) -> tuple[Resource | None, list[Check]]:
    """The instance, cluster or proxy whose endpoint is the service's host, read by the describe calls."""
    from pgiam import awscreds, awserrors

    host = svc.host.lower().rstrip(".")
    denied: list[str] = []
    clusters: dict[str, dict[str, Any]] = {}
    api = "rds:DescribeDBClusters"
    try:
        with awscreds.deadline():
            rds = aws.client("rds")
            for c in _pages(rds, "describe_db_clusters", "DBClusters"):
                clusters[c["DBClusterIdentifier"]] = c
                names = [c.get("Endpoint"), c.get("ReaderEndpoint"), *c.get("CustomEndpoints", [])]
                if host in {str(n).lower() for n in names if n}:
                    return Resource("cluster", c["DBClusterIdentifier"], c["DbClusterResourceId"],
                                    c.get("IAMDatabaseAuthenticationEnabled"), c.get("Port"), None), []
    except (Exception, awserrors.DeadlinePassed) as err:  # noqa: BLE001
        if not _denied(err):
            return None, [_api_failure("online.resource", aws, err, api)]
        denied.append("describe-db-clusters")
    api = "rds:DescribeDBInstances"
    try:
        with awscreds.deadline():
            for i in _pages(rds, "describe_db_instances", "DBInstances"):
                ep = i.get("Endpoint") or {}
                if str(ep.get("Address", "")).lower() == host:
                    parent = clusters.get(i.get("DBClusterIdentifier") or "")
                    if parent is not None:  # Aurora: IAM and the resource id are the cluster's
                        return Resource("cluster", parent["DBClusterIdentifier"], parent["DbClusterResourceId"],
                                        parent.get("IAMDatabaseAuthenticationEnabled"), ep.get("Port"),
                                        i.get("CACertificateIdentifier")), []
                    return Resource("instance", i["DBInstanceIdentifier"], i["DbiResourceId"],
                                    i.get("IAMDatabaseAuthenticationEnabled"), ep.get("Port"),
                                    i.get("CACertificateIdentifier")), []
    except (Exception, awserrors.DeadlinePassed) as err:  # noqa: BLE001
        if not _denied(err):
            return None, [_api_failure("online.resource", aws, err, api)]
        denied.append("describe-db-instances")
    api = "rds:DescribeDBProxies"
    try:
        with awscreds.deadline():
            for p in _pages(rds, "describe_db_proxies", "DBProxies"):
                if str(p.get("Endpoint", "")).lower() == host:
                    auth = p.get("Auth") or []
                    iam = any(a.get("IAMAuth") == "REQUIRED" for a in auth) if auth else None
                    rid = str(p["DBProxyArn"]).rsplit(":", 1)[-1]
                    return Resource("proxy", p["DBProxyName"], rid, iam, None, None), []
    except (Exception, awserrors.DeadlinePassed) as err:  # noqa: BLE001
        if not _denied(err):
            return None, [_api_failure("online.resource", aws, err, api)]
        denied.append("describe-db-proxies")
    if denied:
        return None, [warn("online.resource", f"not allowed to call rds {', '.join(denied)}: IAM settings of the "
                           "endpoint's resource not checked", "ask for rds:Describe* on the account, or ignore")]
    return None, [warn("online.resource", f"no instance, cluster or proxy in {svc.region} of this account has the "
                       f"endpoint {svc.host} (another account or region?)",
                       f"check the region (`pgiam add {svc.name} --replace … --region R`) and the profile")]


def _api_failure(id: str, aws: _Aws, err: BaseException, api: str) -> Check:
    """A failed describe or simulate call: a network failure fails (exit 8); anything else warns, as the
    caller may lack read rights, not connect rights."""
    from pgiam.errors import ExitCode

    e = aws.classify(err, f"{api} in {aws.svc.region} failed")
    if e.code == ExitCode.NETWORK:
        return _failure(id, e)
    return warn(id, e.message, e.hint)


def principal_of(arn: str) -> str:
    """The IAM principal to simulate: an assumed-role session maps to its role."""
    parts = arn.split(":", 5)
    if len(parts) == 6 and parts[2] == "sts" and parts[5].startswith("assumed-role/"):
        role = parts[5].split("/")[1]
        return f"arn:{parts[1]}:iam::{parts[4]}:role/{role}"
    return arn


def simulate(svc: Service, aws: _Aws, arn: str, dbarn: str) -> Check:
    import botocore.exceptions as bx

    from pgiam import awscreds, awserrors

    principal = principal_of(arn)
    try:
        with awscreds.deadline():
            iam = aws.client("iam")
            if ":role/" in principal:  # the session ARN lacks the role's path; ask for the real ARN
                try:
                    principal = iam.get_role(RoleName=principal.rsplit("/", 1)[-1])["Role"]["Arn"]
                except bx.ClientError:
                    pass
            r = iam.simulate_principal_policy(PolicySourceArn=principal, ActionNames=["rds-db:connect"],
                                              ResourceArns=[dbarn])
    except (Exception, awserrors.DeadlinePassed) as err:  # noqa: BLE001
        if _denied(err):
            return warn("online.policy", f"not allowed to call iam simulate-principal-policy ({_code(err)}): the "
                        f"policy for rds-db:connect on {dbarn} is not checked")
        return _api_failure("online.policy", aws, err, "iam:SimulatePrincipalPolicy")
    results = r.get("EvaluationResults") or [{}]
    decision = results[0].get("EvalDecision", "?")
    if decision == "allowed":
        return ok("online.policy", f"{principal} may rds-db:connect on {dbarn}")
    return fail("online.policy", f"{principal} may not rds-db:connect on {dbarn} ({decision}); a policy naming the "
                "cluster or instance name instead of its resource id, or another user, never matches",
                f"attach a policy allowing rds-db:connect on {dbarn} to {principal}")
