"""`pgiam run --http`: the startup, liveness and readiness probes and Prometheus metrics, over HTTP.

The probes answer what a Kubernetes kubelet asks of a sidecar, as the Cloud SQL Auth Proxy does
(`/startup`, `/liveness`, `/readiness`): 200 or 503 with one line of text saying why. `/metrics`
is the Prometheus text exposition format, version 0.0.4 (prometheus.io/docs/instrumenting/
exposition_formats/): `# HELP` and `# TYPE` lines, then `name{label="value"} number`, label values
escaping `\\`, `"` and newlines.

Why no prometheus_client: the page is a handful of gauges and one counter computed from one
immutable View, which the daemon replaces after each pass; prometheus_client would bring a
process-wide registry, collectors we do not want and a server of its own, while the probes need an
HTTP server anyway. The stdlib's ThreadingHTTPServer serves both, in a daemon thread; the tests parse
this page with prometheus_client's own parser.

Nothing here reads a file or a token: the View holds names, times and counts only, so no secret can
reach a response. `render_*` and `probe` are pure (the clock is a parameter).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from pgiam.errors import EnvironmentProblem, ExitCode, UsageError

if TYPE_CHECKING:
    from http.server import ThreadingHTTPServer

READY_MIN_LEFT = 60  # /readiness: every token valid for at least this many seconds more
DEFAULT_HOST = "127.0.0.1"  # loopback unless told otherwise: the metrics name the services
METRICS_TYPE = "text/plain; version=0.0.4; charset=utf-8"
PATHS = ("/startup", "/liveness", "/readiness", "/metrics")


def result_class(code: ExitCode | int | None) -> str:
    """The `result` label of pgiam_mints_total: "ok", or the failure's exit code by name (man page EXIT STATUS)."""
    if code is None or int(code) == 0:
        return "ok"
    try:
        return ExitCode(int(code)).name.lower()
    except ValueError:
        return "other"


@dataclass(frozen=True)
class ServiceView:
    """What the probes and metrics say about one service (no token, no secret)."""

    name: str
    expires: float | None = None  # effective expiry of the token in the password file (None: no usable token)
    credentials_expire: float | None = None  # expiry of the credentials that signed the last token (None: never)
    last_success: float | None = None  # when this process last minted a token for it
    failing: int | None = None  # exit code of the last renewal, when it failed


@dataclass(frozen=True)
class View:
    """The daemon's state as of its last pass; replaced whole, never changed."""

    started: float  # when `pgiam run` started
    pass_bound: float  # how long one pass may take (the credential helper's bound plus the lock wait)
    services: tuple[ServiceView, ...] = ()
    passes: int = 0  # passes finished
    last_pass: float | None = None  # when the last pass finished
    next_pass: float | None = None  # when the loop means to start the next one
    started_ok: bool = False  # a pass has left a token for every service (sticky)
    mints: Mapping[tuple[str, str], int] = field(default_factory=dict)  # (service, result) -> count


@dataclass(frozen=True)
class Answer:
    status: int
    body: str
    content_type: str = "text/plain; charset=utf-8"


def probe(path: str, view: View, now: float) -> Answer:
    """The answer to a GET of `path` (its query string ignored)."""
    path = path.split("?", 1)[0]
    if path == "/startup":
        return startup(view)
    if path == "/liveness":
        return liveness(view, now)
    if path == "/readiness":
        return readiness(view, now)
    if path == "/metrics":
        return Answer(200, render_metrics(view, now), METRICS_TYPE)
    return Answer(404, f"not found; try {', '.join(PATHS)}\n")


def startup(view: View) -> Answer:
    """200 once a pass has left a token for every service; until then 503 naming those without one."""
    if view.started_ok:
        return Answer(200, "started\n")
    if view.passes == 0:
        return Answer(503, "starting: the first pass has not finished\n")
    missing = [s.name for s in view.services if s.expires is None]
    return Answer(503, f"starting: no token yet for {', '.join(missing) or 'any service'}\n")


def liveness(view: View, now: float) -> Answer:
    """200 while passes finish on time; 503 once none has for longer than its interval plus its bound."""
    deadline = live_until(view)
    if now <= deadline:
        return Answer(200, "alive\n")
    last = "no pass has finished" if view.last_pass is None else f"the last pass finished {int(now - view.last_pass)} s ago"
    return Answer(503, f"stuck: {last}; one was due to finish {int(now - deadline)} s ago\n")


def live_until(view: View) -> float:
    """When the loop counts as stuck: the next pass's planned start plus what one pass may take."""
    if view.last_pass is None:
        return view.started + view.pass_bound
    start = view.next_pass if view.next_pass is not None else view.last_pass
    return max(start, view.last_pass) + view.pass_bound


def readiness(view: View, now: float) -> Answer:
    """200 while every service's token is valid for at least READY_MIN_LEFT s more; else 503 naming them."""
    if not view.services:
        return Answer(503, "not ready: no pass has finished\n")
    short = []
    for s in view.services:
        if s.expires is None:
            short.append(f"{s.name} (no token)")
        elif s.expires - now < READY_MIN_LEFT:
            left = int(s.expires - now)
            short.append(f"{s.name} (token {'expired' if left <= 0 else f'valid for {left} s'}"
                         + (f"; renewal failing, {result_class(s.failing)}" if s.failing else "") + ")")
    if short:
        return Answer(503, f"not ready: {', '.join(short)}\n")
    return Answer(200, "ready\n")


