"""tools/encoding.py: the shown form of text with bytes that are not UTF-8 is unambiguous and reads back exactly."""

from __future__ import annotations

import pytest

from tools.encoding import Parseable, decode, encode, from_visible, visible

ROUND_TRIPS = [
    b'LIT = "\\xe9"  # literal escape\nRAW = "\xe9"  # latin-1 byte\nC = 1\n',  # the tester's file
    b"\\\xe9",  # a literal backslash right before a byte
    b"\\\\xe9\xe9",  # two literal backslashes, then the text xe9, then a byte
    b"\\\\\\x80 \xff\\xFF \\x7f \\xZZ",  # an odd run, upper-case hex, and escapes that never stand for a byte
    b"\\\\\xe9x\\",  # backslashes at the end of the text
]


@pytest.mark.parametrize("data", ROUND_TRIPS)
def test_what_is_shown_reads_back_as_the_same_bytes(data: bytes) -> None:
    shown = visible(decode(data))
    assert shown.isascii()
    assert encode(from_visible(shown)) == data


def test_a_literal_escape_is_shown_apart_from_the_byte_it_spells() -> None:
    shown = visible(decode(b'LIT = "\\xe9"\nRAW = "\xe9"\n'))
    assert shown == 'LIT = "\\\\xe9"\nRAW = "\\xe9"\n'
    assert encode(from_visible('LIT = "\\xe8"')) == b'LIT = "\xe8"'  # one backslash: the byte
    assert encode(from_visible('LIT = "\\\\xe8"')) == b'LIT = "\\xe8"'  # two: the text


def test_text_without_such_bytes_is_shown_as_it_is() -> None:
    text = 'LIT = "\\xe9"  # café\n'
    assert visible(decode(text.encode())) == text


def test_a_latin1_identifier_is_parsed_whole_and_shown_escaped() -> None:
    parseable = Parseable.of(b"def caf\xe9_x():\n    return '\\xe9'\n")
    assert not parseable.utf8 and parseable.data.decode("utf-8").startswith("def caf")  # UTF-8 for the parser
    name = parseable.data[4:parseable.data.index(b"(")]
    assert parseable.text(name) == "caf\\xe9_x"
    assert parseable.text(parseable.data.split(b"\n")[1]) == "    return '\\\\xe9'"  # the file's rule: doubled
    assert parseable.text(name[:4]) == "caf"  # a stand-in cut in two is left out, never shown as other bytes
    utf8 = Parseable.of("café = '\\xe9'\n".encode())
    assert utf8.utf8 and utf8.text(utf8.data) == "café = '\\xe9'\n"
    yi = Parseable.of("\ua080 = '".encode() + b"\xe9'\n")  # has a stand-in letter already: parsed as it is
    assert not yi.stand_ins and yi.text(yi.data) == "\ua080 = '\\xe9'\n"
