"""Extension -> grammar: every supported language loads from its wheel and parses real code."""

from __future__ import annotations

import pytest

from tools import languages
from tools.languages import Grammar, language_for, language_name_for, load_language, parser_for

SNIPPETS = {
    "app.py": (b"class A:\n    def f(self):\n        return 1\n", "python"),
    "app.js": (b"export function f(a) { return a + 1; }\n", "javascript"),
    "view.jsx": (b"const v = <div className='x'>hi</div>;\n", "javascript"),
    "lib.mjs": (b"import x from './x.js';\n", "javascript"),
    "app.ts": (b"interface I { x: number }\nconst a: I = { x: 1 };\n", "typescript"),
    "view.tsx": (b"const v = <div>{1 as number}</div>;\n", "tsx"),
    "main.go": (b"package main\n\nfunc main() {}\n", "go"),
    "lib.rs": (b"fn main() { let x: i32 = 1; }\n", "rust"),
    "Main.java": (b"class Main { void f() {} }\n", "java"),
    "util.c": (b"int f(void) { return 0; }\n", "c"),
    "util.h": (b"class A { public: int f(); };\n", "cpp"),
    "util.cpp": (b"namespace n { template <typename T> T id(T x) { return x; } }\n", "cpp"),
    "util.hpp": (b"struct S { int x; };\n", "cpp"),
    "app.rb": (b"class A\n  def f\n    1\n  end\nend\n", "ruby"),
    "Rakefile": (b"task :default do\nend\n", "ruby"),
}


@pytest.mark.parametrize("path", SNIPPETS)
def test_every_supported_extension_loads_its_grammar_and_parses(path: str) -> None:
    source, expected = SNIPPETS[path]
    assert language_name_for(path) == expected
    assert language_for(path) is load_language(expected) is not None
    tree = parser_for(path).parse(source)
    assert not tree.root_node.has_error


def test_typescript_and_tsx_are_different_grammars() -> None:
    jsx = b"const v = <div>hi</div>;\n"
    assert not parser_for("v.tsx").parse(jsx).root_node.has_error
    assert parser_for("v.ts").parse(jsx).root_node.has_error


def test_extensions_match_case_insensitively_and_only_on_the_name() -> None:
    assert language_name_for("SRC/MAIN.PY") == "python"
    assert language_name_for("pkg.py/README") is None
    assert language_name_for(".py") is None  # a dotfile, not a Python file


@pytest.mark.parametrize("path", ["notes.txt", "Makefile", "data.json", "noext", "archive.tar.gz"])
def test_unknown_files_have_no_grammar(path: str) -> None:
    assert language_name_for(path) is None
    assert language_for(path) is None
    assert parser_for(path) is None


def test_parsers_are_reused_per_language() -> None:
    assert parser_for("a.py") is parser_for("b/c.py")
    assert parser_for("a.ts") is not parser_for("a.tsx")


def test_a_missing_grammar_wheel_means_unsupported_not_a_crash(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(languages.GRAMMARS, "cobol", Grammar("cobol", "tree_sitter_cobol_not_installed"))
    monkeypatch.setitem(languages.EXTENSIONS, ".cob", "cobol")
    assert language_name_for("x.cob") == "cobol"
    assert language_for("x.cob") is None
    assert parser_for("x.cob") is None
    assert "cobol" not in languages.supported_languages()
    assert {"python", "javascript", "typescript", "tsx", "go", "rust", "java", "c", "cpp", "ruby"} <= set(
        languages.supported_languages())
