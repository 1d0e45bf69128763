"""The unit tier: pgiam in process (run_cli, tests.conftest.in_process), real files under each test's HOME,
botocore signing with dummy keys. No test here starts pgiam as a process: those live in tests/e2e (issue 22).
Every test is marked `unit`; hypothesis properties and the modules below are also `slow`, which
`-m "not slow"` leaves out. README (Development) has the measured times."""

from __future__ import annotations

import functools
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest

HERE = Path(__file__).resolve().parent

# Whole modules of the slow kind, and why.
SLOW_MODULES = {
    "test_sigv4check.py": "a botocore session and a token per case",
    "test_ldapd.py": "a real LDAP responder on a socket per test",
}


# Issue 22: a run of this tier alone keeps its files (each test's HOME, via tmp_path) on a RAM file system
# when the machine has one. On the shared 2-core machine the same 90 tests of five CLI files took 12-14 s with
# their files on disk and 7-8 s on /dev/shm: pgiam fsyncs every file and directory it writes (2,556
# fsyncs in this tier), and each waited for the disk queue of everyone else's work. The files, modes, locks and
# renames are as real there; what fsync buys across a crash is tests/reliability's business (on disk). An
# explicit TMPDIR or --basetemp is left alone, and so is a run that includes other tiers.
RAM = Path("/dev/shm")


def _unit_tier_only(config: pytest.Config) -> bool:
    for arg in config.args:
        path = Path(config.invocation_params.dir, arg.split("::")[0]).resolve()
        if path != HERE and HERE not in path.parents:
            return False
    return bool(config.args)


def pytest_configure(config: pytest.Config) -> None:
    if not _unit_tier_only(config):
        return
    _cache_compiled_modules(config)
    if hasattr(config, "workerinput") or "TMPDIR" in os.environ or config.option.basetemp:
        return
    if not sys.platform.startswith("linux"):
        return
    try:
        fs = os.statvfs(RAM)
    except OSError:
        return
    roomy = fs.f_bavail * fs.f_frsize >= 256 << 20  # a run leaves ~6 MB, pytest keeps the last three runs
    usable = os.access(RAM, os.W_OK | os.X_OK) and not fs.f_flag & (os.ST_NOEXEC | os.ST_RDONLY)  # helpers run from it
    if roomy and usable:
        os.environ["TMPDIR"] = str(RAM)  # pytest's tmp_path root (tempfile.gettempdir()); the workers inherit it
        tempfile.tempdir = None  # forget a value computed before


def _cache_compiled_modules(config: pytest.Config) -> None:
    """Issue 22: with PYTHONDONTWRITEBYTECODE set (as on the shared test machine), every worker compiled pgiam,
    the assertion-rewritten test modules and hypothesis afresh at every run: ~12 s of CPU of the tier's ~44.
    Their bytecode is kept in pytest's own cache directory (.pytest_cache, which git ignores; pytest writes it
    whatever that variable says), never beside the sources; `-p no:cacheprovider` keeps nothing. Python and
    pytest check each cached file against its source's mtime and size before using it (PEP 3147, PEP 552)."""
    cache = getattr(config, "cache", None)
    if not sys.dont_write_bytecode or cache is None or sys.pycache_prefix is not None:
        return
    sys.pycache_prefix = str(cache.mkdir("pycache"))  # this process only: pgiam's child processes are unaffected
    sys.dont_write_bytecode = False


@pytest.fixture(autouse=True)
def untranslated(monkeypatch: pytest.MonkeyPatch) -> None:
    """Messages in the language the tests assert (LANGUAGE=C: GNU gettext's and Python's gettext.find look no
    further). It also spares the tier's ~300 in-process commands argparse's catalogue probing: building pgiam's
    parser asks gettext 87 times, each looking for a catalogue of LANG (9 ms a parser with LANG=C.UTF-8, 6 ms)."""
    monkeypatch.setenv("LANGUAGE", "C")


@pytest.fixture(autouse=True)
def no_pgiam_process(monkeypatch: pytest.MonkeyPatch) -> None:
    """The rule of this tier, kept: a test that would start pgiam's CLI as a process fails here (run it in
    process, or put it in tests/e2e). Helpers at the edges (a stand-in crontab, openssl, a shell) may run."""
    real = subprocess.Popen.__init__

    def guarded(self: subprocess.Popen[Any], args: Any, *rest: Any, **kw: Any) -> None:
        words = [os.fsdecode(a) for a in ([args] if isinstance(args, (str, bytes, os.PathLike)) else args)]
        if words and (os.path.basename(words[0]) == "pgiam" or "pgiam" in words[1:4] and "-m" in words[1:3]):
            raise AssertionError(f"a unit test started pgiam as a process ({words[:4]}): use run_cli or "
                                 "tests.conftest.in_process, or move the test to tests/e2e")
        real(self, args, *rest, **kw)

    monkeypatch.setattr(subprocess.Popen, "__init__", guarded)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    mine = functools.cache(lambda path: HERE in path.resolve().parents)  # one resolve() per file, not per test
    for item in items:
        if not mine(Path(item.path)):
            continue
        item.add_marker(pytest.mark.unit)
        if Path(item.path).name in SLOW_MODULES or getattr(getattr(item, "obj", None), "is_hypothesis_test", False):
            item.add_marker(pytest.mark.slow)
