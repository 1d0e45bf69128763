"""Output that cannot be written, and output that must not be written raw (issue 20, repro 9)."""

from __future__ import annotations

import errno
import io
from pathlib import Path

from pgiam.cli import main
from pgiam.commands._common import Out
from pgiam.config import load_config
from pgiam.discover import DiscoverReport, Endpoint
from pgiam.errors import ExitCode
from pgiam.paths import Paths
from tests.conftest import SANDBOX_HOST


class Gone(io.StringIO):
    """A standard output that fails as a terminal that went away does: EIO on every write."""

    def write(self, s: str) -> int:
        raise OSError(errno.EIO, "Input/output error")

    def flush(self) -> None:
        raise OSError(errno.EIO, "Input/output error")


def test_eio_on_stdout_after_a_commit_is_a_file_error_not_a_bug(home: Path, ca_file: Path) -> None:
    """Issue 20 repro 9: `add` committed, then printing its report hit EIO: exit 70 "a bug in pgiam".
    Now exit 5, saying the output failed and that the change itself is done."""
    err = io.StringIO()
    code = main(["add", "prod", "--host", SANDBOX_HOST, "--user", "alice", "--sslrootcert", str(ca_file)],
                stdout=Gone(), stderr=err)
    assert code == ExitCode.FILE, err.getvalue()
    assert "pgiam: cannot write to standard output: Input/output error" in err.getvalue()
    assert "hint: " in err.getvalue() and "pgiam status" in err.getvalue()
    paths = Paths.from_env()
    assert "prod" in load_config(paths.config_file, scope=paths.scope).services


def test_discover_table_prints_no_control_characters_from_aws(home: Path) -> None:
    """Issue 20 repro 9: names and hosts from AWS answers went into the table raw, escape sequences and
    newlines included. Each cell now shows them escaped, on its one line."""
    from pgiam.commands.discover import _table

    bad = Endpoint("evil\x1b[2J\nname", "instance", "db.example.com\r\n\x07", 5432, True, None, None, "us-east-1",
                   "evil", "postgres")
    buf = io.StringIO()
    _table(Out(buf, io.StringIO()), DiscoverReport((bad,), (), 1))
    text = buf.getvalue()
    assert all(c == "\n" or c.isprintable() for c in text), repr(text)
    assert len(text.splitlines()) == 2
    assert "evil\\x1b[2J\\nname" in text and "db.example.com\\r\\n\\x07" in text
