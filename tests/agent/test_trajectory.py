"""The trajectory writer never crashes on what tools read, and what it writes is valid UTF-8 JSON."""

from __future__ import annotations

import json
from pathlib import Path

from agent.trajectory import TrajectoryWriter, read_trajectory
from tools.base import Observation
from tools.encoding import decode, encode, from_visible, visible

LATIN1 = "LABEL = 'café'\n".encode("latin-1")


def test_bytes_that_are_not_utf8_are_written_visibly_as_valid_json(tmp_path: Path) -> None:
    writer = TrajectoryWriter(tmp_path / "run.jsonl")
    text = decode(LATIN1)  # what a tool reads: U+DCE9 for the latin-1 byte
    writer.event("start", task="t")
    writer.event("tool", observation=text, data={decode(b"caf\xe9.py"): "\ud800 lone high surrogate"})
    writer.close()
    raw = (tmp_path / "run.jsonl").read_bytes()
    raw.decode("utf-8")  # strict: the file is valid UTF-8
    events = [json.loads(line) for line in raw.splitlines()]
    assert events[1]["observation"] == "LABEL = 'caf\\xe9'\n"
    assert events[1]["data"] == {"caf\\xe9.py": "\\ud800 lone high surrogate"}
    assert read_trajectory(tmp_path / "run.jsonl").events[1]["observation"] == "LABEL = 'caf\\xe9'\n"


def test_an_observation_shows_raw_bytes_as_escapes_and_says_so() -> None:
    observation = Observation(decode(b"ls\ncaf\xe9.py\n"))
    assert observation.text.startswith("ls\ncaf\\xe9.py\n")
    assert "not UTF-8, so in it they are shown as \\xNN" in observation.text  # as command output: its own rule
    assert Observation("plain text").text == "plain text"


def test_escapes_the_model_writes_back_are_the_bytes_again() -> None:
    text = decode(b"caf\xe9 \xff")
    assert encode(from_visible(visible(text))) == b"caf\xe9 \xff"
    assert from_visible("a \\x41 stays ASCII text") == "a \\x41 stays ASCII text"


def test_non_finite_floats_are_written_as_strict_json(tmp_path: Path) -> None:
    writer = TrajectoryWriter(tmp_path / "run.jsonl")
    writer.event("tool", arguments={"timeout": float("inf"), "ratios": [float("nan"), 0.5, (float("-inf"),)]})
    writer.close()

    line = (tmp_path / "run.jsonl").read_text().splitlines()[0]

    def refuse(constant: str) -> None:
        raise AssertionError(f"{constant} is not JSON")
    event = json.loads(line, parse_constant=refuse)
    assert event["arguments"] == {"timeout": "inf", "ratios": ["nan", 0.5, ["-inf"]]}


def test_the_conversation_reads_back_through_rebuilt_histories(tmp_path: Path) -> None:
    """Requests hold their new messages; one starting with the system message is a rebuilt history, whole."""
    system, task = {"role": "system", "content": "s"}, {"role": "user", "content": "t"}
    call = {"role": "assistant", "content": None, "tool_calls": [{"id": "c1", "type": "function",
                                                                  "function": {"name": "bash", "arguments": "{}"}}]}
    result = {"role": "tool", "tool_call_id": "c1", "content": "ok"}
    summary = {"role": "user", "content": "summary of earlier steps"}
    submit = {"role": "assistant", "content": "<tool_call>submit</tool_call>"}
    writer = TrajectoryWriter(tmp_path / "run.jsonl")
    writer.event("start", task="t")
    writer.event("request", new_messages=[system, task])
    writer.event("request", new_messages=[call, result])
    writer.event("request", new_messages=[system, task, summary])  # compacted: the history rebuilt
    writer.event("end", status="submitted", new_messages=[submit])
    writer.event("delivery", branch="agent/x", commit="c" * 40, base_commit="b" * 40)
    writer.close()
    trajectory = read_trajectory(tmp_path / "run.jsonl")
    assert trajectory.conversation() == [system, task, summary, submit]
    assert trajectory.delivery["branch"] == "agent/x"
    lines = (tmp_path / "run.jsonl").read_text().splitlines()
    (tmp_path / "old.jsonl").write_text("\n".join([*lines[:4], json.dumps({"type": "end", "status": "submitted"})]))
    assert read_trajectory(tmp_path / "old.jsonl").conversation() is None  # recorded before `end` held them
    assert read_trajectory(tmp_path / "old.jsonl").delivery is None


# Every character `str.splitlines` ends a line at, besides "\n" and "\r": legal inside a JSON string.
SPLITLINES_BREAKS = "\u2028\u2029\x85\x0b\x0c\x1c\x1d\x1e"


def test_line_breaks_other_than_newline_in_untrusted_text_keep_the_trajectory_readable(tmp_path: Path) -> None:
    path = tmp_path / "run.jsonl"
    writer = TrajectoryWriter(path)
    writer.event("start", task=f"fix add{SPLITLINES_BREAKS}please")
    writer.event("response", step=1, content=f"ok{SPLITLINES_BREAKS}", tool_calls=[
        {"function": {"name": "bash", "arguments": json.dumps({"command": f"echo '{SPLITLINES_BREAKS}'"},
                                                              ensure_ascii=False)}}])
    writer.event("tool", step=1, name="bash", observation=f"out{SPLITLINES_BREAKS}put")
    writer.event("end", status="submitted", patch="")
    writer.close()
    text = path.read_text(encoding="utf-8")
    assert len(text.splitlines()) == 4  # escaped when written: any line reader sees four records
    read = read_trajectory(path)
    assert [e["type"] for e in read.events] == ["start", "response", "tool", "end"] and not read.torn
    assert read.start["task"] == f"fix add{SPLITLINES_BREAKS}please"
    assert read.events[2]["observation"] == f"out{SPLITLINES_BREAKS}put"


def test_a_trajectory_with_raw_unicode_line_separators_is_read_as_written(tmp_path: Path) -> None:
    """Files written before the writer escaped them hold U+2028, U+2029, U+0085 raw: still one record a line."""
    events = [{"type": "start", "task": f"a{SPLITLINES_BREAKS}b"}, {"type": "end", "status": "submitted"}]
    path = tmp_path / "old.jsonl"
    path.write_text("".join(json.dumps(e, ensure_ascii=False) + "\n" for e in events), encoding="utf-8")
    assert "\u2028" in path.read_text(encoding="utf-8")
    read = read_trajectory(path)
    assert read.events == events and read.status == "submitted" and not read.torn
