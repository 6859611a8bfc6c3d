"""The run report, `<model>.<run_id>.json`, as swebench's `make_run_report` writes it.

It is built from the official log layout, `logs/run_evaluation/<run_id>/<model>/<id>/`,
without swebench's working-directory and Docker assumptions. Failures of the environment
are listed apart (`infra_failure_ids`, `ambiguous_failure_ids`, `failure_reasons`), so a
broken image is not read as a wrong patch; as upstream, they stay in `unresolved_ids` /
`error_ids` so the denominator matches official numbers.

Those three advisory keys differ from swebench 5.0.2's `classify_logs`, which matches
words anywhere in the logs: pytest's own suite prints `collected 0 items`, `no tests ran`
and `ModuleNotFoundError` all the time, so real wrong patches were set apart as
"ambiguous". Here an instance is set apart only from what the harness recorded
(`failure_kind`): its test command never ran or never finished, could not be found, ran
over the time limit, or produced a log swebench could not grade.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from swebench.harness.constants import (
    APPLY_PATCH_FAIL,
    END_TEST_OUTPUT,
    LOG_INSTANCE,
    LOG_REPORT,
    LOG_TEST_OUTPUT,
    START_TEST_OUTPUT,
)
from swebench.harness.grading import parse_test_exit_code

from agent.errors import UsageError

PATCH_FILE = "patch.diff"  # run_evaluation writes the model patch here, beside the report
SCHEMA_VERSION = 2
ENVIRONMENT, AMBIGUOUS = "environment", "ambiguous"
TIMEOUT_LINE = re.compile(r"Timeout error: \d+ seconds exceeded\.\s*$")
BUILD_FAILED_LINE = "Image build failed for"  # what evals.grade logs when the image cannot be had
# A shell's "command not found" and "cannot execute": the test command itself is missing.
COMMAND_MISSING = (126, 127)


def build_run_report(
    run_dir: Path,
    dataset_ids: Iterable[str] | None = None,
    predictions: Mapping[str, str | None] | None = None,
) -> dict[str, Any]:
    """Summarise `run_dir` (`.../<run_id>/<model>`, one folder per instance) like `make_run_report`.

    `predictions` maps instance id to model patch; by default it is read from each
    instance's patch.diff. `dataset_ids` defaults to the submitted ids.
    """
    if not run_dir.is_dir():
        raise UsageError(f"{run_dir}: no such run directory")
    if predictions is None:
        predictions = {
            d.name: (d / PATCH_FILE).read_text(encoding="utf-8", errors="replace")
            for d in sorted(run_dir.iterdir())
            if (d / PATCH_FILE).is_file()
        }
    dataset = list(dataset_ids) if dataset_ids is not None else sorted(predictions)
    ids: dict[str, set[str]] = {
        name: set() for name in ("completed", "resolved", "unresolved", "error", "incomplete", "empty_patch")
    }
    for instance_id in dataset:
        if instance_id not in predictions:
            ids["incomplete"].add(instance_id)
        elif predictions[instance_id] in ("", None):
            ids["empty_patch"].add(instance_id)
        elif (run_dir / instance_id / LOG_REPORT).is_file():
            ids["completed"].add(instance_id)
            ids[_graded_outcome(run_dir / instance_id / LOG_REPORT, instance_id)].add(instance_id)
        else:
            ids["error"].add(instance_id)

    reasons: dict[str, str] = {}
    infra, ambiguous = set(), set()
    for instance_id in ids["unresolved"] | ids["error"]:
        found = failure_kind(run_dir / instance_id)
        if found:
            tier, reasons[instance_id] = found
            (infra if tier == ENVIRONMENT else ambiguous).add(instance_id)

    return {
        "total_instances": len(dataset),
        "submitted_instances": len(predictions),
        "completed_instances": len(ids["completed"]),
        "resolved_instances": len(ids["resolved"]),
        "unresolved_instances": len(ids["unresolved"]),
        "infra_failure_instances": len(infra),
        "ambiguous_failure_instances": len(ambiguous),
        "empty_patch_instances": len(ids["empty_patch"]),
        "error_instances": len(ids["error"]),
        "completed_ids": sorted(ids["completed"]),
        "incomplete_ids": sorted(ids["incomplete"]),
        "empty_patch_ids": sorted(ids["empty_patch"]),
        "submitted_ids": sorted(predictions),
        "resolved_ids": sorted(ids["resolved"]),
        "unresolved_ids": sorted(ids["unresolved"]),
        "infra_failure_ids": sorted(infra),
        "ambiguous_failure_ids": sorted(ambiguous),
        "failure_reasons": dict(sorted(reasons.items())),
        "error_ids": sorted(ids["error"]),
        "schema_version": SCHEMA_VERSION,
    }


def failure_kind(instance_dir: Path) -> tuple[str, str] | None:
    """(tier, reason) when an unresolved or errored instance says nothing about its patch.

    Read from what the harness wrote, never from words the tests print: whether
    report.json holds graded tests, the test output's START/END markers and recorded exit
    code, the timeout line, whether the patch applied. None means the graded tests decided
    the verdict (or the patch did not apply): the instance is truly unresolved.
    Tiers: "environment" (the machinery failed: no image, no container, the test command
    never started, never finished or does not exist) and "ambiguous" (a time limit, or a
    log swebench cannot grade: either side could be at fault).
    """
    output = _read(instance_dir / LOG_TEST_OUTPUT) or ""
    report_text = _read(instance_dir / LOG_REPORT)
    report = _report_entry(report_text)
    if TIMEOUT_LINE.search(output):
        return AMBIGUOUS, "tests_timed_out"
    if report_text is not None and report is None:
        return ENVIRONMENT, "report_unreadable"
    if report is not None and "tests_status" in report:
        return None  # swebench graded the tests
    if not output:
        if report is not None:  # graded without tests: the patch did not apply
            return None
        run_log = _read(instance_dir / LOG_INSTANCE) or ""
        return ENVIRONMENT, "image_build_failed" if BUILD_FAILED_LINE in run_log else "container_error"
    if APPLY_PATCH_FAIL in output:
        return None
    if START_TEST_OUTPUT not in output:
        return ENVIRONMENT, "tests_did_not_start"
    if END_TEST_OUTPUT not in output:
        return ENVIRONMENT, "tests_did_not_finish"
    if parse_test_exit_code(output) in COMMAND_MISSING:
        return ENVIRONMENT, "test_command_missing"
    return AMBIGUOUS, "log_not_gradable"  # no results, or results the exit code contradicts


def _report_entry(text: str | None) -> dict[str, Any] | None:
    """The one instance entry of a report.json; None when there is none or it cannot be read."""
    try:
        entries = list(json.loads(text or "").values())
    except (json.JSONDecodeError, AttributeError):
        return None
    return entries[0] if len(entries) == 1 and isinstance(entries[0], dict) else None


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None


def _graded_outcome(report_path: Path, instance_id: str) -> str:
    """An empty, unreadable or foreign report counts as an error, as upstream."""
    try:
        return "resolved" if json.loads(report_path.read_text())[instance_id]["resolved"] else "unresolved"
    except (json.JSONDecodeError, KeyError, TypeError):
        return "error"


def write_run_report(report: dict[str, Any], run_dir: Path, out_dir: Path = Path(".")) -> Path:
    """Write `<model>.<run_id>.json`, named as upstream names it."""
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{run_dir.name.replace('/', '__')}.{run_dir.parent.name}.json"
    partial = path.with_name(path.name + ".partial")  # a crash mid-write must not leave half a report
    partial.write_text(json.dumps(report, indent=4) + "\n", encoding="utf-8")
    os.replace(partial, path)
    return path


def load_run_report(path: Path) -> dict[str, Any]:
    """Read a run report file, or build one on the fly from a run directory."""
    if path.is_dir():
        return build_run_report(path)
    try:
        report = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UsageError(f"{path}: no such run report") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise UsageError(f"{path}: not a JSON run report ({exc})") from None
    required = ("total_instances", "submitted_ids", "resolved_ids", "unresolved_ids", "error_ids")
    missing = [key for key in required if not isinstance(report, dict) or key not in report]
    if missing:
        raise UsageError(f"{path}: not a run report (missing {', '.join(missing)})")
    return report


def outcome_ids(report: dict[str, Any]) -> dict[str, set[str]]:
    """The run report's id lists by outcome; environment and ambiguous failures are a part of unresolved/error."""
    return {
        "resolved": set(report["resolved_ids"]),
        "unresolved": set(report["unresolved_ids"]),
        "infra_failure": set(report.get("infra_failure_ids", [])),
        "ambiguous_failure": set(report.get("ambiguous_failure_ids", [])),
        "error": set(report["error_ids"]),
        "empty_patch": set(report.get("empty_patch_ids", [])),
        "incomplete": set(report.get("incomplete_ids", [])),
    }


@dataclass(frozen=True)
class RunComparison:
    """Which instances each of two runs resolved."""

    only_a: list[str]
    only_b: list[str]
    both: list[str]


def compare_runs(a: dict[str, Any], b: dict[str, Any]) -> RunComparison:
    resolved_a, resolved_b = set(a["resolved_ids"]), set(b["resolved_ids"])
    return RunComparison(
        only_a=sorted(resolved_a - resolved_b),
        only_b=sorted(resolved_b - resolved_a),
        both=sorted(resolved_a & resolved_b),
    )
