"""Evaluating predictions in task images, written in the official harness's layout.

Per prediction: start the instance image with the network off, apply the model patch
(`git apply -v`, then `--reject`, then `patch --fuzz=5`, as upstream), run the eval
script (offline reinstall, test files restored, test_patch applied, the recipe's test
command on the test patch's files, bracketed by swebench's markers), grade the log with
swebench's parser, and write `logs/run_evaluation/<run_id>/<model>/<instance_id>/`
plus the run report `<model>.<run_id>.json`.

Failures of the environment (image build, container, timeout) leave no report.json, as
upstream, so they are counted as errors apart from unresolved instances.
"""

from __future__ import annotations

import json
import re
import shutil
import threading
import traceback
from collections.abc import Callable, Sequence
from contextlib import closing
from dataclasses import dataclass, field
from enum import StrEnum
from functools import partial
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError
from swebench.harness.constants import (
    APPLY_PATCH_FAIL,
    APPLY_PATCH_PASS,
    END_TEST_OUTPUT,
    LOG_INSTANCE,
    LOG_REPORT,
    LOG_TEST_OUTPUT,
    START_TEST_OUTPUT,
)
from swebench.harness.utils import record_test_exit_code
from swebench.logger import close_logger, setup_logger

from agent.errors import UsageError
from agent.jsonl import BadLine, Note, read_records
from evals.datasets import TaskInstance
from evals.executors import Executor, LocalExecutor
from evals.grade_log import grade_log
from evals.images import (
    TESTBED,
    ImageBuilder,
    InstanceImage,
    failure_text,
    service_script,
)
from evals.report import PATCH_FILE, build_run_report, write_run_report
from evals.validation import Verdict, fail_to_pass_already_passing
from sandbox.docker import SandboxSpec, start_sandbox
from tools.encoding import replaced

GIT_APPLY_CMDS = ("git apply -v", "git apply --reject", "patch --batch --fuzz=5 -p1 -i")
# A failed attempt (notably --reject) leaves partial changes; swebench 5 resets between tries.
RESET_TREE = "git checkout -- . ; git clean -fdq"
CONTAINER_PATCH = "/tmp/patch.diff"
CONTAINER_EVAL = "/eval.sh"
EVAL_FILE = "eval.sh"
HEREDOC = "EOF_114329324912"
GIT_DIFF = "git -c core.fileMode=false diff"
MODIFIED_FILE = re.compile(r"--- a/(.*)")
GOLD_MODEL = "gold"
EMPTY_MODEL = "empty"
SKIPPED_PATCH = "(negative mode: test patch only)"
OUTPUT_LIMIT = 64_000_000  # the test log is kept whole unless it is absurdly large
SETUP_SECONDS = 300.0  # room for patching and diffs around the test time limit

Echo = Callable[[str], None]


class Outcome(StrEnum):
    RESOLVED = "resolved"
    UNRESOLVED = "unresolved"
    PATCH_FAILED = "patch_failed"  # graded: report.json says patch_successfully_applied false
    EMPTY_PATCH = "empty_patch"  # not run, as upstream
    BUILD_FAILED = "build_failed"
    CONTAINER_ERROR = "container_error"
    TIMEOUT = "timeout"

    @property
    def environment_failure(self) -> bool:
        """Failures of the machinery, not of the patch: counted apart from unresolved."""
        return self in (Outcome.BUILD_FAILED, Outcome.CONTAINER_ERROR, Outcome.TIMEOUT)


class Prediction(BaseModel):
    """One line of predictions.jsonl."""

    model_config = ConfigDict(extra="allow")

    instance_id: str
    model_name_or_path: str
    model_patch: str | None = None


@dataclass(frozen=True)
class GradeSettings:
    """Where logs go and how instances are run."""

    run_id: str
    log_root: Path = Path("logs/run_evaluation")
    report_dir: Path = Path(".")
    timeout: float = 1800.0
    workers: int = 1
    force: bool = False


@dataclass(frozen=True)
class InstanceResult:
    instance_id: str
    outcome: Outcome
    report: dict[str, Any] | None = None  # the instance's entry in report.json
    detail: str = ""
    resumed: bool = False
    image_seconds: float = 0.0
    test_seconds: float = 0.0
    notes: tuple[str, ...] = ()  # Python substitutions
    caveats: tuple[str, ...] = ()  # where the environment differs from upstream's (evals.images)


