"""The search tool against a real container, with ripgrep and with the grep/find fallback."""

from __future__ import annotations

import pytest

from tools.search import HAS_RG_KEY, MAX_MATCH_LINES

pytestmark = pytest.mark.docker


@pytest.fixture
def tree(repo):
    repo.write_file("b/second.py", b"# TODO: b one\nx = 1\n# TODO: b two\n")
    repo.write_file("a/first.py", b"value = 1\n# todo: lower case\n# TODO: a one\n")
    repo.write_file("a/notes.md", b"TODO in markdown\n")
    repo.write_file("debug.log", b"TODO ignored by git\n")
    return repo


@pytest.fixture
def box(make_sandbox):
    """As root: the grep fallback is tested by moving ripgrep out of /usr/bin, which the image's user may not."""
    return make_sandbox(user="root")


@pytest.fixture(params=["rg", "grep"])
def backend(request, tree, ctx) -> str:
    """Run the test with ripgrep, then again with rg hidden so the grep/find fallback answers."""
    if request.param == "grep":
        assert tree.run("mv /usr/bin/rg /usr/bin/rg.hidden").ok
    return request.param


def test_content_matches_sorted_by_path_then_line(call, backend, ctx) -> None:
    obs = call("search", pattern="TODO", glob="*.py")
    assert ctx.state[HAS_RG_KEY] is (backend == "rg")
    assert obs.text.splitlines() == [
        "3 matching lines in 2 files:",
        "a/first.py:3:# TODO: a one",
        "b/second.py:1:# TODO: b one",
        "b/second.py:3:# TODO: b two",
    ]


def test_case_insensitive_and_path(call, backend) -> None:
    obs = call("search", pattern="todo", case_sensitive=False, path="a")
    assert obs.text.splitlines()[1:] == ["a/first.py:2:# todo: lower case", "a/first.py:3:# TODO: a one",
                                         "a/notes.md:1:TODO in markdown"]


def test_fixed_strings_and_invalid_regex(call, backend, repo) -> None:
    repo.write_file("calls.py", b"f(x)\ng(y)\n")
    literal = call("search", pattern="f(", fixed_strings=True)
    assert literal.text.splitlines()[1:] == ["calls.py:1:f(x)"]
    broken = call("search", pattern="f(")
    assert broken.is_error and "invalid search for regex 'f('" in broken.text and "fixed_strings" in broken.text


def test_no_matches_says_so(call, backend) -> None:
    obs = call("search", pattern="definitely_not_here", glob="*.py")
    assert not obs.is_error
    assert obs.text == "No matches for regex 'definitely_not_here' in /testbed (only files matching '*.py')."


def test_many_matches_are_capped_with_counts(call, backend, repo) -> None:
    repo.write_file("many/one.txt", b"hit\n" * 60)
    repo.write_file("many/two.txt", b"hit\n" * 252)
    obs = call("search", pattern="^hit$", path="many")
    lines = obs.text.splitlines()
    assert lines[0].startswith(f"Showing {MAX_MATCH_LINES} of 312 matching lines in 2 files")
    assert lines[1] == "many/one.txt:1:hit" and lines[-1] == f"many/two.txt:{MAX_MATCH_LINES - 60}:hit"
    assert len(lines) == MAX_MATCH_LINES + 1


def test_long_matching_lines_are_cut(call, backend, repo) -> None:
    repo.write_file("min.js", b"var a=1;" * 5000 + b"needle\n")
    obs = call("search", pattern="var a", path="min.js")
    assert len(obs.text) < 1_000 and obs.text.splitlines()[0] == "1 matching line in 1 file:"


def test_non_utf8_files_are_searched(call, backend, repo) -> None:
    repo.write_file("legacy.txt", "café = 'olé'\n".encode("latin-1"))
    obs = call("search", pattern="caf", path="legacy.txt")
    assert not obs.is_error and obs.text.splitlines()[1].startswith("legacy.txt:1:caf")


@pytest.mark.parametrize(("pattern", "fixed"), [("cr\\xe8me", False), ("cr\\xe8me", True), ("cr.me", False),
                                              ("LABEL = 'cr", True), ("^LABEL.*me'$", False)])
def test_non_utf8_bytes_are_found_by_escape_and_by_dot(call, backend, repo, pattern, fixed) -> None:
    # issue 14: `\xNN` (the notation observations use for such bytes) means that byte, and `.` matches it
    repo.write_file("labels.py", "LABEL = 'crème'\n".encode("latin-1"))
    repo.write_file("utf8.py", "LABEL = 'crème'\n".encode())
    obs = call("search", pattern=pattern, fixed_strings=fixed, path="labels.py")
    assert obs.text.splitlines()[:2] == ["1 matching line in 1 file:", "labels.py:1:LABEL = 'cr\\xe8me'"]
    assert call("search", pattern="crème", path="utf8.py").text.splitlines()[1] == "utf8.py:1:LABEL = 'crème'"


