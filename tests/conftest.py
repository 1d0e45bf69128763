"""Shared fixtures: every test runs with HOME, XDG_*, PG* and AWS_* pointed at its own tmp dir."""

from __future__ import annotations

import contextlib
import io
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

# Dummy static credentials: tokens are signed locally, no AWS account is involved.
ACCESS_KEY = "AKIAPGIAMTESTEXAMPLE"
SECRET_KEY = "pgiamTestSecretKey/ExampleOnly0123456789ab"

SANDBOX_HOST = "db.cluster-abc123.us-west-2.rds.amazonaws.com"


@pytest.fixture(autouse=True)
def isolated_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "home"
    home.mkdir()
    for var in list(os.environ):
        if var.startswith(("AWS_", "PG", "XDG_")) or var in ("PGIAM_LOCK_WAIT",):
            monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / ".config"))
    monkeypatch.setenv("XDG_STATE_HOME", str(home / ".local" / "state"))
    monkeypatch.setenv("XDG_DATA_HOME", str(home / ".local" / "share"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(home / ".cache"))
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", ACCESS_KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(home / ".aws" / "config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(home / ".aws" / "credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    return home


@pytest.fixture
def home(isolated_env: Path) -> Path:
    return isolated_env


@contextlib.contextmanager
def environment(env: dict[str, str], cwd: Path | str | None = None) -> Iterator[None]:
    """os.environ is exactly `env` (and the working directory `cwd`) inside, as for subprocess.run(env=, cwd=)."""
    saved, here = dict(os.environ), os.getcwd()
    os.environ.clear()
    os.environ.update(env)
    if cwd is not None:
        os.chdir(cwd)
    try:
        yield
    finally:
        os.chdir(here)
        os.environ.clear()
        os.environ.update(saved)


def in_process(*argv: str, env: dict[str, str] | None = None, cwd: Path | str | None = None) -> subprocess.CompletedProcess[str]:
    """`pgiam ARGV` through pgiam.cli.main in this process, as `subprocess.run([pgiam, *argv], env=env, cwd=cwd)`
    would run it (each command makes its own botocore sessions): the unit tier starts no pgiam process."""
    from pgiam.cli import main

    out, err = io.StringIO(), io.StringIO()
    with environment(dict(os.environ) if env is None else env, cwd):
        code = main(list(argv), stdout=out, stderr=err)
    return subprocess.CompletedProcess(["pgiam", *argv], code, out.getvalue(), err.getvalue())


@pytest.fixture
def run_cli():
    """run_cli(argv) -> (code, stdout, stderr), through pgiam.cli.main."""
    from pgiam.cli import main

    def run(*argv: str) -> tuple[int, str, str]:
        out, err = io.StringIO(), io.StringIO()
        code = main(list(argv), stdout=out, stderr=err)
        return code, out.getvalue(), err.getvalue()

    return run


@pytest.fixture
def ca_file(home: Path) -> Path:
    """Any existing file stands in for a CA bundle in unit tests (libpq is not involved)."""
    p = home / "ca.pem"
    p.write_text("-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n")
    return p


@pytest.fixture(scope="session")
def moto_url() -> Iterator[str]:
    """One real moto server (STS, RDS, DSQL, IAM …) for the whole run; tests reset it as they need."""
    from tests.awsfake import moto_server

    with moto_server() as url:
        yield url
