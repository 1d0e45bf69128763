"""What PostgreSQL endpoints an account has, per profile and region: the `pgiam discover` scan.

Instances (`DescribeDBInstances`), Aurora and Multi-AZ clusters (`DescribeDBClusters`: writer and
reader endpoints; `DescribeDBClusterEndpoints`: custom endpoints), RDS Proxies
(`DescribeDBProxies`, `DescribeDBProxyEndpoints`) and Aurora DSQL clusters (`ListClusters`,
`GetCluster`). Every list is read through botocore's paginators. An API the caller may not use
becomes a warning and the rest is still listed. Returns a typed report; never prints.

The policy resource of each row is the ARN prefix an IAM policy grants `rds-db:connect` on
(`arn:PARTITION:rds-db:REGION:ACCOUNT:dbuser:RESOURCE_ID/` + the database user; AWS RDS user guide,
"Creating and using an IAM policy for IAM database access"; RDS Proxy uses the proxy's `prx-` id),
or, for DSQL, the cluster ARN that `dsql:DbConnect` / `dsql:DbConnectAdmin` are granted on.
"""

from __future__ import annotations

import queue
import re
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from pgiam import dsql
from pgiam.awscreds import DEADLINE as REGION_DEADLINE  # one profile and region, in all
from pgiam.errors import ConfigError, ExitCode, UsageError
from pgiam.reports import JSON, envelope

if TYPE_CHECKING:
    from pgiam.config import Service
    from pgiam.paths import Paths
    from pgiam.refresh import Minter

POSTGRES_ENGINES = frozenset({"postgres", "aurora-postgresql"})
PROXY_PORT = 5432  # RDS Proxy for PostgreSQL listens on 5432 (the API has no port field)
MAX_WORKERS = 4  # profile/region scans at once: a bound, so 20 regions do not open 100 connections
DENIED = frozenset({"AccessDenied", "AccessDeniedException", "UnauthorizedOperation", "UnrecognizedClientException",
                    "InvalidClientTokenId", "NotAuthorized"})
PERMISSIONS_HINT = ("the scan needs AWS credentials allowed to call rds:DescribeDBInstances, rds:DescribeDBClusters, "
                    "rds:DescribeDBClusterEndpoints, rds:DescribeDBProxies, rds:DescribeDBProxyEndpoints, "
                    "dsql:ListClusters and dsql:GetCluster")

KINDS = ("instance", "cluster-writer", "cluster-reader", "cluster-custom", "proxy", "proxy-endpoint", "dsql")


@dataclass(frozen=True)
class Endpoint:
    """One endpoint a service entry could point at."""

    name: str  # suggested service name
    kind: str  # one of KINDS
    host: str
    port: int
    iam: bool  # IAM database authentication enabled (always on for DSQL)
    resource_arn: str | None  # the policy resource prefix; None when the API did not say
    profile: str | None
    region: str
    identifier: str  # the instance / cluster / endpoint / proxy / DSQL cluster identifier
    engine: str
    target_role: str | None = None  # proxy endpoints: READ_WRITE or READ_ONLY
    ca_identifier: str | None = None  # instances: the RDS CA that signed the server certificate

    def to_json(self) -> JSON:
        return {"name": self.name, "kind": self.kind, "host": self.host, "port": self.port, "iam": self.iam,
                "resource_arn": self.resource_arn, "profile": self.profile, "region": self.region,
                "identifier": self.identifier, "engine": self.engine, "target_role": self.target_role,
                "ca_identifier": self.ca_identifier}


@dataclass(frozen=True)
class ScanWarning:
    """An API call that failed; the rest of the scan went on."""

    profile: str | None
    region: str
    api: str  # e.g. rds:DescribeDBProxies
    error: str
    error_code: int  # pgiam's exit code for this kind of failure
    hint: str | None = None  # the next step (text output; pgiam.awserrors words it as for every command)

    def to_json(self) -> JSON:
        return {"profile": self.profile, "region": self.region, "api": self.api, "error": self.error,
                "error_code": self.error_code}

    def __str__(self) -> str:
        where = f"profile {self.profile}, " if self.profile else ""
        return f"{where}{self.region}: {self.api}: {self.error}"


