"""Git's binary patches read back into the bytes they add, so what a binary file carries can be checked.

`git diff --binary` writes a binary file's new content as a `GIT binary patch` block: a
`literal <size>` (the whole blob) or `delta <size>` (a git delta against the old blob)
section, each line a length character (`A`-`Z` 1-26 bytes, `a`-`z` 27-52) and base85 of
zlib-deflated data, then the reverse section (the old content). Format: git's
`diff.c:emit_binary_diff_explanation` / `apply.c:parse_binary_hunk`; base85 is git's alphabet,
which is Python's `b85` alphabet. unidiff keeps none of it, so the patch policy reads it here.
"""

from __future__ import annotations

import base64
import zlib

BINARY_PATCH_LINE = "GIT binary patch"


def added_bytes(patch: str) -> dict[str, bytes]:
    """{the file's `diff --git` line: the bytes its binary patch adds} for each binary file of `patch`.

    A literal gives the new blob; a delta gives the data it inserts (a delta's copies come from
    the old blob, which the repository already held). A section that does not decode gives b""
    (`git apply` then refuses the patch, which the policy reports as `unreadable`).
    """
    found: dict[str, bytes] = {}
    header, lines = "", patch.splitlines()
    for index, line in enumerate(lines):
        if line.startswith("diff --git "):
            header = line
        elif line == BINARY_PATCH_LINE and index + 1 < len(lines):
            kind, _, _size = lines[index + 1].partition(" ")
            data = _inflate(_section(lines, index + 2))
            found[header] = found.get(header, b"") + (_inserted(data) if kind == "delta" else data)
    return found


def _section(lines: list[str], start: int) -> bytes:
    """The base85 lines from `start` up to the blank line that ends a section, decoded."""
    out = bytearray()
    for line in lines[start:]:
        if not line:
            break
        length = ord(line[0]) - (ord("A") - 1 if line[0] <= "Z" else ord("a") - 27)
        try:
            out += base64.b85decode(line[1:])[:length]
        except ValueError:
            return b""
    return bytes(out)


def _inflate(data: bytes) -> bytes:
    try:
        return zlib.decompress(data)
    except zlib.error:
        return b""


def _inserted(delta: bytes) -> bytes:
    """The data a git delta inserts (`patch-delta.c`): after two size varints, an opcode with the high
    bit copies from the old blob (offset and size bytes follow, one per set bit), any other inserts
    that many literal bytes."""
    position, out = 0, bytearray()
    for _ in range(2):  # source and target sizes
        while position < len(delta) and delta[position] & 0x80:
            position += 1
        position += 1
    while position < len(delta):
        opcode = delta[position]
        position += 1
        if opcode & 0x80:
            position += bin(opcode & 0x7F).count("1")
        else:
            out += delta[position:position + opcode]
            position += opcode
    return bytes(out)
