"""A file name holding a newline (issue 14 item 1, a tester's repo): b"new\\nline\\xe9.txt" beside
b"plain\\xff.py". The name rule (tools/encoding.py `shown_name`) shows the newline as `\\x0a`, so each
name stays one line in a listing and in search results, the NUL-separated parse of a listing never
goes out of step for the next file, and the shown name typed back reaches the file. Fast: no Docker
(the grep/find backend here; tests/tools/test_search.py runs ripgrep in a container)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.host_sandbox import tool
from tools.base import Submitted, ToolContext
from tools.encoding import name_from_visible, shown_name
from tools.search import HAS_RG_KEY, named_records

NEWLINE = "new\nline\udce9.txt"  # b"new\nline\xe9.txt" as surrogateescape carries it
PLAIN = "plain\udcff.py"
NEWLINE_SHOWN, PLAIN_SHOWN = "new\\x0aline\\xe9.txt", "plain\\xff.py"


@pytest.fixture
def ctx(host_ctx: ToolContext) -> ToolContext:
    root = Path(host_ctx.sandbox.workdir)
    (root / NEWLINE).write_bytes(b"nl \xe9\n")
    (root / PLAIN).write_bytes(b"Z = '\xe9'\n")
    host_ctx.state[HAS_RG_KEY] = False  # the host may have no ripgrep: the grep/find fallback, always
    return host_ctx


def test_the_rule_shows_control_characters_as_escapes_that_read_back() -> None:
    assert shown_name(NEWLINE) == NEWLINE_SHOWN and name_from_visible(NEWLINE_SHOWN) == NEWLINE
    assert shown_name("tab\there\x7f") == "tab\\x09here\\x7f"
    assert shown_name("a\\x0a") == "a\\\\x0a" and name_from_visible("a\\\\x0a") == "a\\x0a"  # the text, not a newline
    assert name_from_visible("a\\x41") == "a\\x41"  # a printable xNN is never shown escaped: kept as typed


def test_a_directory_view_lists_each_name_whole_on_its_own_line(ctx: ToolContext) -> None:
    listing = tool(ctx, "str_replace_editor", command="view", path=".").splitlines()
    root = ctx.sandbox.workdir
    assert listing[1:] == [f"{root}/{NEWLINE_SHOWN}", f"{root}/{PLAIN_SHOWN}"]


def test_search_content_keeps_each_record_whole_and_in_step(ctx: ToolContext) -> None:
    found = tool(ctx, "search", pattern="\\xe9").splitlines()
    assert found[:3] == ["2 matching lines in 2 files:", f"{NEWLINE_SHOWN}:1:nl \\xe9", f"{PLAIN_SHOWN}:1:Z = '\\xe9'"]


def test_search_files_lists_each_name_whole(ctx: ToolContext) -> None:
    found = tool(ctx, "search", pattern="*", mode="files").splitlines()
    assert found == ["2 files matching '*':", NEWLINE_SHOWN, PLAIN_SHOWN]


@pytest.mark.parametrize("typed", [NEWLINE_SHOWN, "new\nline\\xe9.txt"])
def test_the_shown_name_or_a_real_newline_typed_back_reaches_the_file(ctx: ToolContext, typed: str) -> None:
    assert "nl \\xe9" in tool(ctx, "str_replace_editor", command="view", path=typed)
    edited = tool(ctx, "str_replace_editor", command="str_replace", path=typed, old_str="nl \\xe9", new_str="NL \\xe9")
    assert f"The file {ctx.sandbox.workdir}/{NEWLINE_SHOWN} has been edited" in edited
    assert (Path(ctx.sandbox.workdir) / NEWLINE).read_bytes() == b"NL \xe9\n"
    assert f"{NEWLINE_SHOWN}:1:NL \\xe9" in tool(ctx, "search", pattern="NL", path=typed)


def test_outline_accepts_the_shown_name(ctx: ToolContext) -> None:
    (Path(ctx.sandbox.workdir) / "def\nx.py").write_bytes(b"def in_newline_name():\n    return 1\n")
    assert "in_newline_name" in tool(ctx, "outline", path="def\\x0ax.py")


def test_records_split_on_nul_never_on_a_newline_in_a_path() -> None:
    output = "new\nline\udce9.txt\x001:nl \udce9\nplain\udcff.py\x001:Z\ncut\npa"  # the last record cut by head
    assert named_records(output) == [("new\nline\udce9.txt", "1:nl \udce9"), ("plain\udcff.py", "1:Z")]


def test_run_tests_reads_a_shown_name_back_by_the_same_rule() -> None:
    from tools.tests import check_test_path

    assert check_test_path("new\\x0aline\\xe9.txt::test_x", "/testbed") == f"{NEWLINE}::test_x"


def test_submit_names_a_large_file_holding_a_newline_whole(ctx: ToolContext, monkeypatch: pytest.MonkeyPatch) -> None:
    from tools import submit

    monkeypatch.setattr(submit, "LARGE_NEW_FILE_BYTES", 10)
    assert ctx.sandbox.run("git init -q && git add -A && git -c user.name=t -c user.email=t@t commit -qm base").ok
    ctx.base_commit = ctx.sandbox.run("git rev-parse HEAD").output.strip()
    (Path(ctx.sandbox.workdir) / "big\nname.bin").write_bytes(b"x" * 100)
    with pytest.raises(Submitted) as submitted:
        tool(ctx, "submit")
    assert str(submitted.value).endswith("MB: big\\x0aname.bin")