def test_files_mode_lists_names_by_glob(call, backend) -> None:
    obs = call("search", pattern="*.py", mode="files")
    assert obs.text.splitlines() == ["3 files matching '*.py':", "a/first.py", "b/second.py", "src/app.py"]
    none = call("search", pattern="*.rs", mode="files")
    assert none.text == "No files matching '*.rs' in /testbed."


def test_rg_skips_files_ignored_by_git(call, tree) -> None:
    obs = call("search", pattern="TODO")
    assert "debug.log" not in obs.text and "a/notes.md:1:TODO in markdown" in obs.text


def test_files_mode_invalid_glob(call) -> None:
    obs = call("search", pattern="[", mode="files")
    assert obs.is_error and "invalid file-name glob" in obs.text


@pytest.mark.parametrize("path", ["..", "/etc", "a/../../etc"])
def test_paths_outside_are_refused(call, tree, path) -> None:
    obs = call("search", pattern="root", path=path)
    assert obs.is_error and "outside the repository" in obs.text


def test_symlink_out_of_the_repository_is_refused(call, tree) -> None:
    tree.run("ln -s /etc etc_link")
    obs = call("search", pattern="root", path="etc_link")
    assert obs.is_error and "symlink" in obs.text


def test_missing_path_is_reported(call, tree) -> None:
    obs = call("search", pattern="x", path="nowhere")
    assert obs.is_error and "does not exist" in obs.text


@pytest.mark.parametrize("args", [{}, {"pattern": 3}, {"pattern": "x", "mode": "names"},
                                  {"pattern": "x", "case_sensitive": "no"}])
def test_missing_or_wrongly_typed_arguments(call, args) -> None:
    obs = call("search", **args)
    assert obs.is_error and obs.text.startswith("Invalid arguments")


def test_the_model_shell_is_left_where_it_was(call) -> None:
    call("bash", command="cd /tmp")
    call("search", pattern="greet")
    assert call("bash", command="pwd").text.startswith("/tmp\n")


def test_binary_files_are_skipped(call, backend, repo) -> None:
    repo.write_file("blob.bin", b"\0\x01needle\0\xff")
    repo.write_file("text.txt", b"needle\n")
    obs = call("search", pattern="needle")
    assert obs.text.splitlines() == ["1 matching line in 1 file:", "text.txt:1:needle"]


def test_each_file_is_shown_by_its_own_rule_in_both_backends(call, backend, repo) -> None:
    repo.write_file("typed.py", b"LIT = '\\xe9'\n")  # UTF-8: the text \xe9, shown as it is
    repo.write_file("latin.py", b"LIT = '\\xe9'\nRAW = '\xe9'\n")  # latin-1: the text shown doubled, the byte escaped
    obs = call("search", pattern="LIT", glob="*.py")
    assert "typed.py:1:LIT = '\\xe9'" in obs.text and "latin.py:1:LIT = '\\\\xe9'" in obs.text
    assert obs.text.splitlines()[-1].startswith("[Note: latin.py is not valid UTF-8")
    fixed = call("search", pattern="LIT = '\\xe9'", fixed_strings=True, glob="*.py")  # copied from typed.py
    assert "typed.py:1:LIT = '\\xe9'" in fixed.text
    byte = call("search", pattern="RAW = '\\xe9'", fixed_strings=True, glob="*.py")  # copied from latin.py
    assert "latin.py:2:RAW = '\\xe9'" in byte.text


def test_a_name_holding_a_newline_stays_one_record_in_content_files_and_view(call, backend, tree) -> None:
    """Issue 14 item 1: b"new\\nline\\xe9.txt" is shown `new\\x0aline\\xe9.txt` and the next file's line stays whole."""
    made = tree.run("mkdir nl && printf 'nl \\351\\n' > \"nl/$(printf 'new\\nline\\351.txt')\" && "
                    "printf \"Z = '\\351'\\n\" > \"nl/$(printf 'plain\\377.py')\"")
    assert made.ok, made.output
    content = call("search", pattern="\\xe9", path="nl").text.splitlines()
    assert content[:3] == ["2 matching lines in 2 files:", "nl/new\\x0aline\\xe9.txt:1:nl \\xe9",
                           "nl/plain\\xff.py:1:Z = '\\xe9'"]
    files = call("search", pattern="*", mode="files", path="nl").text.splitlines()
    assert files == ["2 files matching '*':", "nl/new\\x0aline\\xe9.txt", "nl/plain\\xff.py"]
    listing = call("str_replace_editor", command="view", path="nl").text.splitlines()
    assert listing[1:] == [f"{tree.workdir}/nl/new\\x0aline\\xe9.txt", f"{tree.workdir}/nl/plain\\xff.py"]