@dataclass
class GradeRun:
    """One model's graded run: per-instance results and the written run report."""

    model: str
    run_dir: Path
    results: list[InstanceResult]
    report: dict[str, Any] = field(default_factory=dict)
    report_path: Path | None = None

    def count(self, outcome: Outcome) -> int:
        return sum(1 for r in self.results if r.outcome == outcome)


def read_predictions(path: Path, note: Note | None = None) -> list[Prediction]:
    """predictions.jsonl (or a .json list / {id: row} map), checked line by line.

    A torn last line (a run killed mid-write) is skipped with a `note`; any other bad line
    is a `UsageError` naming its real line number.
    """
    if not path.is_file():
        raise UsageError(f"--predictions {path}: no such file")
    try:
        if path.suffix == ".json":
            data = json.loads(path.read_text(encoding="utf-8"))
            rows = list(data.values()) if isinstance(data, dict) else data
            numbered = list(enumerate(rows, start=1))
        else:
            numbered = list(read_records(path, note))
    except json.JSONDecodeError as exc:
        raise UsageError(f"{path}: not valid JSON ({exc.msg}, line {exc.lineno})") from None
    except BadLine as exc:
        raise UsageError(str(exc)) from None
    predictions = []
    for number, row in numbered:
        try:
            predictions.append(Prediction.model_validate(row))
        except ValidationError as exc:
            where = ".".join(map(str, exc.errors()[0]["loc"])) or "row"
            raise UsageError(f"{path}:{number}: {where}: {exc.errors()[0]['msg']}") from None
    return predictions


def gold_predictions(instances: Sequence[TaskInstance]) -> list[Prediction]:
    """The rows' own patches, to check that the environments can resolve them."""
    return [Prediction(instance_id=i.instance_id, model_name_or_path=GOLD_MODEL, model_patch=i.patch or "")
            for i in instances]


def empty_predictions(instances: Sequence[TaskInstance]) -> list[Prediction]:
    """No change at all: only the test patch is applied (upstream's negative mode)."""
    return [Prediction(instance_id=i.instance_id, model_name_or_path=EMPTY_MODEL, model_patch="")
            for i in instances]


def grade_predictions(
    instances: Sequence[TaskInstance],
    predictions: Sequence[Prediction],
    images: ImageBuilder,
    settings: GradeSettings,
    *,
    skip_patch: bool = False,
    echo: Echo | None = None,
    executor: Executor | None = None,
) -> GradeRun:
    """Grade one model's predictions on `instances`; write the logs and the run report.

    `skip_patch` runs the tests without applying anything (upstream's negative mode).
    `executor` decides where instances run (default: `settings.workers` threads here); this
    thread writes what they send back.
    """
    models = sorted({p.model_name_or_path for p in predictions})
    if len(models) != 1:
        raise UsageError(f"predictions must come from one model; found {len(models)}: {', '.join(models[:5])}")
    by_id = {p.instance_id: p for p in predictions}
    known = {i.instance_id for i in instances}
    unknown = sorted(set(by_id) - known)
    if unknown:
        raise UsageError(f"predictions for instances not selected from the dataset: {', '.join(unknown[:5])}")
    model = models[0]
    run_dir = settings.log_root / settings.run_id / model.replace("/", "__")
    chosen = [i for i in instances if i.instance_id in by_id]
    done = _Progress(len(chosen), model, echo)
    executor = executor or LocalExecutor(settings.workers)
    # Already graded instances are read here, wherever the rest runs.
    reported = set() if settings.force else {
        i.instance_id for i in chosen if (run_dir / i.instance_id / LOG_REPORT).is_file()}
    by_instance = {iid: _resumed(iid, run_dir / iid / LOG_REPORT) for iid in reported}
    for result in by_instance.values():
        done(result)
    grade = partial(_grade_in, predictions=by_id, images=executor.images_for_workers(images), settings=settings,
                    skip_patch=skip_patch)
    todo = [i for i in chosen if i.instance_id not in reported]
    with closing(executor.map_unordered(grade, todo, output=run_dir, failed=_not_graded)) as finished:
        for instance, result in finished:
            done(result)
            by_instance[instance.instance_id] = result
    results = [by_instance[i.instance_id] for i in chosen]
    run_dir.mkdir(parents=True, exist_ok=True)
    # In negative mode every instance was run and graded, so none counts as an empty patch.
    patches = {i: (SKIPPED_PATCH if skip_patch else p.model_patch) for i, p in by_id.items()}
    report = build_run_report(run_dir, [i.instance_id for i in chosen], patches)
    substitutions = {r.instance_id: list(r.notes) for r in results if r.notes}
    if substitutions:
        report["python_substitutions"] = substitutions
    caveats = {r.instance_id: list(r.caveats) for r in results if r.caveats}
    if caveats:
        report["environment_notes"] = caveats
    path = write_run_report(report, run_dir, settings.report_dir)
    return GradeRun(model, run_dir, results, report, path)


