"""Grading test logs into report.json: every official log of the real data (tier swebench_data), plus made-up logs."""

from __future__ import annotations

import json
import sys

import pytest

from agent.cli import main
from agent.errors import UsageError
from evals.datasets import TaskInstance
from evals.grade_log import grade_log
from tests.shared_data import LOGS, SWEBENCH, lite, official_index, verified

VERDICT_KEYS = ("patch_is_None", "patch_exists", "patch_successfully_applied", "resolved")
GRADED_LISTS = ("FAIL_TO_PASS", "PASS_TO_PASS")
DATA = SWEBENCH
INDEX = official_index()
real_data = pytest.mark.swebench_data


def official(entry: dict) -> tuple[dict, str, bool]:
    """The official report, the test output, and whether the prediction had no patch."""
    folder = LOGS / entry["dir"]
    report = json.loads((folder / "report.json").read_text(encoding="utf-8"))[entry["instance_id"]]
    log_text = (folder / "test_output.txt").read_text(encoding="utf-8")
    return report, log_text, (folder / "patch.diff").read_text(encoding="utf-8") == ""


def assert_same_verdict(ours: dict, theirs: dict) -> None:
    assert {k: ours[k] for k in VERDICT_KEYS} == {k: theirs[k] for k in VERDICT_KEYS}
    assert ("tests_status" in ours) == ("tests_status" in theirs)


@real_data
def test_index_lists_every_official_log() -> None:
    assert len(INDEX) == len([d for d in (LOGS / INDEX[0]["run_id"]).iterdir() if d.is_dir()])


@real_data
@pytest.mark.parametrize("entry", INDEX, ids=lambda e: e["instance_id"])
def test_official_logs_graded_as_officially(entry: dict) -> None:
    """Lite rows (a 2024 revision, as the run used) where they exist, else the Verified rows.

    Lists are compared as sorted lists: grading walks the dataset's list, so order is the
    row's order, and the shared Verified rows have some lists rebuilt in another order.
    """
    report, log_text, patch_missing = official(entry)
    instance = lite().get(entry["instance_id"]) or verified()[entry["instance_id"]]
    ours = grade_log(instance, log_text, patch_missing=patch_missing)[entry["instance_id"]]
    assert_same_verdict(ours, report)
    assert ours["resolved"] == entry["resolved"]
    for category in GRADED_LISTS if "tests_status" in report else ():
        for outcome in ("success", "failure"):
            assert sorted(ours["tests_status"][category][outcome]) == sorted(report["tests_status"][category][outcome])


@real_data
@pytest.mark.parametrize("entry", INDEX, ids=lambda e: e["instance_id"])
def test_official_lists_exactly_with_the_lists_the_report_implies(entry: dict) -> None:
    """With the test lists in the report's own order, every list matches element for element."""
    report, log_text, patch_missing = official(entry)
    instance = verified()[entry["instance_id"]]
    if "tests_status" in report:
        implied = {c: report["tests_status"][c]["success"] + report["tests_status"][c]["failure"] for c in GRADED_LISTS}
        instance = instance.model_copy(update=implied)
    ours = grade_log(instance, log_text, patch_missing=patch_missing)[entry["instance_id"]]
    assert_same_verdict(ours, report)
    for category in GRADED_LISTS if "tests_status" in report else ():
        assert ours["tests_status"][category] == report["tests_status"][category]


@real_data
@pytest.mark.parametrize("entry", INDEX, ids=lambda e: e["instance_id"])
def test_verified_rows_give_the_official_verdicts(entry: dict) -> None:
    report, log_text, patch_missing = official(entry)
    ours = grade_log(verified()[entry["instance_id"]], log_text, patch_missing=patch_missing)[entry["instance_id"]]
    assert_same_verdict(ours, report)


def task(**overrides: object) -> TaskInstance:
    row = {
        "repo": "pytest-dev/pytest",
        "instance_id": "pytest-dev__pytest-1",
        "base_commit": "abc",
        "version": "7.0",
        "problem_statement": "",
        "FAIL_TO_PASS": ["testing/test_a.py::test_new"],
        "PASS_TO_PASS": ["testing/test_a.py::test_old", "testing/test_a.py::test_skip"],
    }
    return TaskInstance.model_validate(row | overrides)


