"""Sandboxes started ahead of their instances, while the running ones wait on the model.

A batch on one machine mostly waits on the model server, while starting a sandbox (the
image check, create, start, shells, the environment's activation) is a few hundred ms of
CPU-bound Docker work. Started ahead, in the order the executor hands instances out, the
next sandbox is ready when a worker frees up, and the starts fill time in which the CPUs
would otherwise idle. Each instance taken starts at most one more, so the first wave's
own starts are not crowded out; at most `ahead` sandboxes wait unused, and those never
taken (Ctrl-C, a batch cut short) are removed at `close`.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from evals.datasets import TaskInstance
from sandbox.docker import DockerSandbox

MAX_STARTING = 4  # starts in flight at once: they are CPU-bound, more would only interleave


@dataclass
class OpenedSandbox:
    """An instance's running sandbox and the task image it came from."""

    image: Any  # what the image builder gave: `tag`, `activate`, `capabilities`
    box: DockerSandbox


SandboxOpener = Callable[[TaskInstance], OpenedSandbox]


class SandboxPrefetch:
    def __init__(self, order: Sequence[TaskInstance], opener: SandboxOpener, ahead: int) -> None:
        self._opener = opener
        self._ahead = max(1, ahead)
        self._upcoming = deque(order)
        self._started: dict[str, Future[OpenedSandbox]] = {}
        self._lock = threading.Lock()
        self._closed = False
        self._pool = ThreadPoolExecutor(max_workers=min(self._ahead, MAX_STARTING), thread_name_prefix="prefetch")

    def take(self, instance: TaskInstance) -> OpenedSandbox:
        """The instance's sandbox: the one started ahead, else one started now. Raises what starting raised."""
        with self._lock:
            future = self._started.pop(instance.instance_id, None)
            if future is None:
                self._upcoming = deque(i for i in self._upcoming if i.instance_id != instance.instance_id)
        opened = future.result() if future is not None else self._opener(instance)
        self._start_next()
        return opened

    def _start_next(self) -> None:
        with self._lock:
            if self._closed or not self._upcoming or len(self._started) >= self._ahead:
                return
            instance = self._upcoming.popleft()
            self._started[instance.instance_id] = self._pool.submit(self._opener, instance)

    @property
    def waiting(self) -> int:
        """Sandboxes started ahead and not yet taken (finished or still starting)."""
        with self._lock:
            return len(self._started)

    def close(self) -> None:
        """Stop starting sandboxes and remove those nobody took."""
        with self._lock:
            self._closed = True
            unused = list(self._started.values())
            self._started.clear()
        self._pool.shutdown(wait=True, cancel_futures=True)
        for future in unused:
            if future.done() and not future.cancelled() and future.exception() is None:
                future.result().box.close()