@dataclass(frozen=True)
class DiscoverReport:
    endpoints: tuple[Endpoint, ...]
    warnings: tuple[ScanWarning, ...]
    calls_ok: int  # API calls that answered
    added: tuple[str, ...] = ()  # services `--add` created

    @property
    def exit_code(self) -> ExitCode:
        """OK; PARTIAL when some API failed; the failure's own code when none answered at all."""
        if not self.warnings:
            return ExitCode.OK
        if self.calls_ok == 0:
            return ExitCode(self.warnings[0].error_code)
        return ExitCode.PARTIAL

    def to_json(self) -> JSON:
        return envelope("discover", exit_code=int(self.exit_code), endpoints=[e.to_json() for e in self.endpoints],
                        warnings=[w.to_json() for w in self.warnings], added=list(self.added))


@dataclass
class _Scan:
    profile: str | None
    region: str
    endpoints: list[Endpoint] = field(default_factory=list)
    warnings: list[ScanWarning] = field(default_factory=list)
    calls_ok: int = 0


# ---------------------------------------------------------------- one profile and region

ClientFactory = Callable[[str | None, str, str], Any]  # (profile, region, service) -> botocore client


class BotoClients:
    """Clients from pgiam.awscreds (the factory minting uses: bounded timeouts, the CLI's credential cache,
    no prompt without a terminal, answers that are not AWS's refused): one session per profile, so
    credentials (SSO, assume-role, MFA) are resolved once."""

    def __init__(self) -> None:
        self._sessions: dict[str | None, Any] = {}
        self._failed: dict[str | None, BaseException] = {}  # a profile whose credentials could not be resolved
        self._lock = threading.Lock()  # botocore sessions are not thread-safe; the clients they make are

    def _session(self, profile: str | None, region: str) -> Any:
        from pgiam import awscreds

        if profile not in self._sessions:
            self._sessions[profile] = awscreds.new_session(profile, region)
        return self._sessions[profile]

    def prepare(self, profile: str | None, region: str) -> None:
        """Resolve the profile's credentials in the calling thread (an MFA prompt must not come from a worker)."""
        from pgiam import awscreds, awserrors

        with self._lock:
            try:
                with awscreds.deadline():
                    awscreds.resolve(self._session(profile, region))  # not lazily: an MFA prompt, here and now
            except (Exception, awserrors.DeadlinePassed) as err:  # noqa: BLE001 - each scan of the profile reports it
                self._failed[profile] = err  # once: not again in every region, after another deadline

    def __call__(self, profile: str | None, region: str, service: str) -> Any:
        from pgiam import awscreds

        with self._lock:
            failed = self._failed.get(profile)
            if failed is not None:
                raise failed
            return awscreds.client(self._session(profile, region), service, region)


def _arn_parts(arn: str | None) -> tuple[str, str] | None:
    """(partition, account) of an ARN."""
    parts = (arn or "").split(":")
    return (parts[1], parts[4]) if len(parts) > 5 and parts[0] == "arn" and parts[4] else None


def _dbuser_prefix(arn: str | None, region: str, resource_id: str | None) -> str | None:
    pa = _arn_parts(arn)
    if pa is None or not resource_id:
        return None
    return f"arn:{pa[0]}:rds-db:{region}:{pa[1]}:dbuser:{resource_id}/"


