"""Lint-on-edit: edits that add syntax errors are refused with a located message; others pass."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from tools import languages
from tools.languages import Grammar
from tools.lint import check_edit


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
