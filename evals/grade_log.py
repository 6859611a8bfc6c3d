"""Grade one test log into the official `report.json`, with swebench's own parsers and grading.

Logs from swebench 3.x and later bracket the test output with START/END markers and go
straight through swebench 5.0.2's `get_eval_report`. Logs from swebench 2.x (such as the
September 2024 runs) have no markers; 5.0.2 would call them unapplied, so for those we
apply 2.x's rule for "did the patch apply, which text holds the results" and then grade
with 5.0.2's parser, `get_eval_tests_report` and `get_resolution_status`.
"""

from __future__ import annotations

import locale
import tempfile
from pathlib import Path
from typing import Any

from swebench.harness.constants import (
    APPLY_PATCH_FAIL,
    APPLY_PATCH_PASS,
    FAIL_ONLY_REPOS,
    FAIL_TO_PASS,
    PASS_TO_PASS,
    RESET_FAILED,
    START_TEST_OUTPUT,
    TESTS_ERROR,
    TESTS_TIMEOUT,
    EvalType,
    ResolvedStatus,
)
from swebench.harness.grading import get_eval_report, get_eval_tests_report, get_resolution_status
from swebench.harness.log_parsers import PARSER_REGISTRY
from swebench.harness.log_parsers.python import MAP_REPO_TO_PARSER_PY
from swebench.types import TestSpec

from agent.errors import UsageError
from evals.datasets import TaskInstance

# swebench 2.x treated any of these anywhere in the log as "the patch did not apply".
LEGACY_FAILURE_CODES = (APPLY_PATCH_FAIL, RESET_FAILED, TESTS_ERROR, TESTS_TIMEOUT, "Failed to reset task environment")


def grade_log(
    instance: TaskInstance, log_text: str, patch_applied: bool = True, *, patch_missing: bool = False
) -> dict[str, Any]:
    """The official report for one instance: `{instance_id: {patch_is_None, ..., tests_status}}`.

    `patch_applied=False` records that the model patch failed to apply before the tests
    ran; `patch_missing=True` that the prediction had no patch at all (model_patch None),
    which the official report records without reading the log.
    """
    spec = grading_spec(instance)
    if not patch_applied:  # swebench's own marker, so it is graded as the harness grades a failed apply
        log_text = f"{APPLY_PATCH_FAIL}\n{log_text}"
    if patch_missing or START_TEST_OUTPUT in log_text or not patch_applied:
        return _official_report(spec, log_text, patch_missing)
    return _legacy_report(spec, log_text)


def grading_spec(instance: TaskInstance) -> TestSpec:
    """swebench's grading view of an instance; classic rows name no parser, so use the repo's."""
    parser = instance.log_parser
    if parser is None and instance.repo in MAP_REPO_TO_PARSER_PY:
        parser = MAP_REPO_TO_PARSER_PY[instance.repo].__name__
    if parser not in PARSER_REGISTRY:
        named = parser or "none named"
        raise UsageError(f"{instance.instance_id}: swebench has no log parser for {instance.repo} ({named})")
    default_type = EvalType.FAIL_ONLY if instance.repo in FAIL_ONLY_REPOS else EvalType.PASS_AND_FAIL
    return TestSpec(
        instance_id=instance.instance_id,
        image=instance.image or "",
        eval_script_list=[],
        repo=instance.repo,
        version=instance.version,
        FAIL_TO_PASS=instance.FAIL_TO_PASS,
        PASS_TO_PASS=instance.PASS_TO_PASS,
        log_parser=parser,
        eval_type=instance.eval_type or default_type.value,
    )


def _official_report(spec: TestSpec, log_text: str, patch_missing: bool) -> dict[str, Any]:
    prediction = {"instance_id": spec.instance_id, "model_patch": None if patch_missing else "(graded from its log)"}
    with tempfile.TemporaryDirectory(prefix="grade-log-") as scratch:
        log_path = Path(scratch) / "test_output.txt"
        # swebench reopens the file with the locale's encoding; write it in that one.
        log_path.write_text(log_text, encoding=locale.getpreferredencoding(False), errors="replace")
        return get_eval_report(spec, prediction, str(log_path), include_tests_status=True)


def _legacy_report(spec: TestSpec, log_text: str) -> dict[str, Any]:
    """swebench 2.x's get_logs_eval rule, then 5.0.2's parser and grading."""
    report: dict[str, Any] = {
        "patch_is_None": False,
        "patch_exists": True,
        "patch_successfully_applied": False,
        "resolved": False,
    }
    applied = "applied patch" in log_text.lower() and not any(code in log_text for code in LEGACY_FAILURE_CODES)
    if applied:
        test_output = log_text.split(f"{APPLY_PATCH_PASS} (pred)")[-1]
        status_map = PARSER_REGISTRY[spec.log_parser](test_output, spec)
        expected = {FAIL_TO_PASS: spec.FAIL_TO_PASS, PASS_TO_PASS: spec.PASS_TO_PASS}
        tests_status = get_eval_tests_report(status_map, expected, eval_type=EvalType(spec.eval_type))
        report["patch_successfully_applied"] = True
        report["resolved"] = get_resolution_status(tests_status) == ResolvedStatus.FULL.value
        report["tests_status"] = tests_status
    return {spec.instance_id: report}
