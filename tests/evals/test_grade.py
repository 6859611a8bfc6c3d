"""Grading predictions in task images, on the sample project: verdicts, layout, failures, resume."""

from __future__ import annotations

import json
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple

import pytest
from swebench.harness.constants import (
    APPLY_PATCH_FAIL,
    END_TEST_OUTPUT,
    START_TEST_OUTPUT,
)

from agent.cli import main
from agent.errors import UsageError
from evals.grade import (
    GradeRun,
    GradeSettings,
    Outcome,
    Prediction,
    eval_script,
    gold_predictions,
    grade_predictions,
    read_predictions,
    validate,
)
from evals.images import ImageBuilder, InstanceImage
from evals.recipes import recipe_for
from evals.sample_tasks import SampleProject, make_sample_project, sample_image_builder
from evals.validation import (
    Verdict,
    keep_validated,
    read_validated,
    write_summary,
    write_validated,
)

OFFICIAL_FILES = {"patch.diff", "eval.sh", "test_output.txt", "report.json", "run_instance.log"}
VALIDATED = ("1", "2", "defect", "broken")


class Validation(NamedTuple):
    gold: GradeRun
    empty: GradeRun
    verdicts: list[Verdict]
    settings: GradeSettings


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory) -> SampleProject:
    return make_sample_project(tmp_path_factory.mktemp("sample"), bugs=2, salt=uuid.uuid4().hex)


@pytest.fixture(scope="module")
def builder(docker_client: Any, sandbox_image: str, sample: SampleProject) -> Iterator[ImageBuilder]:
    yield sample_image_builder(docker_client, sample)
    base = sample.instances[0].base_commit  # unique to this module's sample: only its images go
    made = [image for image in docker_client.images.list(filters={"label": "moe-agent.python"})
            if base in (image.labels.get("moe-agent.base-commit"), image.labels.get("moe-agent.setup-commit"))]
    for image in sorted(made, key=lambda i: "moe-agent.base-commit" not in i.labels):  # instances first
        docker_client.images.remove(image.id, force=True)


@pytest.fixture(scope="module")
def validation(builder: ImageBuilder, sample: SampleProject, tmp_path_factory: pytest.TempPathFactory) -> Validation:
    out = tmp_path_factory.mktemp("grading")
    settings = GradeSettings(run_id="ci", log_root=out / "logs", report_dir=out / "reports", timeout=300, workers=2)
    gold, empty, verdicts = validate([sample.instance(name) for name in VALIDATED], builder, settings)
    return Validation(gold, empty, verdicts, settings)


def result(run: GradeRun, sample: SampleProject, name: str) -> Any:
    return next(r for r in run.results if r.instance_id == sample.instance(name).instance_id)


@pytest.mark.docker
def test_gold_resolves_and_empty_does_not(validation: Validation, sample: SampleProject) -> None:
    for name in ("1", "2"):
        gold, empty = result(validation.gold, sample, name), result(validation.empty, sample, name)
        assert (gold.outcome, empty.outcome) == (Outcome.RESOLVED, Outcome.UNRESOLVED)
        fail_to_pass = sample.instance(name).FAIL_TO_PASS
        assert gold.report["tests_status"]["FAIL_TO_PASS"] == {"success": fail_to_pass, "failure": []}
        assert empty.report["tests_status"]["FAIL_TO_PASS"] == {"success": [], "failure": fail_to_pass}
        assert empty.report["tests_status"]["PASS_TO_PASS"]["failure"] == []


@pytest.mark.docker
def test_official_layout_and_run_reports(validation: Validation, sample: SampleProject) -> None:
    instance = sample.instance("1")
    folder = validation.settings.log_root / "ci" / "gold" / instance.instance_id
    assert {p.name for p in folder.iterdir()} == OFFICIAL_FILES
    assert (folder / "patch.diff").read_text() == instance.patch
    output = (folder / "test_output.txt").read_text()
    assert START_TEST_OUTPUT in output and END_TEST_OUTPUT in output and ">>>>> Test Exit Code: 0" in output
    report = json.loads((folder / "report.json").read_text())[instance.instance_id]
    assert report["patch_successfully_applied"] and report["resolved"]

    ids = {name: sample.instance(name).instance_id for name in VALIDATED}
    gold = json.loads((validation.settings.report_dir / "gold.ci.json").read_text())
    assert gold == validation.gold.report
    assert gold["resolved_ids"] == sorted([ids["1"], ids["2"], ids["defect"]])
    assert gold["error_ids"] == [ids["broken"]] and gold["unresolved_ids"] == []
    empty = json.loads((validation.settings.report_dir / "empty.ci.json").read_text())
    assert empty["unresolved_ids"] == sorted([ids["1"], ids["2"]])
    assert empty["resolved_ids"] == [ids["defect"]]  # the label defect, in plain sight
    assert empty["empty_patch_ids"] == []  # negative mode grades every instance