def _grade_in(instance: TaskInstance, output: Path, stop: threading.Event, *, predictions: dict[str, Prediction],
              images: ImageBuilder, settings: GradeSettings, skip_patch: bool) -> InstanceResult:
    """`grade_instance` with its logs under the executor's `output` (the run directory, or a node's scratch)."""
    return grade_instance(instance, predictions[instance.instance_id], images, settings, output, skip_patch)


def _not_graded(instance: TaskInstance, reason: str) -> InstanceResult:
    return InstanceResult(instance.instance_id, Outcome.CONTAINER_ERROR, detail=reason)


def grade_instance(
    instance: TaskInstance,
    prediction: Prediction,
    images: ImageBuilder,
    settings: GradeSettings,
    run_dir: Path,
    skip_patch: bool = False,
) -> InstanceResult:
    """Evaluate one prediction; an instance already reported is skipped unless forced."""
    log_dir = run_dir / instance.instance_id
    report_path = log_dir / LOG_REPORT
    if report_path.is_file() and not settings.force:
        return _resumed(instance.instance_id, report_path)
    if not prediction.model_patch and not skip_patch:
        return InstanceResult(instance.instance_id, Outcome.EMPTY_PATCH, detail="no patch to evaluate")
    shutil.rmtree(log_dir, ignore_errors=True)
    log_dir.mkdir(parents=True)
    (log_dir / PATCH_FILE).write_text(prediction.model_patch or "", encoding="utf-8")
    logger = setup_logger(f"{settings.run_id}.{run_dir.name}.{instance.instance_id}", log_dir / LOG_INSTANCE)
    try:
        return _Evaluation(instance, prediction, settings, log_dir, logger, skip_patch).run(images)
    finally:
        close_logger(logger)


