"""`pgiam doctor`: walk each service from the user's shell to the server and name the broken link.

Each check is a small function returning `Check`s (ok / warn / FAIL, what was checked, and for a
failure the command that fixes it). Groups, in the order a connection meets them: libpq,
environment, files, token, credentials, network and TLS, login; and with `--online` the AWS side
(STS, the RDS resource, IAM policy simulation). Nothing here prints; pgiam.commands.doctor renders.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pgiam.errors import ExitCode
from pgiam.reports import JSON, envelope

OK, WARN, FAIL = "ok", "warn", "FAIL"


@dataclass(frozen=True)
class Check:
    """One checked link: `id` is stable (group.name), `message` says what was seen, `fix` what to run."""

    id: str
    status: str  # OK, WARN or FAIL
    message: str
    fix: str | None = None
    code: int | None = None  # a failure's class as an exit code (8: AWS could not be reached); None: a finding

    def to_json(self) -> JSON:
        # an empty fix is no fix: null, never "" (the doctor.schema.json contract)
        return {"id": self.id, "status": self.status, "message": self.message, "fix": self.fix or None}


def ok(id: str, message: str) -> Check:
    return Check(id, OK, message)


def warn(id: str, message: str, fix: str | None = None) -> Check:
    return Check(id, WARN, message, fix)


def fail(id: str, message: str, fix: str | None = None, code: int | None = None) -> Check:
    return Check(id, FAIL, message, fix, code)


@dataclass(frozen=True)
class ServiceDiagnosis:
    name: str
    checks: tuple[Check, ...]

    @property
    def failed(self) -> bool:
        return any(c.status == FAIL for c in self.checks)

    def to_json(self) -> JSON:
        return {"name": self.name, "ok": not self.failed, "checks": [c.to_json() for c in self.checks]}


@dataclass(frozen=True)
class DoctorReport:
    checks: tuple[Check, ...]  # not tied to one service: libpq, --python, the lock
    services: tuple[ServiceDiagnosis, ...] = field(default_factory=tuple)

    @property
    def failed(self) -> bool:
        return any(c.status == FAIL for c in self.checks) or any(s.failed for s in self.services)

    @property
    def exit_code(self) -> ExitCode:
        """0: nothing failed; 8: AWS could not be reached (`--online`), so its checks are missing; else 1."""
        every = [*self.checks, *(c for s in self.services for c in s.checks)]
        if any(c.status == FAIL and c.code == ExitCode.NETWORK for c in every):
            return ExitCode.NETWORK
        return ExitCode.PARTIAL if self.failed else ExitCode.OK

    def to_json(self) -> dict[str, Any]:
        return envelope("doctor", ok=not self.failed, exit_code=int(self.exit_code),
                        checks=[c.to_json() for c in self.checks], services=[s.to_json() for s in self.services])
