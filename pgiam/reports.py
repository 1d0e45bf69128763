"""Typed reports of the read commands, each owning its JSON; one envelope for all of them.

Every `--json` output is `{"schema": SCHEMA, "command": NAME, <records>}`, validated by the JSON
Schema files in pgiam/schemas/ (see man pgiam, JSON OUTPUT). One fact has one field name in every
command (`expires`, `seconds_left`, `error`, `hint`, `profile`...); an absent value is null.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pgiam.config import Service

SCHEMA = 1  # bumped when a field changes meaning or disappears; new fields do not bump it

JSON = dict[str, Any]


def envelope(command: str, **records: Any) -> JSON:
    return {"schema": SCHEMA, "command": command, **records}


def service_fields(s: Service) -> JSON:
    """The fields every per-service record shares."""
    return {
        "name": s.name, "host": s.host, "port": s.port, "user": s.user, "dbname": s.dbname,
        "region": s.region, "profile": s.profile, "via": str(s.via) if s.via else None,
        "sslrootcert": s.sslrootcert, "require_auth": s.require_auth,
    }


def seconds_left(expires: float | None, now: float) -> int | None:
    """Whole seconds until `expires` (0 once expired); None when there is no token."""
    return None if expires is None else max(0, int(expires - now))


@dataclass(frozen=True)
class ListReport:
    services: tuple[Service, ...]

    def to_json(self) -> JSON:
        return envelope("list", services=[service_fields(s) for s in self.services])


@dataclass(frozen=True)
class ServiceStatus:
    service: Service
    token: str  # "fresh", "due" (within the margin), "expired", "missing", "invalid" (for other settings, dated ahead...)
    reason: str  # freshness.REASONS text
    expires: float | None
    seconds_left: int | None
    error: str | None
    hint: str | None
    error_code: int | None
    failed_at: float | None
    signed_by: str | None  # the profile that signed the last token, or the source botocore names when no
    # profile did (environment, container, web-identity, instance); None: no token record

    def to_json(self) -> JSON:
        return service_fields(self.service) | {
            "token": self.token, "reason": self.reason, "expires": self.expires, "seconds_left": self.seconds_left,
            "error": self.error, "hint": self.hint, "error_code": self.error_code, "failed_at": self.failed_at,
            "signed_by": self.signed_by,
        }


@dataclass(frozen=True)
class StatusReport:
    services: tuple[ServiceStatus, ...]

    def to_json(self) -> JSON:
        return envelope("status", services=[s.to_json() for s in self.services])


@dataclass(frozen=True)
class RefreshRecord:
    name: str
    status: str  # "renewed", "fresh", "failed"
    expires: float | None
    seconds_left: int | None
    error: str | None
    hint: str | None
    error_code: int | None

    def to_json(self) -> JSON:
        return {"name": self.name, "status": self.status, "expires": self.expires, "seconds_left": self.seconds_left,
                "error": self.error, "hint": self.hint, "error_code": self.error_code}


@dataclass(frozen=True)
class RefreshReport:
    services: tuple[RefreshRecord, ...]
    exit_code: int

    def to_json(self) -> JSON:
        return envelope("refresh", exit_code=self.exit_code, services=[r.to_json() for r in self.services])


@dataclass(frozen=True)
class ExpiringCA:
    subject: str
    not_after: str
    expired: bool


@dataclass(frozen=True)
class BundleRecord:
    path: str
    partition: str | None
    exists: bool
    in_use: bool
    ca_count: int
    error: str | None
    expiring: tuple[ExpiringCA, ...]

    def to_json(self) -> JSON:
        # A missing or unreadable bundle has no CA count: null, not 0 (absent is null, never a sentinel).
        count = self.ca_count if self.exists and self.error is None else None
        return {"path": self.path, "partition": self.partition, "exists": self.exists, "in_use": self.in_use,
                "ca_count": count, "error": self.error,
                "expiring": [{"subject": c.subject, "not_after": c.not_after, "expired": c.expired} for c in self.expiring]}


@dataclass(frozen=True)
class CertsReport:
    bundles: tuple[BundleRecord, ...]
    problems: tuple[str, ...]

    def to_json(self) -> JSON:
        return envelope("certs status", bundles=[b.to_json() for b in self.bundles], problems=list(self.problems))


@dataclass(frozen=True)
class SandboxReport:
    running: bool
    details: JSON  # pids, ports, endpoint, files: what pgiam.sandbox.cluster.status() reports

    def to_json(self) -> JSON:
        """One shape whatever the sandbox's state; the endpoint is split into host/port and the AWS
        profile and database role take the names every other record uses (profile, user)."""
        d = self.details
        host, _, port = str(d.get("endpoint") or "").rpartition(":")
        return envelope("sandbox status", sandbox={
            "running": self.running, "host": host, "port": int(port),
            "local_port": d.get("local_port"), "user": d.get("role"), "profile": d.get("aws_profile"),
            "aws_credentials_file": d.get("aws_credentials_file"),
            "postgres_pid": d.get("postgres_pid"), "postgres_alive": bool(d.get("postgres_alive")),
            "ldapd_pid": d.get("ldapd_pid"), "ldapd_alive": bool(d.get("ldapd_alive")), "ldapd_port": d.get("ldapd_port"),
            "ca_file": d.get("ca_file"), "log_file": d.get("log_file"), "server_log": d.get("server_log"),
            "cluster_dir": d.get("cluster_dir"),
        })
