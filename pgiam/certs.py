"""Managed Amazon RDS CA bundles: download, validate, store, report expiry.

RDS instance and cluster endpoints present certificates from Amazon's private
RDS CAs, so `sslmode=verify-full` needs the RDS bundle as `sslrootcert`
(AWS RDS User Guide, "Using SSL/TLS to encrypt a connection to a DB instance"). pgiam keeps one bundle per AWS partition under
`Paths.certs_dir`, downloads it over verified HTTPS only, and replaces it
atomically so a failed update never touches the bundle libpq is using.
Only the standard library parses certificates (ssl.SSLContext), on purpose:
no PyPI package ships the bundle and pgiam should not need `cryptography`.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from pgiam.errors import ConfigError, EnvironmentProblem, FileError, NetworkError, UsageError
from pgiam.fileio import Scope, atomic_write, ensure_private_dir, read_bytes

if TYPE_CHECKING:
    import ssl

    from pgiam.reports import CertsReport
    from pgiam.libpq import LibpqVersion
    from pgiam.paths import Paths

# Official sources (AWS RDS User Guide, "Certificate bundles by AWS Region"). The commercial bundle is the global one; per-region
# bundles exist but the global one verifies every commercial region.
DEFAULT_SOURCES: Mapping[str, str] = {
    "aws": "https://truststore.pki.rds.amazonaws.com/global/global-bundle.pem",
    "aws-us-gov": "https://truststore.pki.us-gov-west-1.rds.amazonaws.com/global/global-bundle.pem",
    "aws-cn": "https://rds-truststore.s3.cn-north-1.amazonaws.com.cn/cn-north-1/cn-north-1-bundle.pem",
}
PARTITIONS: tuple[str, ...] = tuple(DEFAULT_SOURCES)

SOURCES_FILE = "sources.json"
# The real global bundle is about 150 KiB; anything far bigger is not a CA bundle.
MAX_DOWNLOAD = 2 * 1024 * 1024
EXPIRY_WINDOW = 90 * 86400
BUNDLE_MODE = 0o644  # public data; the 0700 data directory still keeps it private to the user

SSLROOTCERT_HINT = "or pass `--sslrootcert PATH` to `pgiam add` with a CA bundle you downloaded yourself"

_BLOCK = re.compile(r"-----BEGIN CERTIFICATE-----(.*?)-----END CERTIFICATE-----", re.S)


class BundleError(ValueError):
    """A PEM text that is not a usable CA bundle; the message says why."""


@dataclass(frozen=True)
class CAInfo:
    """One CA certificate of a bundle."""

    subject: str  # the commonName, else the whole subject
    not_after: float  # epoch seconds

    @property
    def not_after_iso(self) -> str:
        """notAfter as an ISO date (UTC)."""
        return time.strftime("%Y-%m-%d", time.gmtime(self.not_after))


@dataclass(frozen=True)
class ExpiringCA:
    """A CA that expires within the window (or already has)."""

    subject: str
    not_after: float
    not_after_iso: str
    expired: bool


class _Expiry:
    """`expired` / `all_expired` for anything with `ca_count` and `expiring`."""

    ca_count: int
    expiring: tuple[ExpiringCA, ...]

    @property
    def expired(self) -> bool:
        return any(ca.expired for ca in self.expiring)

    @property
    def all_expired(self) -> bool:
        return self.ca_count > 0 and sum(ca.expired for ca in self.expiring) == self.ca_count


@dataclass(frozen=True)
class BundleDescription(_Expiry):
    """What `describe_bundle` found in a PEM text."""

    ca_count: int
    expiring: tuple[ExpiringCA, ...]  # expired ones included, soonest first


@dataclass(frozen=True)
class UpdateResult:
    """The outcome of one `update`."""

    partition: str
    path: Path
    url: str
    ca_count: int
    changed: bool


@dataclass(frozen=True)
class BundleStatus(_Expiry):
    """One managed or in-use bundle, as `status` sees it."""

    path: Path
    partition: str | None  # None for an in-use file pgiam does not manage
    exists: bool
    in_use: bool
    ca_count: int
    expiring: tuple[ExpiringCA, ...]
    error: str | None = None  # the file exists but is not a valid bundle

    @property
    def missing_in_use(self) -> bool:
        return self.in_use and not self.exists


# --------------------------------------------------------------------------- pure helpers


def partition_for_region(region: str) -> str:
    """The AWS partition holding `region`."""
    if region.startswith("cn-"):
        return "aws-cn"
    if region.startswith("us-gov-"):
        return "aws-us-gov"
    return "aws"


def _check_partition(partition: str) -> None:
    if partition not in DEFAULT_SOURCES:
        raise UsageError(
            f"unknown AWS partition {partition!r}",
            f"use one of: {', '.join(PARTITIONS)}",
        )


def _check_https(url: str) -> None:
    parts = urlsplit(url)
    if parts.scheme.lower() != "https" or not parts.hostname:
        # Plain http would let anyone on the path swap the CAs that verify-full trusts.
        raise UsageError(
            f"refusing to download a CA bundle from {url!r}: only https:// URLs are allowed",
            "use the https:// URL of the bundle",
        )


def _subject_name(subject: tuple[tuple[tuple[str, str], ...], ...]) -> str:
    pairs = [pair for rdn in subject for pair in rdn]
    for key, value in pairs:
        if key == "commonName":
            return value
    return ", ".join(f"{key}={value}" for key, value in pairs) or "(no subject)"


def parse_bundle(pem_text: str) -> list[CAInfo]:
    """Every certificate of a PEM CA bundle; BundleError unless all of them parse and are CAs."""
    import ssl  # here, not at the top: `pgiam list` and the others import this module for PARTITIONS only

    if not pem_text.strip():
        raise BundleError("the body is empty")
    head = pem_text.lstrip()[:512].lower()
    if head.startswith("<") or "<html" in head:
        raise BundleError("the server sent an HTML page, not a PEM bundle")
    begins = pem_text.count("-----BEGIN CERTIFICATE-----")
    blocks = _BLOCK.findall(pem_text)
    if begins == 0:
        raise BundleError("the text holds no PEM certificate")
    if begins != len(blocks) or pem_text.count("-----END CERTIFICATE-----") != begins:
        # OpenSSL silently stops at a cut-off last certificate; count the markers ourselves.
        raise BundleError("the PEM text is truncated (a certificate has no END line)")
    cas: list[CAInfo] = []
    for index, body in enumerate(blocks, start=1):
        pem = f"-----BEGIN CERTIFICATE-----{body}-----END CERTIFICATE-----\n"
        # One context per certificate: the store de-duplicates and get_ca_certs() skips non-CAs,
        # so only a per-certificate load tells which one is bad.
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        try:
            ctx.load_verify_locations(cadata=pem)
        except (ssl.SSLError, ValueError) as err:
            raise BundleError(f"certificate #{index} does not parse: {err}") from None
        found = ctx.get_ca_certs()
        if not found:
            raise BundleError(f"certificate #{index} is not a CA certificate (basicConstraints CA:FALSE)")
        info = found[0]
        cas.append(
            CAInfo(
                subject=_subject_name(info.get("subject", ())),  # type: ignore[arg-type]
                not_after=float(ssl.cert_time_to_seconds(str(info["notAfter"]))),
            )
        )
    return cas


def describe_bundle(pem_text: str, now: float, window: float = EXPIRY_WINDOW) -> BundleDescription:
    """Count the CAs of a bundle and list those expiring before now + window; BundleError if invalid."""
    cas = parse_bundle(pem_text)
    expiring = sorted(
        (
            ExpiringCA(ca.subject, ca.not_after, ca.not_after_iso, expired=ca.not_after <= now)
            for ca in cas
            if ca.not_after <= now + window
        ),
        key=lambda ca: (ca.not_after, ca.subject),
    )
    return BundleDescription(ca_count=len(cas), expiring=tuple(expiring))


# --------------------------------------------------------------------------- paths and sources


def bundle_path(paths: Paths, partition: str) -> Path:
    """The absolute path of a partition's managed bundle (libpq does not expand `~`)."""
    _check_partition(partition)
    return Path(os.path.abspath(paths.certs_dir / f"rds-{partition}.pem"))