@pytest.mark.docker
def test_failed_image_build_is_an_error_apart(validation: Validation, sample: SampleProject) -> None:
    broken = result(validation.gold, sample, "broken")
    assert broken.outcome == Outcome.BUILD_FAILED and broken.outcome.environment_failure
    assert "step failed: pre-install" in broken.detail
    folder = validation.settings.log_root / "ci" / "gold" / broken.instance_id
    assert not (folder / "report.json").exists()
    assert "Image build failed" in (folder / "run_instance.log").read_text()
    assert validation.gold.count(Outcome.UNRESOLVED) == 0


@pytest.mark.docker
def test_validation_flags_the_label_defect(validation: Validation, sample: SampleProject, tmp_path: Path) -> None:
    verdicts = {v.instance_id: v for v in validation.verdicts}
    ids = {name: sample.instance(name).instance_id for name in VALIDATED}
    assert verdicts[ids["1"]].valid and verdicts[ids["2"]].valid
    defect = verdicts[ids["defect"]]
    assert defect.label_defect and not defect.valid and defect.reason.startswith("label defect")
    assert verdicts[ids["broken"]].reason == "gold patch: build_failed"

    summary = json.loads(write_summary(tmp_path / "validation.json", validation.verdicts).read_text())
    assert (summary["valid"], summary["total"], summary["label_defects"]) == (2, 4, [ids["defect"]])
    listed = write_validated(tmp_path / "validated.txt", validation.verdicts)
    assert listed.read_text() == "".join(f"{i}\n" for i in sorted([ids["1"], ids["2"]]))  # one id a line, nothing else
    assert read_validated(listed) == {ids["1"], ids["2"]}
    assert [i.instance_id for i in keep_validated(sample.instances, listed)] == [ids["1"], ids["2"]]


@pytest.mark.docker
def test_patch_that_does_not_apply(builder: ImageBuilder, sample: SampleProject, tmp_path: Path) -> None:
    instance = sample.instance("1")
    bad = instance.patch.replace("-    return x * 1 + 1", "-    return x * 1 + 7")
    prediction = Prediction(instance_id=instance.instance_id, model_name_or_path="acme/model", model_patch=bad)
    settings = GradeSettings(run_id="bad", log_root=tmp_path / "logs", report_dir=tmp_path)
    run = grade_predictions([instance], [prediction], builder, settings)
    assert run.results[0].outcome == Outcome.PATCH_FAILED
    folder = tmp_path / "logs" / "bad" / "acme__model" / instance.instance_id
    report = json.loads((folder / "report.json").read_text())[instance.instance_id]
    assert (report["patch_successfully_applied"], report["resolved"]) == (False, False)
    log = (folder / "run_instance.log").read_text()
    assert APPLY_PATCH_FAIL in log and "patch --batch --fuzz=5 -p1 -i" in log
    assert run.report_path == tmp_path / "acme__model.bad.json"
    assert run.report["unresolved_ids"] == [instance.instance_id]


@pytest.mark.docker
def test_resume_skips_graded_instances_and_force_regrades(validation: Validation, builder: ImageBuilder,
                                                         sample: SampleProject) -> None:
    instances = [sample.instance(name) for name in VALIDATED]
    report = validation.settings.log_root / "ci" / "gold" / sample.instance("1").instance_id / "report.json"
    report.write_text(report.read_text().replace('"resolved": true', '"resolved": false'))  # a marker

    again = grade_predictions(instances, gold_predictions(instances), builder, validation.settings)
    first = result(again, sample, "1")
    assert first.resumed and first.outcome == Outcome.UNRESOLVED  # read back, not run again
    assert not result(again, sample, "broken").resumed  # no report: tried again
    assert again.report["unresolved_ids"] == [first.instance_id]

    forced = GradeSettings(**{**validation.settings.__dict__, "force": True})
    regraded = grade_predictions(instances[:1], gold_predictions(instances[:1]), builder, forced)
    assert not regraded.results[0].resumed and regraded.results[0].outcome == Outcome.RESOLVED
    assert json.loads(report.read_text())[first.instance_id]["resolved"] is True


