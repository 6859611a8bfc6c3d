"""Showing untrusted text: control characters shown, never obeyed; secrets masked.

Sandbox output, model replies, patches, repository file names and issue text can hold
escape sequences that a terminal would act on: screen clears, OSC 52 clipboard writes,
OSC 8 links that hide their target, cursor moves that overwrite what was printed,
bidirectional overrides that reorder what a diff seems to say, zero-width and other invisible
format characters (Unicode category Cf), invisible tag characters.
`visible` renders each such character as an escape (`\\x1b`, `\\u202e`) so the person
watching sees it and the terminal ignores it, and masks every secret the process holds
(`agent.redaction.scrub`) first, so that no later escaping can hide one. It is the one
sanitiser for text we did not write that goes into a terminal line, the job log, a
commit message, a branch name or a pull request; `visible_line` for a one-line place
(a commit's subject, a pull request's title).
"""

from __future__ import annotations

import re

from agent.redaction import mask_held, scrub

# C0 controls but tab and newline, DEL, C1 controls, the line and paragraph separators, and
# every invisible format character (Unicode category Cf, as of Unicode 15.1): the soft hyphen,
# zero-width spaces and joiners, the byte order mark, the bidirectional marks, embeddings,
# overrides and isolates (the "Trojan Source" characters), the invisible operators and the tag
# characters: text a reader cannot see and a model can.
_FORMAT = ("\xad\u0600-\u0605\u061c\u06dd\u070f\u0890\u0891\u08e2\u180e\u200b-\u200f\u202a-\u202e"
           "\u2060-\u2064\u2066-\u206f\ufeff\ufff9-\ufffb\U000110bd\U000110cd\U00013430-\U0001343f"
           "\U0001bca0-\U0001bca3\U0001d173-\U0001d17a\U000e0001\U000e0020-\U000e007f")
_CONTROL = re.compile(f"[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029{_FORMAT}]")


def visible(text: str) -> str:
    """`text` with secrets masked and every control character replaced by its escape (`\\x1b[2J` stays
    readable, inert)."""
    return _CONTROL.sub(_escape_one, scrub(text))


def visible_patch(patch: str) -> str:
    """`visible` for a patch: only the secrets the process holds are masked (`mask_held`), its URLs are
    left as written (they are code, and the patch must stay the one the branch got)."""
    return _CONTROL.sub(_escape_one, mask_held(patch))


def visible_line(text: str) -> str:
    """`visible(text)` on one line: any run of whitespace (newlines included) becomes one space."""
    return " ".join(visible(text).split())


def escape(text: str) -> str:
    """`visible(text)` made safe to embed in rich markup too."""
    from rich.markup import escape as escape_markup  # rich only where something is shown

    return escape_markup(visible(text))


def _escape_one(found: re.Match[str]) -> str:
    code = ord(found[0])
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"