def marked_log(*results: str, exit_code: int | None = None) -> str:
    """A log as swebench 3.x+ eval scripts write it, output between the markers."""
    lines = ["+ git apply -v -", "Applied patch testing/test_a.py cleanly.", "+ : '>>>>> Start Test Output'",
             "+ pytest -rA testing/test_a.py", *results, "+ : '>>>>> End Test Output'"]
    if exit_code is not None:
        lines.append(f">>>>> Test Exit Code: {exit_code}")
    return "\n".join(lines) + "\n"


PASSING = ["PASSED testing/test_a.py::test_new", "PASSED testing/test_a.py::test_old", "SKIPPED testing/test_a.py::test_skip"]


def test_marked_log_resolved_with_official_shape() -> None:
    report = grade_log(task(), marked_log(*PASSING, exit_code=0))["pytest-dev__pytest-1"]
    assert report["resolved"] and report["patch_successfully_applied"] and not report["infra_failure"]
    status = report["tests_status"]
    assert status["FAIL_TO_PASS"] == {"success": ["testing/test_a.py::test_new"], "failure": []}
    # swebench 5: a skipped PASS_TO_PASS test is not a regression
    assert status["PASS_TO_PASS"]["success"] == ["testing/test_a.py::test_old", "testing/test_a.py::test_skip"]
    assert status["FAIL_TO_FAIL"] == status["PASS_TO_FAIL"] == {"success": [], "failure": []}


def test_marked_log_with_failing_or_skipped_new_test_is_unresolved() -> None:
    failing = grade_log(task(), marked_log("FAILED testing/test_a.py::test_new - assert 0", *PASSING[1:]))
    assert failing["pytest-dev__pytest-1"]["tests_status"]["FAIL_TO_PASS"]["failure"] == ["testing/test_a.py::test_new"]
    assert not failing["pytest-dev__pytest-1"]["resolved"]
    skipped = grade_log(task(), marked_log("SKIPPED testing/test_a.py::test_new", *PASSING[1:]))
    assert not skipped["pytest-dev__pytest-1"]["resolved"]


def test_marked_log_whose_exit_code_contradicts_it_is_not_trusted() -> None:
    report = grade_log(task(), marked_log(*PASSING, exit_code=1))["pytest-dev__pytest-1"]
    assert not report["patch_successfully_applied"] and not report["resolved"] and "tests_status" not in report


def test_patch_that_did_not_apply_is_never_resolved() -> None:
    report = grade_log(task(), marked_log(*PASSING), patch_applied=False)["pytest-dev__pytest-1"]
    assert (report["patch_exists"], report["patch_successfully_applied"], report["resolved"]) == (True, False, False)
    in_log = grade_log(task(), ">>>>> Patch Apply Failed\n" + marked_log(*PASSING))["pytest-dev__pytest-1"]
    assert not in_log["patch_successfully_applied"] and not in_log["resolved"]


def test_missing_patch_is_recorded_without_reading_the_log() -> None:
    report = grade_log(task(), marked_log(*PASSING), patch_missing=True)["pytest-dev__pytest-1"]
    assert report["patch_is_None"] and not report["patch_exists"] and not report["resolved"]


def test_legacy_log_grades_only_what_follows_the_model_patch() -> None:
    legacy = "\n".join([
        "FAILED testing/test_a.py::test_new",  # before the model patch applied: not this run's result
        ">>>>> Applied Patch (pred)",
        "Applied patch testing/test_a.py cleanly.",
        *PASSING,
    ])
    report = grade_log(task(), legacy)["pytest-dev__pytest-1"]
    assert report["resolved"] and "infra_failure" not in report  # swebench 2.x report shape


def test_legacy_log_without_an_applied_patch_is_unapplied() -> None:
    report = grade_log(task(), "error: patch failed: testing/test_a.py:1\n" + "\n".join(PASSING))["pytest-dev__pytest-1"]
    assert not report["patch_successfully_applied"] and not report["resolved"]
    timed_out = grade_log(task(), "Applied patch x cleanly.\n>>>>> Tests Timed Out\n" + "\n".join(PASSING))
    assert not timed_out["pytest-dev__pytest-1"]["patch_successfully_applied"]


def test_row_parser_and_eval_type_win_over_the_repo_defaults() -> None:
    # fail_only: a test missing from the log counts as passing; the named parser reads the log
    fail_only = task(repo="someone/tool", log_parser="parse_log_pytest", eval_type="fail_only",
                     PASS_TO_PASS=["testing/test_a.py::test_never_printed"])
    report = grade_log(fail_only, marked_log("PASSED testing/test_a.py::test_new"))["pytest-dev__pytest-1"]
    assert report["resolved"] and report["tests_status"]["PASS_TO_PASS"]["success"] == ["testing/test_a.py::test_never_printed"]


