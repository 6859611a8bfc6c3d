"""Run reports: built from the official log layout, checked against swebench's make_run_report."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from swebench.harness.constants import END_TEST_OUTPUT, START_TEST_OUTPUT, TEST_EXIT_CODE
from swebench.harness.reporting import make_run_report

from agent.cli import main
from agent.errors import UsageError
from evals.report import (
    build_run_report,
    compare_runs,
    load_run_report,
    outcome_ids,
    write_run_report,
)
from tests.shared_data import LOGS, official_index

# The run report's advisory keys, computed from what the harness recorded instead of
# swebench's word matching (evals.report.failure_kind); everything else equals make_run_report.
ADVISORY = ("infra_failure_instances", "ambiguous_failure_instances", "infra_failure_ids",
            "ambiguous_failure_ids", "failure_reasons")


def add_instance(run_dir: Path, instance_id: str, patch: str = "diff\n", resolved: bool | None = None,
                 report_text: str | None = None, test_output: str = "", graded: bool = True) -> None:
    """One instance folder as run_evaluation leaves it; no report when `resolved` and `report_text` are None.

    `graded=False` writes the report swebench gives a log it cannot grade (no tests_status).
    """
    folder = run_dir / instance_id
    folder.mkdir(parents=True)
    (folder / "patch.diff").write_text(patch, encoding="utf-8")
    (folder / "test_output.txt").write_text(test_output, encoding="utf-8")
    if resolved is not None:
        entry: dict = {"patch_is_None": False, "patch_exists": True, "patch_successfully_applied": graded,
                       "resolved": resolved}
        if graded:
            entry["tests_status"] = {"FAIL_TO_PASS": {"success": [], "failure": ["t.py::x"]}}
        report_text = json.dumps({instance_id: entry})
    if report_text is not None:
        (folder / "report.json").write_text(report_text, encoding="utf-8")


def eval_output(body: str, exit_code: int = 1) -> str:
    """A test output as the eval script writes it: the test command's output between the markers."""
    return f"+ git status\n{START_TEST_OUTPUT}\n{body}\n{END_TEST_OUTPUT}\n{TEST_EXIT_CODE}: {exit_code}\n"


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    run = tmp_path / "logs" / "run_evaluation" / "run-1" / "org__model"
    add_instance(run, "r__r-1", resolved=True, test_output=eval_output("PASSED t.py::x", 0))
    # words pytest's own suite prints all the time: the graded tests still decide
    add_instance(run, "r__r-2", resolved=False, test_output=eval_output(
        "collected 0 items\nno tests ran\nE   ModuleNotFoundError: No module named 'x'\nFAILED t.py::x", 2))
    add_instance(run, "r__r-3", resolved=False, graded=False, test_output="+ source /opt/venv/bin/activate\n")
    add_instance(run, "r__r-4", patch="")
    add_instance(run, "r__r-5")  # evaluation died before writing a report
    add_instance(run, "r__r-6", report_text="{broken")
    add_instance(run, "r__r-7", resolved=False, graded=False,
                 test_output=eval_output("bash: line 9: pytest: command not found", 127))
    add_instance(run, "r__r-9", test_output=eval_output("PASSED t.py::y", 0).rsplit(END_TEST_OUTPUT)[0]
                 + "\n\nTimeout error: 30 seconds exceeded.")
    add_instance(run, "r__r-10", resolved=False, graded=False, test_output=eval_output("", 1))
    return run


def official_run_report(run_dir: Path, dataset_ids: list[str], monkeypatch: pytest.MonkeyPatch,
                        capsys: pytest.CaptureFixture[str]) -> dict:
    """swebench's own make_run_report over the same folders (it reads paths relative to the cwd)."""
    predictions = {d.name: {"instance_id": d.name, "model_name_or_path": run_dir.name,
                            "model_patch": (d / "patch.diff").read_text(encoding="utf-8")}
                   for d in run_dir.iterdir()}
    monkeypatch.chdir(run_dir.parents[3])
    path = make_run_report(predictions, [{"instance_id": i} for i in dataset_ids], run_dir.parent.name,
                           report_dir=str(run_dir.parents[3] / "official"))
    capsys.readouterr()
    return json.loads(path.read_text(encoding="utf-8"))


