"""A sandbox whose container is not started yet: the loop can begin before Docker is asked anything.

The first model request needs nothing of the sandbox but its working directory (the
prompts name it), so `agent fix` sends it before Docker's part of the start begins: the
image check, the container and the copy of the repository then run while the model reads
the task, and the first tool call waits for them, which have usually finished long before a
real model answers. Until the request leaves, no Python work of Docker's (its client alone
is about 0.3 s of CPU, under the same interpreter lock as the request's own set-up) stands
in its way.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

from sandbox.base import Sandbox, SandboxError


class NotStarted(SandboxError):
    """The sandbox a run was given could not start; `__cause__` is the start's own error.

    A `SandboxError`, so the loop ends its run (status `sandbox_error`, the trajectory closed)
    instead of showing the model an error; the workflow then raises the start's error itself.
    """


class PendingSandbox:
    """The sandbox `launch()` starts, once it exists; until then only `workdir` is answered without waiting.

    `launch` (a callable returning the start's future) is called once: by `launch()`, which
    the workflow calls when the first request leaves, or else by the first use. Every other
    attribute launches, waits for the start and comes from the started sandbox. A start that
    failed raises `NotStarted` (from its error) on each use. `close` waits for the start and
    closes what started; after a failed start, or before any launch (which then never
    happens: a closed sandbox does not start), there is nothing to close.
    """

    def __init__(self, launch: Callable[[], Future[Sandbox]], workdir: str) -> None:
        self._launch = launch
        self._starting: Future[Sandbox] | None = None
        self._closed = False
        self._lock = threading.Lock()
        self.workdir = workdir

    def launch(self) -> None:
        """Begin the start now, unless it has begun or the sandbox was closed."""
        with self._lock:
            if self._starting is None and not self._closed:
                self._starting = self._launch()

    @property
    def launched(self) -> bool:
        return self._starting is not None

    def started(self) -> Sandbox:
        """The running sandbox (launching it and waiting for it); raises `NotStarted`."""
        self.launch()
        if self._starting is None:
            raise NotStarted("the sandbox did not start: the run ended before it was needed")
        try:
            return self._starting.result()
        except Exception as exc:
            raise NotStarted(f"the sandbox did not start: {exc}") from exc

    def start_error(self, wait: bool = False) -> BaseException | None:
        """Why the start failed, once it has ended (`wait`: waiting for that); None before the launch,
        while it runs or after it succeeded."""
        starting = self._starting
        if starting is None or not (wait or starting.done()) or starting.cancelled():
            return None
        return starting.exception()

    def close(self, wait: bool = True) -> None:
        with self._lock:
            self._closed = True
            starting = self._starting
        if starting is None:
            return  # never launched: nothing was started
        try:
            box = starting.result()
        except Exception:
            return  # nothing started; the start's own clean-up removed what it made
        if wait:
            box.close()
        else:
            box.close(wait=False)  # type: ignore[call-arg]  # DockerSandbox: leave the container to go by itself

    def __getattr__(self, name: str) -> Any:
        return getattr(self.started(), name)
