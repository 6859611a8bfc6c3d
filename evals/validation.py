"""Which task instances are sound: the gold patch resolves them and an empty patch does not.

An instance whose FAIL_TO_PASS tests already pass without any fix is a label defect:
grading it measures nothing. Such instances are flagged, never silently dropped; a
validated-ids file then lets later runs (`eval grade`, `eval run`) keep only the sound ones.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from swebench.harness.constants import FAIL_TO_PASS

from agent.errors import UsageError
from evals.datasets import TaskInstance


@dataclass(frozen=True)
class Verdict:
    """One instance's validation: how gold and empty fared, and what that says."""

    instance_id: str
    gold: str  # an outcome name from evals.grade ("resolved", "unresolved", "build_failed", ...)
    empty: str
    label_defect: bool = False  # FAIL_TO_PASS passed with the empty patch
    known_label_defect: bool = False  # the recipe lists it as one
    caveats: tuple[str, ...] = ()  # where its environment differs from upstream's (unfaithful recipe, setup commit)
    unfaithful: str = ""  # the recipe's reason why this version cannot match upstream

    @property
    def valid(self) -> bool:
        return self.gold == "resolved" and self.empty == "unresolved" and not self.label_defect

    @property
    def reason(self) -> str:
        if self.valid:
            return "valid"
        if self.label_defect:
            return "label defect: FAIL_TO_PASS passes without the fix"
        if self.gold != "resolved":
            return f"gold patch: {self.gold}"
        return f"empty patch: {self.empty}"


def fail_to_pass_already_passing(report: dict[str, Any] | None) -> bool:
    """Whether every FAIL_TO_PASS test passed in an empty-patch report."""
    if not report or "tests_status" not in report:
        return False
    status = report["tests_status"][FAIL_TO_PASS]
    return bool(status["success"]) and not status["failure"]


def write_summary(path: Path, verdicts: Sequence[Verdict]) -> Path:
    """Every verdict and the totals, as JSON (`validation.<run_id>.json` beside the run reports)."""
    body = {
        "valid": sum(v.valid for v in verdicts),
        "total": len(verdicts),
        "label_defects": sorted(v.instance_id for v in verdicts if v.label_defect),
        "unfaithful": sorted(v.instance_id for v in verdicts if v.unfaithful),
        "instances": {v.instance_id: {"gold": v.gold, "empty": v.empty, "valid": v.valid, "reason": v.reason,
                                      "label_defect": v.label_defect, "known_label_defect": v.known_label_defect,
                                      "caveats": list(v.caveats)}
                      for v in verdicts},
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(body, indent=2) + "\n", encoding="utf-8")
    return path


def read_validated(path: Path) -> set[str]:
    """Instance ids from a file written by `--save-validated`: one per line, # comments."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise UsageError(f"--only-validated {path}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"--only-validated {path}: cannot read it ({exc})") from None
    return {line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")}


def write_validated(path: Path, verdicts: Sequence[Verdict]) -> Path:
    """The valid ids, one a line and nothing else, so `wc -l` and other tools read it as is."""
    ids = sorted(v.instance_id for v in verdicts if v.valid)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"{i}\n" for i in ids), encoding="utf-8")
    return path


def keep_validated(instances: Iterable[TaskInstance], path: Path | None) -> list[TaskInstance]:
    """Only the instances listed in the validated-ids file (all of them when `path` is None)."""
    instances = list(instances)
    if path is None:
        return instances
    validated = read_validated(path)
    return [i for i in instances if i.instance_id in validated]
