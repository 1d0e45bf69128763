"""The deployment examples in deploy/ are checked (issue 16): they parse, the pgiam commands they run
parse with pgiam's own argparse parser, the paths they name agree with each other and with
pgiam.paths, and `systemd-analyze verify` accepts the unit with a real executable."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from pgiam.cli import build_parser
from pgiam.config import load_config
from pgiam.errors import UsageError
from pgiam.fileio import NOWHERE
from pgiam.paths import Paths
from tests.tools import require_tool

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
UNIT = DEPLOY / "systemd" / "pgiam.service"
MANIFEST = DEPLOY / "kubernetes" / "pgiam-sidecar.yaml"
CONTAINERFILE = DEPLOY / "container" / "Containerfile"


def parses(argv: list[str]) -> None:
    """`pgiam ARGV` parses with pgiam's parser (argv[0] is the program)."""
    assert Path(argv[0]).name == "pgiam", argv
    try:
        build_parser().parse_args(argv[1:])
    except UsageError as err:
        raise AssertionError(f"{argv}: {err.message}") from None


def unit_entries(text: str) -> dict[str, list[str]]:
    """systemd's unit syntax: repeated keys allowed (Environment=), comments with # or ;."""
    out: dict[str, list[str]] = {}
    section = ""
    for line in text.splitlines():
        line = line.strip()
        if not line or line[0] in "#;":
            continue
        if line.startswith("["):
            section = line.strip("[]")
            continue
        k, _, v = line.partition("=")
        out.setdefault(f"{section}.{k}", []).append(v)
    return out


# ---------------------------------------------------------------- systemd


def test_unit_is_notify_with_a_dedicated_user_and_state_directory() -> None:
    e = unit_entries(UNIT.read_text())
    assert e["Service.Type"] == ["notify"]
    assert e["Service.User"][0] not in ("root", "0") and e["Service.StateDirectory"] == ["pgiam"]
    assert e["Service.StateDirectoryMode"] == ["0700"]
    parses(shlex.split(e["Service.ExecStart"][0]))
    env = dict(v.split("=", 1) for v in e["Service.Environment"])
    expanded = {k: v.replace("%S", "/var/lib") for k, v in env.items()}
    paths = paths_for(expanded)
    assert paths.state_dir == Path("/var/lib/pgiam")  # StateDirectory=pgiam, owned by User=, 0700
    assert paths.pgpass.parent == paths.state_dir and paths.service_file.parent == paths.state_dir


@pytest.mark.parametrize("exe_ok", [True, False])
def test_systemd_analyze_verifies_the_unit(tmp_path: Path, exe_ok: bool) -> None:
    """With the real pgiam executable the unit verifies; with a missing one it does not (the check can fail)."""
    analyze = require_tool("systemd-analyze", "systemd")
    exe = shutil.which("pgiam", path=os.path.dirname(sys.executable)) or shutil.which("pgiam")
    assert exe, "the pgiam console script is not installed"
    unit = tmp_path / "pgiam.service"
    unit.write_text(UNIT.read_text().replace("/usr/local/bin/pgiam", exe if exe_ok else str(tmp_path / "missing")))
    # --man=no: Documentation=man:pgiam(1) is checked only where the man page is installed.
    p = subprocess.run([analyze, "verify", "--man=no", str(unit)], capture_output=True, text=True, timeout=60)
    if exe_ok:
        assert p.returncode == 0, p.stderr
    else:
        assert p.returncode != 0 and "missing" in p.stderr


# ---------------------------------------------------------------- Kubernetes


def docs() -> dict[str, dict[str, Any]]:
    return {d["kind"]: d for d in yaml.safe_load_all(MANIFEST.read_text())}


def env_of(container: dict[str, Any]) -> dict[str, str]:
    """The container's literal env values (downward-API ones, `valueFrom`, are left out)."""
    return {e["name"]: e["value"] for e in container.get("env", []) if "value" in e}


SAMPLE_POD_IP = "10.1.2.3"


def k8s_command(container: dict[str, Any]) -> list[str]:
    """The command as the kubelet runs it: `$(VAR)` replaced by the container's env var (Kubernetes'
    "Define a command and arguments": an undefined reference stays as written); status.podIP sampled."""
    env = env_of(container)
    for e in container.get("env", []):
        if e.get("valueFrom", {}).get("fieldRef", {}).get("fieldPath") == "status.podIP":
            env[e["name"]] = SAMPLE_POD_IP
    return [re.sub(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)", lambda m: env.get(m.group(1), m.group(0)), w)
            for w in container["command"]]


def paths_for(env: dict[str, str]) -> Paths:
    saved = dict(os.environ)
    try:
        for k in ("PGIAM_CONFIG", "PGIAM_STATE_DIR", "PGPASSFILE", "PGSERVICEFILE"):
            os.environ.pop(k, None)
        os.environ.update(env)
        return Paths.from_env()
    finally:
        os.environ.clear()
        os.environ.update(saved)


def test_sidecar_is_a_native_sidecar_with_http_probes_on_the_pod_address() -> None:
    """Issue 23: the kubelet probes the pod's address, so `pgiam run --http` binds $(POD_IP) (downward API);
    the startup, liveness and readiness probes GET pgiam's own paths on that port; Prometheus is told where."""
    from pgiam import health

    template = docs()["Deployment"]["spec"]["template"]
    spec = template["spec"]
    (side,) = spec["initContainers"]
    assert side["restartPolicy"] == "Always"
    argv = k8s_command(side)
    parses(argv)
    host, port = health.parse_address(argv[argv.index("--http") + 1])
    assert host == SAMPLE_POD_IP  # not loopback, which the kubelet cannot reach
    (named,) = [p for p in side["ports"] if p["containerPort"] == port]
    for probe, path in (("startupProbe", "/startup"), ("livenessProbe", "/liveness"), ("readinessProbe", "/readiness")):
        get = side[probe]["httpGet"]
        assert get["path"] == path and path in health.PATHS
        assert get["port"] == named["name"]
    notes = template["metadata"]["annotations"]
    assert notes["prometheus.io/port"] == str(port) and notes["prometheus.io/path"] == "/metrics"


