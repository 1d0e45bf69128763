"""`pgiam run --http`: the probes' answers and the metrics page, pure, with the clock injected (issue 23).

The metrics page is read back with prometheus_client's own parser (an independent reader of the
exposition format); the live server is exercised by tests/e2e/test_run.py during a real `pgiam run`.
"""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from pgiam import health
from pgiam.errors import ExitCode, UsageError
from pgiam.health import ServiceView, View

NOW = 1_800_000_000.0
BOUND = 150.0


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """(name, sorted labels) -> value, as Prometheus reads the page."""
    out = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def view(**kw: object) -> View:
    base: dict[str, object] = dict(started=NOW - 1000, pass_bound=BOUND, passes=3, last_pass=NOW - 10,
                                   next_pass=NOW + 500, started_ok=True)
    base.update(kw)
    return View(**base)  # type: ignore[arg-type]


def test_startup_waits_for_a_token_for_every_service() -> None:
    v = view(passes=0, last_pass=None, started_ok=False)
    assert health.probe("/startup", v, NOW).status == 503
    v = view(started_ok=False, services=(ServiceView("a", NOW + 800), ServiceView("b")))
    a = health.probe("/startup", v, NOW)
    assert a.status == 503 and a.body == "starting: no token yet for b\n"
    assert health.probe("/startup", view(), NOW).status == 200


def test_liveness_fails_only_after_the_planned_pass_plus_its_bound() -> None:
    v = view()
    deadline = NOW + 500 + BOUND
    assert health.probe("/liveness", v, deadline).status == 200
    late = health.probe("/liveness", v, deadline + 1)
    assert late.status == 503 and "one was due to finish 1 s ago" in late.body
    first = view(passes=0, last_pass=None, next_pass=None)
    assert health.probe("/liveness", first, NOW - 1000 + BOUND).status == 200
    assert health.probe("/liveness", first, NOW - 1000 + BOUND + 1).status == 503


def test_readiness_names_the_services_with_less_than_a_minute_left() -> None:
    svcs = (ServiceView("good", NOW + 61), ServiceView("short", NOW + 59), ServiceView("gone", NOW - 5, failing=4),
            ServiceView("none"))
    a = health.probe("/readiness", view(services=svcs), NOW)
    assert a.status == 503
    assert a.body == ("not ready: short (token valid for 59 s), gone (token expired; renewal failing, auth), "
                      "none (no token)\n")
    assert health.probe("/readiness", view(services=svcs[:1]), NOW).status == 200
    assert health.probe("/readiness", view(services=svcs[:1]), NOW + 2).status == 503  # the clock decides, not the pass
    assert health.probe("/readiness", view(services=()), NOW).status == 503


def test_metrics_parse_as_prometheus_and_say_what_the_view_says() -> None:
    svcs = (ServiceView("app", NOW + 120.5, NOW + 300, NOW - 20), ServiceView("static", NOW + 800, None, NOW - 100),
            ServiceView('we"ird\\name', None, failing=8))
    v = view(services=svcs, mints={("app", "ok"): 3, ("app", "auth"): 2, ('we"ird\\name', "network"): 1})
    page = health.probe("/metrics", v, NOW)
    assert page.status == 200 and page.content_type.startswith("text/plain; version=0.0.4")
    got = samples(page.body)
    assert got[("pgiam_token_seconds_left", (("service", "app"),))] == 120.5
    assert got[("pgiam_token_seconds_left", (("service", "static"),))] == 800
    assert ("pgiam_token_seconds_left", (("service", 'we"ird\\name'),)) not in got  # no token, no sample
    assert got[("pgiam_credentials_seconds_left", (("service", "app"),))] == 300
    assert not any(k[0] == "pgiam_credentials_seconds_left" and k[1] != (("service", "app"),) for k in got)
    assert got[("pgiam_mints_total", (("result", "ok"), ("service", "app")))] == 3
    assert got[("pgiam_mints_total", (("result", "auth"), ("service", "app")))] == 2
    assert got[("pgiam_mints_total", (("result", "network"), ("service", 'we"ird\\name')))] == 1
    assert got[("pgiam_mints_total", (("result", "ok"), ("service", "static")))] == 0  # every service has an ok series
    assert got[("pgiam_last_success_timestamp_seconds", (("service", "app"),))] == NOW - 20
    assert got[("pgiam_passes_total", ())] == 3
    assert got[("pgiam_last_pass_timestamp_seconds", ())] == NOW - 10
    assert got[("pgiam_ready", ())] == 0


@pytest.mark.parametrize(("code", "label"), [(None, "ok"), (0, "ok"), (ExitCode.AUTH, "auth"), (3, "config"),
                                             (5, "file"), (7, "environment"), (8, "network"), (99, "other")])
def test_result_classes_are_the_exit_codes_names(code: int | None, label: str) -> None:
    assert health.result_class(code) == label


@pytest.mark.parametrize(("text", "addr"), [(":9187", ("127.0.0.1", 9187)), ("9187", ("127.0.0.1", 9187)),
                                            ("0.0.0.0:80", ("0.0.0.0", 80)), ("[::1]:9187", ("::1", 9187)),
                                            ("pod.local:9187", ("pod.local", 9187))])
def test_http_address(text: str, addr: tuple[str, int]) -> None:
    assert health.parse_address(text) == addr


@pytest.mark.parametrize("text", ["", "host", "host:", ":-1", ":65536", "::1:80", "[::1]", "h:x"])
def test_bad_http_address_is_a_usage_error(text: str) -> None:
    with pytest.raises(UsageError, match="is not HOST:PORT"):
        health.parse_address(text)


def test_unknown_path_is_404() -> None:
    assert health.probe("/", view(), NOW).status == 404
    assert health.probe("/metrics?x=1", view(), NOW).status == 200


# ---------------------------------------------------------------- `pgiam run --http`'s refusals, in process


def _one_service(home: Path, ca_file: Path) -> None:
    from pgiam.paths import Paths

    cfg = Paths.from_env().config_file
    cfg.parent.mkdir(parents=True, exist_ok=True)
    cfg.write_text(f'[services.a]\nhost = "a.cluster-abc.us-west-2.rds.amazonaws.com"\nuser = "u"\nsslrootcert = "{ca_file}"\n')


def test_a_busy_port_is_an_environment_error_before_anything_is_written(run_cli, home: Path, ca_file: Path) -> None:  # type: ignore[no-untyped-def]
    _one_service(home, ca_file)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        code, out, err = run_cli("run", "--http", f"127.0.0.1:{port}")
    assert code == ExitCode.ENVIRONMENT and out == ""
    assert f"cannot listen on 127.0.0.1:{port} for --http" in err and "\nhint: pick a free port" in err
    assert not (home / ".pgpass").exists()


@pytest.mark.parametrize(("argv", "message"), [(["--http", ":9187", "--once"], "--http needs the running loop"),
                                               (["--http", "localhost"], "is not HOST:PORT")])
def test_http_usage_errors(run_cli, home: Path, ca_file: Path, argv: list[str], message: str) -> None:  # type: ignore[no-untyped-def]
    _one_service(home, ca_file)
    code, out, err = run_cli("run", *argv)
    assert code == ExitCode.USAGE and out == "" and message in err
    assert not (home / ".pgpass").exists()