@pytest.mark.docker
def test_timeout_is_an_environment_failure(builder: ImageBuilder, sample: SampleProject, tmp_path: Path) -> None:
    instance = sample.instance("slow")
    settings = GradeSettings(run_id="slow", log_root=tmp_path / "logs", report_dir=tmp_path, timeout=3)
    run = grade_predictions([instance], gold_predictions([instance]), builder, settings)
    assert run.results[0].outcome == Outcome.TIMEOUT and run.results[0].outcome.environment_failure
    folder = tmp_path / "logs" / "slow" / "gold" / instance.instance_id
    assert (folder / "test_output.txt").read_text().endswith("Timeout error: 3 seconds exceeded.")
    assert not (folder / "report.json").exists()
    assert run.report["error_ids"] == [instance.instance_id]
    assert run.report["failure_reasons"] == {instance.instance_id: "tests_timed_out"}


@pytest.mark.docker
def test_grade_command_grades_the_selection_of_a_bigger_predictions_file(
        builder: ImageBuilder, sample: SampleProject, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """As run_evaluation: predictions for instances the selection leaves out are not graded; --json is one document."""
    rows = [sample.instance(name) for name in ("1", "2", "defect")]
    predictions = tmp_path / "predictions.jsonl"
    predictions.write_text("".join(p.model_copy(update={"model_name_or_path": "acme/m"}).model_dump_json() + "\n"
                                   for p in gold_predictions(rows)))
    monkeypatch.setattr("agent.cli.eval._image_builder", lambda *args, **kwargs: builder)
    chosen = sample.instance("2").instance_id
    code, out = run_grade(monkeypatch, capsys, sample, "--predictions", str(predictions), "--instance-ids", chosen,
                          "--json", "--log-dir", str(tmp_path / "logs"), "--report-dir", str(tmp_path))
    assert code == 0
    run = json.loads(out)["runs"]["acme/m"]  # nothing but the JSON document on stdout
    assert run["run_report"]["submitted_ids"] == run["run_report"]["resolved_ids"] == [chosen]
    assert json.loads(Path(run["run_report_file"]).read_text()) == run["run_report"]
    assert sorted(p.name for p in Path(run["log_dir"]).iterdir()) == [chosen]

    stray = tmp_path / "stray.jsonl"
    stray.write_text('{"instance_id": "nope__nope-1", "model_name_or_path": "m", "model_patch": "x"}\n')
    code, _ = run_grade(monkeypatch, capsys, sample, "--predictions", str(stray), "--instance-ids", chosen)
    assert code == 2 and "instances not in the dataset: nope__nope-1" in capsys.readouterr().err


def run_grade(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], sample: SampleProject,
              *args: str) -> tuple[int, str]:
    monkeypatch.setattr(sys, "argv", ["agent", "eval", "grade", "--dataset", str(sample.dataset), "--run-id", "sel",
                                      "--workers", "1", *args])
    with pytest.raises(SystemExit) as exited:
        main()
    out, err = capsys.readouterr()
    sys.stderr.write(err)  # kept for the caller's checks of the error line
    return int(exited.value.code or 0), out


# -- without Docker ------------------------------------------------------------


def test_eval_script_follows_upstream_with_offline_reinstall(sample_rows: SampleProject) -> None:
    instance = sample_rows.instance("1")
    recipe = recipe_for("psf/requests", "2.4")
    image = InstanceImage(instance.instance_id, "img", recipe)
    script = eval_script(instance, image)
    lines = script.splitlines()
    assert lines[:3] == ["#!/bin/bash", "set -uxo pipefail", "source /opt/venv/bin/activate"]
    assert "export REQUESTS_CA_BUNDLE=$here/ca-bundle.pem" in lines  # the httpbin stand-in
    assert lines.index("serve 443 --certfile \"$here/cert.pem\" --keyfile \"$here/key.pem\"") < lines.index(
        f": '{START_TEST_OUTPUT}'")
    assert "python -m pip install . --no-build-isolation --no-index --no-deps" in lines
    reset = f"git checkout {instance.base_commit} tests/test_calc.py"
    assert lines.count(reset) == 2
    start, end = lines.index(f": '{START_TEST_OUTPUT}'"), lines.index(f": '{END_TEST_OUTPUT}'")
    assert lines[start + 1] == "pytest -rA tests/test_calc.py"
    assert lines[start + 2] == "SWEBENCH_TEST_EXIT_CODE=$?" and end == start + 3
    assert lines[end + 1] == 'echo ">>>>> Test Exit Code: $SWEBENCH_TEST_EXIT_CODE"'
    assert instance.test_patch in script


@pytest.fixture
def sample_rows(tmp_path: Path) -> SampleProject:
    return make_sample_project(tmp_path, bugs=1)