def _sources_path(paths: Paths) -> Path:
    return Path(os.path.abspath(paths.certs_dir / SOURCES_FILE))


def load_sources(paths: Paths) -> dict[str, str]:
    """The remembered per-partition source URLs (empty when none were set)."""
    path = _sources_path(paths)
    raw = read_bytes(path, scope=paths.scope)
    if raw is None:
        return {}
    try:
        data = json.loads(raw.decode("utf-8"))
        sources = data["sources"]
        if not isinstance(sources, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in sources.items()
        ):
            raise ValueError("sources must map partition names to URLs")
    except (ValueError, KeyError, TypeError, UnicodeDecodeError) as err:
        raise ConfigError(
            f"{path} is not a valid pgiam sources file: {err}",
            f"delete {path} to go back to the official AWS bundle URLs",
        ) from None
    return dict(sources)


def _render_sources(sources: Mapping[str, str]) -> bytes:
    return (json.dumps({"version": 1, "sources": dict(sorted(sources.items()))}, indent=2) + "\n").encode()


# --------------------------------------------------------------------------- download


_NETWORK_HINT = (
    "check the network and any proxy (https_proxy) or SSL_CERT_FILE, then retry; " + SSLROOTCERT_HINT
)


def _https_only_redirects() -> Any:
    """A redirect handler that follows redirects only to https:// URLs; urllib would otherwise downgrade to http.

    Built on first use: urllib.request and http.client cost every command their import time, and
    only a download needs them (pgiam.commands registers `certs` from PARTITIONS on every run).
    """
    import urllib.request

    class _HttpsOnlyRedirects(urllib.request.HTTPRedirectHandler):
        """Follow redirects only to https:// URLs; urllib would otherwise downgrade to http."""

        def redirect_request(self, req, fp, code, msg, headers, newurl):  # type: ignore[no-untyped-def]
            if urlsplit(newurl).scheme.lower() != "https":
                fp.close()
                raise NetworkError(
                    f"{req.full_url} redirected to {newurl}, which is not https; refusing the CA bundle",
                    "use a bundle URL that stays on https://",
                )
            return super().redirect_request(req, fp, code, msg, headers, newurl)

    return _HttpsOnlyRedirects()


