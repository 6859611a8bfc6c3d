"""Lint-on-edit: edits that surely add syntax errors are refused with a located message; possible ones are
written with a note; files no grammar reads are said to be unchecked."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from tests.host_sandbox import HostSandbox
from tools import languages
from tools.languages import Grammar
from tools.lint import check_edit, lint_edit


@dataclass(frozen=True)
class Case:
    """A two-function file; `old` in the second function becomes `good` or `bad` (one stray `)`)."""

    path: str
    source: str
    old: str
    good: str
    bad: str
    bad_line: int
    broken_tail: str  # appended to make a file that already has a syntax error

    def edited(self, replacement: str, *, broken: bool = False, newline: str = "\n") -> bytes:
        text = self.source.replace(self.old, replacement) + (self.broken_tail if broken else "")
        return text.replace("\n", newline).encode()

    def original(self, *, broken: bool = False, newline: str = "\n") -> bytes:
        return self.edited(self.old, broken=broken, newline=newline)


CASES = [
    Case("pkg/m.py", "def add(a, b):\n    return a + b\n\n\ndef sub(a, b):\n    return a - b\n",
         "return a - b", "return b - a", "return a - b)", 6, "\nvalue = [1, 2,\n"),
    Case("web/m.js", "function add(a, b) {\n  return a + b;\n}\n\nfunction sub(a, b) {\n  return a - b;\n}\n",
         "return a - b;", "return b - a;", "return a - b);", 6, "\nconst broken = [1, 2;\n"),
    Case("web/m.ts", "function add(a: number, b: number): number {\n  return a + b;\n}\n\n"
         "function sub(a: number, b: number): number {\n  return a - b;\n}\n",
         "return a - b;", "return b - a;", "return a - b);", 6, "\nconst broken: number = (1;\n"),
    Case("web/m.tsx", "export function View() {\n  return <div>hi</div>;\n}\n\nexport function Other() {\n"
         "  return <span>a</span>;\n}\n", "<span>a</span>", "<span>b</span>", "<span>a</span>)", 6,
         "\nconst broken = (1;\n"),
    Case("m.go", "package m\n\nfunc Add(a, b int) int {\n\treturn a + b\n}\n\nfunc Sub(a, b int) int {\n"
         "\treturn a - b\n}\n", "return a - b", "return b - a", "return a - b)", 8, "\nvar broken = (1\n"),
    Case("src/m.rs", "fn add(a: i32, b: i32) -> i32 {\n    a + b\n}\n\nfn sub(a: i32, b: i32) -> i32 {\n"
         "    a - b\n}\n", "    a - b\n", "    b - a\n", "    a - b)\n", 6, "\nconst BROKEN: i32 = (1;\n"),
    Case("M.java", "class M {\n  int add(int a, int b) {\n    return a + b;\n  }\n\n  int sub(int a, int b) {\n"
         "    return a - b;\n  }\n}\n", "return a - b;", "return b - a;", "return a - b);", 7,
         "\nclass Broken { int x = (1; }\n"),
    Case("m.c", "int add(int a, int b) {\n  return a + b;\n}\n\nint sub(int a, int b) {\n  return a - b;\n}\n",
         "return a - b;", "return b - a;", "return a - b);", 6, "\nint broken = (1;\n"),
    Case("m.cpp", "namespace m {\nint add(int a, int b) {\n  return a + b;\n}\n\nint sub(int a, int b) {\n"
         "  return a - b;\n}\n}\n", "return a - b;", "return b - a;", "return a - b);", 7, "\nint broken = (1;\n"),
    Case("m.rb", "def add(a, b)\n  a + b\nend\n\ndef sub(a, b)\n  a - b\nend\n", "  a - b\n", "  b - a\n",
         "  a - b)\n", 6, "\nbroken = [1, 2\n"),
]
by_path = pytest.mark.parametrize("case", CASES, ids=[case.path.rsplit(".", 1)[1] for case in CASES])


@by_path
def test_a_good_edit_passes(case: Case) -> None:
    report = check_edit(case.path, case.original(), case.edited(case.good))
    assert report.ok and report.checked
    assert report.message == ""


@by_path
def test_an_edit_adding_an_error_is_rejected_at_its_line(case: Case) -> None:
    report = check_edit(case.path, case.original(), case.edited(case.bad))
    assert not report.ok
    assert [problem.line for problem in report.new_problems] == [case.bad_line]
    assert "NOT applied" in report.message
    assert f"{case.path}:{case.bad_line}:" in report.message
    assert f"> {case.bad_line} |" in report.message  # the marked context line
    assert "^" in report.message


@by_path
def test_an_existing_error_does_not_block_unrelated_edits_but_new_errors_are_caught(case: Case) -> None:
    before = case.original(broken=True)
    assert not check_edit(case.path, case.original(), before).ok  # the tail really is a syntax error
    assert check_edit(case.path, before, case.edited(case.good, broken=True)).ok
    report = check_edit(case.path, before, case.edited(case.bad, broken=True))
    assert not report.ok
    assert [problem.line for problem in report.new_problems] == [case.bad_line]
    assert "already had 1 syntax error" in report.message


@by_path
def test_crlf_files_are_checked_with_the_right_lines(case: Case) -> None:
    assert check_edit(case.path, case.original(newline="\r\n"), case.edited(case.good, newline="\r\n")).ok
    report = check_edit(case.path, case.original(newline="\r\n"), case.edited(case.bad, newline="\r\n"))
    assert [problem.line for problem in report.new_problems] == [case.bad_line]
    assert "\r" not in report.message


@by_path
def test_a_new_file_is_checked_whole(case: Case) -> None:
    assert check_edit(case.path, None, case.edited(case.good)).ok
    assert not check_edit(case.path, None, case.edited(case.bad)).ok


def test_non_utf8_bytes_do_not_crash_and_columns_count_characters() -> None:
    before = "# café\nname = 'caf\xe9'\n".encode("latin-1")
    assert check_edit("legacy.py", before, before + b"x = 1\n").ok
    report = check_edit("legacy.py", before, before + b"x = (1\n")
    assert [problem.line for problem in report.new_problems] == [3]
    assert "legacy.py:3:" in report.message
    utf8 = "s = 'é'\n".encode()
    report = check_edit("u.py", utf8, utf8 + "t = 'é' + )\n".encode())
    assert report.new_problems[0].line == 2
    assert report.new_problems[0].column <= len("t = 'é' + )")  # characters, not bytes


def test_a_refusal_shows_a_file_that_is_not_utf8_by_its_whole_files_rule() -> None:
    before = b"LIT = '\\xe9'\nRAW = 'caf\xe9'\n"  # the typed text \xe9, then the latin-1 byte
    report = check_edit("legacy.py", before, before + b"x = (1 +\n")
    assert "1 | LIT = '\\\\xe9'" in report.message and "2 | RAW = 'caf\\xe9'" in report.message  # as `view` shows
    utf8 = b"LIT = '\\xe9'\nNAME = 'caf\xc3\xa9'\n"
    assert "1 | LIT = '\\xe9'" in check_edit("modern.py", utf8, utf8 + b"x = (1 +\n").message  # never escaped


def test_unknown_extensions_pass_through_unchecked() -> None:
    report = check_edit("notes.txt", b"(", b"((((")
    assert report.ok and not report.checked
    assert check_edit("Makefile", None, b"all:\n\t(((\n").ok


def test_a_language_whose_grammar_wheel_is_missing_passes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(languages.GRAMMARS, "cobol", Grammar("cobol", "tree_sitter_cobol_not_installed"))
    monkeypatch.setitem(languages.EXTENSIONS, ".cob", "cobol")
    report = check_edit("legacy.cob", b"", b"IDENTIFICATION DIVISION. ((((")
    assert report.ok and not report.checked


def test_fixing_one_error_while_adding_another_is_still_rejected() -> None:
    before = b"a = (1\n\nb = 2\n"
    after = b"a = (1)\n\nb = 2)\n"
    report = check_edit("swap.py", before, after)
    assert not report.ok
    assert [problem.line for problem in report.new_problems] == [3]


def test_several_new_errors_are_all_counted() -> None:
    before = b"def f():\n    return 1\n"
    after = b"def f(:\n    return 1\n\n\ndef g(:\n    return 2\n"
    report = check_edit("many.py", before, after)
    assert len(report.new_problems) == 2
    assert "add 2 syntax errors" in report.message
    assert "many.py:1:" in report.message and "many.py:5:" in report.message


# -- the rule: refuse only what is surely an error of the edit (issue 14, what remains: item 1) ------------
@pytest.fixture
def shell(host_box: HostSandbox) -> HostSandbox:
    """A sandbox whose files and shell are this machine's: the language checks run with its own tools
    (python3 here; no rustc, tsc or C23 compiler is asked, as none is in LANGUAGE_CHECKS)."""
    return host_box


NEWER_THAN_THE_GRAMMARS = [  # valid code that tree-sitter-rust 0.24, -typescript 0.23 and -c 0.24 misread
    ("src/ffi.rs", 'unsafe extern "C" {\n    pub safe fn abs(x: i32) -> i32;\n}\n'),  # Rust 1.82
    ("src/sys.rs", 'unsafe extern "C" {\n    pub safe static LEVEL: i32;\n    pub unsafe fn free(p: *mut u8);\n}\n'),
    ("web/lazy.ts", "import defer * as heavy from './heavy';\nexport const x = heavy.value;\n"),  # TS 5.9
    ("blob.c", 'const unsigned char data[] = {\n#embed "data.bin"\n};\n'),  # C23
    ("bits.c", "_BitInt(32) wide;\nenum colour : unsigned char { RED, GREEN };\n"),  # C23
    ("infer.c", "int main(void) {\n    auto y = 3;\n    return y;\nend: }\n"),  # C23 auto, label at a block's end
]


@pytest.mark.parametrize(("path", "code"), NEWER_THAN_THE_GRAMMARS, ids=[p for p, _ in NEWER_THAN_THE_GRAMMARS])
def test_newer_syntax_the_grammar_misreads_is_written_with_a_possible_error_note(shell, path: str, code: str) -> None:
    assert not check_edit(path, b"", code.encode()).ok  # the grammar really does misread it
    for before in (None, b"int unrelated;\n" if path.endswith(".c") else b"\n"):
        outcome = lint_edit(shell, path, before, code.encode())
        assert not outcome.refused, outcome.message
        assert outcome.note.startswith("\n(Possible syntax error, the edit was made: the tree-sitter grammar reports")
        assert f"{path}:" in outcome.note and "no interpreter or compiler in the sandbox" in outcome.note


@pytest.mark.parametrize("case", [c for c in CASES if c.path.endswith((".rs", ".ts", ".c", ".cpp", ".java", ".tsx"))],
                         ids=lambda case: case.path)
def test_an_edit_that_unbalances_brackets_is_refused_without_a_compiler(shell, case: Case) -> None:
    outcome = lint_edit(shell, case.path, case.original(), case.edited(case.bad))
    assert outcome.refused
    assert "NOT applied" in outcome.message and f"{case.path}:{case.bad_line}:" in outcome.message
    assert "the edit adds 1 more `)` than `(`" in outcome.message
    assert not lint_edit(shell, case.path, case.original(), case.edited(case.good)).refused


def test_brackets_in_strings_comments_and_template_tokens_do_not_count() -> None:
    before = b"const a = 1;\n"
    after = b"const s = `(${a}[`; // ) }\nconst t = '{' + \"[\";\nconst u = x y;\n"
    report = check_edit("w.js", before, after)
    assert not report.ok and report.unbalanced == ""  # `x y` is an error, the brackets are all balanced


def test_a_file_already_unbalanced_accepts_edits_that_do_not_change_its_balance(shell) -> None:
    before = b"fn broken( {\n}\n\nfn ok() {}\n"
    after = before + b'unsafe extern "C" {\n    pub safe fn abs(x: i32) -> i32;\n}\n'
    assert not lint_edit(shell, "lib.rs", before, after).refused
    assert lint_edit(shell, "lib.rs", before, after + b"fn more() { (\n}\n").refused


def test_python_is_refused_when_the_interpreter_rejects_what_it_accepted_before(shell) -> None:
    outcome = lint_edit(shell, "pkg/m.py", b"x = 1\n", b"x = 1\ny = x +\n")  # no bracket changed
    assert outcome.refused and "python in the sandbox agrees" in outcome.message and "SyntaxError" in outcome.message


def test_python_code_the_interpreter_accepts_is_written_with_a_note(shell) -> None:
    outcome = lint_edit(shell, "mac.py", None, b"x = 1\ry = x + 1\r")  # CR line ends: the grammar sees one line
    assert not outcome.refused and "python in the sandbox accepts the file" in outcome.note


def test_an_interpreter_that_rejected_the_file_before_does_not_decide(shell) -> None:
    before = b"print 'old'\n\nx = 1\n"  # Python 2: python3 rejects the file whatever the edit does
    balanced = lint_edit(shell, "legacy.py", before, before + b"y = x +\n")
    assert not balanced.refused and balanced.note.startswith("\n(Possible syntax error")
    assert "python in the sandbox rejected this file before the edit too" in balanced.note
    unbalanced = lint_edit(shell, "legacy.py", before, before + b"y = (x +\n")
    assert unbalanced.refused and "1 more `(` than `)`" in unbalanced.message


def test_files_no_grammar_reads_are_written_and_said_to_be_unchecked(shell, monkeypatch) -> None:
    assert lint_edit(shell, "app/Main.kt", None, b"fun main( {").note == (
        "\n(Syntax not checked: no tree-sitter grammar reads .kt files.)")
    assert "no tree-sitter grammar reads Makefile" in lint_edit(shell, "Makefile", None, b"all:\n").note
    monkeypatch.setitem(languages.GRAMMARS, "rust", Grammar("rust", "tree_sitter_rust_not_installed"))
    languages.load_language.cache_clear()
    languages.parser_for_language.cache_clear()
    try:
        assert "the tree-sitter grammar for rust is not installed" in lint_edit(shell, "a.rs", None, b"fn (").note
    finally:
        languages.load_language.cache_clear()
        languages.parser_for_language.cache_clear()
    assert "minified or generated" in lint_edit(shell, "dist/app.min.js", None, b"x=(").note
    assert shell.commands == []  # nothing to ask the sandbox about


def test_c_under_conditional_compilation_is_never_sure_but_include_guards_are_no_excuse(shell) -> None:
    split_brace = (b"int f(int a, int b) {\n#ifdef X\n  if (a) {\n#else\n  if (b) {\n#endif\n    return 1;\n"
                   b"  }\n  return 0;\n}\n")  # valid C: one of the two `{` is compiled
    outcome = lint_edit(shell, "split.c", b"int z;\n", b"int z;\n" + split_brace)
    assert not outcome.refused and outcome.note.startswith("\n(Possible syntax error")
    guarded = b"#ifndef M_H\n#define M_H\nint f(void);\n#endif\n"
    assert lint_edit(shell, "m.h", guarded, guarded.replace(b"f(void);", b"f(void));")).refused


def test_an_interpreter_refusal_shows_the_new_code_and_yields_to_the_same_edit_sent_again(shell) -> None:
    shell.write_file("m.py", b"def g():\n    pass\n")  # the old file, where the interpreter is run
    before, after = b"def g():\n    pass\n", b"x = 1\ndef f(:\n    pass\n"
    refused = lint_edit(shell, "m.py", before, after)
    assert refused.refused and refused.repeatable
    checked = refused.message.split("python in the sandbox agrees:\n", 1)[1]
    assert "def f(:" in checked and "def g():" not in checked  # the edited code's line, not the old file's
    version = shell.run("python3 -c 'import sys; print(\"%d.%d\" % sys.version_info[:2])'").output.strip()
    assert f"newer than the sandbox's python {version}, send exactly the same edit again" in refused.message
    made = lint_edit(shell, "m.py", before, after, repeated=True)
    assert not made.refused and f"python {version} in the sandbox rejects it" in made.note
    assert "sent again" in made.note


def test_a_sure_tree_sitter_refusal_does_not_yield_to_a_repeat(shell) -> None:
    outcome = lint_edit(shell, "widget.rs", None, b"fn main( {\n}\n", repeated=True)
    assert outcome.refused and not outcome.repeatable


MACROS_HOLDING_BRACKETS = [  # valid code: the brackets a macro expands to balance what the edit adds
    ("ns.cpp", b"#define NS_BEGIN namespace foo {\n#define NS_END }\n\nNS_BEGIN\nint f() { return 1; }\nNS_END\n",
     b"NS_END\n", b"}  // namespace foo\n"),
    ("m.c", b"#define CALL(f) f(\nint g(int x) { return x; }\nint h(void) {\n    return g(1);\n}\n",
     b"return g(1);", b"return CALL(g) 1);"),
    ("cont.h", b"#define OPEN_BLOCK \\\n    if (1) {\nint k(void) {\n    OPEN_BLOCK\n    return 1;\n}\n",
     b"    return 1;\n}\n", b"    return 1;\n    }\n}\n"),  # the body's `{` is on a continued line
]


@pytest.mark.parametrize(("path", "before", "old", "new"), MACROS_HOLDING_BRACKETS,
                         ids=[p for p, *_ in MACROS_HOLDING_BRACKETS])
def test_c_whose_macros_hold_brackets_is_never_sure(shell, path: str, before: bytes, old: bytes, new: bytes) -> None:
    after = before.replace(old, new)
    outcome = lint_edit(shell, path, before, after)
    assert not outcome.refused, outcome.message
    assert not check_edit(path, before, after).ok  # the grammar does misread it: said, not refused
    assert outcome.note.startswith("\n(Possible syntax error, the edit was made")


def test_the_example_namespace_edit_is_made_and_an_unbalanced_edit_without_such_macros_still_refused(shell) -> None:
    before = b"#define NS_BEGIN namespace foo {\n#define NS_END }\n\nNS_BEGIN\nint f() { return 1; }\nNS_END\n"
    after = before.replace(b"NS_END\n", b"}  // namespace foo\n")
    report = check_edit("ns.cpp", before, after)
    assert not report.ok and report.unbalanced == ""  # the grammar sees an extra `}`, but is not sure of it
    assert not lint_edit(shell, "ns.cpp", before, after).refused
    balanced_macros = b"#define MAX(a, b) ((a) > (b) ? (a) : (b))\n#define EMPTY {}\nint f() { return 1; }\n"
    refused = lint_edit(shell, "plain.cpp", balanced_macros, balanced_macros + b"}\n")
    assert refused.refused and "Sure without a compiler: the edit adds 1 more `}` than `{`" in refused.message
    refused_c = lint_edit(shell, "plain.c", b"int g(int x) { return x; }\n", b"int g(int x) { return x); }\n")
    assert refused_c.refused and "1 more `)` than `(`" in refused_c.message
