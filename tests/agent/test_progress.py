"""Live progress: a line says the model is thinking, with the seconds waited, until its reply."""

from __future__ import annotations

import io

from rich.console import Console

from agent.progress import LiveProgress, Waiting


def test_waiting_line_names_the_step_and_the_seconds_waited() -> None:
    waiting = Waiting(3)
    waiting.since -= 13.2
    assert waiting.__rich__() == "[dim]step 3: the model is thinking (13s)[/]"


def test_the_waiting_line_runs_from_the_request_to_the_reply() -> None:
    out = io.StringIO()
    progress = LiveProgress(Console(file=out, force_terminal=True, width=120))
    progress("thinking", {"step": 1})
    assert progress._waiting is not None
    progress._waiting._live.refresh()
    assert "step 1: the model is thinking" in out.getvalue()
    progress("response", {"step": 1, "usage": {"prompt_tokens": 10, "completion_tokens": 2}})
    assert progress._waiting is None
    progress("tool", {"name": "bash", "arguments": {"command": "ls"}, "observation": "calc.py"})
    assert "bash ls" in out.getvalue()


def test_quiet_progress_shows_nothing() -> None:
    out = io.StringIO()
    progress = LiveProgress(Console(file=out, force_terminal=True), quiet=True)
    progress("thinking", {"step": 1})
    assert progress._waiting is None and out.getvalue() == ""
