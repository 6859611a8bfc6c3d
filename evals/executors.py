"""Where batch work runs: threads in this process, or Ray tasks on the nodes of a cluster.

Either way the caller gets `(item, result)` pairs back as items finish, in this thread, so
it stays the only writer of its output files. A piece of work is called as
`work(item, output, stop)`: it writes its files under `output` and should give up early
once `stop` is set. With Ray, `output` is a scratch folder on the worker node whose files
travel back with the result and are written under the caller's `output` by this thread.

Each Ray task asks for CPUs, memory and one unit of the custom `docker` resource, which
each node declares as the number of sandboxes its Docker engine can hold
(`ray start --resources='{"docker": 4}'`). A task talks to its own node's engine: the
image builder and the model client travel as recipes (`NodeLocal`) and are made again in
each worker process, and every worker shares the endpoints' request limit through one
named actor. A node lost mid-task makes Ray run the task again elsewhere (`max_retries`);
when that is used up, or the task raised, this side submits it again a bounded number of
times, then reports the item as failed with the reason.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, fields
from functools import partial
from pathlib import Path
from typing import Any, Protocol, TypeVar

from agent.config import ModelSettings
from agent.endpoints import EndpointPool, Lease, SlotTable, lease_seconds, slot_wait_message
from agent.errors import EnvironmentProblem, UsageError
from agent.model import OutOfTime
from evals.images import ImageBuilder
from evals.prefetch import SandboxOpener, SandboxPrefetch
from evals.repos import RepoSource
from sandbox import cleanup

T = TypeVar("T")
R = TypeVar("R")
Work = Callable[[T, Path, threading.Event], R]
Failed = Callable[[T, str], R]

EXECUTORS = ("local", "ray")
RAY_INSTALL = "pip install 'moe-agent[ray]'"
RAY_NAMESPACE = "moe-agent"
DOCKER_RESOURCE = "docker"
CANCEL_GRACE = 30.0  # seconds cancelled tasks get to stop their work
LOCAL_OBJECT_STORE = 200 * 2**20  # results are small: patches, logs, trajectories


class Executor(Protocol):
    def map_unordered(self, work: Work[T, R], items: Iterable[T], *, output: Path, failed: Failed[T, R],
                      on_start: Callable[[T], None] | None = None) -> Iterator[tuple[T, R]]:
        """Run `work` on every item; yield each with its result as it finishes.

        `failed(item, reason)` stands in for the result of an item whose work raised or
        could not be run; `on_start(item)` is called as an item is handed out.
        """
        ...

    def images_for_workers(self, builder: ImageBuilder) -> Any:
        """The image builder as the workers reach it (its `ensure` and `client`)."""
        ...

    def model_for_workers(self, model: Any) -> Any:
        """The model client as the workers reach it."""
        ...

    def sandboxes_for_workers(self, order: Sequence[Any], opener: SandboxOpener) -> SandboxPrefetch | None:
        """Sandboxes started ahead of the items, in `order`, when the workers share this process; else None."""
        ...

    def close(self) -> None: ...


class LocalExecutor:
    """Threads in this process, all on this machine's Docker engine.

    Items are handed out as threads free up, so Ctrl-C leaves no long queue behind: it sets
    `stop` (the work in flight drops its model request and ends at its next look at it),
    removes this process's live sandboxes (so a command blocked in one returns) and drops
    the items not started.
    """

    def __init__(self, workers: int = 1) -> None:
        self.workers = max(1, workers)

    def map_unordered(self, work: Work[T, R], items: Iterable[T], *, output: Path, failed: Failed[T, R],
                      on_start: Callable[[T], None] | None = None) -> Iterator[tuple[T, R]]:
        stop = threading.Event()
        queue = iter(items)
        pending: dict[Future[R], T] = {}
        pool = ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="work")

        def submit_next() -> None:
            for item in queue:
                if on_start:
                    on_start(item)
                pending[pool.submit(work, item, output, stop)] = item
                return

        try:
            for _ in range(self.workers):
                submit_next()
            while pending:
                finished, _ = wait(pending, return_when=FIRST_COMPLETED)
                for future in finished:
                    item = pending.pop(future)
                    try:
                        result = future.result()
                    except Exception as exc:  # one item's failure is its result, never the batch's end
                        result = failed(item, one_line(exc))
                    yield item, result
                    submit_next()
        finally:
            if pending:  # interrupted, or the caller stopped reading
                stop.set()
                cleanup.remove_live()
            pool.shutdown(wait=True, cancel_futures=True)

    def images_for_workers(self, builder: ImageBuilder) -> ImageBuilder:
        return builder

    def model_for_workers(self, model: Any) -> Any:
        return model

    def sandboxes_for_workers(self, order: Sequence[Any], opener: SandboxOpener) -> SandboxPrefetch | None:
        return SandboxPrefetch(order, opener, ahead=self.workers)

    def close(self) -> None:
        pass


@dataclass(frozen=True)
class TaskResources:
    """What one Ray task asks of its node. The sandbox's own CPU and memory are the docker slot's."""

    cpus: float = 0.5  # the agent loop mostly waits on the model and the container
    memory: int = 512 * 2**20  # bytes, for the worker process
    docker: float = 1.0


class RayExecutor:
    """Ray tasks on a cluster's nodes, each against its node's own Docker engine."""

    def __init__(self, address: str | None = None, *, workers: int = 1, resources: TaskResources = TaskResources(),
                 max_retries: int = 2, resubmits: int = 2) -> None:
        """Attach to the cluster at `address` ("auto": the one running here), or start one for
        this run with `workers` docker slots when `address` is None."""
        self._ray = import_ray()
        self.resources = resources
        self.resubmits = resubmits
        _connect(self._ray, address, workers)
        capacity = self._ray.cluster_resources().get(DOCKER_RESOURCE, 0.0)
        if capacity < resources.docker:
            self._ray.shutdown()
            raise EnvironmentProblem(f"the Ray cluster has no {DOCKER_RESOURCE!r} resource: start each node with "
                                     f"ray start --resources='{{\"{DOCKER_RESOURCE}\": N}}' (N sandboxes it can hold)")
        self.in_flight = int(capacity // resources.docker)
        self._task = self._ray.remote(run_on_node).options(
            num_cpus=resources.cpus, memory=resources.memory, resources={DOCKER_RESOURCE: resources.docker},
            max_retries=max_retries, retry_exceptions=False)
        self._lost = (self._ray.exceptions.WorkerCrashedError, self._ray.exceptions.NodeDiedError,
                      self._ray.exceptions.RayTaskError, self._ray.exceptions.ObjectLostError,
                      self._ray.exceptions.OutOfMemoryError)
        self._keepers: dict[tuple[tuple[str, ...], int | None], Any] = {}

    def map_unordered(self, work: Work[T, R], items: Iterable[T], *, output: Path, failed: Failed[T, R],
                      on_start: Callable[[T], None] | None = None) -> Iterator[tuple[T, R]]:
        ray = self._ray
        shared_work = ray.put(work)
        queue = iter(items)
        pending: dict[Any, tuple[T, int]] = {}  # task -> (item, resubmits so far)

        def submit(item: T, resubmitted: int) -> None:
            pending[self._task.remote(shared_work, item)] = (item, resubmitted)

        def submit_next() -> None:
            for item in queue:
                if on_start:
                    on_start(item)
                submit(item, 0)
                return

        try:
            for _ in range(self.in_flight):
                submit_next()
            while pending:
                [task], _ = ray.wait(list(pending), num_returns=1)
                item, resubmitted = pending.pop(task)
                try:
                    result, files = ray.get(task)
                except self._lost as exc:
                    if resubmitted < self.resubmits:
                        submit(item, resubmitted + 1)
                        continue
                    result, files = failed(item, f"gave up after {resubmitted + 1} submissions: {one_line(exc)}"), {}
                write_files(output, files)
                yield item, result
                submit_next()
        finally:
            if pending:  # interrupted: cancelled tasks get KeyboardInterrupt and close their sandboxes
                for task in pending:
                    ray.cancel(task)
                ended, _ = ray.wait(list(pending), num_returns=len(pending), timeout=CANCEL_GRACE)
                for task in ended:  # their files (an interrupted instance's trajectory), never their results
                    try:
                        write_files(output, ray.get(task)[1])
                    except Exception:  # Ray gave the cancellation instead of the answer: nothing came back
                        pass

    def images_for_workers(self, builder: ImageBuilder) -> NodeLocal:
        """A recipe for the builder: each worker process makes its own on its node's Docker engine."""
        config = {f.name: getattr(builder, f.name) for f in fields(builder)
                  if f.init and f.name not in ("client", "repos", "echo")}
        return NodeLocal(partial(builder_on_node, builder.repos.spec, config))

    def sandboxes_for_workers(self, order: Sequence[Any], opener: SandboxOpener) -> SandboxPrefetch | None:
        return None  # each task starts its own on its node

    def model_for_workers(self, model: Any) -> NodeLocal:
        """A recipe for the model client, behind the cluster-wide endpoint slots."""
        settings: ModelSettings = model.settings
        endpoints = (tuple(settings.endpoints), settings.max_concurrency)
        if endpoints not in self._keepers:
            self._keepers[endpoints] = self._start_keeper(settings)
        return NodeLocal(partial(EndpointPool, settings, RaySlots(self._keepers[endpoints])))

    def close(self) -> None:
        self._ray.shutdown()

    def _start_keeper(self, settings: ModelSettings) -> Any:
        """The named actor holding the slots, pinned to this node: it lives and dies with the run."""
        ray = self._ray
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        here = ray.get_runtime_context().get_node_id()
        keeper = ray.remote(SlotKeeper).options(
            name=f"moe-agent-endpoint-slots-{ray.get_runtime_context().get_job_id()}-{len(self._keepers)}",
            namespace=RAY_NAMESPACE,
            num_cpus=0, max_concurrency=1000,
            scheduling_strategy=NodeAffinitySchedulingStrategy(node_id=here, soft=False),
        ).remote(settings.endpoints, settings.max_concurrency, lease_seconds(settings))
        ray.get(keeper.ready.remote())
        return keeper


