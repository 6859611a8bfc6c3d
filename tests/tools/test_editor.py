"""str_replace_editor against a real container: views, edits, undo, and every awkward file we could think of."""

from __future__ import annotations

import pytest

from tools.editor import LARGE_FILE_BYTES, LINE_DISPLAY_CHARS, carriage_return_hint, match_places, match_starts

pytestmark = pytest.mark.docker


def edit(call, path, **args):
    return call("str_replace_editor", path=path, **args)


# -- view ------------------------------------------------------------------------
def test_view_numbers_lines_like_cat_n(call) -> None:
    obs = edit(call, "src/app.py", command="view")
    assert not obs.is_error
    assert "     4\tdef greet(name):" in obs.text and "     9\t    print(" in obs.text


def test_view_range_and_end_minus_one(call) -> None:
    obs = edit(call, "/testbed/src/app.py", command="view", view_range=[4, 5])
    assert "     4\tdef greet(name):\n     5\t" in obs.text and "     6" not in obs.text
    tail = edit(call, "src/app.py", command="view", view_range=[8, -1])
    assert "     8\tdef main():" in tail.text and "     9\t" in tail.text and "     7" not in tail.text


@pytest.mark.parametrize(("view_range", "says"),
                         [([0, 3], "start 0"), ([50, 60], "has 9 lines"), ([5, 2], "before start")])
def test_view_range_out_of_bounds_says_what_is_valid(call, view_range, says) -> None:
    obs = edit(call, "src/app.py", command="view", view_range=view_range)
    assert obs.is_error and says in obs.text


def test_view_directory_lists_two_levels_without_hidden(call, repo) -> None:
    repo.write_file("src/pkg/deep/too_deep.py", b"")
    repo.write_file("src/.hidden", b"")
    obs = edit(call, ".", command="view")
    assert "/testbed/src/app.py" in obs.text and "/testbed/src/pkg/" in obs.text
    assert "too_deep" not in obs.text and ".hidden" not in obs.text and ".git" not in obs.text


def test_view_missing_path(call) -> None:
    obs = edit(call, "src/nope.py", command="view")
    assert obs.is_error and "does not exist" in obs.text


def test_view_truncates_very_long_lines(call, repo) -> None:
    repo.write_file("long.txt", b"short\n" + b"x" * 50_000 + b"\nend\n")
    obs = edit(call, "long.txt", command="view")
    assert "line truncated, 48000 more characters" in obs.text
    assert "x" * LINE_DISPLAY_CHARS in obs.text and "x" * (LINE_DISPLAY_CHARS + 1) not in obs.text
    assert "     3\tend" in obs.text


def test_view_pages_a_long_file_instead_of_cutting_it(call, repo) -> None:
    repo.write_file("many.py", "".join(f"line_{n} = {n}\n" for n in range(1, 5001)).encode())
    obs = edit(call, "many.py", command="view")
    assert "     1\tline_1 = 1" in obs.text and "line_5000" not in obs.text
    assert "more lines. Use view_range [" in obs.text
    later = edit(call, "many.py", command="view", view_range=[4999, -1])
    assert "  5000\tline_5000 = 5000" in later.text


def test_view_a_50_mb_file_pages_it_without_reading_it(call, repo) -> None:
    repo.run("yes 'a line of a huge generated file' | head -c 50000000 > huge.txt")
    obs = edit(call, "huge.txt", command="view")
    assert not obs.is_error and "50.0 MB" in obs.text and "1562500 lines" in obs.text
    assert "   200\ta line" in obs.text and "   201\t" not in obs.text
    page = edit(call, "huge.txt", command="view", view_range=[1_000_000, 1_000_002])
    assert "1000000\ta line" in page.text and "1000002\ta line" in page.text and "1000003" not in page.text
    refused = edit(call, "huge.txt", command="str_replace", old_str="a line", new_str="b")
    assert refused.is_error and "too large to edit" in refused.text and "bash" in refused.text
    assert LARGE_FILE_BYTES < 50_000_000


