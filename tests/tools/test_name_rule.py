"""Two names that must never be shown alike (issue 14, third tester): a UTF-8 file literally named
`a\\xe9.py` (backslash, x, e, 9) beside `a<0xE9>.py`. A name that is not UTF-8 or holds a backslash is
shown escaped (tools/encoding.py `shown_name`), so the first is `a\\\\xe9.py` and the second `a\\xe9.py`
in every tool, and each shown form, typed back as a path, reaches its own file. Fast: no Docker."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.host_sandbox import tool
from tools.base import Submitted, ToolContext
from tools.encoding import shown_name

LITERAL = "a\\xe9.py"  # a UTF-8 name: backslash, x, e, 9
BYTE = "a\udce9.py"  # the byte 0xE9, as surrogateescape carries it
LITERAL_SHOWN, BYTE_SHOWN = "a\\\\xe9.py", "a\\xe9.py"


@pytest.fixture
def ctx(host_ctx: ToolContext) -> ToolContext:
    root = Path(host_ctx.sandbox.workdir)
    (root / LITERAL).write_bytes(b"def literal_one():\n    return 1\n")
    (root / "a\xe9.py".encode("latin-1").decode("utf-8", "surrogateescape")).write_bytes(
        b"def byte_one():\n    return 2\n")
    return host_ctx


def names_in(text: str) -> set[str]:
    return {word for word in text.replace(":", " ").split() if word.rsplit("/", 1)[-1].startswith("a\\")}


def test_the_rule() -> None:
    assert shown_name(LITERAL) == LITERAL_SHOWN and shown_name(BYTE) == BYTE_SHOWN
    assert shown_name("plain/caf\u00e9.py") == "plain/caf\u00e9.py"  # UTF-8 without a backslash: as it is
    assert shown_name("dir\\name.py") == "dir\\name.py"  # a backslash before no xNN reads back as itself


def test_directory_view_and_search_show_the_two_names_apart(ctx: ToolContext) -> None:
    listing = tool(ctx, "str_replace_editor", command="view", path=".")
    assert {name.rsplit("/", 1)[-1] for name in names_in(listing)} == {LITERAL_SHOWN, BYTE_SHOWN}
    files = tool(ctx, "search", pattern="a*.py", mode="files")
    assert {name.rsplit("/", 1)[-1] for name in names_in(files)} == {LITERAL_SHOWN, BYTE_SHOWN}
    content = tool(ctx, "search", pattern="_one")
    assert f"{LITERAL_SHOWN}:1:def literal_one():" in content and f"{BYTE_SHOWN}:1:def byte_one():" in content


def test_each_shown_name_typed_back_reaches_its_own_file_in_view_edit_and_outline(ctx: ToolContext) -> None:
    for shown, function in ((LITERAL_SHOWN, "literal_one"), (BYTE_SHOWN, "byte_one")):
        viewed = tool(ctx, "str_replace_editor", command="view", path=shown)
        assert f"def {function}():" in viewed and f"on {Path(ctx.sandbox.workdir) / shown}" in viewed
        assert function in tool(ctx, "outline", path=shown)
        edited = tool(ctx, "str_replace_editor", command="str_replace", path=shown,
                      old_str=f"def {function}():", new_str=f"def {function}_renamed():")
        assert f"{Path(ctx.sandbox.workdir) / shown}" in edited
    root = Path(ctx.sandbox.workdir)
    assert (root / LITERAL).read_bytes().startswith(b"def literal_one_renamed():")
    assert (root / BYTE).read_bytes().startswith(b"def byte_one_renamed():")


def test_repo_map_and_search_in_a_named_file_show_the_name_by_the_rule(ctx: ToolContext) -> None:
    repo_map = tool(ctx, "repo_map")
    assert f"{LITERAL_SHOWN}:" in repo_map and f"{BYTE_SHOWN}:" in repo_map
    assert "literal_one" in repo_map.split(f"{LITERAL_SHOWN}:", 1)[1].split("\n\n")[0]
    only_literal = tool(ctx, "search", pattern="def", path=LITERAL_SHOWN)
    assert "literal_one" in only_literal and "byte_one" not in only_literal
    assert f"{LITERAL_SHOWN}:1:" in only_literal
    nothing = tool(ctx, "search", pattern="nowhere", path=LITERAL_SHOWN)
    assert nothing.endswith(f"/repo/{LITERAL_SHOWN}.")


def test_run_tests_paths_are_read_back_by_the_same_rule() -> None:
    from tools.tests import check_test_path

    assert check_test_path(f"{BYTE_SHOWN}::test_x[\\xe9]", "/testbed") == f"{BYTE}::test_x[\\xe9]"  # ids as typed
    assert check_test_path(LITERAL_SHOWN, "/testbed") == LITERAL
    assert check_test_path("tests/plain.py::test_y", "/testbed") == "tests/plain.py::test_y"


def test_submit_names_large_files_left_out_by_the_rule(ctx: ToolContext, monkeypatch: pytest.MonkeyPatch) -> None:
    from tools import submit

    monkeypatch.setattr(submit, "LARGE_NEW_FILE_BYTES", 10)
    root = Path(ctx.sandbox.workdir)
    assert ctx.sandbox.run("git init -q && git add -A && git -c user.name=t -c user.email=t@t commit -qm base").ok
    ctx.base_commit = ctx.sandbox.run("git rev-parse HEAD").output.strip()
    (root / "big\\xe9.bin").write_bytes(b"x" * 100)
    (root / "big\udce9.bin").write_bytes(b"y" * 100)
    with pytest.raises(Submitted) as submitted:
        tool(ctx, "submit")
    assert str(submitted.value).endswith("MB: big\\\\xe9.bin, big\\xe9.bin")