class NodeLocal:
    """A live object that travels as the recipe to make it; each process makes its own once.

    Docker clients, image builders (with their locks) and HTTP clients do not pickle, and
    a worker must use its own node's Docker engine anyway. Attribute access goes to the
    object made in this process.
    """

    _made: dict[str, Any] = {}
    _lock = threading.Lock()

    def __init__(self, make: Callable[[], Any]) -> None:
        self.make = make
        self.key = uuid.uuid4().hex

    def get(self) -> Any:
        with NodeLocal._lock:
            if self.key not in NodeLocal._made:
                NodeLocal._made[self.key] = self.make()
            return NodeLocal._made[self.key]

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_") or name in ("make", "key"):  # not set yet while unpickling
            raise AttributeError(name)
        return getattr(self.get(), name)


class SlotKeeper:
    """Endpoint slots for every worker of a run; runs as a Ray actor (async, so waiters do not block it)."""

    def __init__(self, endpoints: list[str], limit: int | None, lease_seconds: float) -> None:
        self._table = SlotTable(endpoints, limit, lease_seconds)
        self._changed = asyncio.Condition()

    def ready(self) -> bool:
        return True

    async def acquire(self, conversation: str, within: float | None = None) -> Lease | None:
        """A lease, or None when no slot came free within `within` seconds (None: wait as long as it takes)."""
        async with self._changed:
            endpoint = self._table.endpoint_for(conversation)
            until = None if within is None else time.monotonic() + within
            while not self._table.free(endpoint, time.monotonic()):
                left = 1.0 if until is None else min(1.0, until - time.monotonic())
                if left <= 0:
                    return None
                try:  # wake now and then: a lost worker's lease expires without a release
                    await asyncio.wait_for(self._changed.wait(), timeout=left)
                except TimeoutError:
                    pass
            return self._table.take(endpoint, time.monotonic())

    async def release(self, lease: Lease) -> None:
        async with self._changed:
            self._table.give_back(lease)
            self._changed.notify_all()


