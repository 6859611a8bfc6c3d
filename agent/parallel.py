"""A few jobs at once in threads, all stopped together on Ctrl-C or SIGTERM.

Signals reach only the main thread (`sandbox.cleanup`), so the main thread waits here and,
when one comes, sets a shared `StopSignal`: each job sees it at its next step, and what the
jobs registered with it (their sandboxes) is closed at once, so a command blocked in a
container returns. The main thread then waits for every job to end (a second signal only
says so, a third quits: `sandbox.cleanup`) and raises the interruption again.
Used by the attempts (agent/attempts.py), by the checks that choose among them
(agent/selection.py), and by each instance of an eval batch (evals/run.py), whose executor
sets the batch's stop: `StoppableModel` drops a request in flight at once and
`StoppableSandbox` reports a sandbox call that failed because the stop removed its
container as the interruption it is, never as the sandbox's error.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from typing import TYPE_CHECKING, Any, TypeVar

from sandbox.cleanup import interrupted_by, shielded

if TYPE_CHECKING:
    from agent.model import Model
    from sandbox.base import Sandbox

T = TypeVar("T")
QUERY_POLL = 0.25  # seconds between looks at the stop signal while a request is out


class Stopped(KeyboardInterrupt):
    """The run was interrupted while this job was under way: the loop ends it with status `interrupted`.

    A `KeyboardInterrupt`, so the loop and every cleanup path treat it as Ctrl-C; `signum`
    is the signal the process received (2 or 15), when there was one.
    """

    def __init__(self) -> None:
        self.signum = interrupted_by()
        super().__init__(f"interrupted by {signal.Signals(self.signum).name}" if self.signum else "interrupted by the user")


class StopSignal:
    """Set once, from the main thread; jobs check it and register what must close when it is set."""

    def __init__(self, event: threading.Event | None = None) -> None:
        self._event = event or threading.Event()  # an outside event (a batch's stop) also stops the jobs
        self._lock = threading.Lock()
        self._closers: list[Callable[[], Any]] = []

    def is_set(self) -> bool:
        return self._event.is_set()

    def check(self) -> None:
        """Raise `Stopped` when the run is being stopped."""
        if self._event.is_set():
            raise Stopped()

    def wait(self, seconds: float) -> bool:
        return self._event.wait(seconds)

    def on_stop(self, close: Callable[[], Any]) -> None:
        """Call `close` when the signal is set (at once, if it already is)."""
        with self._lock:
            if not self._event.is_set():
                self._closers.append(close)
                return
        _quietly(close)

    def set(self) -> None:
        with self._lock:
            self._event.set()
            closers, self._closers = self._closers, []
        for close in closers:
            _quietly(close)


def _quietly(close: Callable[[], Any]) -> None:
    try:
        close()
    except Exception:  # closing what a stopped job held is best effort; the exit cleanup removes the rest
        pass


def run_parallel(jobs: Sequence[Callable[[StopSignal], T]], parallel: int, name: str = "moe-job",
                 stop: StopSignal | None = None) -> list[T | Exception]:
    """Run `jobs` in threads, at most `parallel` at once; each job's result, or the exception it raised, in order.

    A job's failure is its result, never the others' end. `KeyboardInterrupt` in the waiting
    thread (Ctrl-C, SIGTERM) sets `stop`; jobs not started yet never start; the call returns
    only once the running ones have ended, then raises the interruption again.
    """
    stop = stop or StopSignal()
    pool = ThreadPoolExecutor(max_workers=max(1, parallel), thread_name_prefix=name)

    def guarded(job: Callable[[StopSignal], T]) -> T | Exception:
        if stop.is_set():
            return RuntimeError("stopped before it started")
        try:
            return job(stop)
        except Exception as exc:
            return exc
        except KeyboardInterrupt as exc:  # a job that let `Stopped` through
            return Exception(str(exc) or "interrupted")

    futures = [pool.submit(guarded, job) for job in jobs]
    try:
        while True:  # short waits: a signal handler runs between them even where a long wait would not wake
            done, pending = wait(futures, timeout=0.5, return_when=FIRST_EXCEPTION)
            if not pending:
                break
    except KeyboardInterrupt:
        stop.set()
        for future in futures:
            future.cancel()
        with shielded():
            pool.shutdown(wait=True)
        raise
    pool.shutdown(wait=True)
    return [future.result() for future in futures]


class StoppableModel:
    """A model whose requests give up as soon as the run is stopped (the request in flight is abandoned)."""

    def __init__(self, model: Model, stop: StopSignal) -> None:
        self._model, self._stop = model, stop

    def query(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]], **options: Any) -> Any:
        self._stop.check()
        answer: dict[str, Any] = {}
        done = threading.Event()

        def ask() -> None:
            try:
                answer["reply"] = self._model.query(messages, tools, **options)
            except BaseException as exc:  # handed to the waiting job's thread, which raises it
                answer["error"] = exc
            finally:
                done.set()

        threading.Thread(target=ask, name="moe-request", daemon=True).start()
        while not done.wait(QUERY_POLL):
            self._stop.check()
        if "error" in answer:
            self._stop.check()  # it failed because of the stop (a connection closed): interrupted, not a model error
            raise answer["error"]
        return answer["reply"]

    def __getattr__(self, name: str) -> Any:
        return getattr(self._model, name)


class StoppableSandbox:
    """A sandbox whose every call first looks at the stop signal; a call failing because it was closed says so."""

    def __init__(self, box: Sandbox, stop: StopSignal) -> None:
        self._box, self._stop = box, stop

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._box, name)
        if not callable(value):
            return value
        stop = self._stop

        def guarded(*args: Any, **kwargs: Any) -> Any:
            stop.check()
            try:
                return value(*args, **kwargs)
            except Exception:
                stop.check()  # closed under it by the stop: interrupted, not a sandbox error
                raise

        return guarded