def _download(url: str, context: ssl.SSLContext | None, timeout: float) -> bytes:
    """The body of an HTTPS GET, at most MAX_DOWNLOAD bytes; NetworkError on any failure."""
    import http.client
    import ssl
    import urllib.error
    import urllib.request

    ctx = context if context is not None else ssl.create_default_context()  # honours SSL_CERT_FILE
    opener = urllib.request.build_opener(urllib.request.HTTPSHandler(context=ctx), _https_only_redirects())
    request = urllib.request.Request(url, headers={"User-Agent": "pgiam", "Accept": "application/x-pem-file, */*"})
    try:
        with opener.open(request, timeout=timeout) as response:
            status = getattr(response, "status", 200)
            if status != 200:
                raise NetworkError(f"downloading {url} gave HTTP {status}, not 200", _NETWORK_HINT)
            length = response.headers.get("Content-Length")
            if length and length.isdigit() and int(length) > MAX_DOWNLOAD:
                raise NetworkError(f"{url} is {length} bytes, more than a CA bundle ({MAX_DOWNLOAD} max)")
            body: bytes = response.read(MAX_DOWNLOAD + 1)
            # read(amt) returns short at EOF instead of raising IncompleteRead: compare ourselves.
            if length and length.isdigit() and len(body) < int(length):
                raise NetworkError(
                    f"downloading {url} was cut off after {len(body)} of {length} bytes", _NETWORK_HINT
                )
    except urllib.error.HTTPError as err:
        err.close()
        raise NetworkError(f"downloading {url} failed: HTTP {err.code} {err.reason}", _NETWORK_HINT) from None
    except urllib.error.URLError as err:
        reason = err.reason
        if isinstance(reason, ssl.SSLCertVerificationError):
            raise NetworkError(
                f"the TLS certificate of {url} did not verify: {reason.verify_message or reason}",
                "check the network and any intercepting proxy, or SSL_CERT_FILE if you use a private CA; "
                + SSLROOTCERT_HINT,
            ) from None
        if isinstance(reason, ssl.SSLError):
            raise NetworkError(f"TLS with {url} failed: {reason}", _NETWORK_HINT) from None
        raise NetworkError(f"cannot download {url}: {reason}", _NETWORK_HINT) from None
    except ssl.SSLCertVerificationError as err:
        raise NetworkError(f"the TLS certificate of {url} did not verify: {err.verify_message or err}", _NETWORK_HINT) from None
    except http.client.IncompleteRead as err:
        raise NetworkError(
            f"downloading {url} was cut off after {len(err.partial)} bytes", _NETWORK_HINT
        ) from None
    except (http.client.HTTPException, OSError) as err:  # timeouts, resets, TLS errors mid-body
        raise NetworkError(f"downloading {url} failed: {err or type(err).__name__}", _NETWORK_HINT) from None
    if len(body) > MAX_DOWNLOAD:
        raise NetworkError(f"{url} sent more than {MAX_DOWNLOAD} bytes; that is not a CA bundle")
    return body


