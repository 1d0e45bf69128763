"""The status of each service, judged from the files and the clock (the same rule as refresh); reads only."""

from __future__ import annotations

from collections.abc import Iterable

from pgiam import store
from pgiam.config import load_config
from pgiam.paths import Paths
from pgiam.reports import ServiceStatus, StatusReport, seconds_left


def token_label(due: bool, reason: str, expires: float | None, now: float) -> str:
    """fresh / due / expired / missing / invalid: what a user needs to know of a token at a glance."""
    if reason in ("missing",):
        return "missing"
    if reason in ("malformed", "mismatch", "future"):
        return "invalid"
    if expires is not None and expires <= now:
        return "expired"
    return "due" if due else "fresh"


def report(paths: Paths, now: float, names: Iterable[str] | None = None) -> StatusReport:
    config = load_config(paths.config_file, scope=paths.scope)
    chosen = store.select(paths, config, names)
    snap = store.read(paths)
    margin = config.defaults.renewal_margin
    rows = []
    for n in chosen:
        svc = config.services[n]
        v = store.verdict(svc, snap, now, margin)
        st = store.state_of(svc, snap.states)
        expires = v.expires if v.reason not in ("missing", "malformed", "mismatch") else None
        rows.append(ServiceStatus(
            service=svc, token=token_label(v.due, v.reason, expires, now), reason=v.message,
            expires=expires, seconds_left=seconds_left(expires, now),
            error=st.error if st else None, hint=st.hint if st else None,
            error_code=st.code if st else None, failed_at=st.failed_at if st else None,
            signed_by=(st.profile or st.source) if st else None,  # a profile, or botocore's name of the source
        ))
    return StatusReport(tuple(rows))


def check_failures(report: StatusReport, now: float, min_left: int) -> list[str]:
    """`status --check`: one line per selected service whose token would not serve a login for `min_left`
    seconds (missing, invalid, expired, too short) or whose last refresh failed; empty when all are fine."""
    out: list[str] = []
    for r in report.services:
        name = r.service.name
        if r.token in ("missing", "invalid") or r.expires is None:
            out.append(f"{name}: {r.token}: {r.reason}")
        elif r.expires <= now:
            out.append(f"{name}: token expired {int(now - r.expires)} s ago")
        elif r.expires - now < min_left:
            out.append(f"{name}: token valid for {int(r.expires - now)} s, less than --min-left {min_left}")
        if r.error:
            out.append(f"{name}: last refresh failed: {r.error}")
    return out
