"""File extension -> tree-sitter grammar, loaded from the per-language wheels.

Grammars come from wheels such as `tree-sitter-python` (never a run-time download), so a
language whose wheel is not installed is simply unsupported: callers get `None` and let the
file through instead of crashing.
"""

from __future__ import annotations

import functools
import importlib
import os
from dataclasses import dataclass

from tree_sitter import Language, Parser


@dataclass(frozen=True)
class Grammar:
    """Where a grammar lives: the wheel's module and the function returning its pointer."""

    name: str
    module: str
    function: str = "language"


GRAMMARS: dict[str, Grammar] = {
    grammar.name: grammar
    for grammar in (
        Grammar("python", "tree_sitter_python"),
        Grammar("javascript", "tree_sitter_javascript"),
        Grammar("typescript", "tree_sitter_typescript", "language_typescript"),
        Grammar("tsx", "tree_sitter_typescript", "language_tsx"),
        Grammar("go", "tree_sitter_go"),
        Grammar("rust", "tree_sitter_rust"),
        Grammar("java", "tree_sitter_java"),
        Grammar("c", "tree_sitter_c"),
        Grammar("cpp", "tree_sitter_cpp"),
        Grammar("ruby", "tree_sitter_ruby"),
    )
}

# `.h` goes to C++: its grammar also reads plain C headers, while the C grammar rejects
# every class in a C++ header, which would make lint refuse good edits.
EXTENSIONS: dict[str, str] = {
    ".py": "python", ".pyi": "python", ".pyw": "python",
    ".js": "javascript", ".jsx": "javascript", ".mjs": "javascript", ".cjs": "javascript",
    ".ts": "typescript", ".mts": "typescript", ".cts": "typescript",
    ".tsx": "tsx",
    ".go": "go",
    ".rs": "rust",
    ".java": "java",
    ".c": "c",
    ".h": "cpp", ".cc": "cpp", ".cpp": "cpp", ".cxx": "cpp", ".c++": "cpp",
    ".hh": "cpp", ".hpp": "cpp", ".hxx": "cpp", ".h++": "cpp", ".ipp": "cpp", ".tpp": "cpp",
    ".rb": "ruby", ".rake": "ruby", ".gemspec": "ruby", ".ru": "ruby",
}  # fmt: skip

FILENAMES: dict[str, str] = {"Rakefile": "ruby", "Gemfile": "ruby"}

GENERATED_MIN_BYTES = 4096
GENERATED_LINE_BYTES = 1000  # mean bytes per line above which a file is minified or generated
GENERATED_LONG_LINE_BYTES = 65_536  # any one line this long: generated, whatever the mean (a blob plus blank lines)
GENERATED_NAME_PARTS = (".min.", "-min.", ".bundle.", ".chunk.")


def language_name_for(path: str) -> str | None:
    """The grammar name for a path, judged by its extension (or a few well-known names)."""
    base = path.rsplit("/", 1)[-1].rsplit(os.sep, 1)[-1]
    if base in FILENAMES:
        return FILENAMES[base]
    dot = base.rfind(".")
    return EXTENSIONS.get(base[dot:].lower()) if dot > 0 else None


@functools.cache
def load_language(name: str) -> Language | None:
    """The grammar, loaded once; None when unknown or its wheel is not installed."""
    grammar = GRAMMARS.get(name)
    if grammar is None:
        return None
    try:
        module = importlib.import_module(grammar.module)
        return Language(getattr(module, grammar.function)())
    except (ImportError, AttributeError, ValueError):
        return None


@functools.cache
def parser_for_language(name: str) -> Parser | None:
    """One reusable parser per grammar (creating one per file costs more than small parses)."""
    language = load_language(name)
    return Parser(language) if language is not None else None


def language_for(path: str) -> Language | None:
    name = language_name_for(path)
    return load_language(name) if name else None


def parser_for(path: str) -> Parser | None:
    name = language_name_for(path)
    return parser_for_language(name) if name else None


def supported_languages() -> list[str]:
    """Grammar names whose wheel is installed."""
    return [name for name in GRAMMARS if load_language(name) is not None]


def looks_generated(path: str, source: bytes) -> bool:
    """Minified or generated code (`app.min.js`, a bundle with 600 KB on one line): noise in a map,
    and the input that makes tools built for source quadratic or huge (tree-sitter's tree takes
    about 60 bytes per byte of minified code). Judged by name, then by mean line length, then by the
    longest line: 985 KB on one line followed by 1000 blank lines has a short mean but is no source."""
    name = path.rsplit("/", 1)[-1]
    if any(part in name for part in GENERATED_NAME_PARTS):
        return True
    if len(source) < GENERATED_MIN_BYTES:
        return False
    if len(source) > GENERATED_LINE_BYTES * (source.count(b"\n") + 1):
        return True
    return len(source) > GENERATED_LONG_LINE_BYTES and _longest_line(source) > GENERATED_LONG_LINE_BYTES


def _longest_line(source: bytes) -> int:
    """Bytes in the longest line, found by `find` in C, without copying the lines."""
    longest = start = 0
    while (end := source.find(b"\n", start)) >= 0:
        longest = max(longest, end - start)
        start = end + 1
    return max(longest, len(source) - start)