def _label(value: str) -> str:
    """A label value as the exposition format writes it."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _num(value: float) -> str:
    return repr(float(value)) if value != int(value) else str(int(value))


def render_metrics(view: View, now: float) -> str:
    """The /metrics page."""
    out: list[str] = []

    def family(name: str, kind: str, help_text: str, samples: list[tuple[dict[str, str], float]]) -> None:
        out.append(f"# HELP {name} {help_text}")
        out.append(f"# TYPE {name} {kind}")
        for labels, value in samples:
            text = ",".join(f'{k}="{_label(v)}"' for k, v in labels.items())
            out.append(f"{name}{{{text}}} {_num(value)}" if text else f"{name} {_num(value)}")

    svcs = view.services
    family("pgiam_token_seconds_left", "gauge",
           "Seconds until the token in the password file expires (negative: expired); no sample without a token.",
           [({"service": s.name}, round(s.expires - now, 3)) for s in svcs if s.expires is not None])
    family("pgiam_credentials_seconds_left", "gauge",
           "Seconds until the temporary AWS credentials that signed the service's last token expire; "
           "no sample for keys that never expire.",
           [({"service": s.name}, round(s.credentials_expire - now, 3)) for s in svcs if s.credentials_expire is not None])
    mints = dict(view.mints)
    for s in svcs:
        mints.setdefault((s.name, "ok"), 0)
    family("pgiam_mints_total", "counter",
           "Token mints by result: ok, or the failure's class, named as pgiam's exit codes are (auth, network, config, file, ...).",
           [({"service": n, "result": r}, c) for (n, r), c in sorted(mints.items())])
    family("pgiam_last_success_timestamp_seconds", "gauge",
           "Unix time of this process's last successful mint for the service.",
           [({"service": s.name}, s.last_success) for s in svcs if s.last_success is not None])
    family("pgiam_passes_total", "counter", "Renewal passes finished.", [({}, view.passes)])
    family("pgiam_last_pass_timestamp_seconds", "gauge", "Unix time the last renewal pass finished.",
           [({}, view.last_pass)] if view.last_pass is not None else [])
    family("pgiam_ready", "gauge", f"1 while every token is valid for at least {READY_MIN_LEFT} s more (the /readiness probe).",
           [({}, 1 if readiness(view, now).status == 200 else 0)])
    return "\n".join(out) + "\n"


def parse_address(text: str) -> tuple[str, int]:
    """`HOST:PORT`, `[IPv6]:PORT`, `:PORT` or `PORT` (loopback) -> (host, port); port 0 picks a free one (logged)."""
    raw = text.strip()
    if raw.startswith("["):
        host, sep, port = raw[1:].partition("]:")
        if not sep:
            host = ""
    elif ":" in raw:
        host, _, port = raw.rpartition(":")
        if ":" in host:
            host = ""  # an IPv6 address needs brackets
            port = ""
    else:
        host, port = "", raw
    if not port.isdigit() or not 0 <= int(port) < 65536 or (raw.startswith("[") and not host):
        raise UsageError(f"--http {text!r} is not HOST:PORT",
                         "give an address and a port, e.g. --http 127.0.0.1:9187, --http :9187 (loopback) "
                         "or --http 0.0.0.0:9187 (every interface)")
    return host or DEFAULT_HOST, int(port)


class Server:
    """The probes and metrics, served by a daemon thread from whatever `view()` returns at each request."""

    def __init__(self, address: tuple[str, int], view: Callable[[], View], clock: Callable[[], float]) -> None:
        import socket
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        class Handler(BaseHTTPRequestHandler):
            server_version = "pgiam"
            sys_version = ""
            timeout = 10  # a client that opens a connection and says nothing is dropped

            def _answer(self, body: bool) -> None:
                a = probe(self.path, view(), clock())
                data = a.body.encode()
                self.send_response(a.status)
                self.send_header("Content-Type", a.content_type)
                self.send_header("Content-Length", str(len(data)))
                self.send_header("Cache-Control", "no-store")
                self.end_headers()
                if body:
                    self.wfile.write(data)

            def do_GET(self) -> None:
                self._answer(True)

            def do_HEAD(self) -> None:
                self._answer(False)

            def log_message(self, format: str, *args: object) -> None:
                pass  # kubelet probes every few seconds: no line per request

        class HTTPServer(ThreadingHTTPServer):
            daemon_threads = True
            address_family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET

        try:
            self.httpd: ThreadingHTTPServer = HTTPServer(address, Handler)
        except OSError as err:
            where = f"[{address[0]}]:{address[1]}" if ":" in address[0] else f"{address[0]}:{address[1]}"
            raise EnvironmentProblem(f"cannot listen on {where} for --http: {err.strerror or err}",
                                     "pick a free port or an address of this machine, e.g. --http 127.0.0.1:9187") from None
        self.address: tuple[str, int] = (address[0], int(self.httpd.server_address[1]))  # port 0: the one picked
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.5},
                                       name="pgiam-http", daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