def test_report_sorts_every_outcome(run_dir: Path) -> None:
    report = build_run_report(run_dir, dataset_ids=[f"r__r-{n}" for n in range(1, 11)])
    assert report["resolved_ids"] == ["r__r-1"]
    assert report["unresolved_ids"] == ["r__r-10", "r__r-2", "r__r-3", "r__r-7"]
    assert report["error_ids"] == ["r__r-5", "r__r-6", "r__r-9"]
    assert report["empty_patch_ids"] == ["r__r-4"] and report["incomplete_ids"] == ["r__r-8"]
    assert report["completed_ids"] == ["r__r-1", "r__r-10", "r__r-2", "r__r-3", "r__r-6", "r__r-7"]
    assert report["infra_failure_ids"] == ["r__r-3", "r__r-5", "r__r-6", "r__r-7"]
    assert report["ambiguous_failure_ids"] == ["r__r-10", "r__r-9"]
    assert report["failure_reasons"] == {
        "r__r-3": "tests_did_not_start", "r__r-5": "container_error", "r__r-6": "report_unreadable",
        "r__r-7": "test_command_missing",
        "r__r-9": "tests_timed_out", "r__r-10": "log_not_gradable"}
    assert (report["total_instances"], report["submitted_instances"]) == (10, 9)


def test_words_in_the_log_do_not_set_an_unresolved_instance_apart(tmp_path: Path) -> None:
    """pytest's own suite prints these in passing; a graded instance stays unresolved."""
    run = tmp_path / "run" / "m"
    for n, words in enumerate(["collected 0 items", "no tests ran", "ModuleNotFoundError: No module named 'y'",
                               "Could not resolve host: example.org", "Killed"]):
        add_instance(run, f"p__p-{n}", resolved=False, test_output=eval_output(f"{words}\nFAILED t.py::x"))
    report = build_run_report(run)
    assert len(report["unresolved_ids"]) == 5
    assert report["infra_failure_ids"] == report["ambiguous_failure_ids"] == [] and report["failure_reasons"] == {}


def test_report_equals_swebench_make_run_report(run_dir: Path, monkeypatch: pytest.MonkeyPatch,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    dataset_ids = [f"r__r-{n}" for n in range(1, 11)]
    ours = build_run_report(run_dir, dataset_ids)
    official = official_run_report(run_dir, dataset_ids, monkeypatch, capsys)
    assert {k: v for k, v in ours.items() if k not in ADVISORY} == {
        k: v for k, v in official.items() if k not in ADVISORY}
    assert set(ADVISORY) <= set(official)  # the same keys, filled from what the harness recorded


@pytest.mark.swebench_data
def test_shared_official_run_gives_the_official_verdicts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    index = official_index()
    run = tmp_path / "logs" / "run_evaluation" / index[0]["run_id"] / "composio"
    shutil.copytree(LOGS / index[0]["run_id"], run)
    report = build_run_report(run)
    assert report["resolved_ids"] == sorted(e["instance_id"] for e in index if e["resolved"])
    assert set(report["submitted_ids"]) == {e["instance_id"] for e in index}
    official = official_run_report(run, report["submitted_ids"], monkeypatch, capsys)
    assert {k: v for k, v in report.items() if k not in ADVISORY} == {
        k: v for k, v in official.items() if k not in ADVISORY}
    assert report["infra_failure_ids"] == report["ambiguous_failure_ids"] == []  # every log was graded


def test_outcomes_are_the_run_reports_own_lists(run_dir: Path) -> None:
    report = build_run_report(run_dir)
    outcomes = outcome_ids(report)
    assert outcomes["unresolved"] == set(report["unresolved_ids"]) == {"r__r-2", "r__r-3", "r__r-7", "r__r-10"}
    assert outcomes["infra_failure"] == {"r__r-3", "r__r-5", "r__r-6", "r__r-7"}
    assert outcomes["ambiguous_failure"] == {"r__r-9", "r__r-10"}
    assert outcomes["error"] == {"r__r-5", "r__r-6", "r__r-9"}


def test_written_report_is_named_model_dot_run_and_reads_back(run_dir: Path, tmp_path: Path) -> None:
    report = build_run_report(run_dir)
    path = write_run_report(report, run_dir, tmp_path / "reports")
    assert path.name == "org__model.run-1.json"
    assert load_run_report(path) == report
    assert load_run_report(run_dir) == report  # a run directory is read as its report


@pytest.mark.parametrize(
    ("content", "message"),
    [(None, "no such run report"), ("{oops", "not a JSON run report"), ('{"total_instances": 1}', "missing submitted_ids")],
)
def test_bad_run_report_files(tmp_path: Path, content: str | None, message: str) -> None:
    path = tmp_path / "m.run.json"
    if content is not None:
        path.write_text(content, encoding="utf-8")
    with pytest.raises(UsageError, match=message):
        load_run_report(path)


def test_missing_run_directory_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="no such run directory"):
        build_run_report(tmp_path / "absent")


