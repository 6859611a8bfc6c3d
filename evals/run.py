"""Batch inference: the agent on each task in its image, predictions in the official format.

`predictions.jsonl` gets one line per finished instance, appended and flushed at once, so a
crash or Ctrl-C loses at most the instances in flight; a rerun skips what is there. A
failing instance never stops the batch: it goes to `results.jsonl` with its error, and a
rerun tries it again. Instances run on an executor (threads here, or Ray tasks across
machines: `evals.executors`); the driver thread is the only writer of both files, and an
instance answering twice (a retried task) is written once.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from contextlib import closing
from dataclasses import asdict, dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import Any, Protocol

from agent.attempts import AttemptPlan, AttemptsJob, run_attempts
from agent.config import LoopSettings, Settings
from agent.errors import UsageError
from agent.jsonl import BadLine, Note, dumps_line, open_to_append, read_records, repair
from agent.loop import RunResult, configured_agent
from agent.model import Model
from agent.parallel import StopSignal, StoppableModel, StoppableSandbox, Stopped
from agent.redaction import Redactor
from agent.trajectory import TrajectoryWriter
from evals.datasets import TaskInstance
from evals.executors import Executor, LocalExecutor
from evals.prefetch import OpenedSandbox, SandboxPrefetch
from sandbox.cleanup import shielded
from sandbox.docker import SandboxSpec, start_sandbox

PREDICTIONS = "predictions.jsonl"
RESULTS = "results.jsonl"
TRAJECTORIES = "trajectories"
# Runs that ended for the agent's own reasons are finished; the rest are tried again on resume.
FINISHED = frozenset({"submitted", "step_limit", "token_limit", "time_limit", "cost_limit", "format_error"})


class ImageProvider(Protocol):
    """What the runner needs from the image builder: an image with `tag`, `activate`, `capabilities`,
    and the Docker client it lives in (one client for the batch: a new one asks the engine its version)."""

    client: Any

    def ensure(self, instance: TaskInstance) -> Any: ...


@dataclass
class InstanceOutcome:
    instance_id: str
    status: str  # the loop's status, or "error" when the instance could not run
    patch: str = ""
    error: str = ""
    steps: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    elapsed: float = 0.0
    prefix_reuse: float | None = None
    trajectory: str = ""
    selection: dict[str, Any] | None = None  # --attempts: the choice and its reason (agent/selection.py)


@dataclass
class BatchSummary:
    total: int
    skipped: int
    outcomes: list[InstanceOutcome] = field(default_factory=list)
    interrupted: bool = False

    def count(self, status: str) -> int:
        return sum(1 for o in self.outcomes if o.status == status)


def new_batch_id() -> str:
    """A batch's id, in its sandboxes' `moe-agent.run` label: `eval-<UTC time>-<6 hex>`."""
    return time.strftime("eval-%Y%m%d-%H%M%S", time.gmtime()) + "-" + secrets.token_hex(3)


@dataclass(frozen=True)
class BatchOptions:
    output: Path
    model_name: str
    workers: int = 1
    instance_timeout: float = 1800.0
    batch_id: str = field(default_factory=new_batch_id)
    attempts: AttemptPlan = AttemptPlan()  # --attempts N: N loops per instance, one prediction chosen


def finished_ids(output: Path, note: Note | None = None) -> set[str]:
    """Instances with a prediction; a torn last line (killed mid-write) counts as not finished.

    Raises `UsageError` naming the line when another line of predictions.jsonl is not JSON.
    """
    path = output / PREDICTIONS
    done: set[str] = set()
    if path.exists():
        try:
            for _, record in read_records(path, note):
                if isinstance(record, dict) and "instance_id" in record:
                    done.add(record["instance_id"])
        except BadLine as exc:
            raise UsageError(f"{exc}; fix or remove that line, then run again") from None
    return done


class _Appender:
    """One JSON line per call, flushed at once, after a torn last line is dropped (`agent.jsonl`)."""

    def __init__(self, path: Path, note: Note | None = None) -> None:
        self._fh = open_to_append(path, note)

    def write(self, record: dict[str, Any]) -> None:
        self._fh.write(dumps_line(record) + "\n")
        self._fh.flush()

    def close(self) -> None:
        self._fh.close()


def open_sandbox(
    instance: TaskInstance, images: ImageProvider, settings: Settings, batch_id: str = "eval"
) -> OpenedSandbox:
    """The instance's task image, running, with its environment activated in the model's shell.

    Labelled with the batch (`prune --run BATCH_ID`) and the instance, so batches never share a name.
    """
    image = images.ensure(instance)
    spec = SandboxSpec(
        image=image.tag, workdir="/testbed", cpus=settings.sandbox.cpus, memory=settings.sandbox.memory,
        pids_limit=settings.sandbox.pids_limit, tmp_size=settings.sandbox.tmp_size or None,
        disk_size=settings.sandbox.disk_size or None,
        network=settings.sandbox.network,
        ca_bundle=settings.sandbox.ca_bundle, run_id=batch_id, labels={"instance": instance.instance_id},
        command_timeout=settings.loop.command_timeout_max,
        extra_capabilities=[*image.capabilities, *settings.sandbox.capabilities],
        user=None if settings.sandbox.user == "auto" else settings.sandbox.user,  # auto: the image's (root here)
    )
    box = start_sandbox(spec, images.client)
    try:
        box.run(image.activate)
    except BaseException:
        box.close()
        raise
    return OpenedSandbox(image, box)


def run_instance(
    instance: TaskInstance,
    images: ImageProvider,
    model: Model,
    settings: Settings,
    options: BatchOptions,
    stop: threading.Event,
    listener: Callable[[str, dict[str, Any]], None] | None = None,
    sandboxes: SandboxPrefetch | None = None,
) -> InstanceOutcome:
    """One task end to end; every failure becomes an outcome, never an exception.

    Once the batch stops (the executor sets `stop` on SIGINT, SIGTERM or SIGHUP, then removes
    the batch's containers) the request in flight is dropped at once, and whatever fails
    because of the stop (a command whose container went, a sandbox still starting) ends the
    instance as `interrupted`, its trajectory closed by an `end` event saying so: never as an
    error of the instance.
    """
    started = time.monotonic()
    redact = Redactor(settings.secrets())  # endpoint credentials and the key stay out of every file written
    trajectory_path = options.output / TRAJECTORIES / f"{instance.instance_id}.jsonl"
    if trajectory_path.exists():
        trajectory_path.unlink()  # a rerun of an instance that did not finish starts its trajectory anew
    halt = StopSignal(stop)
    config: dict[str, Any] = {**settings.redacted(), "instance_id": instance.instance_id}
    try:
        halt.check()
        opened = sandboxes.take(instance) if sandboxes else open_sandbox(instance, images, settings, options.batch_id)
        image = opened.image
        config["image"] = image.tag
        with opened.box as box:
            limits = settings.loop.model_copy(update={"time_limit": min(settings.loop.time_limit or options.instance_timeout,
                                                                        options.instance_timeout)})
            writer = TrajectoryWriter(trajectory_path, redact=redact)
            try:
                if options.attempts.count > 1:  # the attempts and their checks see the task, never its tests
                    result: RunResult = run_attempts(instance_attempts(
                        instance.problem_statement, instance.base_commit, config, options.attempts, model, settings,
                        limits, start=lambda: open_sandbox(instance, images, settings, options.batch_id).box,
                        trajectory_path=trajectory_path, redact=redact, stop=halt), writer, first=box)
                else:
                    agent = configured_agent(StoppableModel(model, halt), StoppableSandbox(box, halt), settings,
                                             task=instance.problem_statement, base_commit=instance.base_commit,
                                             loop=limits, trajectory=writer, listener=listener)
                    result = agent.run(instance.problem_statement, config=config)
            finally:
                writer.close()
        return InstanceOutcome(
            instance.instance_id, result.status, patch=result.patch,
            error=redact(result.message) if result.status in ("model_error", "sandbox_error") else "",
            steps=result.steps, prompt_tokens=result.prompt_tokens, completion_tokens=result.completion_tokens,
            elapsed=round(time.monotonic() - started, 2), prefix_reuse=result.prefix_reuse,
            trajectory=str(trajectory_path), selection=_selection_line(result),
        )
    except Stopped as exc:  # the batch is stopping: not finished, tried again on a rerun
        return _interrupted(instance, exc, trajectory_path, config, redact, started)
    except Exception as exc:  # an instance's failure is data, never the batch's end
        if stop.is_set():  # what the stop did to it (its container removed), not the instance's own failure
            return _interrupted(instance, Stopped(), trajectory_path, config, redact, started)
        message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        return InstanceOutcome(instance.instance_id, "error", error=redact(message),
                               elapsed=round(time.monotonic() - started, 2))


def _interrupted(instance: TaskInstance, exc: Stopped, trajectory_path: Path, config: dict[str, Any],
                 redact: Redactor, started: float) -> InstanceOutcome:
    """An instance the batch's stop ended before its loop did: its trajectory ends `interrupted` too.

    The trajectory gets the `start` event when nothing was written yet (the sandbox was still
    starting) and an `end` event unless the loop wrote one: with `--attempts` the attempts'
    own files end there, and the instance's file had not been written yet.
    """
    elapsed = round(time.monotonic() - started, 2)
    if not _ends(trajectory_path):
        result = RunResult(status="interrupted", message=str(exc), patch="", steps=0, prompt_tokens=0,
                           completion_tokens=0, cost=None, elapsed=elapsed, prefix_reuse=None, compactions=0)
        writer = TrajectoryWriter(trajectory_path, redact=redact)
        try:
            if not trajectory_path.stat().st_size:
                writer.event("start", task=instance.problem_statement, config=config)
            writer.event("end", **{k: v for k, v in asdict(result).items() if k != "extra"})
        finally:
            writer.close()
    return InstanceOutcome(instance.instance_id, "interrupted", elapsed=elapsed, trajectory=str(trajectory_path))


def _ends(trajectory: Path) -> bool:
    """Whether the trajectory's last line is its `end` event."""
    try:
        lines = trajectory.read_bytes().splitlines()
        return bool(lines) and json.loads(lines[-1]).get("type") == "end"
    except (OSError, ValueError, AttributeError):
        return False


def instance_attempts(task: str, base_commit: str, config: dict[str, Any], plan: AttemptPlan, model: Model,
                      settings: Settings, limits: LoopSettings, *, start: Callable[[], Any], trajectory_path: Path,
                      redact: Redactor, stop: StopSignal) -> AttemptsJob:
    """An instance's attempts. Built from the problem statement and the base commit alone: nothing here can
    hand the attempts or the checks that choose among them the instance's `test_patch`, `FAIL_TO_PASS` or
    `PASS_TO_PASS`."""
    return AttemptsJob(
        plan, task, config, model=model, start_sandbox=start, test_cmd=settings.sandbox.test_cmd,
        make_agent=lambda model_, box, trajectory, listener: configured_agent(
            model_, box, settings, task=task, base_commit=base_commit, loop=limits, trajectory=trajectory,
            listener=listener),
        trajectory_for=lambda n: trajectory_path.with_name(f"{trajectory_path.stem}.attempt-{n}.jsonl"),
        sandbox_memory=settings.sandbox.memory, redact=redact, stop=stop)


def _selection_line(result: RunResult) -> dict[str, Any] | None:
    """What results.jsonl keeps of a selection record: the choice, why, and how each attempt ended."""
    record = result.extra.get("selection")
    if not record:
        return None
    return {"winner_attempts": record["winner_attempts"], "decided_by": record["decided_by"],
            "reason": record["reason"], "candidates": len(record["candidates"]),
            "attempts": {a["attempt"]: a["status"] for a in record["attempts"]}}


def run_batch(
    instances: Sequence[TaskInstance],
    images: ImageProvider,
    model: Model,
    settings: Settings,
    options: BatchOptions,
    on_update: Callable[[str, InstanceOutcome | TaskInstance], None] | None = None,
    executor: Executor | None = None,
    note: Note | None = None,
) -> BatchSummary:
    """Run every unfinished instance on `executor` (default: `options.workers` threads); resume-safe.

    `note` gets one line per repair of the output files (a torn last line dropped).
    """
    executor = executor or LocalExecutor(options.workers)
    for name in (PREDICTIONS, RESULTS):  # before reading what is done: a torn line is noted once
        repair(options.output / name, note)
    done = finished_ids(options.output, note)
    todo = [i for i in instances if i.instance_id not in done]
    summary = BatchSummary(total=len(instances), skipped=len(instances) - len(todo))
    notify = on_update or (lambda kind, item: None)
    workers_images = executor.images_for_workers(images)
    sandboxes = executor.sandboxes_for_workers(todo, partial(open_sandbox, images=workers_images, settings=settings,
                                                                  batch_id=options.batch_id))
    work = partial(run_instance_in, images=workers_images, model=executor.model_for_workers(model),
                   settings=settings, options=options, sandboxes=sandboxes)
    written: set[str] = set()
    predictions = _Appender(options.output / PREDICTIONS, note)
    results = _Appender(options.output / RESULTS, note)
    try:
        finished = executor.map_unordered(work, todo, output=options.output, failed=_not_run,
                                          on_start=lambda instance: notify("start", instance))
        with closing(finished):
            for _, outcome in finished:
                if outcome.instance_id in written:
                    continue  # a retried task answered twice: the first answer stands
                written.add(outcome.instance_id)
                with shielded():  # its result and its prediction are written both or neither
                    _record(outcome, options, predictions, results)
                summary.outcomes.append(outcome)
                notify("done", outcome)
    except KeyboardInterrupt:  # the executor has stopped the work in flight; it is not recorded
        summary.interrupted = True
    finally:
        if sandboxes is not None:
            sandboxes.close()
        predictions.close()
        results.close()
    return summary


def run_instance_in(
    instance: TaskInstance,
    output: Path,
    stop: threading.Event,
    *,
    images: ImageProvider,
    model: Model,
    settings: Settings,
    options: BatchOptions,
    sandboxes: SandboxPrefetch | None = None,
) -> InstanceOutcome:
    """`run_instance` writing under the executor's `output`, naming its trajectory as it lands in the batch's."""
    outcome = run_instance(instance, images, model, settings, replace(options, output=output), stop,
                           sandboxes=sandboxes)
    if outcome.trajectory:
        outcome.trajectory = str(options.output / TRAJECTORIES / f"{instance.instance_id}.jsonl")
    return outcome


def _not_run(instance: TaskInstance, reason: str) -> InstanceOutcome:
    return InstanceOutcome(instance.instance_id, "error", error=reason)


def _record(outcome: InstanceOutcome, options: BatchOptions, predictions: _Appender, results: _Appender) -> None:
    results.write(asdict(outcome) | {"patch": None, "has_patch": bool(outcome.patch)})
    if outcome.status in FINISHED:
        predictions.write({"instance_id": outcome.instance_id, "model_name_or_path": options.model_name,
                           "model_patch": outcome.patch})


def summarize(outcomes: Iterable[InstanceOutcome]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for outcome in outcomes:
        counts[outcome.status] = counts.get(outcome.status, 0) + 1
    return counts