@dataclass(frozen=True)
class RaySlots:
    """The `EndpointSlots` of a worker: calls on the run's SlotKeeper actor."""

    keeper: Any

    def acquire(self, conversation: str, deadline: float | None = None) -> Lease:
        """The actor's lease; the deadline travels as seconds left (monotonic clocks differ between nodes)."""
        import ray

        within = None if deadline is None else max(0.0, deadline - time.monotonic())
        lease = ray.get(self.keeper.acquire.remote(conversation, within))
        if lease is None:
            raise OutOfTime(slot_wait_message(None))
        return lease

    def release(self, lease: Lease) -> None:
        self.keeper.release.remote(lease)  # no need to wait for it


def run_on_node(work: Work[T, R], item: T) -> tuple[R, dict[str, bytes]]:
    """What a Ray task runs: the work in a scratch folder, whose files go back with the result.

    `ray.cancel` raises KeyboardInterrupt in the task's main thread, which lands only between
    bytecodes, never inside a blocking read: so the work runs in a thread while this one
    waits in short steps, and on the interrupt stops it as the local executor does, waits for
    it to end (its files then say how it ended) and returns as usual.
    """
    if threading.current_thread() is threading.main_thread() and signal.getsignal(signal.SIGINT) in (
            signal.SIG_IGN, signal.SIG_DFL):  # a node started from a background shell ignores SIGINT
        signal.signal(signal.SIGINT, signal.default_int_handler)
    stop = threading.Event()
    with tempfile.TemporaryDirectory(prefix="moe-agent-") as scratch, ThreadPoolExecutor(1) as pool:
        root = Path(scratch)
        future = pool.submit(work, item, root, stop)
        try:
            while not future.done():
                wait([future], timeout=0.5)
        except KeyboardInterrupt:
            stop.set()
            cleanup.remove_live()  # the work's sandboxes go, so its blocked calls fail and it ends
            wait([future])
        result = future.result()
        files = {str(path.relative_to(root)): path.read_bytes() for path in root.rglob("*") if path.is_file()}
    return result, files


