"""The run report, `<model>.<run_id>.json`, as swebench's `make_run_report` writes it.

It is built from the official log layout, `logs/run_evaluation/<run_id>/<model>/<id>/`,
without swebench's working-directory and Docker assumptions. Failures that swebench's
own classifier blames on the environment (browser, OOM, network, Docker) are listed
apart, so a broken image is not read as a wrong patch; as upstream, they stay in
`unresolved_ids` / `error_ids` so the denominator matches official numbers.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from swebench.harness.constants import LOG_INSTANCE, LOG_REPORT, LOG_TEST_OUTPUT
from swebench.harness.infra_failure import TIER_ENVIRONMENT, classify_logs

from agent.errors import UsageError

PATCH_FILE = "patch.diff"  # run_evaluation writes the model patch here, beside the report
SCHEMA_VERSION = 2


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
        found = classify_logs(run_dir / instance_id / LOG_TEST_OUTPUT, run_dir / instance_id / LOG_INSTANCE)
        if found:
            reasons[instance_id], tier = found
            (infra if tier == TIER_ENVIRONMENT else ambiguous).add(instance_id)

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
    """One outcome per instance; environment and ambiguous failures taken out of unresolved/error."""
    infra = set(report.get("infra_failure_ids", []))
    ambiguous = set(report.get("ambiguous_failure_ids", []))
    apart = infra | ambiguous
    return {
        "resolved": set(report["resolved_ids"]),
        "unresolved": set(report["unresolved_ids"]) - apart,
        "infra_failure": infra,
        "ambiguous_failure": ambiguous,
        "error": set(report["error_ids"]) - apart,
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
