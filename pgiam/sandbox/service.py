"""The sandbox as pgiam services: start the cluster, add its services through the same path as
`pgiam add`, and return only once psql itself connects with what was written."""

from __future__ import annotations

import os
import subprocess
import time
from dataclasses import dataclass

from pgiam import config as cfg
from pgiam import services
from pgiam.errors import EnvironmentProblem
from pgiam.paths import Paths

NAME = "sandbox"


@dataclass(frozen=True)
class UpResult:
    local_port: int
    endpoint_host: str
    notices: tuple[str, ...]


def up(paths: Paths, port: int | None) -> UpResult:
    from pgiam import token
    from pgiam.sandbox import cluster

    info = cluster.up(paths, port)
    svc = cfg.Service(
        name=NAME, host=info.endpoint_host, port=info.endpoint_port, user=info.role, region=info.region,
        dbname="postgres", profile=info.aws_profile, via=cfg.Via("127.0.0.1", info.local_port),
        sslrootcert=str(info.ca_file), aws_credentials_file=str(info.aws_credentials_file),
    )
    # The same libpq checks as `add`; its notes on clients that cannot read a --via entry are for the
    # user's own services: `sandbox up` points to the README's Clients section in one line instead.
    svc = services.with_tls_defaults(paths, svc, [])
    result = services.add(paths, svc, explicit_region=True, now=time.time(), mint=token.mint, replace=True)
    wait_for_psql(paths, NAME, str(info.log_file))
    return UpResult(info.local_port, info.endpoint_host, tuple(result.notices))


def wait_for_psql(paths: Paths, name: str, log_file: str, attempts: int = 20) -> None:
    """Return once `psql service=NAME` connects; psql's last error otherwise."""
    env = dict(os.environ, PGSERVICEFILE=str(paths.service_file), PGPASSFILE=str(paths.pgpass), PGCONNECT_TIMEOUT="5")
    env.pop("PGPASSWORD", None)
    last = ""
    for _ in range(attempts):
        try:
            p = subprocess.run(["psql", f"service={name}", "-XAtqc", "select current_user"], env=env,
                               capture_output=True, text=True, timeout=15, stdin=subprocess.DEVNULL)
        except FileNotFoundError:
            raise EnvironmentProblem("psql is not installed", "install it: sudo apt-get install postgresql-client") from None
        if p.returncode == 0:
            return
        last = p.stderr.strip().splitlines()[-1] if p.stderr.strip() else f"exit {p.returncode}"
        time.sleep(0.25)
    raise EnvironmentProblem(f"the sandbox started but psql cannot connect: {last}", f"see the log {log_file}")


@dataclass(frozen=True)
class DownResult:
    stopped: bool  # a sandbox was running
    removed: bool  # the `sandbox` service was configured, and is no more


def down(paths: Paths) -> DownResult:
    """Stop the sandbox and remove its service; say which of the two there was."""
    from pgiam.config import load_config
    from pgiam.sandbox import cluster

    stopped = cluster.down(paths)
    removed = NAME in load_config(paths.config_file, scope=paths.scope).services
    if removed:
        services.remove(paths, NAME, time.time())
    return DownResult(stopped, removed)
