"""str_replace_editor on files of this machine (tests/host_sandbox.py): line endings kept byte for byte,
and the lint refusal that yields to the same edit sent again. Fast: no Docker."""

from __future__ import annotations

from typing import Any

import pytest

from tests.host_sandbox import HostSandbox
from tools.base import Observation, ToolContext, call_tool
from tools.editor import TextFile
from tools.toolset import ALL_TOOLS


@pytest.fixture
def box(host_box: HostSandbox) -> HostSandbox:
    return host_box


@pytest.fixture
def ctx(host_ctx: ToolContext) -> ToolContext:
    return host_ctx


def edit(ctx: ToolContext, path: str, **args: Any) -> Observation:
    return call_tool(ALL_TOOLS["str_replace_editor"], {"path": path, **args}, ctx)


# -- line endings (issue 14, what a second tester broke: item 2) -----------------------------------------
# (file, old_str, new_str, the file after, whether old_str's line ends met CRLF or were typed as \r\n): every
# untouched line keeps its ending, new lines take the ending around them, and old_str types line ends as
# `view` shows them (\n), or as \r\n: the same; the reply says so whenever that matched a CRLF.
REPLACEMENTS = [
    # the tester's case: old_str ends just before a CRLF, which is untouched and stays
    (b"a = 1\r\nb = 2\r\n", "a = 1", "a = 10", b"a = 10\r\nb = 2\r\n", False),
    (b"a = 1\nb = 2\r\nc = 3\n", "a = 1\nb = 2", "x", b"x\r\nc = 3\n", False),
    (b"a = 1\r\nb = 2\nc = 3\r\n", "b = 2", "b = 20", b"a = 1\r\nb = 20\nc = 3\r\n", False),
    (b"a = 1\r\nb = 2\nc = 3\r\n", "a = 1\nb", "a = 1\nz = 0\nb", b"a = 1\r\nz = 0\r\nb = 2\nc = 3\r\n", True),
    (b"a = 1\r\nb = 2\nc = 3\r\n", "b = 2\n", "", b"a = 1\r\nc = 3\r\n", False),  # a line and its LF
    (b"a = 1\r\nb = 2\nc = 3\r\n", "1\nb = 2\nc", "1\nc", b"a = 1\r\nc = 3\r\n", True),
    (b"a = 1\r\nb = 2\r\nc = 3", "c = 3", "c = 3\nd = 4", b"a = 1\r\nb = 2\r\nc = 3\r\nd = 4", False),
    (b"a = 1\nb = 2\nc = 3\r\n", "b = 2", "b = 2\nb2 = 3", b"a = 1\nb = 2\nb2 = 3\nc = 3\r\n", False),
    (b"a = 1\r\nb = 2\r\n", "a = 1\r\nb = 2", "a = 1\r\nb = 3\r\nb2 = 4", b"a = 1\r\nb = 3\r\nb2 = 4\r\n", True),
    (b"a = 1\nb = 2\n", "a = 1\r\nb = 2", "a = 1\nb = 3", b"a = 1\nb = 3\n", True),  # CRLF typed, LF file
]


@pytest.mark.parametrize(("original", "old", "new", "after", "said"), REPLACEMENTS)
def test_str_replace_keeps_every_untouched_line_ending(ctx: ToolContext, box: HostSandbox, original: bytes,
                                                       old: str, new: str, after: bytes, said: bool) -> None:
    box.write_file("f.txt", original)
    obs = edit(ctx, "f.txt", command="str_replace", old_str=old, new_str=new)
    assert not obs.is_error, obs.text
    assert box.read_file("f.txt") == after
    assert ("Line ends in old_str were matched as plain line ends, whether the file has CRLF or LF" in obs.text) == said


def test_view_says_which_lines_end_with_crlf_and_shows_them_as_plain_line_ends(ctx: ToolContext,
                                                                              box: HostSandbox) -> None:
    box.write_file("f.txt", b"a = 1\r\nb = 2\nc = 3\r\n")
    shown = edit(ctx, "f.txt", command="view").text
    assert "2 of the 3 lines of" in shown and "end with CRLF" in shown and "\r" not in shown
    box.write_file("lf.txt", b"a = 1\nb = 2\n")
    assert "CRLF" not in edit(ctx, "lf.txt", command="view").text


