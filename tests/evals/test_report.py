"""Run reports: built from the official log layout, checked against swebench's make_run_report."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest
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


def add_instance(run_dir: Path, instance_id: str, patch: str = "diff\n", resolved: bool | None = None,
                 report_text: str | None = None, test_output: str = "") -> None:
    """One instance folder as run_evaluation leaves it; no report when `resolved` and `report_text` are None."""
    folder = run_dir / instance_id
    folder.mkdir(parents=True)
    (folder / "patch.diff").write_text(patch, encoding="utf-8")
    (folder / "test_output.txt").write_text(test_output, encoding="utf-8")
    if resolved is not None:
        report_text = json.dumps({instance_id: {"patch_is_None": False, "patch_exists": True,
                                                "patch_successfully_applied": True, "resolved": resolved}})
    if report_text is not None:
        (folder / "report.json").write_text(report_text, encoding="utf-8")


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    run = tmp_path / "logs" / "run_evaluation" / "run-1" / "org__model"
    add_instance(run, "r__r-1", resolved=True)
    add_instance(run, "r__r-2", resolved=False, test_output="collected 5 items\nFAILED t.py::x\n")
    add_instance(run, "r__r-3", resolved=False, test_output="Cannot connect to the Docker daemon at unix://\n")
    add_instance(run, "r__r-4", patch="")
    add_instance(run, "r__r-5")  # evaluation died before writing a report
    add_instance(run, "r__r-6", report_text="{broken")
    add_instance(run, "r__r-7", resolved=False, test_output="E   ModuleNotFoundError: No module named 'x'\n")
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
    report = build_run_report(run_dir, dataset_ids=[f"r__r-{n}" for n in range(1, 9)])
    assert report["resolved_ids"] == ["r__r-1"]
    assert report["unresolved_ids"] == ["r__r-2", "r__r-3", "r__r-7"]
    assert report["error_ids"] == ["r__r-5", "r__r-6"]
    assert report["empty_patch_ids"] == ["r__r-4"] and report["incomplete_ids"] == ["r__r-8"]
    assert report["completed_ids"] == ["r__r-1", "r__r-2", "r__r-3", "r__r-6", "r__r-7"]
    assert report["infra_failure_ids"] == ["r__r-3"] and report["ambiguous_failure_ids"] == ["r__r-7"]
    assert report["failure_reasons"] == {"r__r-3": "container_unavailable", "r__r-7": "missing_module"}
    assert (report["total_instances"], report["submitted_instances"]) == (8, 7)


def test_report_equals_swebench_make_run_report(run_dir: Path, monkeypatch: pytest.MonkeyPatch,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    dataset_ids = [f"r__r-{n}" for n in range(1, 9)]
    assert build_run_report(run_dir, dataset_ids) == official_run_report(run_dir, dataset_ids, monkeypatch, capsys)


@pytest.mark.swebench_data
def test_shared_official_run_gives_the_official_verdicts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    index = official_index()
    run = tmp_path / "logs" / "run_evaluation" / index[0]["run_id"] / "composio"
    shutil.copytree(LOGS / index[0]["run_id"], run)
    report = build_run_report(run)
    assert report["resolved_ids"] == sorted(e["instance_id"] for e in index if e["resolved"])
    assert set(report["submitted_ids"]) == {e["instance_id"] for e in index}
    assert report == official_run_report(run, report["submitted_ids"], monkeypatch, capsys)


def test_outcomes_take_environment_failures_out_of_unresolved(run_dir: Path) -> None:
    outcomes = outcome_ids(build_run_report(run_dir))
    assert outcomes["unresolved"] == {"r__r-2"}
    assert outcomes["infra_failure"] == {"r__r-3"} and outcomes["ambiguous_failure"] == {"r__r-7"}
    assert outcomes["error"] == {"r__r-5", "r__r-6"}


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
    assert "resolved" in out and "1 (14.3%)" in out and "environment failure" in out

    code, out, _ = run_cli(monkeypatch, capsys, "eval", "report", str(first), str(second), "--json")
    assert code == 0
    assert json.loads(out)["comparison"] == {"only_a": ["r__r-1"], "only_b": ["r__r-2"], "both": []}

    code, out, _ = run_cli(monkeypatch, capsys, "eval", "report", str(first), str(second))
    assert code == 0 and "org__model.run-1 only" in out and "r__r-2" in out


def test_cli_bad_report_is_one_line_exit_2(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_cli(monkeypatch, capsys, "eval", "report", str(tmp_path / "none.json"))
    assert code == 2 and out == "" and len(err.strip().splitlines()) == 1 and "no such run report" in err
