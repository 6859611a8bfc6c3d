"""`--attempts N`: N independent runs of the loop at once, then one patch chosen by evidence.

A self-hosted server batches concurrent requests, so N conversations cost about the wall
time of one: best-of-N with test-based selection is the cheapest way to get more resolved
issues from the same model. Each attempt has its own sandbox, started fresh from the same
snapshot and setup image (`start_sandbox`), its own trajectory file, and the profile's
sampling with its own seed (`seed` in the request: the user's `extra_body.seed` plus the
attempt's index, else a random base) and, with `--attempts-temperature`, that temperature.
How many run at once is bounded by the model's slots (`model.max_concurrency` per
endpoint) and by the machine (the memory available over each sandbox's `memory`).

An attempt that fails (model error, sandbox error, limits) ends with its status and is
simply not a candidate; the others go on. Ctrl-C or SIGTERM stops every attempt at its next
step (a request in flight is abandoned, the sandboxes are closed so blocked commands return),
each trajectory ends with status `interrupted`, and the interruption is raised again to
the workflow, which cleans up as for one run (`agent.parallel`).

The sandboxes start at once when the workflow hands over the first one (its start made the
images), and so do the checks' afterwards; the repository's tests at the base, which need
nothing from the attempts, run while they work when one more sandbox fits. Then
`agent.selection` chooses among the submitted patches. The winner's trajectory is copied
into the run's own trajectory, followed by a `selection` event holding the record; every
attempt's trajectory stays beside it.
"""

from __future__ import annotations

import dataclasses
import random
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agent.config import ModelSettings
from agent.redaction import Redactor
from agent.trajectory import TrajectoryWriter, read_trajectory
from sandbox.base import Sandbox

if TYPE_CHECKING:  # at run time imported by the attempts themselves: a single run never loads them
    from agent.loop import Agent, Listener, RunResult
    from agent.model import Model
    from agent.parallel import StopSignal
    from agent.selection import BaseTests, CheckLimits, Selection

MakeAgent = Callable[["Model", Sandbox, TrajectoryWriter, "Listener"], "Agent"]
QUIET_EVENTS = frozenset({"thinking", "model_wait"})  # live-only lines that would garble with several attempts


@dataclass(frozen=True)
class AttemptPlan:
    """How many attempts (1: the plain single run) and the temperature they sample at (None: the profile's)."""

    count: int = 1
    temperature: float | None = None

    def __post_init__(self) -> None:
        if self.count < 1:
            raise ValueError("attempts: at least 1")
        if self.temperature is not None and not 0 <= self.temperature <= 2:
            raise ValueError("attempts temperature: between 0 and 2")


@dataclass
class Attempt:
    """One attempt: its number (from 1), seed, trajectory file, and how it ended."""

    number: int
    seed: int
    trajectory: Path
    result: RunResult | None = None
    error: str = ""  # why it has no result: its sandbox could not start, ...
    ran_tests: list[str] = field(default_factory=list)  # `paths` it gave `run_tests`

    @property
    def status(self) -> str:
        return self.result.status if self.result is not None else "error"

    def to_json(self) -> dict[str, Any]:
        r = self.result
        return {"attempt": self.number, "seed": self.seed, "status": self.status, "trajectory": str(self.trajectory),
                "message": r.message if r else self.error, "steps": r.steps if r else 0,
                "prompt_tokens": r.prompt_tokens if r else 0, "completion_tokens": r.completion_tokens if r else 0,
                "has_patch": bool(r and r.has_patch)}


def _default_limits() -> CheckLimits:
    from agent.selection import CheckLimits

    return CheckLimits()


def _own_stop() -> StopSignal:
    from agent.parallel import StopSignal

    return StopSignal()


@dataclass
class AttemptsJob:
    """What a workflow hands over: the task, how to make an agent, how to start a fresh sandbox."""

    plan: AttemptPlan
    task: str
    config: dict[str, Any]  # the `start` event's config; each attempt adds its number and seed
    make_agent: MakeAgent
    start_sandbox: Callable[[], Sandbox]  # a fresh sandbox from the same snapshot and image
    model: Model
    trajectory_for: Callable[[int], Path]  # attempt number -> its trajectory file
    test_cmd: str | None = None
    sandbox_memory: str = "4g"
    redact: Redactor | None = None  # the run's own secrets, for the attempts' trajectories
    listener: Listener | None = None
    echo: Callable[[str], None] = lambda message: None
    limits: CheckLimits = field(default_factory=_default_limits)
    stop: StopSignal = field(default_factory=_own_stop)  # a batch's own stop, where it has one


