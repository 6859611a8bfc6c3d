"""Every tool against the hostile corpus (tests/hostile.py), in one real sandbox.

Each tool must answer every entry with an observation that is bounded, free of lone
surrogates and writable to a trajectory, and the patch of edits to every kind of file
must apply with `git apply` to byte-identical files, names included.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from agent.trajectory import json_line
from sandbox.docker import DockerSandbox, SandboxSpec, start_sandbox
from tests.hostile import ESCAPES, NEWER_THAN_THE_GRAMMARS, TEST_IDS, corpus, corpus_archive
from tests.tools.test_run_tests import pytest_archive  # noqa: F401  (a fixture)
from tools.base import Observation, Submitted, ToolContext, call_tool
from tools.encoding import has_raw_bytes, shown_name
from tools.toolset import ALL_TOOLS

pytestmark = pytest.mark.docker
MAX_CHARS = 20_000
TEXT_ENTRIES = [entry for entry in corpus() if entry.link is None and entry.kind not in ("binary",)]


@pytest.fixture(scope="module")
def corpus_box(docker_client: Any, sandbox_image: str, pytest_archive: bytes) -> Iterator[DockerSandbox]:  # noqa: F811
    # As root: the corpus and pytest go in through the archive API as root's files, as a setup step would.
    box = start_sandbox(SandboxSpec(image=sandbox_image, run_id="pytest-corpus", user="root"), docker_client)
    try:
        assert box.container.put_archive(box.workdir, corpus_archive())
        site = box.run("python3 -c 'import site; print(site.getsitepackages()[0])'").output.strip()
        box.run(f"mkdir -p {site}")
        assert box.container.put_archive(site, pytest_archive)
        made = box.run("git init -q && git add -A && git -c user.name=t -c user.email=t@t commit -qm corpus")
        assert made.ok, made.output
        yield box
    finally:
        box.close()


@pytest.fixture
def ctx(corpus_box: DockerSandbox) -> ToolContext:
    """The corpus as committed, for each test."""
    assert corpus_box.run(f"cd {corpus_box.workdir} && git reset -q --hard && git clean -qfd").ok  # a test may cd
    base = corpus_box.run("git rev-parse HEAD").output.strip()
    return ToolContext(sandbox=corpus_box, base_commit=base, command_timeout=120, max_command_timeout=300,
                       observation_max_chars=MAX_CHARS)


def tool(ctx: ToolContext, name: str, **args: Any) -> Observation:
    """Call a tool as the loop does and check what every observation must be."""
    observation = call_tool(ALL_TOOLS[name], args, ctx)
    assert len(observation.text) <= MAX_CHARS + 1000, (name, args, len(observation.text))
    assert not has_raw_bytes(observation.text), (name, args)
    json_line({"type": "tool", "observation": observation.text, "data": observation.data}).encode("utf-8")
    return observation


def visible(name: str) -> str:
    return name.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


@pytest.mark.parametrize("entry", corpus(), ids=lambda entry: entry.kind)
def test_view_answers_every_entry(ctx: ToolContext, entry) -> None:
    observation = tool(ctx, "str_replace_editor", command="view", path=visible(entry.name))
    expected = {
        "latin-1 contents": "LABEL = 'caf\\xe9'", "latin-1 name": "MENU = 1", "newline in the name": "newline",
        "binary": "binary file", "NUL bytes in source": "binary file", "symlink inside the repository": "def add",
        "symlink out of the repository": "outside the repository", "minified bundle": "line truncated",
        "5 MB single line": "line truncated", "CRLF and LF mixed": "second = 2", "spaces and quotes in the name":
        "quoted", "old-Mac CR line endings": "y = 2", "parametrized ids": "test_eval", "plain": "def add",
        "JUnit XML turned off": "-p no:junitxml", "newer rs than its grammar": "pub safe fn abs",
        "newer ts than its grammar": "import defer", "newer c than its grammar": "#embed",
        "typed \\xe9 in a latin-1 file": "     1\tLIT = '\\\\xe9'", "CRLF right after an edit": "     2\tb = 2",
    }[entry.kind]
    assert expected in observation.text
    if entry.kind == "newline in the name":  # as typed with the newline, and as shown (`\x0a`)
        assert not observation.is_error
        shown = tool(ctx, "str_replace_editor", command="view", path=shown_name(entry.name))
        assert shown_name(entry.name) == "notes/new\\x0aline.txt" and expected in shown.text


def test_search_finds_and_shows_every_kind_of_entry_within_bounds(ctx: ToolContext) -> None:
    found = tool(ctx, "search", pattern="=")
    assert not found.is_error
    assert "prices.py:1:LABEL = 'caf\\xe9'" in found.text and "caf\\xe9.py:1:MENU = 1" in found.text
    *lines, note = found.text.splitlines()
    assert all(len(line) < 400 for line in lines)  # minified and 5 MB lines are cut
    assert note.startswith("[Note: escapes.py, prices.py are not valid UTF-8")  # not caf\xe9.py: its text is
    names = tool(ctx, "search", pattern="*", mode="files")
    assert "caf\\xe9.py" in names.text.splitlines() and 'notes/my "quoted" file.txt' in names.text.splitlines()
    assert "notes/new\\x0aline.txt" in names.text.splitlines()
    assert "notes/new\\x0aline.txt:1:newline" in tool(ctx, "search", pattern="^newline").text.splitlines()


def test_repo_map_and_outline_hold_on_every_entry(ctx: ToolContext, tmp_path) -> None:
    ctx.cache_dir = str(tmp_path)
    repo_map = tool(ctx, "repo_map", max_tokens=4096)
    assert not repo_map.is_error and "calc.py:" in repo_map.text and "caf\\xe9.py:" in repo_map.text
    assert "dist/bundle.js" in repo_map.text and "function h1" not in repo_map.text
    for entry in TEXT_ENTRIES:
        if entry.name.endswith((".py", ".js")):
            outline = tool(ctx, "outline", path=visible(entry.name))
            if entry.kind in ("minified bundle", "5 MB single line"):
                assert "looks minified or generated" in outline.text


def test_run_tests_names_parametrized_tests_by_their_full_rerunnable_ids(ctx: ToolContext) -> None:
    everything = tool(ctx, "run_tests", paths=["tests/test_calc.py"])
    failing = [test_id for test_id, status in TEST_IDS.items() if status == "FAILED"]
    assert everything.data["failed"] == failing and everything.data["passed"] == len(TEST_IDS) - 1
    assert "  tests/test_calc.py::test_eval[2 * 3-7]: AssertionError: assert 6 == 7" in everything.text
    again = tool(ctx, "run_tests", paths=failing + ["tests/test_calc.py::test_odd_ids[x::y]"])
    assert again.data["failed"] == failing and again.data["passed"] == 1  # both ids found again


def test_edits_of_every_kind_of_file_round_trip_through_the_patch(ctx: ToolContext) -> None:
    box = ctx.sandbox
    edits = [
        ("prices.py", "PRICE = 3", "PRICE = 4"),
        ("caf\\xe9.py", "MENU = 1", "MENU = 2"),
        ('notes/my "quoted" file.txt', "quoted", "still quoted"),
        ("mixed.py", "second = 2", "second = 22\nsecond_b = 23"),
        ("mac.py", "y = 2", "y = 3"),
        ("escapes.py", "WIDTH = 1", "WIDTH = 2"),
        ("tail.py", "a = 1\nb = 2", "x = 0"),
        ("dist/bundle.js", "function h1(a)", "function h1(z)"),
        ("data/huge.js", "var big=", "var large="),
        ("inside.py", "return a + b", "return b + a"),
    ]
    for path, old, new in edits:
        edited = tool(ctx, "str_replace_editor", command="str_replace", path=path, old_str=old, new_str=new)
        assert not edited.is_error, (path, edited.text)
    for command in ("printf 'edited\\n' >> $'notes/new\\nline.txt'", "printf '\\x00\\x01' >> blob.bin",
                    "printf 'y = 2\\0\\n' >> nul.py", "printf 'N\\xe9W = 1\\n' > $'n\\xe9w \"file\".py'",
                    "rm outside", "ln -s calc.py $'link \\xe9'"):
        assert tool(ctx, "bash", command=command).data["exit_code"] == 0, command
    assert box.read_file("mixed.py") == b"first = 1\r\nsecond = 22\nsecond_b = 23\nthird = 3\r\n"
    assert box.read_file("tail.py") == b"x = 0\r\nc = 3\n"  # the CRLF right after old_str is untouched
    with pytest.raises(Submitted) as submitted:
        call_tool(ALL_TOOLS["submit"], {}, ctx)
    patch = submitted.value.patch
    patch.encode("utf-8")  # plain UTF-8 text, whatever the bytes it carries
    assert patch.count("diff --git ") == 16
    box.write_file("/tmp/corpus.patch", patch.encode())
    checked = box.run(f"rm -rf /tmp/check && git worktree add -q --detach /tmp/check {ctx.base_commit} && "
                      "cd /tmp/check && git apply /tmp/corpus.patch && git add -A && git write-tree")
    expected = box.run("git add -A && git write-tree")
    assert checked.ok and expected.ok, checked.output
    assert checked.output.strip().splitlines()[-1] == expected.output.strip()  # same names, bytes and modes


def test_every_tool_shows_a_latin1_file_by_the_whole_files_rule_and_what_it_shows_reads_back(
        ctx: ToolContext, tmp_path) -> None:
    ctx.cache_dir = str(tmp_path)
    typed, raw = "LIT = '\\\\xe9'", "RAW = 'caf\\xe9'"  # the text \xe9 doubled, the byte as \xe9
    ranged = tool(ctx, "str_replace_editor", command="view", path="escapes.py", view_range=[1, 2])
    assert f"     1\t{typed}" in ranged.text and "not valid UTF-8" in ranged.text
    assert tool(ctx, "bash", command="cd /tmp").data["exit_code"] == 0  # the model's shell elsewhere
    found = tool(ctx, "search", pattern="LIT|RAW")  # rg in this image, judged per file in the sandbox
    assert f"escapes.py:1:{typed}" in found.text and f"escapes.py:7:{raw}" in found.text
    assert found.text.splitlines()[-1].startswith("[Note: escapes.py is not valid UTF-8")
    assert "function caf\\xe9_x" in tool(ctx, "outline", path="escapes.py").text
    assert "│def caf\\xe9_x():" in tool(ctx, "repo_map", max_tokens=4096).text
    snippet = tool(ctx, "str_replace_editor", command="str_replace", path="escapes.py", old_str="WIDTH = 1",
                   new_str="WIDTH = 2")
    assert f"     1\t{typed}" in snippet.text
    for old in (typed, raw):
        edited = tool(ctx, "str_replace_editor", command="str_replace", path="escapes.py", old_str=old,
                      new_str=old.replace("e9", "e8"))
        assert not edited.is_error, edited.text
    assert ctx.sandbox.read_file("escapes.py") == ESCAPES.replace(b"\\xe9", b"\\xe8").replace(
        b"caf\xe9'", b"caf\xe8'").replace(b"WIDTH = 1", b"WIDTH = 2")


def test_bash_output_shows_bytes_that_are_not_utf8(ctx: ToolContext) -> None:
    listed = tool(ctx, "bash", command="ls && cat prices.py")
    assert "caf\\xe9.py" in listed.text and "LABEL = 'caf\\xe9'" in listed.text and "not UTF-8" in listed.text


@pytest.mark.parametrize("path", [path.decode() for path in NEWER_THAN_THE_GRAMMARS])
def test_code_newer_than_the_grammars_is_edited_and_only_a_sure_error_refused(ctx: ToolContext, path: str) -> None:
    old = next(line for line in NEWER_THAN_THE_GRAMMARS[path.encode()].decode().splitlines() if "= 1;" in line)
    edited = tool(ctx, "str_replace_editor", command="str_replace", path=path, old_str=old,
                  new_str=old.replace("= 1;", "= 2;"))
    assert not edited.is_error and "syntax" not in edited.text  # the grammar's old misreading does not block
    copy = path.replace(".", "_copy.")
    created = tool(ctx, "str_replace_editor", command="create", path=copy,
                   file_text=NEWER_THAN_THE_GRAMMARS[path.encode()].decode())
    assert not created.is_error and "Possible syntax error, the edit was made" in created.text
    assert ctx.sandbox.read_file(copy) == NEWER_THAN_THE_GRAMMARS[path.encode()]
    broken = tool(ctx, "str_replace_editor", command="insert", path=path, insert_line=0, new_str="}")
    assert broken.is_error and "the edit adds 1 more `}` than `{`" in broken.text
    assert ctx.sandbox.read_file(path).startswith(NEWER_THAN_THE_GRAMMARS[path.encode()].split(b"\n")[0])
