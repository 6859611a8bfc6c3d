"""JSON-lines files we append to (predictions, results, trajectories) and read back.

One record per line, each written with its newline in one write and flushed, so a crash or
a kill can only tear the last line. Opening to append first drops such a fragment (with a
one-line note), so the next record never lands on the end of it; readers skip a torn last
line the same way and name the real line number of any other bad line.

Lines end at `\\n` only. Readers split on it, never with `str.splitlines`, which also ends a
line at U+2028, U+2029, U+0085 and \\x0b-\\x0d, \\x1c-\\x1e (all legal raw inside a JSON
string); writers (`dumps_line`) escape the three of those that JSON leaves raw, so other
tools' line readers cannot cut a record either.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

Note = Callable[[str], None]
_TAIL_BYTES = 1 << 16  # read from the end in chunks of this many bytes to find the last newline
# Line breaks to `str.splitlines` (and to JavaScript before ES2019) that `json.dumps(ensure_ascii=False)`
# writes raw; they can only occur inside strings, where their escape means the same.
_RAW_BREAKS = {"\x85": "\\u0085", "\u2028": "\\u2028", "\u2029": "\\u2029"}
_RAW_BREAK = re.compile("[\x85\u2028\u2029]")


class BadLine(ValueError):
    """A line that is not JSON, before the last line; the message names the file and line (from 1)."""


def dumps_line(record: Any, **options: Any) -> str:
    """`record` as one JSON line (no newline) with non-ASCII text kept and every character any
    line reader could take for a line break escaped; `options` go to `json.dumps`."""
    return escape_breaks(json.dumps(record, ensure_ascii=False, **options))


def escape_breaks(line: str) -> str:
    """A JSON text with raw U+0085, U+2028 and U+2029 (only legal inside its strings) escaped."""
    return _RAW_BREAK.sub(lambda found: _RAW_BREAKS[found[0]], line)


def open_to_append(path: Path, note: Note | None = None) -> IO[str]:
    """`path` opened to append text, its parent made and any torn last line dropped first."""
    path.parent.mkdir(parents=True, exist_ok=True)
    repair(path, note)
    return path.open("a", encoding="utf-8")


def repair(path: Path, note: Note | None = None) -> int:
    """Drop a torn last line of `path` (see `drop_torn_tail`), telling `note`; return the bytes dropped."""
    dropped = drop_torn_tail(path)
    if dropped and note is not None:
        note(f"{path}: dropped a torn last line ({dropped} bytes) left by an interrupted write")
    return dropped


def drop_torn_tail(path: Path) -> int:
    """Cut a last line that is not a whole JSON record off `path`; return the bytes removed (0: none)."""
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        return 0
    if size == 0:
        return 0
    with path.open("rb+") as fh:
        start = _last_line_start(fh, size)
        fh.seek(start)
        last = fh.read()
        if last.endswith(b"\n") or not last.strip():  # whole lines (a bad one is the readers' to name)
            return 0
        if _is_json(last):  # a whole record that only lacks its newline
            fh.seek(size)
            fh.write(b"\n")
            return 0
        fh.truncate(start)
        fh.flush()
        os.fsync(fh.fileno())
    return size - start


def read_records(path: Path, note: Note | None = None) -> Iterator[tuple[int, Any]]:
    """(line number, record) for every non-blank line; a torn last line is skipped with a note.

    Raises `BadLine` naming `path:line` for any other line that is not JSON, `OSError` when
    the file cannot be read.
    """
    lines = path.read_bytes().split(b"\n")  # bytes: a line that is not UTF-8 is named, not a traceback
    last = max((n for n, line in enumerate(lines, 1) if line.strip()), default=0)
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line.decode("utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            if number == last and number == len(lines):  # no newline after it: cut mid-write
                if note is not None:
                    note(f"{path}:{number}: skipped a torn last line left by an interrupted write")
                return
            raise BadLine(f"{path}:{number}: {line_problem(exc)}") from None
        yield number, record


def line_problem(exc: json.JSONDecodeError | UnicodeDecodeError) -> str:
    """What is wrong with one JSONL line, for an error that names its `path:line` (columns from 1)."""
    if isinstance(exc, UnicodeDecodeError):
        return f"not valid UTF-8 (byte 0x{exc.object[exc.start]:02x} at column {exc.start + 1})"
    return f"not valid JSON ({exc.msg}, column {exc.colno})"


def _last_line_start(fh: IO[bytes], size: int) -> int:
    """Offset just after the last newline that is not the file's final byte (0 when there is none)."""
    end = size - 1  # a final newline ends the last line; it does not start one
    while end > 0:
        begin = max(0, end - _TAIL_BYTES)
        fh.seek(begin)
        found = fh.read(end - begin).rfind(b"\n")
        if found >= 0:
            return begin + found + 1
        end = begin
    return 0


def _is_json(data: bytes) -> bool:
    try:
        json.loads(data)
        return True
    except ValueError:
        return False
