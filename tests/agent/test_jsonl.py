"""Appended JSON-lines files: a torn last line is dropped on open, bad lines are named by number."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from agent.jsonl import BadLine, drop_torn_tail, open_to_append, read_records
from agent.trajectory import TrajectoryWriter, read_trajectory

WHOLE = '{"instance_id": "a", "model_patch": "diff"}\n'


def test_appending_after_a_torn_line_drops_it_with_a_note(tmp_path: Path) -> None:
    path = tmp_path / "predictions.jsonl"
    path.write_text(WHOLE + '{"instance_id": "b", "model_pa')
    notes: list[str] = []
    with open_to_append(path, notes.append) as fh:
        fh.write('{"instance_id": "c"}\n')
    assert path.read_text() == WHOLE + '{"instance_id": "c"}\n'
    assert notes == [f"{path}: dropped a torn last line (30 bytes) left by an interrupted write"]
    assert [n for n, _ in read_records(path)] == [1, 2]


def test_whole_files_are_left_alone(tmp_path: Path) -> None:
    path = tmp_path / "results.jsonl"
    for text in ("", WHOLE, WHOLE + "\n\n", WHOLE + "{not json}\n"):  # a whole bad line is for readers to name
        path.write_text(text)
        assert drop_torn_tail(path) == 0 and path.read_text() == text
    path.write_text(WHOLE.rstrip("\n"))  # a whole record that only lost its newline keeps it
    assert drop_torn_tail(path) == 0 and path.read_text() == WHOLE
    assert drop_torn_tail(tmp_path / "missing.jsonl") == 0


def test_a_file_that_is_only_a_fragment_becomes_empty(tmp_path: Path) -> None:
    path = tmp_path / "p.jsonl"
    path.write_text('{"instance_id": "a", "mod')
    assert drop_torn_tail(path) == len('{"instance_id": "a", "mod') and path.read_text() == ""


def test_a_long_last_line_is_found_past_one_read_chunk(tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl"
    big = json.dumps({"observation": "x" * 200_000})
    path.write_text(WHOLE + big + "\n" + big[:150_000])
    assert drop_torn_tail(path) == 150_000
    assert path.read_text() == WHOLE + big + "\n"


def test_readers_name_the_real_line_and_skip_a_torn_last_line(tmp_path: Path) -> None:
    path = tmp_path / "predictions.jsonl"
    path.write_text(WHOLE + "\n" + WHOLE + "{broken\n" + WHOLE)
    with pytest.raises(BadLine, match=r"predictions.jsonl:4: not valid JSON"):
        list(read_records(path))
    path.write_text(WHOLE + WHOLE + '{"instance_id": "c", "mo')
    notes: list[str] = []
    assert [n for n, _ in read_records(path, notes.append)] == [1, 2]
    assert notes == [f"{path}:3: skipped a torn last line left by an interrupted write"]


def test_a_trajectory_is_never_continued_after_a_torn_line(tmp_path: Path) -> None:
    path = tmp_path / "trajectory.jsonl"
    writer = TrajectoryWriter(path)
    writer.event("start", task="t", config={})
    writer.close()
    with path.open("a") as fh:
        fh.write('{"type": "requ')
    writer = TrajectoryWriter(path)
    writer.event("end", status="submitted", patch="")
    writer.close()
    trajectory = read_trajectory(path)
    assert [e["type"] for e in trajectory.events] == ["start", "end"] and not trajectory.torn



def test_records_with_unicode_line_separators_are_one_line_each(tmp_path: Path) -> None:
    """Predictions and results carry model patches and test names: U+2028, U+0085... stay inside their record."""
    from agent.jsonl import dumps_line

    odd = "patch\u2028\u2029\x85\x0b\x0c\x1c\x1d\x1e end"
    path = tmp_path / "predictions.jsonl"
    with open_to_append(path) as fh:
        for number in range(2):
            fh.write(dumps_line({"instance_id": f"i{number}", "model_patch": odd, "name": "café"}) + "\n")
    text = path.read_text(encoding="utf-8")
    assert len(text.splitlines()) == 2 and "café" in text  # non-ASCII text is kept, breaks are escaped
    assert [record["model_patch"] for _, record in read_records(path)] == [odd, odd]
    raw = tmp_path / "raw.jsonl"  # written by another tool, separators raw: read as one record a line
    raw.write_text(json.dumps({"model_patch": odd}, ensure_ascii=False) + "\n", encoding="utf-8")
    assert [record for _, record in read_records(raw)] == [{"model_patch": odd}]


def test_a_line_that_is_not_utf8_is_named_and_a_torn_one_skipped(tmp_path: Path) -> None:
    """A predictions file from another tool: `eval grade` ended in a UnicodeDecodeError traceback."""
    good = b'{"instance_id": "a"}\n'
    bad = tmp_path / "bad.jsonl"
    bad.write_bytes(good + b"\xff\n" + good)
    with pytest.raises(BadLine, match=r"bad\.jsonl:2: not valid UTF-8 \(byte 0xff at column 1\)"):
        list(read_records(bad))
    torn = tmp_path / "torn.jsonl"
    torn.write_bytes(good + b'{"instance_id": "caf\xc3')  # cut inside a two-byte character
    notes: list[str] = []
    assert list(read_records(torn, notes.append)) == [(1, {"instance_id": "a"})]
    assert notes == [f"{torn}:2: skipped a torn last line left by an interrupted write"]


def test_a_trajectory_line_that_is_not_utf8_is_named(tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl"
    path.write_bytes(b'{"type": "start", "t": 0, "task": "x", "config": {}}\n\xff\xfe\n{"type": "end", "t": 1}\n')
    with pytest.raises(ValueError, match=r"t\.jsonl:2: not a trajectory line \(not valid UTF-8"):
        read_trajectory(path)
    path.write_bytes(b'{"type": "start", "t": 0, "task": "x", "config": {}}\n{"type": "end", "t": 1, "m": "\xc3')
    assert read_trajectory(path).torn
