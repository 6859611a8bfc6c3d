"""Live progress lines for a model that is slow or failing, as `agent fix` prints them."""

from __future__ import annotations

import io

from rich.console import Console

from agent.progress import LiveProgress


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