class _Calls:
    """Runs one API of a scan, turning its failure into a warning (classified by pgiam.awserrors)."""

    def __init__(self, scan: _Scan) -> None:
        self.scan = scan
        self.fatal = False  # credentials missing or AWS unreachable: the other APIs would fail the same way

    def pages(self, client: Any, service: str, op: str, key: str, not_offered_ok: bool = False,
              **kwargs: Any) -> Iterator[dict[str, Any]]:
        """Items under `key` of every page of `op`; nothing (and a warning) when the call fails.

        not_offered_ok: an endpoint name that does not resolve means the service is not offered in
        this region (botocore lists no regions for DSQL): skipped quietly."""
        from pgiam import awserrors

        if self.fatal:
            return
        items: list[dict[str, Any]] = []
        try:
            paginator = client.get_paginator(_snake(op))
            for page in paginator.paginate(**kwargs):
                items.extend(page.get(key, []))
        except (Exception, awserrors.DeadlinePassed) as err:  # noqa: BLE001 - botocore raises anything; classify sorts it
            if not (not_offered_ok and awserrors.name_not_found(err)):
                self._failed(f"{service}:{op}", err)
            return
        self.scan.calls_ok += 1
        yield from items

    def call(self, client: Any, service: str, op: str, **kwargs: Any) -> dict[str, Any] | None:
        """One non-paginated call; None (and a warning) when it fails."""
        from pgiam import awserrors

        if self.fatal:
            return None
        try:
            out: dict[str, Any] = getattr(client, _snake(op))(**kwargs)
        except (Exception, awserrors.DeadlinePassed) as err:  # noqa: BLE001
            self._failed(f"{service}:{op}", err)
            return None
        self.scan.calls_ok += 1
        return out

    def _failed(self, api: str, err: BaseException) -> None:
        import botocore.exceptions as bx

        from pgiam import awserrors, token
        from pgiam.config import Service

        if isinstance(err, bx.ClientError) and (
                str(err.response.get("Error", {}).get("Code", "")) in DENIED
                or "not authorized" in str(err.response.get("Error", {}).get("Message", "")).lower()):
            code = str(err.response.get("Error", {}).get("Code", ""))
            self._warn(api, f"not allowed ({code})", ExitCode.AUTH, PERMISSIONS_HINT)
            return
        where = f"{api} in {self.scan.region}"
        svc = Service(name="discover", host="", user="", region=self.scan.region, profile=self.scan.profile)
        e = awserrors.classify(err, token.context(svc, None, "run the same `pgiam discover` again", where))
        text = e.message.removeprefix("discover: ").removeprefix(f"{where}: ")
        if e.code != ExitCode.AUTH or not isinstance(err, bx.ClientError):
            self.fatal = True  # unreachable, or no usable credentials: the region's other calls would fail alike
        self._warn(api, text, e.code, e.hint)

    def _warn(self, api: str, error: str, code: ExitCode, hint: str | None = None) -> None:
        self.scan.warnings.append(ScanWarning(self.scan.profile, self.scan.region, api, error, int(code), hint))


def _snake(op: str) -> str:
    """DescribeDBInstances -> describe_db_instances (botocore's method names)."""
    import botocore

    return str(botocore.xform_name(op))


