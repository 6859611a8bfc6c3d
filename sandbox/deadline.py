"""A sandbox whose commands end by a deadline: the run's time limit caps every command's timeout.

A tool asks for its own timeout (`bash` 120 s, `run_tests` more, a model's `timeout`
argument up to 1800 s); without this cap a `sleep 100` started 5 s before a 15 s time limit
ran to its end, and the run ended after 107 s. Wrapping the sandbox the tools get caps every
command that runs in it, whichever tool runs it, and marks the ones the deadline stopped.
"""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Any

from sandbox.base import CommandResult, Sandbox

MIN_COMMAND_SECONDS = 0.05  # less time left than this is no time left
SLACK = 0.1  # seconds: a command that timed out this close to the deadline was stopped by it
OUT_OF_TIME_NOTE = "the command was stopped by the run's time limit ([loop] time_limit): the run ends now"
NOT_STARTED_NOTE = "the command was not run: the run's time limit ([loop] time_limit) has come"


class TimeBoxed:
    """`sandbox`, with each `run`'s timeout capped by the seconds left before `deadline` (`time.monotonic()`).

    A command the deadline stops comes back `timed_out` and `out_of_time`, with a note saying
    so; one asked for with no time left is not started. Everything else goes to `sandbox`.
    """

    def __init__(self, sandbox: Sandbox, deadline: float) -> None:
        self.sandbox, self.deadline = sandbox, deadline

    def run(self, command: str, timeout: float | None = None) -> CommandResult:
        left = self.deadline - time.monotonic()
        if timeout is not None and timeout < left:
            return self.sandbox.run(command, timeout=timeout)
        if left < MIN_COMMAND_SECONDS:
            return CommandResult("", None, 0.0, timed_out=True, notes=(NOT_STARTED_NOTE,), out_of_time=True)
        result = self.sandbox.run(command, timeout=left)
        if result.timed_out and time.monotonic() >= self.deadline - SLACK:
            return replace(result, notes=(*result.notes, OUT_OF_TIME_NOTE), out_of_time=True)
        return result

    def __getattr__(self, name: str) -> Any:
        return getattr(self.sandbox, name)
