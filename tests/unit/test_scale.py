"""Issue 25: a command reads and parses each file once, and decodes only the tokens of the services it was asked about."""

from __future__ import annotations

import os
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pgiam import scrub, store, tokeninfo
from pgiam.errors import ExitCode

_OPENS: list[Counter[str]] = []


def _audit(event: str, args: tuple[object, ...]) -> None:
    if event == "open" and _OPENS and isinstance(args[0], (str, bytes, os.PathLike)):
        flags = args[2] if len(args) > 2 and isinstance(args[2], int) else 0
        if not flags & (os.O_WRONLY | os.O_RDWR):
            _OPENS[-1][os.path.basename(os.fsdecode(args[0]))] += 1


sys.addaudithook(_audit)  # audit hooks cannot be removed: this one counts only while a test asks


@pytest.fixture
def reads(monkeypatch: pytest.MonkeyPatch) -> Iterator[Counter[str]]:
    """File names opened for reading, until the command commits its writes (whose rollback copy is fileio's)."""
    counter: Counter[str] = Counter()
    commit = store.commit

    def stop_counting(*args, **kwargs):  # type: ignore[no-untyped-def]
        _OPENS.clear()
        return commit(*args, **kwargs)

    monkeypatch.setattr(store, "commit", stop_counting)
    _OPENS.append(counter)
    yield counter
    _OPENS.clear()


@pytest.fixture
def three(run_cli, home: Path) -> None:
    """Three services with tokens, entries and state in place."""
    cfg = home / ".config" / "pgiam" / "config.toml"
    cfg.parent.mkdir(parents=True)
    cfg.write_text("".join(f'[services.s{i}]\nhost = "db{i}.cluster-abc.us-east-1.rds.amazonaws.com"\n'
                           'port = 5432\nuser = "app"\n\n' for i in range(3)))
    assert run_cli("refresh")[0] == ExitCode.OK


FILES = ("config.toml", ".pgpass", ".pg_service.conf", "state.json")


@pytest.mark.parametrize("argv", [("list",), ("status",), ("status", "s1"), ("refresh", "s1"), ("refresh",),
                                  ("refresh", "--if-needed")])
def test_each_file_is_read_once_per_command(run_cli, three: None, reads: Counter[str], argv: tuple[str, ...]) -> None:
    """Issue 25: config.toml, ~/.pgpass, the service file and state.json are each read (and parsed) at most
    once by a command; the snapshot is passed down (0.2.0 read config.toml three times in `refresh NAME`)."""
    code, _, err = run_cli(*argv)
    assert code == ExitCode.OK, err
    assert {f: reads[f] for f in FILES if reads[f] > 1} == {}
    assert reads["config.toml"] == 1


@pytest.mark.parametrize("argv", [("list",), ("list", "--json"), ("status",), ("status", "s1"), ("status", "--json")])
def test_list_and_status_never_import_botocore(run_cli, three: None, monkeypatch: pytest.MonkeyPatch,
                                               argv: tuple[str, ...]) -> None:
    """Issue 25: `list` and `status` read files only; botocore's import alone costs more than they do. Every
    botocore module is made unimportable (None in sys.modules) while they run."""
    import botocore.session  # noqa: F401  # so that its submodules are all in sys.modules to be blocked

    for name in [m for m in sys.modules if m == "botocore" or m.startswith("botocore.")]:
        monkeypatch.setitem(sys.modules, name, None)
    with pytest.raises(ImportError):
        import botocore.credentials  # noqa: F401  # the block holds
    code, out, err = run_cli(*argv)
    assert code == ExitCode.OK, err
    assert "s1" in out


def test_refresh_name_and_status_name_decode_only_their_token(run_cli, three: None, monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 25: `refresh --if-needed s1` and `status s1` decode s1's token only (0.2.0 decoded every token in
    ~/.pgpass, twice, to refresh one service); `refresh s1` decodes none (the new token's signing time comes
    from the signer); `status` decodes each token once."""
    decoded: list[str] = []
    original = tokeninfo.decode

    def counting(token: str) -> tokeninfo.TokenInfo:
        info = original(token)
        decoded.append(info.host.split(".")[0])
        return info

    monkeypatch.setattr(tokeninfo, "decode", counting)
    for argv, expected in [(("refresh", "s1"), []), (("refresh", "--if-needed", "s1"), ["db1"]),
                           (("status", "s1"), ["db1"]), (("status",), ["db0", "db1", "db2"])]:
        decoded.clear()
        assert run_cli(*argv)[0] == ExitCode.OK
        assert decoded == expected, argv


_PIECES = st.sampled_from(["AKIA", "ASIA", "ABCDEFGHIJKLMNOP", "0123456789", "abcdefghij", "+/=", "x-amz-", "X-Amz-Credential=",
                           "X-AMZ-SIGNATURE=a", "eyJ", "eyJhbGciOiJIUzI1.eyJzdWIiOiIx", " ", "\n", ".", "-", "_", "\"", "é", "K"])


@settings(max_examples=200, deadline=None)
@given(st.lists(_PIECES, max_size=30).map("".join))
def test_the_scrubbers_quick_look_never_skips_a_secret(text: str) -> None:
    """Issue 25: pgiam.scrub skips its patterns only when none of them can match (the patterns scan every
    position of every line pgiam prints); the result is what all the patterns give."""
    assert scrub.redact(text) == scrub._redact_all(text)


def test_list_output_of_many_services_is_left_as_it_is() -> None:
    lines = "".join(f"s{i}\tapp@db{i}.cluster-abc.us-east-1.rds.amazonaws.com:5432 db=app (us-east-1, profile default)\n"
                    for i in range(1000))
    assert not scrub._may_hold_secret(lines) and scrub.redact(lines) == lines
