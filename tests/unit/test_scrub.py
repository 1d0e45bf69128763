"""Issue 19: the one scrubber at the output boundary (pgiam.scrub): secrets go, pgiam's own texts stay."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from pgiam.scrub import RedactingStream, redact, redact_json, scrub

ROOT = Path(__file__).resolve().parents[2]
KEY = "AKIAIOSFODNN7LEAKED1"
SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYLEAKEDKEY1"
SESSION = "IQoJb3JpZ2luX2VjEFAKE/FAKEFAKEFAKEFAKE+FAKEFAKEFAKEFAKEFAKEFAKE0123456789abcdefghijklmnopqrstuvwxyzABCDEFGH" * 2
JWT = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJzeXN0ZW06c2VydmljZWFjY291bnQ6ZGVmYXVsdDpwZ2lhbSJ9.c2lnbmF0dXJlLXNpZ25hdHVyZQ"
RDS = ("db.cluster-abc.us-west-2.rds.amazonaws.com:5432/?Action=connect&DBUser=alice&X-Amz-Algorithm=AWS4-HMAC-SHA256"
       f"&X-Amz-Credential={KEY}%2F20261203%2Fus-west-2%2Frds-db%2Faws4_request&X-Amz-Date=20261203T120000Z"
       "&X-Amz-Expires=900&X-Amz-SignedHeaders=host&X-Amz-Signature=" + "ab12" * 16)


@pytest.mark.parametrize("secret", [KEY, SECRET, SESSION, JWT, RDS])
def test_each_secret_shape_is_redacted_where_it_stands(secret: str) -> None:
    text = f"helper said: {secret}\nnext line"
    out = redact(text)
    assert "[redacted]" in out and out.endswith("\nnext line")
    for piece in (secret[:16], secret[-16:]):
        assert piece not in out


@pytest.mark.parametrize("text", [
    "arn:aws:sts::123456789012:assumed-role/AWSReservedSSO_AdministratorAccess_0123456789abcdef/alice",
    "arn:aws:rds-db:us-east-1:123456789012:dbuser:db-ABCDEFGHIJKLMNOPQRSTUVWXY1/alice",
    "arn:aws:rds-db:us-east-1:123456789012:dbuser:cluster-ABCDEFGHIJKLMNOPQRSTUVWXY1/alice",
    "/home/Alice/Projects2026/SomeDirectory/config.toml",
    "/tmp/pytest-of-root/pytest-33/test_credential_process_progra0/home/no-such-helper",
    "abcdefghijklmnopqrstuvwxyz0123456789.dsql.us-east-1.on.aws",
    "sha256:" + "0123456789abcdef" * 4,
    "export PGPASSFILE=/home/alice/.pgpass PGSERVICEFILE=/home/alice/.pg_service.conf",
])
def test_pgiams_own_words_pass_unchanged(text: str) -> None:
    assert redact(text) == text


def test_hook_scripts_completions_and_help_pass_unchanged(run_cli) -> None:  # type: ignore[no-untyped-def]
    """The boundary redacts every line: nothing pgiam writes itself may look like a secret to it."""
    for f in (ROOT / "completions").iterdir():
        text = f.read_text()
        assert redact(text) == text, f
    for shell in ("bash", "zsh", "fish"):
        code, out, _ = run_cli("hook", shell)
        assert code == 0 and out and redact(out) == out, shell
    code, out, _ = run_cli("--help")
    assert code == 0 and redact(out) == out


def test_json_strings_are_redacted_one_by_one() -> None:
    """A JSON escape (`\\n` before a key id) must not hide a secret from the scrubber."""
    got = redact_json({"error": f"line\n{KEY}", "list": [SECRET], "n": 1, "none": None})
    assert got == {"error": "line\n[redacted]", "list": ["[redacted]"], "n": 1, "none": None}


def test_the_stream_redacts_whole_lines_written_in_pieces() -> None:
    raw = io.StringIO()
    s = RedactingStream(raw)
    s.write(KEY[:10])
    s.write(KEY[10:] + " and more\npartial ")
    assert raw.getvalue() == "[redacted] and more\n"
    s.write(SECRET)
    s.flush()
    assert raw.getvalue() == "[redacted] and more\npartial [redacted]"
    assert not hasattr(s, "buffer")  # no way around it for bytes


def test_scrub_makes_one_short_line() -> None:
    out = scrub(f"error: key {KEY}\n\x1b[31m" + "x " * 300)
    assert KEY not in out and "\n" not in out and "\x1b" not in out and len(out) <= 200