def test_compare_runs() -> None:
    a = {"resolved_ids": ["x-1", "x-2", "x-3"]}
    b = {"resolved_ids": ["x-2", "x-3", "x-4"]}
    comparison = compare_runs(a, b)
    assert (comparison.only_a, comparison.only_b, comparison.both) == (["x-1"], ["x-4"], ["x-2", "x-3"])


def run_cli(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    monkeypatch.setattr(sys, "argv", ["agent", *args])
    monkeypatch.setenv("COLUMNS", "200")
    with pytest.raises(SystemExit) as exited:
        main()
    out, err = capsys.readouterr()
    return exited.value.code, out, err


def test_cli_table_and_comparison(run_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                  capsys: pytest.CaptureFixture[str]) -> None:
    first = write_run_report(build_run_report(run_dir), run_dir, tmp_path)
    other_dir = tmp_path / "logs" / "run_evaluation" / "run-2" / "org__model"
    add_instance(other_dir, "r__r-1", resolved=False)
    add_instance(other_dir, "r__r-2", resolved=True)
    second = write_run_report(build_run_report(other_dir), other_dir, tmp_path)

    code, out, _ = run_cli(monkeypatch, capsys, "eval", "report", str(first))
    assert code == 0
    rows = {line.split("│")[1].strip(): line.split("│")[2].strip() for line in out.splitlines()
            if line.count("│") == 3}
    report = json.loads(first.read_text())
    assert rows["resolved"] == f"{report['resolved_instances']} (11.1%)"  # the table counts are the JSON's
    assert rows["unresolved"].startswith(f"{report['unresolved_instances']} (")
    assert rows["error (no report)"].startswith(f"{report['error_instances']} (")
    assert rows["of which environment failure"].startswith(f"{report['infra_failure_instances']} (")

    code, out, _ = run_cli(monkeypatch, capsys, "eval", "report", str(first), str(second), "--json")
    assert code == 0
    assert json.loads(out)["comparison"] == {"only_a": ["r__r-1"], "only_b": ["r__r-2"], "both": []}

    code, out, _ = run_cli(monkeypatch, capsys, "eval", "report", str(first), str(second))
    assert code == 0 and "org__model.run-1 only" in out and "r__r-2" in out


def test_output_to_a_pipe_is_not_wrapped(tmp_path: Path) -> None:
    """Not a terminal: table cells and lines are not cut or wrapped at 80 columns."""
    model = "an-organisation-with-a-long-name__a-model-name-that-goes-on-" + "and-on-" * 12
    run = tmp_path / "logs" / "run_evaluation" / "run-1" / model
    add_instance(run, "psf__requests-2317", resolved=True)
    report = write_run_report(build_run_report(run), run, tmp_path)
    result = subprocess.run([sys.executable, "-m", "agent", "eval", "report", str(report)], capture_output=True,
                            text=True, timeout=120, env={**os.environ, "COLUMNS": "80"}, check=False)
    assert result.returncode == 0, result.stderr
    assert f"{model}.run-1" in result.stdout  # whole, on one line


def test_cli_bad_report_is_one_line_exit_2(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_cli(monkeypatch, capsys, "eval", "report", str(tmp_path / "none.json"))
    assert code == 2 and out == "" and len(err.strip().splitlines()) == 1 and "no such run report" in err


def test_a_run_report_is_replaced_whole(tmp_path: Path) -> None:
    run_dir = tmp_path / "logs" / "run-1" / "model"
    path = write_run_report({"resolved_instances": 1}, run_dir, tmp_path)
    assert json.loads(path.read_text()) == {"resolved_instances": 1}
    path = write_run_report({"resolved_instances": 2}, run_dir, tmp_path)
    assert json.loads(path.read_text()) == {"resolved_instances": 2}
    assert [p.name for p in tmp_path.iterdir()] == ["model.run-1.json"]  # no partial file left