@dataclass
class _Evaluation:
    """One prediction on one instance, logged as run_instance.log says it happened."""

    instance: TaskInstance
    prediction: Prediction
    settings: GradeSettings
    log_dir: Path
    logger: Any
    skip_patch: bool
    image_seconds: float = 0.0
    notes: tuple[str, ...] = ()
    caveats: tuple[str, ...] = ()

    def run(self, images: ImageBuilder) -> InstanceResult:
        iid = self.instance.instance_id
        try:
            image = images.ensure(self.instance)
        except Exception as exc:  # one instance's failure must not end the run
            self.logger.error(f"Image build failed for {iid}: {failure_text(exc)}\n{traceback.format_exc()}")
            return self._result(Outcome.BUILD_FAILED, detail=failure_text(exc))
        self.image_seconds, self.notes = sum(layer.seconds for layer in image.layers), image.notes
        self.caveats = image.caveats
        self.logger.info(f"Image {image.tag}: "
                         + ", ".join(f"{layer.tag} {layer.action} ({layer.seconds:.1f}s)" for layer in image.layers))
        for note in (*image.notes, *image.caveats):
            self.logger.info(note)
        if image.recipe is not None and not self.instance.log_parser:
            self.instance = self.instance.model_copy(update={"log_parser": image.recipe.log_parser})
        spec = SandboxSpec(image=image.tag, network=False, extra_capabilities=image.capabilities,
                           run_id=f"grade-{self.settings.run_id}",
                           command_timeout=self.settings.timeout + SETUP_SECONDS, output_limit=OUTPUT_LIMIT)
        try:
            with start_sandbox(spec, images.client) as box:
                self.logger.info(f"Container for {iid} started: {box.id}")
                return self._in_container(box, image)
        except Exception as exc:  # the container died or Docker failed: not the patch's fault
            self.logger.error(f"Error in evaluating {iid}: {failure_text(exc)}\n{traceback.format_exc()}")
            return self._result(Outcome.CONTAINER_ERROR, detail=failure_text(exc))

    def _in_container(self, box: Any, image: InstanceImage) -> InstanceResult:
        iid, timeout = self.instance.instance_id, self.settings.timeout
        if self.skip_patch:
            self.logger.info(f"Skipping model patch for {iid} (empty-patch mode: test patch only)")
        elif not apply_patch(box, self.prediction.model_patch or "", self.logger):
            report = grade_log(self.instance, "", patch_applied=False)
            self._write(LOG_REPORT, json.dumps(report, indent=4))
            return self._result(Outcome.PATCH_FAILED, report[iid], detail="the patch did not apply")
        self.logger.info(f"Git diff before:\n{replaced(box.run(GIT_DIFF, timeout=120).output).strip()}")
        script = eval_script(self.instance, image)
        self._write(EVAL_FILE, script)
        box.write_file(CONTAINER_EVAL, script.encode())
        result = box.run(f"bash {CONTAINER_EVAL}", timeout=timeout)
        output = replaced(result.output)  # as upstream's harness decodes it, so verdicts stay identical
        self.logger.info(f"Test runtime: {result.duration:_.2f} seconds")
        if result.timed_out:
            self._write(LOG_TEST_OUTPUT, f"{output}\n\nTimeout error: {timeout:.0f} seconds exceeded.")
            self.logger.info(f"Test timed out after {timeout:.0f} seconds.")
            return self._result(Outcome.TIMEOUT, detail=f"tests ran over {timeout:.0f}s", test_seconds=result.duration)
        self._write(LOG_TEST_OUTPUT, output)
        self.logger.info(f"Git diff after:\n{replaced(box.run(GIT_DIFF, timeout=120).output).strip()}")
        patch_missing = self.prediction.model_patch is None and not self.skip_patch
        report = grade_log(self.instance, output, patch_missing=patch_missing)
        self._write(LOG_REPORT, json.dumps(report, indent=4))
        resolved = report[iid]["resolved"]
        self.logger.info(f"report: {report}\nResult for {iid}: resolved: {resolved}")
        outcome = Outcome.RESOLVED if resolved else Outcome.UNRESOLVED
        return self._result(outcome, report[iid], test_seconds=result.duration)

    def _write(self, name: str, text: str) -> None:
        (self.log_dir / name).write_text(text, encoding="utf-8")

    def _result(self, outcome: Outcome, report: dict[str, Any] | None = None, *, detail: str = "",
                test_seconds: float = 0.0) -> InstanceResult:
        return InstanceResult(self.instance.instance_id, outcome, report, detail, image_seconds=self.image_seconds,
                              test_seconds=test_seconds, notes=self.notes, caveats=self.caveats)


def apply_patch(box: Any, patch: str, logger: Any) -> bool:
    """Try upstream's apply commands in order, from a clean tree each time."""
    box.write_file(CONTAINER_PATCH, patch.encode())
    output = ""
    for attempt, command in enumerate(GIT_APPLY_CMDS):
        if attempt:
            box.run(RESET_TREE, timeout=120)
        result = box.run(f"{command} {CONTAINER_PATCH}", timeout=300)
        output = replaced(result.output)
        if result.ok:
            logger.info(f"{APPLY_PATCH_PASS}:\n{output}")
            return True
        logger.info(f"Failed to apply patch to container: {command}")
    box.run(RESET_TREE, timeout=120)
    logger.info(f"{APPLY_PATCH_FAIL}:\n{output}")
    return False