@pytest.mark.parametrize(("original", "line", "new", "after"), [
    (b"a = 1\r\nb = 2\r\n", 1, "x = 0\ny = 0\n", b"a = 1\r\nx = 0\r\ny = 0\r\nb = 2\r\n"),
    (b"a = 1\r\nb = 2\nc = 3\r\n", 2, "b2 = 22", b"a = 1\r\nb = 2\nb2 = 22\nc = 3\r\n"),  # the line before's
    (b"a = 1\nb = 2\r\n", 0, "top", b"top\na = 1\nb = 2\r\n"),  # at the top: the line after's
    (b"a = 1\r\nb = 2", 2, "c = 3", b"a = 1\r\nb = 2\r\nc = 3"),  # past a last line without a newline
])
def test_insert_writes_new_lines_with_the_ending_around_them(ctx: ToolContext, box: HostSandbox, original: bytes,
                                                              line: int, new: str, after: bytes) -> None:
    box.write_file("f.txt", original)
    obs = edit(ctx, "f.txt", command="insert", insert_line=line, new_str=new)
    assert not obs.is_error, obs.text
    assert box.read_file("f.txt") == after


@pytest.mark.parametrize(("original", "old", "line"), [
    (b"x = 1\ry = 2\nz = 3\n", "x = 1y = 2", 1),  # a lone \r inside a line that old_str lacks
    (b"alpha\rbeta\rgamma\r", "beta\ngamma", 1),  # CR-only line ends typed as \n
    (b"a = 1\r\nb = 2\r\n", "a = 1\r", 1),  # a \r typed at a line end, not followed by \n
])
def test_a_miss_only_because_of_a_carriage_return_says_so_and_changes_nothing(
        ctx: ToolContext, box: HostSandbox, original: bytes, old: str, line: int) -> None:
    box.write_file("f.txt", original)
    obs = edit(ctx, "f.txt", command="str_replace", old_str=old, new_str="changed")
    assert obs.is_error and f"at line {line}" in obs.text and "\\r" in obs.text and "carriage return" in obs.text
    assert box.read_file("f.txt") == original


def test_cr_only_files_are_edited_with_their_carriage_returns_typed(ctx: ToolContext, box: HostSandbox) -> None:
    box.write_file("mac.txt", b"alpha\rbeta\rgamma\r")
    obs = edit(ctx, "mac.txt", command="str_replace", old_str="beta\rgamma", new_str="beta\rdelta")
    assert not obs.is_error, obs.text
    assert box.read_file("mac.txt") == b"alpha\rbeta\rdelta\r"


def test_replace_of_a_long_crlf_file_touches_only_its_span() -> None:
    data = b"".join(b"line %d\r\n" % n if n % 3 else b"line %d\n" % n for n in range(2000))
    file = TextFile.decode(data, "f.txt")
    at = file.text.index("line 1000")
    assert file.replace(at, len("line 1000"), "line M\nline N").data == data.replace(
        b"line 1000\r\n", b"line M\r\nline N\r\n")


# -- the interpreter's refusal, and the way around it (item 3) ----------------------------------------
def test_a_refused_edit_is_made_when_sent_again_as_the_next_edit_of_that_file(ctx: ToolContext,
                                                                             box: HostSandbox) -> None:
    bad = {"command": "create", "file_text": "def f(:\n    pass\n"}
    refused = edit(ctx, "broken.py", **bad)
    assert refused.is_error and "NOT applied" in refused.text
    assert "send exactly the same edit again as your next edit of" in refused.text
    assert "broken.py (other calls in between are fine)" in refused.text
    box.write_file("other.py", b"x = 1\n")
    assert not edit(ctx, "other.py", command="view").is_error  # other calls, and edits of other files,
    assert not call_tool(ALL_TOOLS["bash"], {"command": "python3 -c 'print(1)'"}, ctx).is_error
    assert not edit(ctx, "other.py", command="str_replace", old_str="x = 1", new_str="x = 2").is_error
    made = edit(ctx, "broken.py", **bad)  # do not forget it
    assert not made.is_error and "sent again" in made.text
    assert box.read_file("broken.py") == b"def f(:\n    pass\n"


def test_another_edit_of_the_file_in_between_forgets_the_refusal(ctx: ToolContext, box: HostSandbox) -> None:
    box.write_file("m.py", b"x = 1\n")
    bad = {"command": "str_replace", "old_str": "x = 1", "new_str": "x = (1 +\n"}
    assert edit(ctx, "m.py", **bad).is_error
    assert edit(ctx, "m.py", command="str_replace", old_str="x = 1", new_str="x = 1 +\n").is_error  # not the same
    assert edit(ctx, "m.py", **bad).is_error  # the refusal before it was forgotten: refused again
    assert box.read_file("m.py") == b"x = 1\n"
    assert not edit(ctx, "m.py", **bad).is_error  # and now it is the next edit after its own refusal
    assert box.read_file("m.py") == b"x = (1 +\n\n"