def scan(profile: str | None, region: str, clients: ClientFactory) -> _Scan:
    """Every PostgreSQL endpoint of one profile and region."""
    s = _Scan(profile, region)
    calls = _Calls(s)

    def row(name: str, kind: str, host: str, port: int, iam: bool, arn: str | None, ident: str, engine: str,
            target_role: str | None = None, ca: str | None = None) -> None:
        s.endpoints.append(Endpoint(name, kind, host.lower().rstrip("."), port, iam, arn, profile, region, ident,
                                    engine, target_role, ca))

    rds = clients(profile, region, "rds")
    clusters: dict[str, dict[str, Any]] = {}
    for c in calls.pages(rds, "rds", "DescribeDBClusters", "DBClusters"):
        if c.get("Engine") not in POSTGRES_ENGINES:
            continue
        ident = c["DBClusterIdentifier"]
        clusters[ident] = c
        iam = bool(c.get("IAMDatabaseAuthenticationEnabled"))
        arn = _dbuser_prefix(c.get("DBClusterArn"), region, c.get("DbClusterResourceId"))
        port = int(c.get("Port") or 5432)
        if c.get("Endpoint"):
            row(ident, "cluster-writer", c["Endpoint"], port, iam, arn, ident, c["Engine"])
        if c.get("ReaderEndpoint"):
            row(f"{ident}-ro", "cluster-reader", c["ReaderEndpoint"], port, iam, arn, ident, c["Engine"])
    if clusters:
        for e in calls.pages(rds, "rds", "DescribeDBClusterEndpoints", "DBClusterEndpoints"):
            cl = clusters.get(e.get("DBClusterIdentifier", ""))
            if cl is None or e.get("EndpointType") != "CUSTOM" or not e.get("Endpoint"):
                continue
            ident = e.get("DBClusterEndpointIdentifier") or e["Endpoint"].split(".", 1)[0]
            row(ident, "cluster-custom", e["Endpoint"], int(cl.get("Port") or 5432),
                bool(cl.get("IAMDatabaseAuthenticationEnabled")),
                _dbuser_prefix(cl.get("DBClusterArn"), region, cl.get("DbClusterResourceId")), ident, cl["Engine"])
    for i in calls.pages(rds, "rds", "DescribeDBInstances", "DBInstances"):
        if i.get("Engine") not in POSTGRES_ENGINES or not (i.get("Endpoint") or {}).get("Address"):
            continue
        ident = i["DBInstanceIdentifier"]
        member = clusters.get(i.get("DBClusterIdentifier") or "")
        if member is not None:  # Aurora: IAM and the policy resource are the cluster's
            iam = bool(member.get("IAMDatabaseAuthenticationEnabled"))
            arn = _dbuser_prefix(member.get("DBClusterArn"), region, member.get("DbClusterResourceId"))
        else:
            iam = bool(i.get("IAMDatabaseAuthenticationEnabled"))
            arn = _dbuser_prefix(i.get("DBInstanceArn"), region, i.get("DbiResourceId"))
        row(ident, "instance", i["Endpoint"]["Address"], int(i["Endpoint"].get("Port") or 5432), iam, arn, ident,
            i["Engine"], ca=i.get("CACertificateIdentifier"))
    proxies: dict[str, tuple[bool, str | None]] = {}
    for p in calls.pages(rds, "rds", "DescribeDBProxies", "DBProxies"):
        if p.get("EngineFamily") != "POSTGRESQL" or not p.get("Endpoint"):
            continue
        iam = p.get("DefaultAuthScheme") == "IAM_AUTH" or any(
            a.get("IAMAuth") in ("REQUIRED", "ENABLED") for a in p.get("Auth") or [])
        arn_s = p.get("DBProxyArn") or ""
        prx = arn_s.rsplit(":", 1)[-1] if ":db-proxy:" in arn_s else None
        arn = _dbuser_prefix(arn_s, region, prx)
        proxies[p["DBProxyName"]] = (iam, arn)
        row(p["DBProxyName"], "proxy", p["Endpoint"], PROXY_PORT, iam, arn, p["DBProxyName"], "postgres")
    if proxies:
        for e in calls.pages(rds, "rds", "DescribeDBProxyEndpoints", "DBProxyEndpoints"):
            parent = proxies.get(e.get("DBProxyName", ""))
            if parent is None or e.get("IsDefault") or not e.get("Endpoint"):
                continue
            row(e["DBProxyEndpointName"], "proxy-endpoint", e["Endpoint"], PROXY_PORT, parent[0], parent[1],
                e["DBProxyEndpointName"], "postgres", e.get("TargetRole"))
    if calls.fatal:
        return s
    import botocore.exceptions as bx

    try:
        d = clients(profile, region, "dsql")
    except bx.UnknownServiceError:  # botocore before 1.35.90 knows no DSQL
        calls._warn("dsql:ListClusters", "this botocore does not know Aurora DSQL: upgrade boto3/botocore",
                    ExitCode.ENVIRONMENT)
        return s
    # DSQL is offered in a few regions only; where it is not, its endpoint name does not resolve.
    # That answer is trusted only when RDS answered in this region (so the network works).
    for c in calls.pages(d, "dsql", "ListClusters", "clusters", not_offered_ok=s.calls_ok > 0):
        ident = c["identifier"]
        got = calls.call(d, "dsql", "GetCluster", identifier=ident) or {}
        if got.get("status") in ("DELETING", "DELETED", "FAILED"):
            continue
        tag = (got.get("tags") or {}).get("Name")
        name = tag if isinstance(tag, str) and re.fullmatch(r"[A-Za-z0-9_.@+-]+", tag) else f"dsql-{ident[:12]}"
        # The endpoint name is built from the identifier and region, not copied from the API's
        # `endpoint` field (the DSQL user guide documents this shape).
        row(name, "dsql", dsql.host_for(ident, region), 5432, True, c.get("arn") or got.get("arn"), ident, "dsql")
    return s