def run_attempts(job: AttemptsJob, trajectory: TrajectoryWriter, first: Sandbox | None = None) -> RunResult:
    """Run the attempts, choose, record; the chosen attempt's result with `extra["selection"]` (the record).

    `first`, a sandbox the workflow already started, serves attempt 1 (and is closed here).
    Raises the first attempt's exception when none produced a result, and `KeyboardInterrupt`
    once everything is stopped.
    """
    from agent.parallel import run_parallel
    from agent.selection import AttemptPatch, Checker

    plan = job.plan
    settings = _settings_of(job.model)
    parallel = parallel_limit(plan.count, settings, job.sandbox_memory)
    seeds = attempt_seeds(settings, plan.count)
    attempts = [Attempt(n, seed, job.trajectory_for(n)) for n, seed in enumerate(seeds, 1)]
    models = attempt_models(job.model, seeds, plan.temperature)
    starting = threading.Lock()  # without `first`, one start at a time: the first may build the images

    def start() -> Sandbox:
        if first is not None:  # its start made the images: the others' starts overlap
            return job.start_sandbox()
        with starting:
            return job.start_sandbox()

    # The checks start their sandboxes at once (the images are there by then) and ask no model: the
    # base's and each candidate's, as many as fit in memory. When one more fits beside the attempts',
    # the repository's tests at the base (they need nothing from the attempts) run meanwhile.
    checks = parallel_limit(plan.count + 1, None, job.sandbox_memory)
    checker = Checker(job.start_sandbox, test_cmd=job.test_cmd, parallel=checks, limits=job.limits, stop=job.stop)
    early: BaseTests | None = None
    output_lock = threading.Lock()
    job.echo(f"{plan.count} attempts, {parallel} at a time")
    began = time.monotonic()
    seconds: dict[str, float] = {}
    try:
        if first is not None and checks > parallel:
            early = checker.base_tests()
        outcomes = run_parallel(
            [lambda stop, a=a, m=m: _attempt(job, a, m, start, first if a.number == 1 else None, stop, output_lock)
             for a, m in zip(attempts, models)], parallel, name="moe-attempt", stop=job.stop)
        for attempt, outcome in zip(attempts, outcomes):
            if isinstance(outcome, Exception):
                attempt.error = _message(outcome)
        if all(attempt.result is None for attempt in attempts):
            raise next(o for o in outcomes if isinstance(o, Exception))
        seconds["attempts"] = round(time.monotonic() - began, 3)
        job.stop.check()
        job.echo("choosing among the attempts' patches in fresh sandboxes")
        selection = checker.choose([AttemptPatch(a.number, a.status, a.result.patch if a.result else "",
                                                 tuple(a.ran_tests)) for a in attempts], early)
        seconds["checks"] = round(time.monotonic() - began - seconds["attempts"], 3)
        job.stop.check()  # a batch stopped during the checks: their results are not a choice
    finally:
        if early is not None:
            early.cancel()  # ended already, unless nothing was checked (or the run stopped)
        if first is not None:
            first.close()  # attempt 1 closed it already, unless it never started
        for model in models:
            if model is not job.model and hasattr(model, "close"):
                model.close()
    return _record(attempts, selection, trajectory, {**seconds, "parallel": parallel, "checks_parallel": checks})


def _attempt(job: AttemptsJob, attempt: Attempt, model: Model, start: Callable[[], Sandbox], box: Sandbox | None,
             stop: StopSignal, output_lock: threading.Lock) -> RunResult:
    """One attempt in its own sandbox and trajectory; the sandbox is closed when it ends or the run stops."""
    from agent.parallel import StoppableModel, StoppableSandbox

    stop.check()
    box = box or start()
    stop.on_stop(box.close)
    attempt.trajectory.unlink(missing_ok=True)  # a rerun's attempt starts its file anew
    writer = TrajectoryWriter(attempt.trajectory, redact=job.redact)
    try:
        agent = job.make_agent(StoppableModel(model, stop), StoppableSandbox(box, stop), writer,
                               _AttemptListener(job, attempt, output_lock))
        attempt.result = agent.run(job.task, config={**job.config, "attempt": attempt.number, "seed": attempt.seed,
                                                     "attempts": job.plan.count})
    finally:
        box.close()
        writer.close()
    job.echo(f"attempt {attempt.number}/{job.plan.count}: {attempt.result.status}, {attempt.result.steps} steps"
             + (", a patch" if attempt.result.has_patch else ""))
    return attempt.result