def update(
    paths: Paths,
    partition: str = "aws",
    url: str | None = None,
    *,
    context: ssl.SSLContext | None = None,
    timeout: float = 30,
) -> UpdateResult:
    """Download, validate and atomically store a partition's bundle; `url` replaces its remembered source."""
    _check_partition(partition)
    if url is not None:
        _check_https(url)
    sources = load_sources(paths)
    source = url if url is not None else sources.get(partition, DEFAULT_SOURCES[partition])
    _check_https(source)  # a hand-edited sources.json must not bring http back
    body = _download(source, context, timeout)
    try:
        text = body.decode("ascii")
    except UnicodeDecodeError:
        if body.lstrip()[:1] == b"<" or b"<html" in body[:512].lower():
            raise NetworkError(f"{source} sent an HTML page, not a PEM CA bundle", _NETWORK_HINT) from None
        raise NetworkError(f"{source} did not send a PEM CA bundle (the body is not ASCII text)", _NETWORK_HINT) from None
    try:
        cas = parse_bundle(text)
    except BundleError as err:
        raise NetworkError(f"{source} did not send a usable CA bundle: {err}", _NETWORK_HINT) from None

    target = bundle_path(paths, partition)
    ensure_private_dir(target.parent, scope=paths.scope)
    # Only now, with a valid bundle in hand, remember the new source; roll it back if the bundle
    # write fails so sources.json never names a URL that did not produce the stored bundle.
    sources_file = _sources_path(paths)
    old_sources_raw = read_bytes(sources_file, scope=paths.scope)
    new_sources = dict(sources)
    if url is not None:
        if url == DEFAULT_SOURCES[partition]:
            new_sources.pop(partition, None)
        else:
            new_sources[partition] = url
    sources_changed = new_sources != sources
    if sources_changed:
        atomic_write(sources_file, _render_sources(new_sources), BUNDLE_MODE, scope=paths.scope)
    changed = read_bytes(target, scope=paths.scope) != body
    if changed:
        try:
            atomic_write(target, body, BUNDLE_MODE, scope=paths.scope)
        except Exception:
            if sources_changed:
                if old_sources_raw is None:
                    sources_file.unlink(missing_ok=True)
                else:
                    atomic_write(sources_file, old_sources_raw, BUNDLE_MODE, scope=paths.scope)
            raise
    return UpdateResult(partition=partition, path=target, url=source, ca_count=len(cas), changed=changed)


def ensure_bundle(
    paths: Paths, partition: str, *, context: ssl.SSLContext | None = None, timeout: float = 30
) -> Path:
    """The partition's bundle path, downloading the bundle first when it is absent."""
    path = bundle_path(paths, partition)
    if path.is_file():
        return path
    try:
        update(paths, partition, context=context, timeout=timeout)
    except NetworkError as err:
        raise NetworkError(
            f"{err.message} (needed for {path})",
            "connect to the network and retry, or pass `--sslrootcert PATH` to `pgiam add` "
            "with an RDS CA bundle you downloaded yourself",
        ) from None
    return path


# --------------------------------------------------------------------------- status


def _status_of(path: Path, partition: str | None, in_use: bool, now: float, scope: Scope) -> BundleStatus:
    try:
        raw = read_bytes(path, scope=scope)
    except FileError as err:  # a directory or unreadable file: report it, status must not crash
        return BundleStatus(path, partition, exists=True, in_use=in_use, ca_count=0, expiring=(), error=err.message)
    if raw is None:
        return BundleStatus(path, partition, exists=False, in_use=in_use, ca_count=0, expiring=())
    try:
        desc = describe_bundle(raw.decode("ascii"), now)
    except (BundleError, UnicodeDecodeError) as err:
        reason = str(err) if isinstance(err, BundleError) else "not ASCII PEM text"
        return BundleStatus(path, partition, exists=True, in_use=in_use, ca_count=0, expiring=(), error=reason)
    return BundleStatus(path, partition, exists=True, in_use=in_use, ca_count=desc.ca_count, expiring=desc.expiring)


def status(paths: Paths, now: float, in_use: Iterable[Path] = frozenset()) -> list[BundleStatus]:
    """Every managed bundle that exists, plus every in-use sslrootcert file (`system` is skipped)."""
    used = {Path(os.path.abspath(p)) for p in in_use if str(p) != "system"}  # libpq 16's OS-store keyword
    result: list[BundleStatus] = []
    seen: set[Path] = set()
    for partition in PARTITIONS:
        path = bundle_path(paths, partition)
        seen.add(path)
        if path.exists() or path in used:
            result.append(_status_of(path, partition, path in used, now, paths.scope))
    for path in sorted(used - seen):
        result.append(_status_of(path, None, True, now, paths.scope))
    return result


