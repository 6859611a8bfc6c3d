"""Untrusted text reaches the terminal with its control characters shown, not obeyed."""

from __future__ import annotations

import io
import unicodedata

from rich.console import Console

from agent.loop import RunResult
from agent.progress import LiveProgress, print_diff, print_summary
from agent.terminal import escape, visible

CLEAR = "\x1b[2J\x1b[H"
CLIPBOARD = "\x1b]52;c;ZWNobyBwd25lZA==\x07"  # OSC 52: put "echo pwned" on the clipboard
HIDDEN_LINK = "\x1b]8;;https://evil.example\x1b\\docs\x1b]8;;\x1b\\"  # OSC 8: a link whose target is hidden
BIDI = "access = \u202eeurt\u202c"
HOSTILE = CLEAR + CLIPBOARD + HIDDEN_LINK + BIDI + "\x9b31m" + "\r\x08"


def console() -> tuple[Console, io.StringIO]:
    out = io.StringIO()
    return Console(file=out, force_terminal=True, color_system="truecolor", width=200), out


def test_visible_shows_every_control_character_and_keeps_text() -> None:
    shown = visible("line one\n\tindented " + HOSTILE)
    assert shown.startswith("line one\n\tindented \\x1b[2J\\x1b[H\\x1b]52;c;ZWNobyBwd25lZA==\\x07")
    assert "\\u202e" in shown and "\\x9b31m" in shown and "\\x0d\\x08" in shown
    assert not any(ch in shown for ch in "\x1b\x07\x9b\u202e\r\x08")
    assert escape("[bold]x[/]\x1b") == "\\[bold]x\\[/]\\x1b"


def test_visible_shows_every_invisible_format_character() -> None:
    """Unicode category Cf (zero-width space U+200B, BOM, bidi marks, tags...): each one an escape."""
    formats = [chr(code) for code in range(0x110000) if unicodedata.category(chr(code)) == "Cf"]
    assert "\u200b" in formats and "\ufeff" in formats and len(formats) > 150
    shown = visible("a".join(formats))
    assert not any(ch in shown for ch in formats)
    assert visible("zero\u200bwidth") == "zero\\u200bwidth" and visible("\U000e0041") == "\\U000e0041"
    assert visible("café 日本 😀") == "café 日本 😀"  # printable text is untouched


def test_live_progress_does_not_pass_sandbox_escapes_through() -> None:
    term, out = console()
    progress = LiveProgress(term)
    progress("tool", {"name": "bash", "arguments": {"command": f"echo '{HOSTILE}'"}, "observation": HOSTILE,
                      "is_error": False})
    progress("format_error", {"errors": [HOSTILE]})
    printed = out.getvalue()
    # Rich's own colours are SGR sequences `ESC[...m`; nothing else may reach the terminal.
    stripped = _without_rich_styles(printed)
    assert "\x1b" not in stripped and "\x07" not in stripped and "\u202e" not in stripped
    assert "\\x1b]52;c;" in printed


def test_diff_and_summary_show_escapes_from_the_patch_and_the_run() -> None:
    term, out = console()
    patch = f"diff --git a/x b/x\n--- a/x\n+++ b/x\n@@ -1 +1 @@\n-old\n+{HOSTILE}\n"
    print_diff(term, patch)
    result = RunResult(status="submitted", message=HOSTILE, patch=patch, steps=1, prompt_tokens=1,
                       completion_tokens=1, cost=None, elapsed=1.0, prefix_reuse=None, compactions=0,
                       last_tests={"command": HOSTILE, "passed": 1})
    print_summary(term, result)
    stripped = _without_rich_styles(out.getvalue())
    assert "\x1b" not in stripped and "\x07" not in stripped and "\u202e" not in stripped
    assert out.getvalue().count("\\x1b]8;;https://evil.example") >= 2


def _without_rich_styles(text: str) -> str:
    import re

    return re.sub(r"\x1b\[[0-9;]*m", "", text)


def test_a_diff_on_a_narrow_terminal_keeps_each_line_whole() -> None:
    """Coloured on a terminal, but a 300-character line is still one line (copying it gives the patch)."""
    out = io.StringIO()
    term = Console(file=out, force_terminal=True, color_system="truecolor", width=80)
    long_line = "+    total = " + " + ".join(f"value_{i}" for i in range(30))
    patch = f"diff --git a/x b/x\n--- a/x\n+++ b/x\n@@ -1 +1 @@\n-old\n{long_line}\n"
    print_diff(term, patch)
    assert len(long_line) > 200 and _without_rich_styles(out.getvalue()) == patch


# calc.py with a form-feed line and an escape byte in context lines: the model edited a line near them.
EXACT_PATCH = ("diff --git a/calc.py b/calc.py\n--- a/calc.py\n+++ b/calc.py\n@@ -1,4 +1,4 @@\n \x0c\n"
               " RED = '\x1b[31m'\n PLAIN = '\\x1b[0m'\n-def add(a, b): return a - b\n+def add(a, b): return a + b\n")


def _print_to(stream_fd: int) -> None:
    with open(stream_fd, "w", encoding="utf-8", closefd=False) as stream:
        print_diff(Console(file=stream, highlight=False), EXACT_PATCH)


def test_a_diff_to_a_file_or_a_pipe_is_the_exact_patch(tmp_path) -> None:
    """#16: context lines went out as ` \\x0c` and `'\\x1b[31m'` escaped, so `git apply --check` failed."""
    import os
    import subprocess

    path = tmp_path / "out.patch"
    with path.open("w") as file:
        _print_to(file.fileno())
    read_end, write_end = os.pipe()
    _print_to(write_end)
    os.close(write_end)
    with os.fdopen(read_end, encoding="utf-8") as pipe:
        piped = pipe.read()
    assert path.read_text() == piped == EXACT_PATCH
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "calc.py").write_text("\x0c\nRED = '\x1b[31m'\nPLAIN = '\\x1b[0m'\ndef add(a, b): return a - b\n")
    subprocess.run(["git", "init", "-q"], cwd=repo, check=True)
    subprocess.run(["git", "apply", "--check", str(path)], cwd=repo, check=True)


def test_a_diff_to_a_real_terminal_shows_escapes() -> None:
    import os
    import pty

    leader, follower = pty.openpty()
    try:
        _print_to(follower)
        shown = os.read(leader, 65536).decode()
    finally:
        os.close(follower)
        os.close(leader)
    plain = _without_rich_styles(shown)
    assert "\\x0c" in plain and "\\x1b[31m" in plain and "\x0c" not in plain and "\x1b" not in plain
