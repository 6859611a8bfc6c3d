"""Showing untrusted text: control characters shown, never obeyed; secrets masked.

Sandbox output, model replies, patches, repository file names and issue text can hold
escape sequences that a terminal would act on: screen clears, OSC 52 clipboard writes,
OSC 8 links that hide their target, cursor moves that overwrite what was printed,
bidirectional overrides that reorder what a diff seems to say, invisible tag characters.
`visible` renders each such character as an escape (`\\x1b`, `\\u202e`) so the person
watching sees it and the terminal ignores it, and masks every secret the process holds
(`agent.redaction.scrub`) first, so that no later escaping can hide one. It is the one
sanitiser for text we did not write that goes into a terminal line, the job log, a
commit message, a branch name or a pull request; `visible_line` for a one-line place
(a commit's subject, a pull request's title).
"""

from __future__ import annotations

import re

from rich.markup import escape as escape_markup

from agent.redaction import scrub

# C0 controls but tab and newline, DEL, C1 controls, Unicode's bidirectional embeddings,
# overrides and isolates (the "Trojan Source" characters), the line and paragraph
# separators, and the invisible tag characters (text a reader cannot see, a model can).
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069"
                      "\U000e0000-\U000e007f]")


def visible(text: str) -> str:
    """`text` with secrets masked and every control character replaced by its escape (`\\x1b[2J` stays
    readable, inert)."""
    return _CONTROL.sub(_escape_one, scrub(text))


def visible_line(text: str) -> str:
    """`visible(text)` on one line: any run of whitespace (newlines included) becomes one space."""
    return " ".join(visible(text).split())


def escape(text: str) -> str:
    """`visible(text)` made safe to embed in rich markup too."""
    return escape_markup(visible(text))


def _escape_one(found: re.Match[str]) -> str:
    code = ord(found[0])
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"