def test_sidecar_and_app_share_the_files_as_the_same_user() -> None:
    d = docs()
    spec = d["Deployment"]["spec"]["template"]["spec"]
    (side,), (app,) = spec["initContainers"], spec["containers"]
    uid = spec["securityContext"]["runAsUser"]
    assert uid != 0 and spec["securityContext"]["runAsNonRoot"] is True
    assert side["securityContext"].get("runAsUser", uid) == app["securityContext"].get("runAsUser", uid) == uid
    volumes = {v["name"]: v for v in spec["volumes"]}
    shared = [m for m in side["volumeMounts"] if "emptyDir" in volumes[m["name"]]]
    (mount,) = shared
    assert any(m["name"] == mount["name"] and m["mountPath"] == mount["mountPath"] for m in app["volumeMounts"])
    se, ae = env_of(side), env_of(app)
    for var in ("PGPASSFILE", "PGSERVICEFILE"):
        assert se[var] == ae[var] and Path(se[var]).parent == Path(mount["mountPath"])
    paths = paths_for(se)
    assert paths.state_dir == Path(mount["mountPath"]) / "pgiam"  # created 0700 inside the world-writable emptyDir


def test_sidecar_config_comes_from_the_configmap_and_is_valid(tmp_path: Path) -> None:
    d = docs()
    spec = d["Deployment"]["spec"]["template"]["spec"]
    (side,) = spec["initContainers"]
    volumes = {v["name"]: v for v in spec["volumes"]}
    config = Path(env_of(side)["PGIAM_CONFIG"])
    (mount,) = [m for m in side["volumeMounts"] if Path(m["mountPath"]) == config.parent]
    assert volumes[mount["name"]]["configMap"]["name"] == d["ConfigMap"]["metadata"]["name"]
    text = d["ConfigMap"]["data"][config.name]
    f = tmp_path / config.name
    f.write_text(text)
    cfg = load_config(f, scope=NOWHERE)
    assert cfg.services and all(s.region for s in cfg.services.values())


def test_sidecar_uses_a_service_account_for_irsa() -> None:
    d = docs()
    spec = d["Deployment"]["spec"]["template"]["spec"]
    sa = d["ServiceAccount"]
    assert spec["serviceAccountName"] == sa["metadata"]["name"]
    assert sa["metadata"]["annotations"]["eks.amazonaws.com/role-arn"].startswith("arn:aws:iam::")


# ---------------------------------------------------------------- container image


def test_containerfile_is_slim_non_root_and_runs_pgiam_run() -> None:
    lines = [ln for ln in CONTAINERFILE.read_text().splitlines() if ln and not ln[0].isspace() and not ln.startswith("#")]
    instr = {ln.split()[0]: ln.split(None, 1)[1] for ln in lines if ln.split()[0].isupper()}
    assert instr["FROM"].startswith("python:") and instr["FROM"].endswith("-slim")
    user = instr["USER"].split(":")[0]
    assert user not in ("root", "0")
    entry, cmd = yaml.safe_load(instr["ENTRYPOINT"]), yaml.safe_load(instr["CMD"])
    parses(entry + cmd)


def test_containerfile_says_how_to_build_it_from_the_repository_root() -> None:
    """The build command in its header names this file from the repository root, the context `COPY . /src`
    installs from; and it says the tests do not build it (issue 22: one precise outcome, no "cannot" anywhere)."""
    text = CONTAINERFILE.read_text()
    header = [ln.removeprefix("#").strip() for ln in text.splitlines() if ln.startswith("#")]
    (build,) = [ln for ln in header if "podman build" in ln]
    assert f"podman build -f {CONTAINERFILE.relative_to(ROOT)} -t pgiam .   (or docker build)" in build
    assert "COPY . /src" in text.splitlines()
    assert "Not built by pgiam's tests: the machines they run on have no container runtime and no registry" in header


# ---------------------------------------------------------------- the headless locations


def test_headless_locations_agree_between_paths_and_the_fast_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """PGIAM_STATE_DIR / PGIAM_CONFIG (the examples' environment) are read by pgiam.paths and by the
    import-light fast path alike: both look at the same next-due file."""
    from pgiam import entry

    shared, cm = tmp_path / "shared", tmp_path / "cm"
    shared.mkdir()
    cm.mkdir()
    for k, v in {"PGIAM_STATE_DIR": shared, "PGIAM_CONFIG": cm / "config.toml", "PGPASSFILE": shared / "pgpass",
                 "PGSERVICEFILE": shared / "pg_service.conf"}.items():
        monkeypatch.setenv(k, str(v))
    paths = Paths.from_env()
    assert paths.state_dir == shared / "pgiam" and paths.config_file == cm / "config.toml"
    assert paths.certs_dir.parent == shared / "pgiam"
    for f in (paths.config_file, paths.pgpass, paths.service_file):
        f.write_text("")
    assert not entry.nothing_due()  # no next-due yet
    paths.state_dir.mkdir(mode=0o700)
    from pgiam.facts import render_next_due

    paths.next_due_file.write_bytes(render_next_due(int(time.time()) + 600, 300))
    assert entry.nothing_due()
    later = os.stat(paths.next_due_file).st_mtime + 1  # a ConfigMap update, newer than next-due: the full path
    os.utime(paths.config_file, (later, later))
    assert not entry.nothing_due()