def eval_script(instance: TaskInstance, image: InstanceImage) -> str:
    """swebench 4.x's eval script for Python repos, with the offline reinstall and exit code."""
    if image.pulled and instance.eval_script:
        return instance.eval_script
    recipe = image.recipe
    if recipe is None:
        raise UsageError(f"{instance.instance_id}: no recipe and no eval_script to evaluate it with")
    base = instance.base_commit
    test_files = MODIFIED_FILE.findall(instance.test_patch or "")
    reset_tests = f"git checkout {base} {' '.join(test_files)}"
    commands = [
        image.activate,
        f"cd {TESTBED}",
        *(service_script(service, "start") for service in image.services),
        f"git config --global --add safe.directory {TESTBED}",
        "git status",
        "git show",
        f"git -c core.fileMode=false diff {base}",
        image.activate,
        *([recipe.eval_install] if recipe.install.strip() else []),
        reset_tests,
        f"git apply -v - <<'{HEREDOC}'\n{instance.test_patch or ''}\n{HEREDOC}",
        f": '{START_TEST_OUTPUT}'",
        recipe.test_command(instance),
        f": '{END_TEST_OUTPUT}'",
        reset_tests,
    ]
    return "\n".join(["#!/bin/bash", "set -uxo pipefail", *record_test_exit_code(commands)]) + "\n"


def validate(
    instances: Sequence[TaskInstance],
    images: ImageBuilder,
    settings: GradeSettings,
    *,
    echo: Echo | None = None,
    executor: Executor | None = None,
) -> tuple[GradeRun, GradeRun, list[Verdict]]:
    """Grade the gold and the empty patch; valid = gold resolves, empty does not, no label defect."""
    gold = grade_predictions(instances, gold_predictions(instances), images, settings, echo=echo, executor=executor)
    empty = grade_predictions(instances, empty_predictions(instances), images, settings, skip_patch=True, echo=echo,
                              executor=executor)
    gold_by_id = {r.instance_id: r for r in gold.results}
    empty_by_id = {r.instance_id: r for r in empty.results}
    verdicts = []
    for instance in instances:
        g, e = gold_by_id[instance.instance_id], empty_by_id[instance.instance_id]
        verdicts.append(Verdict(
            instance.instance_id, g.outcome.value, e.outcome.value,
            label_defect=fail_to_pass_already_passing(e.report),
            known_label_defect=instance.instance_id in _recipe_of(images, instance, "label_defects", []),
            caveats=tuple(dict.fromkeys((*g.caveats, *e.caveats))),
            unfaithful=_recipe_of(images, instance, "unfaithful", ""),
        ))
    return gold, empty, verdicts


def _recipe_of(images: ImageBuilder, instance: TaskInstance, name: str, default: Any) -> Any:
    """One field of the instance's recipe; `default` when it has none (an official image's own script)."""
    try:
        return getattr(images.recipes.for_instance(instance), name)
    except UsageError:
        return default


def _resumed(instance_id: str, report_path: Path) -> InstanceResult:
    try:
        report = json.loads(report_path.read_text(encoding="utf-8"))[instance_id]
    except (json.JSONDecodeError, KeyError, TypeError):
        return InstanceResult(instance_id, Outcome.CONTAINER_ERROR, detail="unreadable report.json", resumed=True)
    if not report.get("patch_successfully_applied"):
        outcome = Outcome.PATCH_FAILED
    else:
        outcome = Outcome.RESOLVED if report.get("resolved") else Outcome.UNRESOLVED
    return InstanceResult(instance_id, outcome, report, detail="already graded", resumed=True)


class _Progress:
    """Reports each finished instance as `[k/n] id model: outcome (image s, tests s)`."""

    def __init__(self, total: int, model: str, echo: Echo | None) -> None:
        self.total, self.model, self.echo = total, model, echo
        self.finished = 0
        self.lock = threading.Lock()

    def __call__(self, result: InstanceResult) -> None:
        if self.echo is None:
            return
        with self.lock:
            self.finished += 1
            timing = "already graded" if result.resumed else (
                f"image {result.image_seconds:.1f}s, tests {result.test_seconds:.1f}s")
            detail = f" - {result.detail}" if result.outcome.environment_failure else ""
            self.echo(f"[{self.finished}/{self.total}] {result.instance_id} {self.model}: "
                      f"{result.outcome.value} ({timing}){detail}")