def builder_on_node(repos: str, config: dict[str, Any]) -> ImageBuilder:
    from sandbox.docker import connect

    return ImageBuilder(connect(), RepoSource(repos), **config)


def write_files(output: Path, files: dict[str, bytes]) -> None:
    for name, data in files.items():
        path = output / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)


def make_executor(kind: str, workers: int = 1, address: str | None = None) -> Executor:
    """The executor the `--executor` and `--ray-address` flags ask for."""
    if kind not in EXECUTORS:
        raise UsageError(f"--executor {kind!r}: use local or ray")
    if kind == "local":
        if address is not None:
            raise UsageError("--ray-address needs --executor ray")
        return LocalExecutor(workers)
    return RayExecutor(address, workers=workers)


def import_ray() -> Any:
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # nothing leaves the cluster unless asked
    try:
        import ray
    except ImportError:
        raise UsageError(f"--executor ray needs Ray: {RAY_INSTALL}") from None
    return ray


def _connect(ray: Any, address: str | None, workers: int) -> None:
    """Attach to a cluster, or start a small one here; one line when there is none to reach."""
    import logging

    if ray.is_initialized():
        return
    target = _cluster_address(address)
    options: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False, "logging_level": logging.WARNING,
                               "namespace": RAY_NAMESPACE}
    if target is None:
        options |= {"resources": {DOCKER_RESOURCE: max(1, workers)}, "object_store_memory": LOCAL_OBJECT_STORE}
    else:
        _check_reachable(target, address)
    try:
        ray.init(address=target, **options)
    except (ConnectionError, RuntimeError, ValueError, TimeoutError, ray.exceptions.RayError) as exc:
        raise EnvironmentProblem(f"no Ray cluster {f'at {target}' if target else 'here'}: {one_line(exc)}") from None


def _cluster_address(address: str | None) -> str | None:
    """The host:port `ray.init` would attach to: the flag, else $RAY_ADDRESS, else the cluster
    `ray start` last started on this machine; None when there is none and one is to be started."""
    from ray._private.services import canonicalize_bootstrap_address

    if address not in (None, "auto"):
        host, _, port = address.rpartition(":")
        if not host or not port.isdigit() or "://" in host:
            raise UsageError(f"--ray-address {address!r}: use the head's host:port (its GCS port), or auto")
    try:
        return canonicalize_bootstrap_address(address)
    except ConnectionError as exc:  # "auto" and no cluster found
        raise EnvironmentProblem(f"--ray-address {address}: {one_line(exc)}") from None


def _check_reachable(target: str, address: str | None) -> None:
    """Ray waits minutes for an address that does not answer; a plain connect says so at once."""
    host, _, port = target.rpartition(":")
    try:
        socket.create_connection((host, int(port)), timeout=5).close()
    except OSError as exc:
        named = f"--ray-address {address}" if address else "$RAY_ADDRESS or the last 'ray start' here"
        raise EnvironmentProblem(f"{named}: no Ray cluster answers at {target} ({exc.strerror or exc}); "
                                 "start one with 'ray start --head'") from None


def one_line(exc: BaseException) -> str:
    """The first line of the error; for an error raised inside a Ray task, of the error itself."""
    exc = getattr(exc, "cause", None) or exc
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