def status_problems(statuses: Iterable[BundleStatus], *, strict: bool = False) -> list[str]:
    """Messages for in-use bundles that will fail verify-full: missing, invalid, or expired.

    An in-use bundle is a problem when every CA in it has expired; with `strict`, when any has.
    Not strict by default because the official bundles may still carry retired CAs (rds-ca-2019)
    next to the current ones, and OpenSSL simply skips those.
    """
    problems: list[str] = []
    for st in statuses:
        if not st.in_use:
            continue
        name = f"{st.path}" + (f" ({st.partition})" if st.partition else "")
        if not st.exists:
            fix = f"run `pgiam certs update --partition {st.partition}`" if st.partition else "restore the file"
            problems.append(f"CA bundle {name} is used by a service but missing; {fix}")
        elif st.error:
            problems.append(f"CA bundle {name} is used by a service but invalid: {st.error}")
        elif st.all_expired or (strict and st.expired):
            expired = ", ".join(f"{ca.subject} (expired {ca.not_after_iso})" for ca in st.expiring if ca.expired)
            problems.append(f"CA bundle {name} is used by a service and holds expired CAs: {expired}")
    return problems


# --------------------------------------------------------------------------- RDS Proxy / DSQL


def proxy_sslrootcert(libpq_version: LibpqVersion | None) -> str:
    """sslrootcert for endpoints with public Amazon certificates: `system` on libpq 16+, else the OS CA file."""
    # libpq 15 reads `sslrootcert=system` as a file named "system" (libpq 16 release notes add `system`; checked with libpq 15), so older
    # libpq gets the OS bundle's path instead.
    if libpq_version is not None and libpq_version.major >= 16:
        return "system"
    import ssl

    verify = ssl.get_default_verify_paths()
    for candidate in (verify.cafile, verify.openssl_cafile):
        if candidate and os.path.isfile(candidate):
            return os.path.abspath(candidate)
    raise EnvironmentProblem(
        "no system CA file found for RDS Proxy / Aurora DSQL endpoints "
        f"(looked at {verify.cafile or verify.openssl_cafile_env} and {verify.openssl_cafile})",
        "install the ca-certificates package, or pass `--sslrootcert PATH` with Amazon's root CAs",
    )


# --------------------------------------------------------------------------- operations for the CLI


def partitions_in_use(paths: Paths) -> list[str]:
    """The partitions of the configured services' regions (sorted), else ["aws"]."""
    from pgiam.config import load_config

    config = load_config(paths.config_file, scope=paths.scope)
    return sorted({partition_for_region(s.region) for s in config.services.values()}) or ["aws"]


def update_in_use(paths: Paths, partition: str | None, url: str | None) -> list[UpdateResult]:
    """`certs update`: the named partition (or the one `url` serves), else every partition in use."""
    parts = [partition or "aws"] if partition or url else partitions_in_use(paths)
    return [update(paths, part, url) for part in parts]


def report(paths: Paths, now: float) -> CertsReport:
    """`certs status`: every bundle, with the problems of the ones services use (strict: any expired CA)."""
    from pgiam.config import load_config
    from pgiam.reports import BundleRecord, CertsReport
    from pgiam.reports import ExpiringCA as CAOut

    config = load_config(paths.config_file, scope=paths.scope)
    in_use = {Path(s.sslrootcert) for s in config.services.values() if s.sslrootcert and s.sslrootcert != "system"}
    statuses = status(paths, now, in_use)
    # Strict: any expired CA in a bundle a service uses is reported ("a CA in use has expired").
    problems = status_problems(statuses, strict=True)
    return CertsReport(tuple(
        BundleRecord(str(st.path), st.partition, st.exists, st.in_use, st.ca_count, st.error,
                     tuple(CAOut(ca.subject, ca.not_after_iso, ca.expired) for ca in st.expiring))
        for st in statuses), tuple(problems))


__all__ = [
    "BundleDescription",
    "BundleError",
    "BundleStatus",
    "CAInfo",
    "DEFAULT_SOURCES",
    "ExpiringCA",
    "PARTITIONS",
    "UpdateResult",
    "bundle_path",
    "describe_bundle",
    "ensure_bundle",
    "load_sources",
    "parse_bundle",
    "partition_for_region",
    "proxy_sslrootcert",
    "status",
    "status_problems",
    "report",
    "update",
    "update_in_use",
]