def test_binary_file_is_refused(call, repo) -> None:
    repo.write_file("blob.bin", b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR" + bytes(range(256)))
    for args in ({"command": "view"}, {"command": "str_replace", "old_str": "PNG", "new_str": "JPG"}):
        obs = edit(call, "blob.bin", **args)
        assert obs.is_error and "binary" in obs.text
    assert repo.read_file("blob.bin").startswith(b"\x89PNG")


# -- create ----------------------------------------------------------------------
def test_create_makes_parent_directories_and_refuses_to_overwrite(call, repo) -> None:
    obs = edit(call, "pkg/new/mod.py", command="create", file_text="x = 1\n")
    assert not obs.is_error and repo.read_file("pkg/new/mod.py") == b"x = 1\n"
    again = edit(call, "pkg/new/mod.py", command="create", file_text="x = 2\n")
    assert again.is_error and "already exists" in again.text and "str_replace" in again.text
    assert repo.read_file("pkg/new/mod.py") == b"x = 1\n"


def test_create_without_file_text_asks_for_it(call) -> None:
    obs = edit(call, "new.py", command="create")
    assert obs.is_error and "file_text" in obs.text


# -- str_replace -----------------------------------------------------------------
def test_str_replace_edits_and_shows_numbered_snippet(call, repo) -> None:
    obs = edit(call, "src/app.py", command="str_replace", old_str='return "hello " + name',
               new_str='return f"hello {name}"')
    assert not obs.is_error
    assert '     5\t    return f"hello {name}"' in obs.text
    assert b'return f"hello {name}"\n' in repo.read_file("src/app.py")


def test_str_replace_without_match_shows_the_closest_lines(call, repo) -> None:
    before = repo.read_file("src/app.py")
    obs = edit(call, "src/app.py", command="str_replace", old_str='def greet(nam):\n    return "helo " + name',
               new_str="pass")
    assert obs.is_error and "does not appear verbatim" in obs.text
    assert "(4-5)" in obs.text and '     5\t    return "hello " + name' in obs.text
    assert repo.read_file("src/app.py") == before


def test_str_replace_with_several_matches_lists_their_lines(call, repo) -> None:
    repo.write_file("dup.py", b"x = 1\ny = 2\nx = 1\n\nx = 1\n")
    obs = edit(call, "dup.py", command="str_replace", old_str="x = 1", new_str="x = 3")
    assert obs.is_error and "3 times" in obs.text and "lines 1, 3, 5" in obs.text
    assert repo.read_file("dup.py") == b"x = 1\ny = 2\nx = 1\n\nx = 1\n"


def test_str_replace_tabs_vs_spaces_is_named(call, repo) -> None:
    repo.write_file("tabs.py", b"def f():\n\tif True:\n\t\treturn 1\n")
    obs = edit(call, "tabs.py", command="str_replace", old_str="    if True:\n        return 1",
               new_str="    return 2")
    assert obs.is_error and "tabs vs spaces" in obs.text
    assert "line 2" in obs.text and "1 tab" in obs.text and "4 spaces" in obs.text
    assert repo.read_file("tabs.py") == b"def f():\n\tif True:\n\t\treturn 1\n"


def test_str_replace_identical_or_empty_old_str_is_refused(call) -> None:
    same = edit(call, "src/app.py", command="str_replace", old_str="import os", new_str="import os")
    empty = edit(call, "src/app.py", command="str_replace", old_str="", new_str="x")
    assert same.is_error and "identical" in same.text
    assert empty.is_error and "empty" in empty.text


def test_str_replace_keeps_crlf_line_endings(call, repo) -> None:
    repo.write_file("win.py", b"a = 1\r\nb = 2\r\nc = 3\r\n")
    obs = edit(call, "win.py", command="str_replace", old_str="a = 1\nb = 2", new_str="a = 10\nb = 20\nbb = 21")
    assert not obs.is_error, obs.text
    assert repo.read_file("win.py") == b"a = 10\r\nb = 20\r\nbb = 21\r\nc = 3\r\n"


def test_insert_keeps_crlf_line_endings(call, repo) -> None:
    repo.write_file("win.py", b"a = 1\r\nb = 2\r\n")
    obs = edit(call, "win.py", command="insert", insert_line=1, new_str="x = 0\ny = 0\n")
    assert not obs.is_error, obs.text
    assert repo.read_file("win.py") == b"a = 1\r\nx = 0\r\ny = 0\r\nb = 2\r\n"


def test_missing_final_newline_stays_missing(call, repo) -> None:
    repo.write_file("open.py", b"a = 1\nb = 2")
    edit(call, "open.py", command="str_replace", old_str="b = 2", new_str="b = 3")
    assert repo.read_file("open.py") == b"a = 1\nb = 3"
    edit(call, "open.py", command="insert", insert_line=2, new_str="c = 4")
    assert repo.read_file("open.py") == b"a = 1\nb = 3\nc = 4"
    edit(call, "open.py", command="insert", insert_line=0, new_str="# top")
    assert repo.read_file("open.py") == b"# top\na = 1\nb = 3\nc = 4"


def test_latin1_file_keeps_its_bytes(call, repo) -> None:
    original = "# Café crème\nname = 'José'\nvalue = 1\n".encode("latin-1")
    repo.write_file("legacy.py", original)
    view = edit(call, "legacy.py", command="view")
    assert not view.is_error and "value = 1" in view.text
    obs = edit(call, "legacy.py", command="str_replace", old_str="value = 1", new_str="value = 2")
    assert not obs.is_error, obs.text
    assert repo.read_file("legacy.py") == original.replace(b"value = 1", b"value = 2")


def test_file_deleted_between_view_and_edit(call, repo) -> None:
    assert not edit(call, "src/app.py", command="view").is_error
    repo.run("rm src/app.py")
    obs = edit(call, "src/app.py", command="str_replace", old_str="import os", new_str="import sys")
    assert obs.is_error and "does not exist" in obs.text and "deleted" in obs.text


# -- insert / undo ---------------------------------------------------------------
def test_insert_at_top_middle_and_end(call, repo) -> None:
    repo.write_file("list.txt", b"one\ntwo\n")
    edit(call, "list.txt", command="insert", insert_line=0, new_str="zero")
    edit(call, "list.txt", command="insert", insert_line=2, new_str="one and a half")
    obs = edit(call, "list.txt", command="insert", insert_line=4, new_str="three\nfour")
    assert repo.read_file("list.txt") == b"zero\none\none and a half\ntwo\nthree\nfour\n"
    assert "     5\tthree" in obs.text and "     6\tfour" in obs.text


def test_insert_past_the_end_says_the_valid_range(call) -> None:
    obs = edit(call, "src/app.py", command="insert", insert_line=99, new_str="x")
    assert obs.is_error and "from 0 to 9" in obs.text


def test_undo_restores_previous_versions_in_order(call, repo) -> None:
    original = repo.read_file("src/app.py")
    edit(call, "src/app.py", command="str_replace", old_str="import os", new_str="import sys")
    edit(call, "src/app.py", command="insert", insert_line=0, new_str="# header")
    assert repo.read_file("src/app.py").startswith(b"# header\nimport sys")
    assert not edit(call, "src/app.py", command="undo_edit").is_error
    assert repo.read_file("src/app.py").startswith(b"import sys")
    edit(call, "src/app.py", command="undo_edit")
    assert repo.read_file("src/app.py") == original
    nothing = edit(call, "src/app.py", command="undo_edit")
    assert nothing.is_error and "no edit" in nothing.text


def test_undo_of_create_removes_the_file(call, repo) -> None:
    edit(call, "fresh.py", command="create", file_text="x = 1\n")
    obs = edit(call, "fresh.py", command="undo_edit")
    assert not obs.is_error and not repo.stat("fresh.py").exists


# -- lint on edit ------------------------------------------------------------------
def test_edit_adding_a_syntax_error_is_not_written(call, repo) -> None:
    before = repo.read_file("src/app.py")
    obs = edit(call, "src/app.py", command="str_replace", old_str="def main():", new_str="def main(:")
    assert obs.is_error and "NOT applied" in obs.text and "src/app.py:8" in obs.text
    assert repo.read_file("src/app.py") == before
    undo = edit(call, "src/app.py", command="undo_edit")
    assert undo.is_error  # a rejected edit leaves nothing to undo


def test_create_with_a_syntax_error_is_not_written(call, repo) -> None:
    obs = edit(call, "broken.py", command="create", file_text="def f(:\n    pass\n")
    assert obs.is_error and "NOT applied" in obs.text
    assert not repo.stat("broken.py").exists


# -- paths -------------------------------------------------------------------------
@pytest.mark.parametrize("path", ["../etc/passwd", "/etc/passwd", "src/../../etc/passwd", "/testbed/../etc"])
def test_paths_outside_the_repository_are_refused(call, path) -> None:
    for args in ({"command": "view"}, {"command": "create", "file_text": "x"}):
        obs = edit(call, path, **args)
        assert obs.is_error and "outside the repository" in obs.text


def test_symlinks_leading_outside_are_refused(call, repo) -> None:
    repo.run("ln -s /etc/hostname out_file && ln -s /etc out_dir")
    for path, args in [("out_file", {"command": "view"}),
                       ("out_file", {"command": "str_replace", "old_str": "a", "new_str": "b"}),
                       ("out_dir/passwd", {"command": "view"}),
                       ("out_dir/created.txt", {"command": "create", "file_text": "x"})]:
        obs = edit(call, path, **args)
        assert obs.is_error and "symlink" in obs.text and "outside the repository" in obs.text
    assert repo.run("test -e /etc/created.txt").exit_code == 1


def test_symlink_inside_the_repository_edits_its_target(call, repo) -> None:
    repo.run("ln -s src/app.py link.py")
    obs = edit(call, "link.py", command="str_replace", old_str="import os", new_str="import sys")
    assert not obs.is_error
    assert repo.read_file("src/app.py").startswith(b"import sys")
    assert repo.stat("link.py").is_symlink


# -- arguments -----------------------------------------------------------------------
@pytest.mark.parametrize("args", [
    {"path": "src/app.py"},
    {"command": "view"},
    {"command": "explode", "path": "src/app.py"},
    {"command": "view", "path": "src/app.py", "view_range": "1-5"},
    {"command": "insert", "path": "src/app.py", "insert_line": "3", "new_str": "x"},
    {"command": "view", "path": 7},
])
def test_missing_or_wrongly_typed_arguments(call, args) -> None:
    obs = call("str_replace_editor", **args)
    assert obs.is_error and obs.text.startswith("Invalid arguments") and "Expected parameters" in obs.text


@pytest.mark.parametrize(("command", "needs"), [("str_replace", "old_str"), ("insert", "insert_line")])
def test_command_specific_parameters_are_asked_for(call, command, needs) -> None:
    obs = edit(call, "src/app.py", command=command)
    assert obs.is_error and needs in obs.text


# -- match rules, line endings, bytes that are not UTF-8, the language's own verdict ------------------
def test_overlapping_matches_count_and_every_start_line_is_named(call, repo) -> None:
    original = b"class A:\n    def f(self):\n        pass\n        pass\n        pass\n"
    repo.write_file("three.py", original)
    obs = edit(call, "three.py", command="str_replace", old_str="        pass\n        pass", new_str="        return")
    assert obs.is_error and "2 times" in obs.text and "lines 3, 4" in obs.text
    assert repo.read_file("three.py") == original


def test_mixed_line_endings_are_kept_per_line_and_new_lines_take_their_surroundings(call, repo) -> None:
    repo.write_file("mixed.py", b"a = 1\r\nb = 2\nc = 3\r\nd = 4\n")
    obs = edit(call, "mixed.py", command="str_replace", old_str="c = 3", new_str="c = 30\nc2 = 31")
    assert not obs.is_error, obs.text
    assert repo.read_file("mixed.py") == b"a = 1\r\nb = 2\nc = 30\r\nc2 = 31\r\nd = 4\n"
    obs = edit(call, "mixed.py", command="insert", insert_line=2, new_str="b2 = 22\n")
    assert not obs.is_error, obs.text
    assert repo.read_file("mixed.py") == b"a = 1\r\nb = 2\nb2 = 22\nc = 30\r\nc2 = 31\r\nd = 4\n"
    view = edit(call, "mixed.py", command="view")
    assert "\r" not in view.text  # CRLF is shown as a plain line end, so old_str need not type it


def test_a_miss_only_because_of_carriage_returns_says_so(call, repo) -> None:
    repo.write_file("cr.py", b"x = 1\ry = 2\nz = 3\n")  # a lone CR inside the first line
    obs = edit(call, "cr.py", command="str_replace", old_str="x = 1y = 2", new_str="x = 1")
    assert obs.is_error and "carriage returns" in obs.text and "line 1" in obs.text
    assert repo.read_file("cr.py") == b"x = 1\ry = 2\nz = 3\n"


def test_a_literal_escape_and_the_byte_it_spells_are_shown_and_edited_apart(call, repo) -> None:
    original = b'LIT = "\\xe9"  # literal escape\nRAW = "\xe9"  # latin-1 byte\nC = 1\n'
    repo.write_file("escapes.py", original)
    view = edit(call, "escapes.py", command="view")
    assert '1\tLIT = "\\\\xe9"  # literal escape' in view.text and '2\tRAW = "\\xe9"  # latin-1 byte' in view.text
    assert "\\\\xe9 is the text \\xe9" in view.text  # the note says how to read and write it
    mistaken = edit(call, "escapes.py", command="str_replace", old_str='LIT = "\\xe9"', new_str='LIT = "\\xe8"')
    assert mistaken.is_error and repo.read_file("escapes.py") == original  # `\xe9` is the byte: no such LIT line
    literal = edit(call, "escapes.py", command="str_replace", old_str='LIT = "\\\\xe9"', new_str='LIT = "\\\\xe8"')
    raw = edit(call, "escapes.py", command="str_replace", old_str='RAW = "\\xe9"', new_str='RAW = "\\xe8"')
    assert not literal.is_error and not raw.is_error, literal.text + raw.text
    assert repo.read_file("escapes.py") == b'LIT = "\\xe8"  # literal escape\nRAW = "\xe8"  # latin-1 byte\nC = 1\n'


def test_a_latin1_file_is_shown_with_escapes_and_edited_through_them(call, repo) -> None:
    original = "LABEL = 'café'\nPRICE = 3\n".encode("latin-1")
    repo.write_file("prices.py", original)
    view = edit(call, "prices.py", command="view")
    assert not view.is_error and "LABEL = 'caf\\xe9'" in view.text and "not valid UTF-8" in view.text
    obs = edit(call, "prices.py", command="str_replace", old_str="LABEL = 'caf\\xe9'", new_str="LABEL = 'th\\xe9'")
    assert not obs.is_error, obs.text
    assert repo.read_file("prices.py") == "LABEL = 'thé'\nPRICE = 3\n".encode("latin-1")


def test_a_file_whose_name_is_not_utf8_is_listed_and_edited_by_its_escaped_name(call, repo) -> None:
    repo.run("printf 'MENU = 1\\n' > $'caf\\xe9.py'")
    listing = edit(call, ".", command="view")
    assert "/testbed/caf\\xe9.py" in listing.text
    obs = edit(call, "caf\\xe9.py", command="str_replace", old_str="MENU = 1", new_str="MENU = 2")
    assert not obs.is_error, obs.text
    assert repo.run("cat $'caf\\xe9.py'").output == "MENU = 2\n"


def test_code_the_interpreter_accepts_is_written_even_when_the_grammar_rejects_it(call, repo) -> None:
    mac = "x = 1\ry = x + 1\r"  # old-Mac CR line endings: valid Python, tree-sitter reads one broken line
    obs = edit(call, "mac.py", command="create", file_text=mac)
    assert not obs.is_error, obs.text
    assert "python" in obs.text and "accepts" in obs.text
    assert repo.read_file("mac.py") == mac.encode()


def test_pep_696_defaults_follow_the_sandboxs_python(call, repo) -> None:
    version = tuple(map(int, repo.run("python3 -c 'import sys; print(*sys.version_info[:2])'").output.split()))
    obs = edit(call, "typed_box.py", command="create", file_text="class Box[T = int]:\n    pass\n")
    if version >= (3, 13):  # the language accepts it, whatever the grammar says
        assert not obs.is_error, obs.text
    else:  # refused because this Python rejects it too, and the message says so and how to get past it
        assert obs.is_error and "agrees" in obs.text and "SyntaxError" in obs.text
        assert "class Box[T = int]:" in obs.text.split("agrees:", 1)[1]
        assert f"newer than the sandbox's python {version[0]}.{version[1]}, send exactly the same" in obs.text
        assert not repo.stat("typed_box.py").exists
        again = edit(call, "typed_box.py", command="create", file_text="class Box[T = int]:\n    pass\n")
        assert not again.is_error, again.text
        assert f"python {version[0]}.{version[1]} in the sandbox rejects it" in again.text
        assert repo.read_file("typed_box.py") == b"class Box[T = int]:\n    pass\n"


def test_a_refused_edit_sent_again_as_the_next_edit_of_that_file_is_made(call, repo) -> None:
    bad = dict(command="create", file_text="def f(:\n    pass\n")
    assert edit(call, "broken.py", **bad).is_error
    assert edit(call, "broken.py", command="create", file_text="def f(:\n    pass  \n").is_error  # another edit of it
    assert edit(call, "broken.py", **bad).is_error  # so the first refusal was forgotten
    assert not repo.stat("broken.py").exists
    assert not edit(call, ".", command="view").is_error  # other calls in between do not matter
    made = edit(call, "broken.py", **bad)
    assert not made.is_error and "sent again" in made.text
    assert repo.read_file("broken.py") == b"def f(:\n    pass\n"


def test_without_an_interpreter_a_refusal_says_how_to_write_it_anyway(call, repo) -> None:
    obs = edit(call, "widget.rs", command="create", file_text="fn main( {\n}\n")
    assert obs.is_error and "NOT applied" in obs.text and "write it with bash" in obs.text


@pytest.mark.parametrize(("text", "old", "line"), [
    ("alpha\rbeta\rgamma\r", "beta\ngamma", 1),  # CR-only line ends (issue 14)
    ("one\ntwo\rthree\n", "two\nthree", 2),  # a lone \r inside a line, typed as a line break
    ("x = 1\ny = 2\n", "x = 1\ry = 2", 1),  # the reverse: old_str has \r where the file has \n
])
def test_a_lone_carriage_return_where_old_str_has_a_newline_is_named(text: str, old: str, line: int) -> None:
    hint = carriage_return_hint(text, old)
    assert hint is not None and f"at line {line} if \\r and \\n were the same" in hint


def test_no_carriage_return_hint_when_the_text_differs_otherwise() -> None:
    assert carriage_return_hint("alpha\rbeta\rgamma\r", "beta\ndelta") is None
    assert carriage_return_hint("alpha\nbeta\n", "beta\ngamma") is None


@pytest.mark.parametrize(("text", "old", "places"), [
    ("aaa\n", "aa", "line 1 (columns 1, 2)"),
    ("pass\npass\npass\n", "pass\npass", "lines 1, 2"),
    ("x\naaa\nb aa\n", "aa", "lines 2 (columns 1, 2), 3"),
])
def test_overlapping_matches_name_distinct_lines_and_columns(text: str, old: str, places: str) -> None:
    assert match_places(text, match_starts(text, old)) == places


def test_newer_rust_than_the_grammar_is_written_with_a_possible_error_note(call, repo) -> None:
    code = 'unsafe extern "C" {\n    pub safe fn abs(x: i32) -> i32;\n}\n'  # Rust 1.82; no rustc in the image
    obs = edit(call, "src/ffi.rs", command="create", file_text=code)
    assert not obs.is_error, obs.text
    assert "Possible syntax error, the edit was made" in obs.text and "src/ffi.rs:2:" in obs.text
    assert repo.read_file("src/ffi.rs") == code.encode()
    notes = edit(call, "NOTES.kt", command="create", file_text="fun main( {\n")
    assert not notes.is_error and "Syntax not checked: no tree-sitter grammar reads .kt files." in notes.text