def _record(attempts: list[Attempt], selection: Selection, trajectory: TrajectoryWriter,
            timing: dict[str, float]) -> RunResult:
    """The winner's result (else the first attempt with a result), its events copied, the record appended."""
    ended = [a for a in attempts if a.result is not None]
    if selection.winner is not None:
        chosen = next(a for a in ended if a.number == selection.winner.attempts[0])
    else:  # nothing submitted: the first attempt that left a patch (kept for --partial), else the first
        chosen = next((a for a in ended if a.result is not None and a.result.has_patch), ended[0])
    record = {**selection.to_json(), "chosen_attempt": chosen.number, "timing": timing,  # seconds; attempts at once
              "attempts": [attempt.to_json() for attempt in attempts]}
    try:
        for event in read_trajectory(chosen.trajectory).events:
            trajectory.event(event.pop("type"), **event)
    except ValueError as exc:  # its file is unreadable: the record still names every attempt's file
        record["note"] = f"the chosen attempt's trajectory could not be copied: {exc}"
    trajectory.event("selection", **record)
    assert chosen.result is not None
    return dataclasses.replace(chosen.result, extra={**chosen.result.extra, "selection": record})


class _AttemptListener:
    """The workflow's listener for one attempt: serialized, without live-only lines; notes the tests it ran."""

    def __init__(self, job: AttemptsJob, attempt: Attempt, lock: threading.Lock) -> None:
        self.job, self.attempt, self.lock = job, attempt, lock

    def __call__(self, kind: str, data: dict[str, Any]) -> None:
        if kind == "tool" and data.get("name") == "run_tests":
            paths = (data.get("arguments") or {}).get("paths") or []
            self.attempt.ran_tests += [p for p in paths if isinstance(p, str) and p not in self.attempt.ran_tests]
        if self.job.listener is not None and kind not in QUIET_EVENTS:
            with self.lock:
                self.job.listener(kind, {**data, "attempt": self.attempt.number})


def _settings_of(model: Model) -> ModelSettings | None:
    settings = getattr(model, "settings", None)
    return settings if isinstance(settings, ModelSettings) else None


def attempt_seeds(settings: ModelSettings | None, count: int) -> list[int]:
    """`extra_body.seed` + 0, 1, ... when the user set one (reproducible), else from a random base."""
    base = settings.extra_body.get("seed") if settings is not None else None
    if not isinstance(base, int) or isinstance(base, bool):
        base = random.randrange(2**31 - count)
    return [base + index for index in range(count)]


def attempt_models(model: Model, seeds: list[int], temperature: float | None) -> list[Model]:
    """One client per attempt with its seed (and temperature), sharing the endpoint slots; a model that
    is not a configured client (a replay, a test double) is shared as it is."""
    settings = _settings_of(model)
    if settings is None:
        return [model] * len(seeds)
    from agent.endpoints import EndpointPool

    pool = model if callable(getattr(model, "sampled", None)) else EndpointPool(settings)  # keeps a pool's slots
    updates: dict[str, Any] = {} if temperature is None else {"temperature": temperature}
    return [pool.sampled(**updates, extra_body={**settings.extra_body, "seed": seed}) for seed in seeds]


def parallel_limit(count: int, settings: ModelSettings | None, sandbox_memory: str) -> int:
    """Attempts at once: at most the model's slots (endpoints x `max_concurrency`) and the sandboxes that fit
    in the memory available now (each may use `sandbox_memory`)."""
    slots = len(settings.endpoints) * settings.max_concurrency if settings and settings.max_concurrency else count
    fits = max(1, available_memory() // docker_size(sandbox_memory)) if available_memory() else count
    return max(1, min(count, slots, fits))


def available_memory() -> int:
    """Bytes of memory available to new processes (Linux: MemAvailable), or 0 when unknown."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return 0


def docker_size(text: str) -> int:
    """A Docker size as the settings accept it ('4g', '512m', '1024k', '100b', '4gb') in bytes."""
    found = re.fullmatch(r"(\d+)([bkmg]?)b?", text.strip().lower())
    if found is None:
        raise ValueError(f"not a Docker size: {text!r}")
    return int(found.group(1)) * {"": 1, "b": 1, "k": 2**10, "m": 2**20, "g": 2**30}[found.group(2)]


def _message(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
