"""Bytes that are not UTF-8, carried as text without losing them and shown without hiding them.

Inside the process, text read from a sandbox (file contents, file names, command output)
is decoded with `surrogateescape` (PEP 383, what `os.fsdecode` does): a byte that is not
UTF-8, such as latin-1's 0xE9, becomes the lone surrogate U+DCE9 and encodes back to the
same byte. Lone surrogates cannot be written as UTF-8 nor sent in a JSON request, so
wherever a person or the model reads the text they are shown as `\\xE9`-style escapes
(`escape`), and what the model writes back in that form is turned into the bytes again
(`from_visible`).

The escaped form must not be ambiguous, or an edit meant for the text `\\xe9` (a Python
escape, four characters) writes the byte 0xE9: in escaped text, a run of backslashes right
before `xNN` or before a byte is shown doubled, so an odd run ending in `\\xNN` is a byte and
an even run is that many halved backslashes followed by the text `xNN` (`\\\\xe9` is the
text `\\xe9`).

Which text is escaped is decided per source, never per piece shown:
- a FILE's contents by the whole file (`shown`): a file that is not valid UTF-8 is escaped in
  every view of it (view of any line range, search results, outline, repo map, edit snippets,
  lint excerpts), whether or not the piece shown holds such a byte; a UTF-8 file never is, so
  `\\xe9` in it is always just those four characters. The editor reads what the model types
  for a file by the same rule.
- a NAME (a path) by itself (`shown_name`): escaped when it is not UTF-8, holds a backslash or a
  control character (a newline, a tab, 0x7F), so a UTF-8 name that is literally `a\\xe9.txt` is shown
  `a\\\\xe9.txt` and never looks like the name with the byte 0xE9, and a name holding a newline is one
  line: the newline is shown `\\x0a` (never `\\n`, which a name may hold as text). In a name, backslashes
  before any `xNN` are doubled; what the model types as a path is read back by `name_from_visible`.
- command OUTPUT, which is no file, by itself (`visible`): escaped when it holds a byte that
  is not UTF-8, with `OUTPUT_NOTE` saying so and pointing to the file views for edits.
Notes are ours and are never escaped.
"""

from __future__ import annotations

import re
import shlex
from typing import TYPE_CHECKING, NamedTuple

if TYPE_CHECKING:
    from sandbox.base import Sandbox

ESCAPED_BYTE = re.compile(r"\\x([89a-fA-F][0-9a-fA-F])")
BACKSLASHES_BEFORE_BYTE = re.compile("(\\\\+)(?=x[89a-fA-F][0-9a-fA-F]|[\udc80-\udcff])")  # to double
SHOWN_BYTE = re.compile(r"(\\+)x([89a-fA-F][0-9a-fA-F])")  # odd run: a byte; even run: text
SURROGATE = re.compile("[\ud800-\udfff]")
CONTROL = re.compile("[\x00-\x1f\x7f]")
NAME_BACKSLASHES = re.compile("(\\\\+)(?=x[0-9a-fA-F]{2}|[\x00-\x1f\x7f\udc80-\udcff])")  # to double
NAME_SHOWN_CHARACTER = re.compile(r"(\\+)x([0-9a-fA-F]{2})")  # odd run: a byte or control; even run: text
NOT_UTF8_NOTE = ("bytes that are not UTF-8 are shown as \\xNN escapes (e.g. \\xe9); write them the same way "
                 "in old_str, new_str or a path and they stand for those bytes. Backslashes typed in such text "
                 "right before xNN or before a byte are shown doubled: \\\\xe9 is the text \\xe9 (four "
                 "characters); write it that way too")
FILE_RULE_NOTE = ("every view of a file that is not UTF-8 (view, search, outline, repo map, edit snippets) shows "
                  "all of it this way; a UTF-8 file is never escaped, so \\xe9 in it is just that text")
OUTPUT_NOTE = ("this command output has bytes that are not UTF-8, so in it they are shown as \\xNN escapes and "
               "backslashes right before xNN are shown doubled (\\\\xe9 is the text \\xe9). Output is not a "
               "file: to copy text into old_str or new_str, take it from the editor's `view` or from `search`, "
               "which show each file by its own rule (escaped only when the file is not UTF-8)")
MAX_NAMED_FILES = 10
STAND_IN_BASE = 0xA000  # + byte: U+A080-U+A0FF, Yi syllables, letters in every grammar's identifiers
STAND_IN = re.compile("[\ua080-\ua0ff]")


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


def escape(text: str) -> str:
    """`text` in the escaped form: every lone surrogate shown (an escaped byte as `\\xe9`, any other as
    `\\udXXX`) and backslashes before `xNN` or a byte doubled, so `from_visible` reads it back exactly."""
    return SURROGATE.sub(_shown, BACKSLASHES_BEFORE_BYTE.sub(lambda match: match.group() * 2, text))


def visible(text: str) -> str:
    """A name or command output as shown: escaped (`escape`) when it carries a byte that is not UTF-8,
    else as it is. Never for a file's contents, which follow the whole file's rule (`shown`)."""
    if text.isascii() or SURROGATE.search(text) is None:
        return text
    return escape(text)


