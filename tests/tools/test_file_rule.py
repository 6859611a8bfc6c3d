"""One rule per FILE for bytes that are not UTF-8, applied by every tool (tools/encoding.py).

A file that is not valid UTF-8 is shown escaped in every view of it, whatever part is shown; a
UTF-8 file never is; what the model copies from any view into `str_replace` reads back as the
right bytes; notes are ours, never escaped, and only where they apply. Command output, which is
no file, is escaped by its own bytes. Runs the tools in-process on host files (tests/host_sandbox.py).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from sandbox.base import CommandResult
from tools import editor, search
from tools.base import Observation, ToolContext, call_tool
from tools.encoding import NOT_UTF8_NOTE, OUTPUT_NOTE, files_not_utf8, has_raw_bytes
from tools.toolset import ALL_TOOLS

# Line 1 holds the TEXT \xe9 (four characters); the first byte that is not UTF-8 is on line 8.
LATIN1 = b"LIT = '\\xe9'\nX = 1\n\n\n\n\n\nRAW = 'caf\xe9'\n\n\ndef caf\xe9_x():\n    return 1\n"
UTF8 = "LIT = '\\xe9'\nNAME = 'café'\n\n\ndef café_y():\n    return 1\n".encode()
NOTE_HEAD = "bytes that are not UTF-8 are shown as"


@pytest.fixture
def ctx(host_ctx: ToolContext, tmp_path: Path) -> ToolContext:
    box = host_ctx.sandbox
    box.write_file("prices.py", LATIN1)
    box.write_file("notes.py", UTF8)
    box.run("git init -q && git add -A && git -c user.name=t -c user.email=t@t commit -qm base")
    host_ctx.cache_dir = str(tmp_path / "cache")
    return host_ctx


def tool(ctx: ToolContext, name: str, **args: Any) -> Observation:
    observation = call_tool(ALL_TOOLS[name], args, ctx)
    assert not has_raw_bytes(observation.text)
    return observation


def view(ctx: ToolContext, path: str, **args: Any) -> Observation:
    return tool(ctx, "str_replace_editor", command="view", path=path, **args)


def replace(ctx: ToolContext, path: str, old: str, new: str) -> Observation:
    return tool(ctx, "str_replace_editor", command="str_replace", path=path, old_str=old, new_str=new)


def test_a_view_of_lines_without_such_a_byte_still_follows_the_files_rule(ctx: ToolContext) -> None:
    shown = view(ctx, "prices.py", view_range=[1, 1])
    assert "     1\tLIT = '\\\\xe9'" in shown.text and "not valid UTF-8" in shown.text
    assert view(ctx, "prices.py").text.count("LIT = '\\\\xe9'") == 1  # the whole file, the same way


def test_a_utf8_file_is_never_escaped_and_gets_no_note(ctx: ToolContext) -> None:
    shown = view(ctx, "notes.py")
    assert "     1\tLIT = '\\xe9'" in shown.text and "     2\tNAME = 'café'" in shown.text
    assert "UTF-8" not in shown.text and "Note" not in shown.text


def test_the_header_note_is_ours_and_not_escaped(ctx: ToolContext) -> None:
    shown = view(ctx, "prices.py")
    assert NOT_UTF8_NOTE in shown.text and shown.text.count("\\\\\\\\xe9") == 0
    assert "\\\\xe9 is the text \\xe9 (four characters)" in shown.text


def test_search_shows_each_file_by_its_own_rule_and_names_the_escaped_ones(ctx: ToolContext) -> None:
    found = tool(ctx, "search", pattern="LIT")
    assert "prices.py:1:LIT = '\\\\xe9'" in found.text and "notes.py:1:LIT = '\\xe9'" in found.text
    note = found.text.splitlines()[-1]
    assert note.startswith("[Note: prices.py is not valid UTF-8") and "notes.py" not in note and NOTE_HEAD in note
    utf8_only = tool(ctx, "search", pattern="NAME")
    assert "notes.py:2:NAME = 'café'" in utf8_only.text and "Note" not in utf8_only.text


@pytest.mark.parametrize("source", ["view", "search", "snippet"])
def test_what_any_view_shows_reads_back_as_the_right_bytes(ctx: ToolContext, source: str) -> None:
    copied = {"prices.py": ["LIT = '\\\\xe9'", "RAW = 'caf\\xe9'"], "notes.py": ["LIT = '\\xe9'"]}
    if source == "snippet":  # an edit far from the byte shows lines 1-6 the way a full view does
        snippet = replace(ctx, "prices.py", "X = 1", "X = 2").text
        assert "     1\tLIT = '\\\\xe9'" in snippet and "     6\t\n" in snippet and "     7" not in snippet
        shown = {"prices.py": snippet, "notes.py": replace(ctx, "notes.py", "NAME = 'café'", "NAME = 'cafe'").text}
        copied["prices.py"].pop()
    elif source == "search":
        text = tool(ctx, "search", pattern="LIT|RAW").text
        shown = {"prices.py": text, "notes.py": text}
    else:
        shown = {path: view(ctx, path).text for path in ("prices.py", "notes.py")}
    for path, olds in copied.items():
        for old in olds:
            assert old in shown[path], (path, old)
            assert not replace(ctx, path, old, old.replace("e9", "e8")).is_error, (path, old)
    box = ctx.sandbox
    assert box.read_file("prices.py").startswith(b"LIT = '\\xe8'\n")
    assert (b"RAW = 'caf\xe8'\n" in box.read_file("prices.py")) == (source != "snippet")
    assert box.read_file("notes.py").startswith(b"LIT = '\\xe8'\n")


def test_outline_keeps_an_identifier_whole_and_escaped_with_a_note(ctx: ToolContext) -> None:
    latin1 = tool(ctx, "outline", path="prices.py")
    assert "function caf\\xe9_x" in latin1.text and NOT_UTF8_NOTE in latin1.text
    utf8 = tool(ctx, "outline", path="notes.py")
    assert "function café_y" in utf8.text and "UTF-8" not in utf8.text


def test_repo_map_shows_the_bytes_escaped_with_one_note(ctx: ToolContext) -> None:
    mapped = tool(ctx, "repo_map", max_tokens=4096)
    assert "│def caf\\xe9_x():" in mapped.text and "│def café_y():" in mapped.text and "\ufffd" not in mapped.text
    assert mapped.text.count("[Note: prices.py is not valid UTF-8") == 1 and "notes.py is not" not in mapped.text


def test_command_output_is_escaped_by_its_own_bytes_with_one_note(ctx: ToolContext) -> None:
    plain = tool(ctx, "bash", command="cat notes.py")
    assert "LIT = '\\xe9'" in plain.text and "Note" not in plain.text
    head = tool(ctx, "bash", command="head -1 prices.py")  # no such byte in what was printed
    assert head.text.startswith("LIT = '\\xe9'\n") and "Note" not in head.text
    both = tool(ctx, "bash", command="cat notes.py prices.py")
    assert both.text.count("LIT = '\\\\xe9'") == 2 and "RAW = 'caf\\xe9'" in both.text
    assert both.text.endswith(f"[Note: {OUTPUT_NOTE}.]")  # the note itself is not escaped


def test_text_copied_from_output_under_the_other_rule_is_refused_with_the_reason(ctx: ToolContext) -> None:
    from_head = replace(ctx, "prices.py", "LIT = '\\xe9'", "LIT = '\\xe8'")  # as `head -1 prices.py` showed it
    assert from_head.is_error and "doubled backslash" in from_head.text
    from_cat = replace(ctx, "notes.py", "LIT = '\\\\xe9'", "LIT = '\\\\xe8'")  # as `cat notes.py prices.py` did
    assert from_cat.is_error and "notes.py is UTF-8, so it is shown and written as it is" in from_cat.text
    assert ctx.sandbox.read_file("prices.py") == LATIN1 and ctx.sandbox.read_file("notes.py") == UTF8


def test_a_utf8_file_with_a_name_that_is_not_keeps_its_text_unescaped(ctx: ToolContext) -> None:
    ctx.sandbox.write_file("caf\udce9.py", b"LIT = '\\xe9'\n")
    shown = view(ctx, "caf\\xe9.py")
    assert "on /" in shown.text and "caf\\xe9.py" in shown.text and "     1\tLIT = '\\xe9'" in shown.text
    assert "Note" not in shown.text
    assert not replace(ctx, "caf\\xe9.py", "LIT = '\\xe9'", "LIT = '\\xe8'").is_error
    assert ctx.sandbox.read_file("caf\udce9.py") == b"LIT = '\\xe8'\n"


def test_a_large_file_paged_in_the_sandbox_follows_the_whole_files_rule(ctx: ToolContext,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(editor, "LARGE_FILE_BYTES", 10)  # both files are paged with sed, never read here
    latin1 = view(ctx, "prices.py", view_range=[1, 2])
    assert "is large" in latin1.text and "     1\tLIT = '\\\\xe9'" in latin1.text and NOT_UTF8_NOTE in latin1.text
    utf8 = view(ctx, "notes.py", view_range=[1, 2])
    assert "is large" in utf8.text and "     1\tLIT = '\\xe9'" in utf8.text and "UTF-8" not in utf8.text


class NoUtf8Locale:
    """A sandbox whose grep cannot tell UTF-8 (no C.UTF-8 locale): every command prints nothing and fails."""

    def run(self, command: str, timeout: float | None = None) -> CommandResult:
        return CommandResult("", 1, 0.0)


def test_without_a_utf8_locale_each_shown_line_decides(ctx: ToolContext, monkeypatch: pytest.MonkeyPatch) -> None:
    assert files_not_utf8(NoUtf8Locale(), ["prices.py"]) is None  # cannot tell, rather than "all UTF-8"
    assert files_not_utf8(ctx.sandbox, ["prices.py", "notes.py"]) == {"prices.py"}
    monkeypatch.setattr(search, "files_not_utf8", lambda *args: None)
    found = tool(ctx, "search", pattern="LIT|RAW")
    assert "prices.py:8:RAW = 'caf\\xe9'" in found.text and "notes.py:1:LIT = '\\xe9'" in found.text


def test_a_fixed_string_copied_from_either_kind_of_file_finds_it(ctx: ToolContext) -> None:
    from_utf8 = tool(ctx, "search", pattern="LIT = '\\xe9'", fixed_strings=True, path="notes.py")
    assert "notes.py:1:LIT = '\\xe9'" in from_utf8.text  # the typed text, as a UTF-8 file has it
    from_latin1 = tool(ctx, "search", pattern="RAW = 'caf\\xe9'", fixed_strings=True)
    assert "prices.py:8:RAW = 'caf\\xe9'" in from_latin1.text  # the byte
    typed_in_latin1 = tool(ctx, "search", pattern="LIT = '\\\\xe9'", fixed_strings=True, path="prices.py")
    assert "prices.py:1:LIT = '\\\\xe9'" in typed_in_latin1.text


def test_a_long_line_is_cut_before_it_is_escaped_so_no_escape_is_cut_in_two(ctx: ToolContext) -> None:
    ctx.sandbox.write_file("long.py", b"s = '" + b"\xe9" * 3000 + b"'\n")
    line = view(ctx, "long.py").text.split("     1\t")[1]
    assert line.startswith("s = '" + "\\xe9" * (editor.LINE_DISPLAY_CHARS - 5) + " [... line truncated, 1006 more")
