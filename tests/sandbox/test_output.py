"""Head-and-tail output caps."""

from __future__ import annotations

from sandbox.output import HeadTailBuffer, cap_text


def test_small_output_is_kept_whole() -> None:
    buf = HeadTailBuffer(100)
    for part in (b"abc", b"def", b"\n"):
        buf.write(part)
    assert buf.getvalue() == b"abcdef\n" and buf.dropped == 0


def test_large_output_keeps_head_and_tail_with_count() -> None:
    buf = HeadTailBuffer(10)
    for i in range(100):
        buf.write(bytes([65 + i % 26]))
    value = buf.getvalue()
    assert value.startswith(b"ABCDE") and value.endswith(b"RSTUV")
    assert b"90 bytes cut" in value and buf.dropped == 90 and buf.total == 100


def test_one_big_write_is_split_correctly() -> None:
    buf = HeadTailBuffer(8)
    buf.write(b"0123456789abcdef")
    assert buf.getvalue().startswith(b"0123") and buf.getvalue().endswith(b"cdef") and buf.dropped == 8


def test_cap_text() -> None:
    assert cap_text("short", 10) == ("short", 0)
    text, cut = cap_text("a" * 50 + "b" * 50, 20)
    assert text.startswith("a" * 10) and text.endswith("b" * 10) and cut == 80
    assert "80 characters cut" in text
