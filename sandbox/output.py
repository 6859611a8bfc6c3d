"""Bounded output: keep the head and the tail, say how much was cut from the middle.

The start of an output usually says what ran and the end says how it finished;
the middle of a 50 MB log is what can go.
"""

from __future__ import annotations


def cut_marker(count: int, unit: str = "bytes") -> str:
    return f"\n[... {count} {unit} cut from the middle of the output ...]\n"


class HeadTailBuffer:
    """Collects a byte stream in bounded memory: the first and last `limit // 2` bytes."""

    def __init__(self, limit: int) -> None:
        self.limit = max(limit, 2)
        self._head = bytearray()
        self._tail = bytearray()
        self.total = 0

    def write(self, data: bytes) -> None:
        self.total += len(data)
        room = self.limit // 2 - len(self._head)
        if room > 0:
            self._head += data[:room]
            data = data[room:]
        if data:
            self._tail += data
            excess = len(self._tail) - (self.limit - self.limit // 2)
            if excess > 0:
                del self._tail[:excess]

    @property
    def dropped(self) -> int:
        return self.total - len(self._head) - len(self._tail)

    def getvalue(self) -> bytes:
        if not self.dropped:
            return bytes(self._head + self._tail)
        return bytes(self._head) + cut_marker(self.dropped).encode() + bytes(self._tail)


def cap_text(text: str, limit: int) -> tuple[str, int]:
    """Cap `text` to about `limit` characters, keeping head and tail; return (text, chars cut)."""
    if len(text) <= limit:
        return text, 0
    half = max(limit // 2, 1)
    cut = len(text) - 2 * half
    return text[:half] + cut_marker(cut, "characters") + text[-half:], cut