# ---------------------------------------------------------------- many profiles and regions


def region_of_profile(profile: str | None) -> str | None:
    """The region a profile configures (or AWS_DEFAULT_REGION), if any; an unknown profile is a ConfigError."""
    import botocore.exceptions as bx
    import botocore.session

    try:
        session = botocore.session.Session(profile=profile)
        session.get_scoped_config()  # raises ProfileNotFound for a profile the files do not have
        region: str | None = session.get_config_variable("region")
    except bx.ProfileNotFound:
        raise ConfigError(f"AWS profile {profile!r} not found", "check `aws configure list-profiles`") from None
    return region


def discover(profiles: list[str | None], regions: list[str], prefix: str = "",
             clients: ClientFactory | None = None, workers: int = MAX_WORKERS,
             progress: Callable[[int, int, str], None] | None = None,
             region_deadline: float = REGION_DEADLINE) -> DiscoverReport:
    """Scan every (profile, region) pair, at most `workers` at once; names made unique and prefixed.

    A scan still running `region_deadline` seconds after it started is given up (a network exit-8
    warning; its thread is left to end on its own, a daemon thread): an answer arriving a byte at a
    time never reaches a read timeout.
    """
    pairs: list[tuple[str | None, str]] = []
    for p in profiles:
        default = region_of_profile(p)  # also checks that the profile exists, before any thread starts
        rs = regions or [r for r in [default] if r]
        if not rs:
            raise UsageError(f"no region for profile {p or 'default'}", "pass --region R (several times for several regions)")
        pairs += [(p, r) for r in rs]
    pairs = list(dict.fromkeys(pairs))
    if clients is None:
        boto = BotoClients()
        for p in profiles:
            boto.prepare(p, next(r for q, r in pairs if q == p))
        clients = boto
    results = _run_scans(pairs, clients, max(1, min(workers, len(pairs))), region_deadline, progress)
    endpoints: list[Endpoint] = []
    warnings: list[ScanWarning] = []
    calls_ok = 0
    for key in pairs:  # the order asked for, whatever finished first
        endpoints += results[key].endpoints
        warnings += results[key].warnings
        calls_ok += results[key].calls_ok
    return DiscoverReport(tuple(_unique_names(endpoints, prefix)), tuple(warnings), calls_ok)


