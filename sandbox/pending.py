"""A sandbox whose container is still starting: the loop can begin before it is up.

The first model request needs nothing of the sandbox but its working directory (the
prompts name it), so `agent fix` sends it while Docker starts the container and copies the
repository in: the model reads the task while the daemon works. The first tool call then
waits for the start, which has usually finished long before a real model answers.
"""

from __future__ import annotations

from concurrent.futures import Future
from typing import Any

from sandbox.base import Sandbox, SandboxError


class NotStarted(SandboxError):
    """The sandbox a run was given could not start; `__cause__` is the start's own error.

    A `SandboxError`, so the loop ends its run (status `sandbox_error`, the trajectory closed)
    instead of showing the model an error; the workflow then raises the start's error itself.
    """


class PendingSandbox:
    """`starting`'s sandbox, once it exists; until then only `workdir` is answered without waiting.

    Every other attribute waits for the start and comes from the started sandbox. A start
    that failed raises `NotStarted` (from its error) on each use. `close` waits for the start
    and closes what started; after a failed start there is nothing to close.
    """

    def __init__(self, starting: Future[Sandbox], workdir: str) -> None:
        self._starting = starting
        self.workdir = workdir

    def started(self) -> Sandbox:
        """The running sandbox (waiting for it); raises `NotStarted`."""
        try:
            return self._starting.result()
        except Exception as exc:
            raise NotStarted(f"the sandbox did not start: {exc}") from exc

    def start_error(self) -> BaseException | None:
        """Why the start failed, once it has ended; None while it runs or after it succeeded."""
        if not self._starting.done() or self._starting.cancelled():
            return None
        return self._starting.exception()

    def close(self, wait: bool = True) -> None:
        try:
            box = self._starting.result()
        except Exception:
            return  # nothing started; the start's own clean-up removed what it made
        if wait:
            box.close()
        else:
            box.close(wait=False)  # type: ignore[call-arg]  # DockerSandbox: leave the container to go by itself

    def __getattr__(self, name: str) -> Any:
        return getattr(self.started(), name)
