"""`pgiam add` / `remove` keep the user's config.toml: comments, order and layout survive, and
`[defaults]` stays live for services that did not set their own (issue 10)."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from pgiam.config import HEADER, load_config, render_with_service, render_without_service
from pgiam.fileio import NOWHERE

HOST = "db.cluster-abc.us-west-2.rds.amazonaws.com"

HAND_WRITTEN = """\
# My databases. Do not lose this comment.

[defaults]
profile = "corp-sso"      # everyone signs with this
renewal_margin = 300

# ---- production ----
[services.prod]
# the writer, not the reader!
host = "db.cluster-abc.us-west-2.rds.amazonaws.com"
user = "alice"            # read-only role
port = 5432

[services.stage]   # staging
host = "db.cluster-def.us-west-2.rds.amazonaws.com"
user = "bob"
"""

# What pgiam 0.1 wrote (tomli-w): a header, no comments of the user's, port as an integer.
WRITTEN_BY_0_1 = """\
# pgiam configuration: edit freely, or use `pgiam add` / `pgiam remove`.
[defaults]
profile = "corp-sso"

[services.prod]
host = "db.cluster-abc.us-west-2.rds.amazonaws.com"
port = 5432
user = "alice"
profile = "corp-sso"
sslrootcert = "/home/alice/.local/share/pgiam/certs/global-bundle.pem"
"""


def config_path(home: Path) -> Path:
    return home / ".config" / "pgiam" / "config.toml"


def write_config(home: Path, text: str) -> Path:
    p = config_path(home)
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(text)
    return p


def add(run_cli: Any, ca_file: Path, name: str, *extra: str) -> None:
    code, out, err = run_cli("add", name, "--host", HOST, "--user", "carol", "--sslrootcert", str(ca_file),
                             "--no-refresh", *extra)
    assert code == 0, err


def test_add_and_remove_keep_every_comment_and_the_order(home: Path, run_cli: Any, ca_file: Path) -> None:
    """Reproduces issue 10: add/remove rewrote config.toml through tomli-w and dropped every comment."""
    p = write_config(home, HAND_WRITTEN)
    add(run_cli, ca_file, "new")
    after_add = p.read_text()
    assert after_add.startswith(HAND_WRITTEN), "everything the user wrote is kept byte for byte"
    assert tomllib.loads(after_add)["services"]["new"]["user"] == "carol"
    assert run_cli("remove", "new")[0] == 0
    assert p.read_text() == HAND_WRITTEN
    assert run_cli("remove", "stage")[0] == 0
    assert p.read_text() == HAND_WRITTEN.split("[services.stage]")[0].rstrip("\n") + "\n"


def test_replace_keeps_the_comments_inside_the_service(home: Path, run_cli: Any, ca_file: Path) -> None:
    p = write_config(home, HAND_WRITTEN)
    add(run_cli, ca_file, "prod", "--replace", "--dbname", "app")
    text = p.read_text()
    for comment in ("# the writer, not the reader!", "# read-only role", "# ---- production ----", "# staging"):
        assert comment in text
    prod = tomllib.loads(text)["services"]["prod"]
    assert (prod["user"], prod["dbname"]) == ("carol", "app")
    assert text.index("[services.prod]") < text.index("[services.stage]"), "the order is kept"


def test_a_new_file_gets_the_header(home: Path, run_cli: Any, ca_file: Path) -> None:
    add(run_cli, ca_file, "first")
    text = config_path(home).read_text()
    assert text.startswith(HEADER)
    assert run_cli("remove", "first")[0] == 0
    assert load_config(config_path(home), scope=NOWHERE).services == {}


def test_defaults_profile_is_read_live(home: Path, run_cli: Any, ca_file: Path) -> None:
    """A service added without --profile follows later changes of [defaults] profile; one with its own keeps it."""
    p = write_config(home, '[defaults]\nprofile = "old-sso"\n')
    add(run_cli, ca_file, "follows")
    add(run_cli, ca_file, "pinned", "--profile", "own", "--port", "5433")  # its own ~/.pgpass line (issue 20)
    assert "profile" not in tomllib.loads(p.read_text())["services"]["follows"], "the default is not copied"
    p.write_text(p.read_text().replace('profile = "old-sso"', 'profile = "new-sso"'))
    code, out, err = run_cli("status", "--json")
    assert code == 0, err
    profiles = {r["name"]: r["profile"] for r in json.loads(out)["services"]}
    assert profiles == {"follows": "new-sso", "pinned": "own"}
    p.write_text(p.read_text().replace('[defaults]\nprofile = "new-sso"\n', ""))
    profiles = {r["name"]: r["profile"] for r in json.loads(run_cli("list", "--json")[1])["services"]}
    assert profiles == {"follows": None, "pinned": "own"}


def test_defaults_region_is_read_live(home: Path, run_cli: Any) -> None:
    """A service whose host names no region (a hand-written entry, e.g. a VPC endpoint alias) takes
    [defaults] region at every read, not a copy made earlier. (`add` itself refuses such hosts now.)"""
    p = write_config(home, '[defaults]\nregion = "eu-west-1"\n\n[services.ip]\nhost = "10.0.0.5"\nuser = "u"\n')
    assert json.loads(run_cli("list", "--json")[1])["services"][0]["region"] == "eu-west-1"
    p.write_text(p.read_text().replace("eu-west-1", "eu-central-1"))
    assert json.loads(run_cli("list", "--json")[1])["services"][0]["region"] == "eu-central-1"


def test_a_config_written_by_pgiam_0_1_keeps_working(home: Path, run_cli: Any, ca_file: Path) -> None:
    p = write_config(home, WRITTEN_BY_0_1)
    assert load_config(p, scope=NOWHERE).services["prod"].profile == "corp-sso"
    add(run_cli, ca_file, "second")
    assert p.read_text().startswith(WRITTEN_BY_0_1)
    assert run_cli("remove", "prod")[0] == 0
    assert set(load_config(p, scope=NOWHERE).services) == {"second"}


def test_inline_and_dotted_service_tables_are_edited_too() -> None:
    """Other spellings of the same TOML stay valid and keep their comments."""
    inline = '[services]  # mine\nprod = { host = "h.example.com", user = "a" }  # inline\n'
    out = render_with_service(inline, "prod", {"host": "h.example.com", "user": "b", "port": 5432})
    assert "# mine" in out and tomllib.loads(out)["services"]["prod"] == {"host": "h.example.com", "user": "b", "port": 5432}
    assert tomllib.loads(render_without_service(inline, "prod")).get("services", {}) == {}


def test_an_edit_tomlkit_would_get_wrong_is_refused(home: Path, run_cli: Any, ca_file: Path) -> None:
    """Dotted keys (`services.prod.host = ...`) come out of tomlkit rearranged into other data: pgiam
    checks what it is about to write and refuses instead, changing nothing."""
    dotted = f'services.prod.host = "{HOST}"  # dotted\nservices.prod.user = "a"\n'
    p = write_config(home, dotted)
    code, out, err = run_cli("add", "other", "--host", HOST, "--user", "o", "--sslrootcert", str(ca_file), "--no-refresh")
    assert code == 3, err
    assert f"{p}: cannot edit [services.other] in place" in err and "hint: write each service as its own" in err
    assert p.read_text() == dotted


# ---------------------------------------------------------------- properties

NAMES = st.sampled_from(["prod", "stage", "a.b", "x@y", "db-1", "q+r"])
COMMENT = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=15).map(lambda s: "# " + s)
VALUE = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E, blacklist_characters='"\\'), min_size=1, max_size=10)


@st.composite
def configs(draw: st.DrawFn) -> tuple[str, list[str]]:
    """A hand-written config: comments anywhere, blank lines, keys in any order, trailing comments."""
    lines: list[str] = draw(st.lists(COMMENT, max_size=2))
    defaults = ["[defaults]" + draw(st.sampled_from(["", "  # d"])), 'region = "us-east-1"' + draw(st.sampled_from(["", "  # r"]))]
    where = draw(st.sampled_from(["none", "first", "last"]))
    if where == "first":
        lines += defaults
    if draw(st.booleans()):
        lines += ["[services]  # an explicit header", "# with a comment"]
    names = draw(st.lists(NAMES, unique=True, max_size=3))
    for n in names:
        lines += draw(st.lists(COMMENT, max_size=1)) + draw(st.sampled_from([[], [""]]))
        key = f'"{n}"' if any(c in n for c in ".@+") else n
        lines.append(f"[services.{key}]")
        for k in draw(st.permutations(["host", "user", "port"])):
            v = "5432" if k == "port" else f'"{draw(VALUE)}"'
            lines += draw(st.lists(COMMENT, max_size=1))
            lines.append(f"{k} = {v}" + draw(st.sampled_from(["", "   # c"])))
    if where == "last":
        lines += [""] + defaults
    newline = draw(st.sampled_from(["\n", "\r\n"]))
    return newline.join(lines) + newline, names


TABLE = {"host": "new.example.com", "user": "newuser", "port": 6543}


@settings(max_examples=60, deadline=None)
@given(configs(), NAMES)
def test_set_changes_only_that_service(cfg: tuple[str, list[str]], name: str) -> None:
    text, names = cfg
    out = render_with_service(text, name, TABLE)
    before, after = tomllib.loads(text), tomllib.loads(out)
    expected: dict[str, Any] = json.loads(json.dumps(before))
    expected.setdefault("services", {})[name] = TABLE
    assert after == expected
    if name not in names and "[defaults]" not in text.split("[services")[-1]:
        assert out.startswith(text.rstrip("\r\n")), "a new service is appended; the user's bytes come first"
    if "\r\n" in text:
        assert out.count("\n") == out.count("\r\n"), "a CRLF file stays CRLF"
    kept = [ln for ln in text.splitlines() if "#" in ln and not ln.lstrip().startswith(("host", "user", "port"))]
    out_lines = out.splitlines()
    assert [ln for ln in out_lines if ln in kept] == [ln for ln in text.splitlines() if ln in kept]


@settings(max_examples=60, deadline=None)
@given(configs(), NAMES)
def test_add_then_remove_gives_the_file_back(cfg: tuple[str, list[str]], name: str) -> None:
    text, names = cfg
    if name in names or not text.strip():
        return  # a new file gets pgiam's header, which stays
    assert render_without_service(render_with_service(text, name, TABLE), name) == text


@settings(max_examples=60, deadline=None)
@given(configs(), st.data())
def test_remove_drops_that_table_and_nothing_else(cfg: tuple[str, list[str]], data: st.DataObject) -> None:
    text, names = cfg
    if not names:
        return
    name = data.draw(st.sampled_from(names))
    out = render_without_service(text, name)
    before = tomllib.loads(text)
    del before["services"][name]
    after = tomllib.loads(out)
    for data in (before, after):
        if data.get("services") == {}:
            del data["services"]  # an explicit [services] header the user wrote stays, empty
    assert after == before
    # Every line outside the removed table's span is kept, in order.
    lines = text.splitlines()
    key = f'"{name}"' if any(c in name for c in ".@+") else name
    start = lines.index(f"[services.{key}]")
    end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("[")), len(lines))
    if end < len(lines) and not lines[end].startswith("[services."):
        return  # the table before [defaults]: the lines checked below belong to the layout tomlkit keeps
    # Comments and blank lines just above the next header belong to the removed table in TOML's grammar
    # (tomlkit keeps them with it), so the check is on the lines before the header and from the next one.
    head = lines[:start]
    if end == len(lines):  # the last table: the file ends as it did, so blank lines above it may go
        while head and not head[-1]:
            head.pop()
    assert out.splitlines()[:len(head)] == head
    assert out.splitlines()[len(out.splitlines()) - (len(lines) - end):] == lines[end:] if end < len(lines) else True


def test_an_explicit_services_header_and_its_comment_stay() -> None:
    text = "[services]\n# all my services\n\n[services.a]\nhost = \"h.example.com\"\nuser = \"u\"\n"
    assert render_without_service(text, "a") == "[services]\n# all my services\n"


def test_a_table_added_before_another_table_keeps_a_blank_line_between() -> None:
    text = '[services.a]\nhost = "h"\nuser = "u"\n\n[defaults]\nregion = "us-east-1"\n'
    out = render_with_service(text, "b", {"host": "x", "user": "y"})
    assert '[services.b]\nhost = "x"\nuser = "y"\n\n[defaults]' in out
    assert render_without_service(out, "b") == text


def test_a_crlf_file_stays_crlf() -> None:
    text = '# mine\r\n[services.a]\r\nhost = "h"\r\nuser = "u"\r\n'
    out = render_with_service(text, "b", {"host": "x", "user": "y"})
    assert out.startswith(text) and out.count("\n") == out.count("\r\n")
    assert render_without_service(out, "b") == text


def test_an_inline_services_table_gets_an_inline_service() -> None:
    """`services = { ... }` on one line: the new service joins it inline (a [table] cannot go inside it)."""
    text = 'services = { a = { host = "h.example.com", user = "u" } }  # inline\n'
    out = render_with_service(text, "b", {"host": "x.example.com", "user": "y"})
    assert out.endswith("  # inline\n") and out.count("\n") == 1
    assert tomllib.loads(out)["services"]["b"] == {"host": "x.example.com", "user": "y"}
