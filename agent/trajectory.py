"""Trajectories: one JSON-lines file per run, written as the run goes.

Every event is one line, flushed when written, so a crash or a kill loses at most the
step in flight; the reader accepts a torn last line for the same reason. Requests store
only the messages added since the previous request (the history is append-only), which
keeps the file linear in the run's length.
"""

from __future__ import annotations

import json
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from agent.jsonl import dumps_line, line_problem, open_to_append
from agent.redaction import Redactor, mask_held, scrub, scrub_with_patch
from tools.encoding import SURROGATE, has_raw_bytes, visible

FORMAT_VERSION = 1


class TrajectoryWriter:
    """Appends events to `path`; `fsync=True` also survives a machine crash, at a cost."""

    def __init__(self, path: Path, fsync: bool = False, redact: Redactor | None = None) -> None:
        self.path = path
        # Applied to every value, then `scrub`: no secret the process holds reaches the file. An event's
        # `patch` (the `end` event's final patch) only gets the secrets masked (`mask_held`): its URLs are code.
        self._redact = redact
        self._fh: IO[str] | None = open_to_append(path)  # never after a torn line of an earlier writer
        self._fsync = fsync
        self._t0 = time.monotonic()
        self.written = 0  # events written by this writer

    def event(self, kind: str, **data: Any) -> None:
        if self._fh is None:
            return
        record = {"type": kind, "t": round(time.monotonic() - self._t0, 4), **data}
        line = json_line(scrub_with_patch(record, self._clean, self._mask))  # every value before escaping,
        self._fh.write(self._mask(line) + "\n")  # then the line: escaping cannot hide a secret
        self._fh.flush()
        self.written += 1
        if self._fsync:
            os.fsync(self._fh.fileno())

    def _clean(self, text: str) -> str:
        return scrub(self._redact(text) if self._redact else text)

    def _mask(self, text: str) -> str:
        return mask_held(self._redact.mask(text) if self._redact else text)

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None


def json_line(record: dict[str, Any]) -> str:
    """One JSON line that is always valid UTF-8 (`agent.jsonl.dumps_line`: nothing a line reader
    takes for a break): bytes that were not UTF-8 (lone surrogates from surrogateescape) are
    written as the visible text `\\xe9`, never as a crash."""
    try:
        line = dumps_line(record, default=str, allow_nan=False)
    except ValueError:  # NaN/Infinity are not JSON: write them as the strings "nan", "inf"
        line = dumps_line(_finite(record), default=str, allow_nan=False)
    if has_raw_bytes(line):  # only inside strings: JSON-escape the visible form's backslash
        line = SURROGATE.sub(lambda match: json.dumps(visible(match.group()))[1:-1], line)
    return line


def _finite(value: Any) -> Any:
    """`value` with every non-finite float (nested in dicts, lists, tuples) replaced by its repr."""
    if isinstance(value, float) and not math.isfinite(value):
        return repr(value)
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(item) for item in value]
    return value


@dataclass
class Step:
    """One model reply and the tool calls it led to."""

    index: int
    response: dict[str, Any]
    request: dict[str, Any] = field(default_factory=dict)
    tools: list[dict[str, Any]] = field(default_factory=list)
    format_errors: list[str] = field(default_factory=list)


@dataclass
class Trajectory:
    path: Path
    events: list[dict[str, Any]]
    torn: bool = False

    @property
    def start(self) -> dict[str, Any]:
        return next((e for e in self.events if e["type"] == "start"), {})

    @property
    def end(self) -> dict[str, Any] | None:
        return next((e for e in reversed(self.events) if e["type"] == "end"), None)

    @property
    def delivery(self) -> dict[str, Any] | None:
        """Where the run's patch went when it became a commit on a branch: `branch`, `commit`, `base_commit`."""
        return next((e for e in reversed(self.events) if e["type"] == "delivery"), None)

    def conversation(self) -> list[dict[str, Any]] | None:
        """The run's messages as its history held them at the end; None when the trajectory lacks some.

        Each `request` event holds the messages added since the one before; a list that starts
        with the system message is the whole history, rebuilt (text-format fallback, compaction).
        The `end` event holds those added after the last request (trajectories written before
        it did have no `new_messages` there: None).
        """
        end = self.end
        if end is None or "new_messages" not in end:
            return None
        messages: list[dict[str, Any]] = []
        for event in self.events:
            if event["type"] == "request" or event is end:
                new = event.get("new_messages") or []
                if new and new[0].get("role") == "system":
                    messages = []
                messages.extend(new)
            if event is end:
                break
        return messages

    @property
    def status(self) -> str:
        return self.end["status"] if self.end else "incomplete"

    @property
    def patch(self) -> str:
        return (self.end or {}).get("patch") or ""

    def totals(self) -> dict[str, Any]:
        """Tokens (prompt, completion), seconds and steps of the run, also for one killed before its end event.

        The end event has them; without it they are summed from the responses (and
        compaction replies) recorded so far, and `elapsed` is the last event's time.
        """
        end = self.end
        if end is not None:
            return {key: end.get(key) for key in ("prompt_tokens", "completion_tokens", "elapsed", "steps")}
        totals: dict[str, Any] = {"prompt_tokens": 0, "completion_tokens": 0, "steps": 0}
        for event in self.events:
            if event["type"] in ("response", "compaction"):
                usage = event.get("usage") or {}
                totals["prompt_tokens"] += usage.get("prompt_tokens") or 0
                totals["completion_tokens"] += usage.get("completion_tokens") or 0
                totals["steps"] += event["type"] == "response"
        totals["elapsed"] = self.events[-1].get("t") if self.events else None
        return totals

    def steps(self) -> list[Step]:
        steps: list[Step] = []
        request: dict[str, Any] = {}
        for event in self.events:
            if event["type"] == "request":
                request = event
            elif event["type"] == "response":
                steps.append(Step(index=event.get("step", len(steps) + 1), response=event, request=request))
            elif event["type"] == "tool" and steps:
                steps[-1].tools.append(event)
            elif event["type"] == "format_error" and steps:
                steps[-1].format_errors.extend(event.get("errors", []))
        return steps


def read_trajectory(path: Path) -> Trajectory:
    """Read a trajectory; a torn last line (the run was killed mid-write) is dropped and noted.

    Lines end at `\\n` only (see `agent.jsonl`): U+2028 or \\x0b in a string is part of its line.
    """
    try:
        lines = path.read_bytes().split(b"\n")
        if lines[-1] == b"":  # the newline that ends the last line starts none
            lines.pop()
    except OSError as exc:
        raise ValueError(f"cannot read trajectory {path}: {exc.strerror}") from None
    events, torn = [], False
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            events.append(json.loads(line.decode("utf-8")))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            if number == len(lines):
                torn = True
                continue
            what = "invalid JSON" if isinstance(exc, json.JSONDecodeError) else line_problem(exc)
            raise ValueError(f"{path}:{number}: not a trajectory line ({what})") from None
    if not events or events[0].get("type") != "start":
        raise ValueError(f"{path}: not a moe-agent trajectory (no start event)")
    return Trajectory(path=path, events=events, torn=torn)
