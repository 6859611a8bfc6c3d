"""Bytes that are not UTF-8, carried as text without losing them and shown without hiding them.

Inside the process, text read from a sandbox (file contents, file names, command output)
is decoded with `surrogateescape` (PEP 383, what `os.fsdecode` does): a byte that is not
UTF-8, such as latin-1's 0xE9, becomes the lone surrogate U+DCE9 and encodes back to the
same byte. Lone surrogates cannot be written as UTF-8 nor sent in a JSON request, so
wherever a person or the model reads the text they are shown as `\\xE9`-style escapes
(`visible`), and what the model writes back in that form is turned into the bytes again
(`from_visible`).

The shown form must not be ambiguous, or an edit meant for the text `\\xe9` (a Python
escape, four characters) writes the byte 0xE9: in text that carries such bytes, a run of
backslashes right before `xNN` or before a byte is shown doubled, so an odd run ending in
`\\xNN` is a byte and an even run is that many halved backslashes followed by the text
`xNN` (`\\\\xe9` is the text `\\xe9`). Text without such bytes is shown as it is.
"""

from __future__ import annotations

import re

ESCAPED_BYTE = re.compile(r"\\x([89a-fA-F][0-9a-fA-F])")
BACKSLASHES_BEFORE_BYTE = re.compile("(\\\\+)(?=x[89a-fA-F][0-9a-fA-F]|[\udc80-\udcff])")  # to double
SHOWN_BYTE = re.compile(r"(\\+)x([89a-fA-F][0-9a-fA-F])")  # odd run: a byte; even run: text
SURROGATE = re.compile("[\ud800-\udfff]")
NOT_UTF8_NOTE = ("bytes that are not UTF-8 are shown as \\xNN escapes (e.g. \\xe9); write them the same way "
                 "in old_str, new_str or a path and they stand for those bytes. Backslashes typed in such text "
                 "right before xNN or before a byte are shown doubled: \\\\xe9 is the text \\xe9 (four "
                 "characters); write it that way too")


def decode(data: bytes) -> str:
    """Bytes as text, losslessly: invalid UTF-8 bytes become lone surrogates (U+DC80-U+DCFF)."""
    return data.decode("utf-8", errors="surrogateescape")


def encode(text: str) -> bytes:
    """The inverse of `decode`; any other lone surrogate is written as `?` rather than raising."""
    try:
        return text.encode("utf-8", errors="surrogateescape")
    except UnicodeEncodeError:
        return SURROGATE.sub(_escaped_or_question_mark, text).encode("utf-8", errors="surrogateescape")


def _escaped_or_question_mark(match: re.Match[str]) -> str:
    return match.group() if 0xDC80 <= ord(match.group()) <= 0xDCFF else "?"


def is_utf8(data: bytes) -> bool:
    """Whether `data` decodes as UTF-8 (the common case: only then is anything here needed)."""
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def has_raw_bytes(text: str) -> bool:
    """True when `text` carries bytes that were not UTF-8 (or any other lone surrogate)."""
    return not text.isascii() and SURROGATE.search(text) is not None


def visible(text: str) -> str:
    """`text` with every lone surrogate shown: an escaped byte as `\\xe9`, any other as `\\udXXX`; backslashes
    before `xNN` or a byte doubled (see the module's docstring), so `from_visible` reads it back exactly."""
    if text.isascii() or SURROGATE.search(text) is None:
        return text
    return SURROGATE.sub(_shown, BACKSLASHES_BEFORE_BYTE.sub(lambda match: match.group() * 2, text))


def _shown(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code - 0xDC00:02x}" if 0xDC80 <= code <= 0xDCFF else f"\\u{code:04x}"


def from_visible(text: str) -> str:
    """What the model wrote in `visible`'s form, read back: `\\xNN` (NN 80-FF: never ASCII) as that byte,
    `\\\\xNN` as the text `\\xNN` (each backslash of a run before `xNN` stands for half of one)."""
    if "\\x" not in text:
        return text
    return SHOWN_BYTE.sub(_read_back, text)


def _read_back(match: re.Match[str]) -> str:
    run, digits = match.group(1), match.group(2)
    halved = "\\" * (len(run) // 2)
    return halved + chr(0xDC00 + int(digits, 16)) if len(run) % 2 else f"{halved}x{digits}"


def replaced(text: str) -> str:
    """Text as a `decode(errors="replace")` of its bytes would give it (U+FFFD for bad bytes),
    for logs that must read exactly like the ones upstream tools write."""
    if not has_raw_bytes(text):
        return text
    return encode(text).decode("utf-8", errors="replace")