def test_repo_without_a_known_parser_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="swebench has no log parser for someone/tool"):
        grade_log(task(repo="someone/tool"), marked_log(*PASSING))
    with pytest.raises(UsageError, match="parse_log_made_up"):
        grade_log(task(log_parser="parse_log_made_up"), marked_log(*PASSING))


def run_cli(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    monkeypatch.setattr(sys, "argv", ["agent", *args])
    with pytest.raises(SystemExit) as exited:
        main()
    out, err = capsys.readouterr()
    return exited.value.code, out, err


@real_data
def test_cli_prints_the_official_report(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    entry = next(e for e in INDEX if e["instance_id"] == "psf__requests-6028")
    folder = LOGS / entry["dir"]
    code, out, _ = run_cli(monkeypatch, capsys, "eval", "grade-log", "--dataset", str(DATA / "tasks" / "swe-bench_verified.jsonl"),
                           "--instance-id", entry["instance_id"], "--log", str(folder / "test_output.txt"),
                           "--patch", str(folder / "patch.diff"))
    assert code == 0
    printed = json.loads(out)[entry["instance_id"]]
    report = json.loads((folder / "report.json").read_text(encoding="utf-8"))[entry["instance_id"]]
    assert_same_verdict(printed, report)
    assert printed["tests_status"]["FAIL_TO_PASS"] == report["tests_status"]["FAIL_TO_PASS"]


@real_data
def test_cli_empty_patch_file_means_no_patch(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    folder = LOGS / next(e["dir"] for e in INDEX if e["instance_id"] == "django__django-11087")
    code, out, _ = run_cli(monkeypatch, capsys, "eval", "grade-log", "--dataset", str(DATA / "tasks" / "swe-bench_verified.jsonl"),
                           "--instance-id", "django__django-11087", "--log", str(folder / "test_output.txt"),
                           "--patch", str(folder / "patch.diff"))
    assert code == 0 and json.loads(out)["django__django-11087"]["patch_is_None"] is True


@real_data
@pytest.mark.parametrize(
    ("instance_id", "log_name", "message"),
    [("psf__requests-0", "test_output.txt", "not in the dataset: psf__requests-0"),
     ("psf__requests-6028", "absent.txt", "no such file")],
)
def test_cli_bad_input_is_one_line_exit_2(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], instance_id: str, log_name: str, message: str
) -> None:
    folder = LOGS / next(e["dir"] for e in INDEX if e["instance_id"] == "psf__requests-6028")
    code, out, err = run_cli(monkeypatch, capsys, "eval", "grade-log", "--dataset", str(DATA / "tasks" / "swe-bench_verified.jsonl"),
                             "--instance-id", instance_id, "--log", str(folder / log_name))
    assert code == 2 and out == ""
    assert len(err.strip().splitlines()) == 1 and message in err


@real_data
@pytest.mark.parametrize(("instance_id", "completion"), [
    ("sphinx-doc__sphinx-9367", " and b-a and b]"),  # parse_log_sphinx keeps spaces: a prefix match, as swebench 5
    ("astropy__astropy-14369", " m )]"),
    ("pylint-dev__pylint-6528", " (W0101): Unreachable code]"),  # parse_log_pylint cuts at the space: exact
])
def test_ids_with_spaces_and_brackets_match_as_swebench_matches_them(instance_id: str, completion: str) -> None:
    """Verified lists hold ids cut at a space inside the brackets (`test_unparse[a`); the log has them whole."""
    instance = verified()[instance_id]
    cut = [t for t in instance.FAIL_TO_PASS + instance.PASS_TO_PASS if t.count("[") > t.count("]")]
    assert cut  # the row really has such ids

    def log(failing: str = "") -> str:
        lines = [f"{'FAILED' if t == failing else 'PASSED'} {t + completion if t in cut else t}"
                 for t in instance.FAIL_TO_PASS + instance.PASS_TO_PASS]
        return "\n".join(["+ git apply -v", ">>>>> Start Test Output", *lines, ">>>>> End Test Output",
                          ">>>>> Test Exit Code: 0"])

    assert grade_log(instance, log())[instance_id]["resolved"]
    report = grade_log(instance, log(failing=cut[0]))[instance_id]
    category = "FAIL_TO_PASS" if cut[0] in instance.FAIL_TO_PASS else "PASS_TO_PASS"
    assert not report["resolved"] and report["tests_status"][category]["failure"] == [cut[0]]
