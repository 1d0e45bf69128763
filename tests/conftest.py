"""Shared fixtures: every test runs with HOME, XDG_*, PG* and AWS_* pointed at its own tmp dir."""

from __future__ import annotations

import contextlib
import functools
import io
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

# Dummy static credentials: tokens are signed locally, no AWS account is involved.
ACCESS_KEY = "AKIAPGIAMTESTEXAMPLE"
SECRET_KEY = "pgiamTestSecretKey/ExampleOnly0123456789ab"

SANDBOX_HOST = "db.cluster-abc123.us-west-2.rds.amazonaws.com"


@functools.cache
def _botocore_loader() -> Any:
    import botocore.loaders

    return botocore.loaders.create_loader()


def botocore_session() -> Any:
    """A new botocore Session whose data loader (botocore.loaders, which caches what it parsed) is shared by
    the whole test process: a reference client then costs ~13 ms, not the ~130 ms of parsing botocore's
    JSON models again (endpoints, partitions, the RDS model) for every session (issue 22). Credentials,
    configuration and clients stay the new session's own."""
    import botocore.session

    session = botocore.session.Session()
    session.register_component("data_loader", _botocore_loader())
    return session


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


# Issue 22: the order files are handed to pytest-xdist's two workers (`--dist loadfile`: one whole file at a
# time). A file that takes a minute or more, handed out last, is the whole run's tail while the other worker
# idles; pytest-xdist's own order (most tests first) handed out exactly those last, as they have few tests.
# These go first, longest first (seconds of test time in a `--durations=0` run of the suite, 2-core machine
# under load, 2026-12-03); with --no-loadscope-reorder (pyproject.toml) every other file keeps its collected
# place: e2e, reliability, then the many short unit files, which fill the end evenly.
FIRST = (
    "tests/e2e/test_clients.py",  # 169 s: every client recipe across a token rotation, pgAdmin 4
    "tests/e2e/test_run.py",  # 129 s: `run --ready` across short-lived credentials
    "tests/reliability/test_kill_journal.py",  # 108 s: a kill at every journal step, per command
    "tests/e2e/test_pgbouncer.py",  # 91 s: pgbench through pgbouncer across three rotations
    "tests/reliability/test_trust.py",  # 86 s
    "tests/reliability/test_aws_failures.py",  # 66 processes, started side by side
    "tests/e2e/test_aws_messages.py",  # 66 s
    "tests/e2e/test_credentials.py",  # 60 s
    "tests/e2e/test_doctor.py",  # 57 s
    "tests/e2e/test_discover.py",  # 47 s
    "tests/reliability/test_secrets.py",  # 35 s
    "tests/e2e/test_dsql.py",  # 29 s
    "tests/e2e/test_aws_cli.py",  # 29 s
    "tests/e2e/test_psql.py",  # 26 s
    "tests/reliability/test_faults.py",  # 25 s
    "tests/e2e/test_completions.py",  # 24 s
    "tests/e2e/test_wheel.py",  # 24 s
    "tests/e2e/test_sandbox_cluster.py",  # 23 s
    "tests/reliability/test_hostile.py",  # 22 s
    "tests/reliability/test_crash.py",  # 17-20 s: 200 SIGKILLs during refreshes, one test
    "tests/reliability/test_concurrency.py",  # 17 s: fifty processes, one test
    "tests/e2e/test_sandbox_cli.py",  # 17 s: one test
)


# Then, among the unit files (after every e2e and reliability file, as collected), these first, longest
# first: a run of tests/unit alone then ends on short files on both workers (issue 22). Seconds of test time
# plus ~3 ms per test, 2-worker run of the tier, 2026-12-04.
UNIT_FIRST = (
    "tests/unit/test_pgpass.py",  # 3.6 s: the merge_some properties
    "tests/unit/test_cli.py",  # 1.8 s
    "tests/unit/test_docs_drift.py",  # 1.7 s: 481 small tests
    "tests/unit/test_config_plain.py",  # 1.6 s
    "tests/unit/test_timer.py",  # 1.5 s
    "tests/unit/test_config_edits.py",  # 1.4 s
    "tests/unit/test_config_validation.py",  # 1.4 s
    "tests/unit/test_env_url.py",  # 1.1 s
    "tests/unit/test_token_callback.py",  # 1.0 s
    "tests/unit/test_uninstall.py",  # 1.0 s
    "tests/unit/test_presign.py",  # 0.9 s
    "tests/unit/test_certs.py",  # 0.9 s
)


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The files in FIRST before all others, in FIRST's order, then the others as collected, except that the
    unit files come in UNIT_FIRST's order first; each file's tests stay together and in order."""
    root = Path(__file__).resolve().parent.parent
    rank = {name: i for i, name in enumerate(FIRST)}
    unit_rank = {name: i for i, name in enumerate(UNIT_FIRST)}

    @functools.cache
    def of_file(path: Path) -> tuple[int, int]:  # one resolve() per file, not per test: every worker sorts every item
        try:
            name = path.resolve().relative_to(root).as_posix()
        except ValueError:
            return len(FIRST), 0
        if name in rank:
            return rank[name], 0
        return len(FIRST), (unit_rank.get(name, len(UNIT_FIRST)) + 1 if name.startswith("tests/unit/") else 0)

    items.sort(key=lambda item: of_file(Path(item.path)))  # stable: the rest keep their collected order