def test_predictions_file_errors_name_the_line(tmp_path: Path) -> None:
    path = tmp_path / "predictions.jsonl"
    path.write_text('{"instance_id": "a", "model_name_or_path": "m", "model_patch": "x"}\n{"instance_id": "b"}\n')
    with pytest.raises(UsageError, match=r"predictions.jsonl:2: model_name_or_path: Field required"):
        read_predictions(path)
    path.write_text("{not json\n")
    with pytest.raises(UsageError, match="not valid JSON"):
        read_predictions(path)
    with pytest.raises(UsageError, match="no such file"):
        read_predictions(tmp_path / "missing.jsonl")


def test_a_bad_third_line_is_named_line_3_and_a_torn_last_line_is_skipped(tmp_path: Path) -> None:
    path = tmp_path / "predictions.jsonl"
    row = '{"instance_id": "%s", "model_name_or_path": "m", "model_patch": "x"}\n'
    path.write_text(row % "a" + row % "b" + '{"instance_id": "c", "model_' + row % "d")
    with pytest.raises(UsageError, match=r"predictions.jsonl:3: not valid JSON"):
        read_predictions(path)
    path.write_text(row % "a" + row % "b" + '{"instance_id": "c", "model_')
    notes: list[str] = []
    assert [p.instance_id for p in read_predictions(path, notes.append)] == ["a", "b"]
    assert notes == [f"{path}:3: skipped a torn last line left by an interrupted write"]


def test_predictions_must_be_one_model_on_selected_instances(sample_rows: SampleProject, tmp_path: Path) -> None:
    instance = sample_rows.instance("1")
    settings = GradeSettings(run_id="r", log_root=tmp_path / "logs", report_dir=tmp_path)
    mixed = [Prediction(instance_id=instance.instance_id, model_name_or_path=m, model_patch="x") for m in "ab"]
    with pytest.raises(UsageError, match="one model; found 2"):
        grade_predictions([instance], mixed, NoBuilder(), settings)
    stray = [Prediction(instance_id="other__repo-1", model_name_or_path="a", model_patch="x")]
    with pytest.raises(UsageError, match="not selected from the dataset: other__repo-1"):
        grade_predictions([instance], stray, NoBuilder(), settings)


def test_empty_prediction_is_not_run(sample_rows: SampleProject, tmp_path: Path) -> None:
    instance = sample_rows.instance("1")
    settings = GradeSettings(run_id="r", log_root=tmp_path / "logs", report_dir=tmp_path)
    prediction = Prediction(instance_id=instance.instance_id, model_name_or_path="m", model_patch="")
    run = grade_predictions([instance], [prediction], NoBuilder(), settings)
    assert run.results[0].outcome == Outcome.EMPTY_PATCH
    assert run.report["empty_patch_ids"] == [instance.instance_id]


@pytest.mark.parametrize(("args", "message"), [
    (["--gold", "--predictions", "p.jsonl"], "give --predictions FILE, or --gold and/or --empty"),
    ([], "give --predictions FILE, or --gold and/or --empty"),
    (["--gold", "--save-validated", "v.txt"], "--save-validated needs --gold --empty"),
    (["--gold", "--only-validated", "missing.txt"], "--only-validated missing.txt: no such file"),
])
def test_grade_command_usage_errors(args: list[str], message: str, sample_rows: SampleProject,
                                    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
                                    tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("COLUMNS", "200")
    monkeypatch.setattr(sys, "argv", ["agent", "eval", "grade", "--dataset", str(sample_rows.dataset),
                                      "--run-id", "r", *args])
    with pytest.raises(SystemExit) as exited:
        main()
    assert exited.value.code == 2
    assert message in capsys.readouterr().err.replace("\n", "")


class NoBuilder:
    """Stands in where no image may be asked for."""

    def ensure(self, instance: object) -> None:
        raise AssertionError("no image should be needed")


def test_validation_summary_names_unfaithful_versions_and_caveats(tmp_path: Path) -> None:
    reason = "asks for Python 3.6 with numpy 1.16.0"
    verdicts = [Verdict("astropy__astropy-7166", "resolved", "unresolved", unfaithful=reason,
                        caveats=(f"astropy/astropy 1.3 is not faithful: {reason}",)),
                Verdict("astropy__astropy-14369", "resolved", "unresolved")]
    summary = json.loads(write_summary(tmp_path / "validation.json", verdicts).read_text())
    assert summary["unfaithful"] == ["astropy__astropy-7166"] and summary["valid"] == 2
    assert summary["instances"]["astropy__astropy-7166"]["caveats"] == [f"astropy/astropy 1.3 is not faithful: {reason}"]
    assert write_validated(tmp_path / "ids.txt", verdicts).read_text() == "astropy__astropy-14369\nastropy__astropy-7166\n"