def shown_name(name: str) -> str:
    """A file name or path as every tool shows it, on one line: when it carries a byte that is not UTF-8,
    a backslash or a control character (any could make two names look alike, a newline splits one name
    in two), each such byte or character is shown `\\xNN` (a newline `\\x0a`) and backslashes before
    any `xNN` are doubled; else as it is. `name_from_visible` reads the shown form back to the one name."""
    if "\\" not in name and CONTROL.search(name) is None and (name.isascii() or SURROGATE.search(name) is None):
        return name
    doubled = NAME_BACKSLASHES.sub(lambda match: match.group() * 2, name)
    return SURROGATE.sub(_shown, CONTROL.sub(lambda match: f"\\x{ord(match.group()):02x}", doubled))


def name_from_visible(text: str) -> str:
    """A path the model typed in `shown_name`'s form, read back: `\\xNN` as that byte when NN is 80-FF and
    as that control character when NN is 00-1F or 7F; each backslash of a run before `xNN` stands for
    half of one (`\\\\x0a` is the text `\\x0a`); an odd run before a printable `xNN` is kept as typed."""
    if "\\x" not in text:
        return text
    return NAME_SHOWN_CHARACTER.sub(_name_read_back, text)


def _name_read_back(match: re.Match[str]) -> str:
    run, digits = match.group(1), match.group(2)
    halved, code = "\\" * (len(run) // 2), int(digits, 16)
    if len(run) % 2 == 0:
        return f"{halved}x{digits}"
    if code >= 0x80:
        return halved + chr(0xDC00 + code)
    if code < 0x20 or code == 0x7F:
        return halved + chr(code)
    return match.group()


def shown(text: str, utf8: bool) -> str:
    """Text from a file (any part of it) as every view shows it: escaped when the FILE is not UTF-8
    (`utf8` False, decided on all its bytes), else as it is. A piece of a UTF-8 file that still holds
    a surrogate (a line cut inside a character) has it as U+FFFD, never an escape."""
    if not utf8:
        return escape(text)
    return replaced(text)


def files_not_utf8(sandbox: Sandbox, paths: list[str], timeout: float = 60) -> set[str] | None:
    """Which of `paths` (as the sandbox's shell reads them from its current directory) are not valid
    UTF-8, judged on all their bytes by grep in a UTF-8 locale, where `.` never matches a byte that is
    not UTF-8. None when the sandbox cannot tell (no C.UTF-8 locale): callers then judge by what they saw."""
    if not paths:
        return set()
    check = "LC_ALL=C.UTF-8 grep"
    result = sandbox.run(f"printf '\\200\\n' | {check} -qaxv '.*' && {{ printf 'ok\\0'; "
                         f"{check} -laxvZ '.*' -- {' '.join(shlex.quote(path) for path in paths)}; true; }}",
                         timeout=timeout)
    found = result.output.split("\0")
    if found[0] != "ok":
        return None
    return {path.removeprefix("./") for path in found[1:] if path}


def not_utf8_note(paths: list[str]) -> str:
    """The one note a result showing lines of several files (search, repo map) gets when some of those
    files (`paths`, as shown) are not UTF-8."""
    named = ", ".join(paths[:MAX_NAMED_FILES]) + (f" and {len(paths) - MAX_NAMED_FILES} more"
                                                   if len(paths) > MAX_NAMED_FILES else "")
    return (f"[Note: {named} {'is' if len(paths) == 1 else 'are'} not valid UTF-8: in lines of "
            f"{'it' if len(paths) == 1 else 'them'}, {NOT_UTF8_NOTE}; {FILE_RULE_NOTE}.]")


class Parseable(NamedTuple):
    """A file's bytes as UTF-8 a parser can read (`data`), and how to show text cut from them (`text`).

    Tree-sitter reads a byte that is not UTF-8 as U+FFFD, which ends an identifier (`caf` of
    latin-1's `caf\\xe9_x`). For a file that is not UTF-8 each such byte becomes a stand-in
    letter (U+A080-U+A0FF, `stand_ins`), so the identifier stays whole; line numbers are
    unchanged, byte offsets are those of `data`. A file that already has a stand-in letter is
    parsed as it is.
    """

    data: bytes
    utf8: bool
    stand_ins: bool = False

    @classmethod
    def of(cls, source: bytes) -> Parseable:
        if is_utf8(source):
            return cls(source, True)
        text = decode(source)
        if STAND_IN.search(text):
            return cls(source, False)
        return cls(text.translate(_TO_STAND_INS).encode("utf-8"), False, True)

    def text(self, piece: bytes) -> str:
        """`piece` (a slice of `data`) as every view of the file shows it (`shown`). With stand-ins
        `data` is UTF-8 throughout, so what does not decode is a character cut at the slice's edge."""
        if self.stand_ins:
            return escape(piece.decode("utf-8", "ignore").translate(_FROM_STAND_INS))
        return shown(decode(piece), self.utf8)


_TO_STAND_INS = {0xDC00 + byte: STAND_IN_BASE + byte for byte in range(0x80, 0x100)}
_FROM_STAND_INS = {STAND_IN_BASE + byte: 0xDC00 + byte for byte in range(0x80, 0x100)}


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
