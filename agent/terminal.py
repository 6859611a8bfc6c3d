"""Printing untrusted text on a terminal: control characters shown, never obeyed.

Sandbox output, model replies, patches and issue text can hold escape sequences that a
terminal would act on: screen clears, OSC 52 clipboard writes, OSC 8 links that hide
their target, cursor moves that overwrite what was printed, bidirectional overrides that
reorder what a diff seems to say. `visible` renders each such character as an escape
(`\\x1b`, `\\u202e`) so the person watching sees it and the terminal ignores it.
"""

from __future__ import annotations

import re

from rich.markup import escape as escape_markup

# C0 controls but tab and newline, DEL, C1 controls, and Unicode's bidirectional
# embeddings, overrides and isolates (the "Trojan Source" characters).
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def visible(text: str) -> str:
    """`text` with every control character replaced by its escape (`\\x1b[2J` stays readable, inert)."""
    return _CONTROL.sub(_escape_one, text)


def escape(text: str) -> str:
    """`visible(text)` made safe to embed in rich markup too."""
    return escape_markup(visible(text))


def _escape_one(found: re.Match[str]) -> str:
    code = ord(found[0])
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"
