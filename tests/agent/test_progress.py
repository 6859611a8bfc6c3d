"""Live progress: the waiting line while the model thinks, and the lines for a model that is slow or failing."""

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


def rendered(*events: tuple[str, dict]) -> list[str]:
    out = io.StringIO()
    progress = LiveProgress(Console(file=out, width=200, color_system=None, highlight=False))
    for kind, data in events:
        progress(kind, data)
    return [line.split(maxsplit=2)[2] for line in out.getvalue().splitlines()]  # without the clock


def test_waiting_and_retrying_each_get_a_line() -> None:
    assert rendered(
        ("model_wait", {"step": 1, "seconds": 15, "attempt": 1, "attempts": 4}),
        ("model_retry", {"step": 1, "attempt": 2, "attempts": 4, "reason": "HTTP 429", "wait": 1.5}),
        ("model_wait", {"step": 1, "seconds": 30, "attempt": 2, "attempts": 4}),
    ) == [
        "waiting for the model server, 15 s",
        "retrying after HTTP 429, attempt 2/4 in 1.5 s",
        "waiting for the model server, 30 s, attempt 2/4",
    ]


def test_quiet_prints_nothing() -> None:
    out = io.StringIO()
    LiveProgress(Console(file=out), quiet=True)("model_wait", {"seconds": 15, "attempt": 1, "attempts": 4})
    assert out.getvalue() == ""