def _run_scans(pairs: list[tuple[str | None, str]], clients: ClientFactory, workers: int, limit: float,
               progress: Callable[[int, int, str], None] | None) -> dict[tuple[str | None, str], _Scan]:
    """Each pair's scan in a daemon thread, `workers` at a time, each given up after `limit` seconds."""
    done: queue.Queue[tuple[tuple[str | None, str], _Scan]] = queue.Queue()
    waiting = list(pairs)
    running: dict[tuple[str | None, str], float] = {}  # pair -> when it must be done
    results: dict[tuple[str | None, str], _Scan] = {}

    def work(key: tuple[str | None, str]) -> None:
        from pgiam import awserrors

        try:
            got = scan(key[0], key[1], clients)
        except (Exception, awserrors.DeadlinePassed) as err:  # noqa: BLE001 - credentials the profile could not get
            got = _Scan(key[0], key[1])
            _Calls(got)._failed("rds:DescribeDBClusters", err)
        done.put((key, got))

    while waiting or running:
        while waiting and len(running) < workers:
            key = waiting.pop(0)
            running[key] = time.monotonic() + limit
            threading.Thread(target=work, args=(key,), daemon=True, name=f"scan {key[1]}").start()
        try:
            key, got = done.get(timeout=max(0.0, min(running.values()) - time.monotonic()))
        except queue.Empty:
            now = time.monotonic()
            for key in [k for k, at in running.items() if at <= now]:
                got = _Scan(key[0], key[1])
                got.warnings.append(ScanWarning(key[0], key[1], "scan", f"no complete answer within {limit:g} s: "
                                                "the region's scan was given up", int(ExitCode.NETWORK),
                                                "something answers slowly or not at all for AWS (a proxy, a captive "
                                                "portal, a VPN): check the network, then run the same `pgiam discover` again"))
                _finish(results, running, key, got, len(pairs), progress)
            continue
        if key in running:  # not already given up
            _finish(results, running, key, got, len(pairs), progress)
    return results


def _finish(results: dict[tuple[str | None, str], _Scan], running: dict[tuple[str | None, str], float],
            key: tuple[str | None, str], got: _Scan, total: int, progress: Callable[[int, int, str], None] | None) -> None:
    del running[key]
    results[key] = got
    if progress:
        progress(len(results), total, f"{key[0] + ' ' if key[0] else ''}{key[1]}")


def _unique_names(rows: list[Endpoint], prefix: str) -> list[Endpoint]:
    """Prefix every name; a name seen in several regions or profiles gets the region (then the profile)."""
    def count(names: list[str]) -> dict[str, int]:
        out: dict[str, int] = {}
        for n in names:
            out[n] = out.get(n, 0) + 1
        return out

    names = [prefix + r.name for r in rows]
    seen = count(names)
    names = [n if seen[n] == 1 else f"{n}-{r.region}" for n, r in zip(names, rows)]
    seen = count(names)
    names = [n if seen[n] == 1 or not r.profile else f"{n}-{r.profile}" for n, r in zip(names, rows)]
    seen = count(names)
    names = [n if seen[n] == 1 else f"{n}-{r.kind}" for n, r in zip(names, rows)]
    return [replace(r, name=n) for r, n in zip(rows, names)]


def add_endpoints(paths: Paths, report: DiscoverReport, user: str, dbname: str | None, replace_: bool, now: float,
                  mint: Minter | None, notices: list[str], again: str | None = None) -> list[Service]:
    """Add every IAM-enabled endpoint as a service through pgiam add's own path, all or nothing.
    `again`: this discover command with --replace, for the hint when a name is taken."""
    from pgiam import config as cfg
    from pgiam import services
    from pgiam.config import load_config

    rows = [e for e in report.endpoints if e.iam]
    if not rows:
        raise ConfigError("no IAM-enabled PostgreSQL endpoint found: nothing to add",
                          "enable IAM database authentication on the instance, cluster or proxy first")
    current = load_config(paths.config_file, scope=paths.scope)
    svcs = []
    for e in rows:
        a = services.ServiceArgs(name=e.name, host=e.host, user=user, port=str(e.port), dbname=dbname,
                                 region=e.region, profile=e.profile)
        svc = services.build(paths, a, current, notices)
        services.check_conflicts(paths, current, svc, replace_, again)
        svcs.append((svc, cfg.infer_region(svc.host) != e.region))
    svcs = [(services.with_tls_defaults(paths, svc, notices), explicit) for svc, explicit in svcs]
    services.add_all(paths, svcs, now, mint, replace=replace_)
    return [svc for svc, _ in svcs]

