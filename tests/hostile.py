"""A small corpus of hostile repository contents, generated in code, that every tool is run against.

Each entry is a kind of input taken from real bug reports against coding agents: bytes that
are not UTF-8 in contents and in names, names with spaces, quotes and newlines, CRLF/LF
mixes and old-Mac CR endings, a minified bundle, a 5 MB single-line file, binary data and
NUL bytes, symlinks (in and out of the repository), a latin-1 file whose first lines hold the
typed text `\\xe9` and no latin-1 byte (every view must show it by the whole file's rule), an
edit's span ending right before an untouched CRLF, pytest ids with spaces and brackets in a
repository that turns pytest's JUnit XML off, and valid Rust, TypeScript and C23 that the
shipped grammars misread. `write_corpus` lays it out on the host; `corpus_archive` is the same as a tar to
put into a sandbox in one call.
"""

from __future__ import annotations

import io
import tarfile
from dataclasses import dataclass
from pathlib import Path

HUGE_LINE_BYTES = 5_000_000
BUNDLE_BYTES = 300_000

CALC = b"""\
def add(a, b):
    return a + b
"""

CALC_TESTS = b"""\
import pytest

from calc import add


@pytest.mark.parametrize("expr,want", [("1 + 1", 2), ("2 * 3", 7), ("10 - 4", 6), ("2 * 3 ", 6)])
def test_eval(expr, want):
    assert eval(expr) == want


@pytest.mark.parametrize("text", ["a[b]", "x::y"])
def test_odd_ids(text):
    assert add(len(text), 0) == len(text)
"""

# Latin-1: lines 1-6 hold the TEXT \xe9 (a Python escape) and no latin-1 byte; lines 7 and 9 hold the byte,
# the second inside an identifier (tree-sitter would end it there: `caf`).
ESCAPES = (b"LIT = '\\xe9'\nWIDTH = 1\n\n\n\n\nRAW = 'caf\xe9'\n\n\ndef caf\xe9_x():\n    return LIT\n")

PYTEST_INI = b"[pytest]\naddopts = -p no:junitxml\n"  # no JUnit XML report: run_tests must not need one

# Valid code newer than the grammars this project ships (tree-sitter-rust 0.24, -typescript 0.23,
# -c 0.24), which those grammars read as syntax errors; each ends in a `level` line to edit.
NEWER_THAN_THE_GRAMMARS = {
    b"src/ffi.rs": b'unsafe extern "C" {\n    pub safe fn abs(x: i32) -> i32;\n}\n\npub const LEVEL: i32 = 1;\n',
    b"web/lazy.ts": b"import defer * as heavy from './heavy';\n\nexport const level = 1;\n",
    b"c23/blob.c": b'static const unsigned char blob[] = {\n#embed "blob.bin"\n};\n\n_BitInt(32) wide;\nint level = 1;\n',
}

# Ids pytest gives the tests above, and their outcomes: `2 * 3-7` fails, the rest pass.
TEST_IDS = {
    "tests/test_calc.py::test_eval[1 + 1-2]": "PASSED",
    "tests/test_calc.py::test_eval[2 * 3-7]": "FAILED",
    "tests/test_calc.py::test_eval[10 - 4-6]": "PASSED",
    "tests/test_calc.py::test_eval[2 * 3 -6]": "PASSED",
    "tests/test_calc.py::test_odd_ids[a[b]]": "PASSED",
    "tests/test_calc.py::test_odd_ids[x::y]": "PASSED",
}


def minified_bundle(size: int) -> bytes:
    """What a JavaScript bundler writes: thousands of functions, classes and calls on one line."""
    parts, total, index = [], 0, 0
    while total < size:
        part = f"function h{index}(a){{return h{index // 2}(a)+{index}}};class K{index}{{m(b){{return h{index}(b)}}}};"
        parts.append(part)
        total += len(part)
        index += 1
    return "".join(parts).encode()


@dataclass(frozen=True)
class Entry:
    """One path of the corpus: a file (`data`) or a symlink (`link`); `kind` says what it tests."""

    path: bytes
    kind: str
    data: bytes = b""
    link: str | None = None

    @property
    def name(self) -> str:
        """The path as Python's file system functions (surrogateescape) spell it."""
        return self.path.decode("utf-8", errors="surrogateescape")


def corpus() -> list[Entry]:
    return [
        Entry(b"calc.py", "plain", CALC),
        Entry(b"tests/test_calc.py", "parametrized ids", CALC_TESTS),
        Entry(b"pytest.ini", "JUnit XML turned off", PYTEST_INI),
        *(Entry(path, f"newer {path.rsplit(b'.', 1)[1].decode()} than its grammar", data)
          for path, data in NEWER_THAN_THE_GRAMMARS.items()),
        Entry(b"prices.py", "latin-1 contents", "LABEL = 'café'\nPRICE = 3\n".encode("latin-1")),
        Entry(b"escapes.py", "typed \\xe9 in a latin-1 file", ESCAPES),
        Entry(b"caf\xe9.py", "latin-1 name", b"MENU = 1\n"),
        Entry(b'notes/my "quoted" file.txt', "spaces and quotes in the name", b"quoted\n"),
        Entry(b"notes/new\nline.txt", "newline in the name", b"newline\n"),
        Entry(b"mixed.py", "CRLF and LF mixed", b"first = 1\r\nsecond = 2\nthird = 3\r\n"),
        Entry(b"mac.py", "old-Mac CR line endings", b"x = 1\ry = 2\r"),
        Entry(b"tail.py", "CRLF right after an edit", b"a = 1\nb = 2\r\nc = 3\n"),
        Entry(b"dist/bundle.js", "minified bundle", minified_bundle(BUNDLE_BYTES)),
        Entry(b"data/huge.js", "5 MB single line", b"var big=" + b"1," * (HUGE_LINE_BYTES // 2) + b"0;\n"),
        Entry(b"blob.bin", "binary", bytes(range(256)) * 16),
        Entry(b"nul.py", "NUL bytes in source", b"x = 1\0\n"),
        Entry(b"inside.py", "symlink inside the repository", link="calc.py"),
        Entry(b"outside", "symlink out of the repository", link="/etc/hostname"),
    ]


def write_corpus(root: Path) -> Path:
    """Lay the corpus out under `root` (created if needed) and return it."""
    root.mkdir(parents=True, exist_ok=True)
    for entry in corpus():
        target = root / entry.name
        target.parent.mkdir(parents=True, exist_ok=True)
        if entry.link is not None:
            target.symlink_to(entry.link)
        else:
            target.write_bytes(entry.data)
    return root


def corpus_archive() -> bytes:
    """The corpus as an uncompressed tar, names and bytes exact, for `put_archive`."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.GNU_FORMAT, encoding="utf-8",
                      errors="surrogateescape") as tar:
        for entry in corpus():
            info = tarfile.TarInfo(entry.name)
            if entry.link is not None:
                info.type, info.linkname = tarfile.SYMTYPE, entry.link
                tar.addfile(info)
            else:
                info.size, info.mode = len(entry.data), 0o644
                tar.addfile(info, io.BytesIO(entry.data))
    return buffer.getvalue()
