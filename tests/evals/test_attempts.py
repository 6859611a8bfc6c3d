"""`eval run --attempts N`: one prediction per instance, chosen without the instance's own tests."""

from __future__ import annotations

import json

import pytest

from agent.attempts import AttemptPlan
from agent.config import load_settings
from agent.endpoints import EndpointPool
from evals.grade import GradeSettings, grade_predictions, read_predictions
from evals.run import PREDICTIONS, RESULTS, BatchOptions, run_batch
from evals.sample_tasks import make_sample_project, sample_image_builder
from tests.fakes.openai_server import HttpError, Reply, tool_call

pytestmark = pytest.mark.docker
SEED = 500
HIDDEN = "HIDDEN-TEST-SENTINEL"
REPRO = """import unittest

import calc


class Repro(unittest.TestCase):
    def test_scale_1(self):
        self.assertEqual(calc.scale_1(3), 3)
"""


def by_seed(scripts: dict[int, list]) -> object:
    def answer(body: dict) -> object:
        return scripts[body["seed"]][sum(1 for m in body["messages"] if m["role"] == "assistant")]

    return answer


def bash(command: str) -> Reply:
    return Reply(tool_calls=[tool_call("bash", {"command": command})])


def test_attempts_give_one_official_prediction_chosen_without_the_hidden_tests(
        tmp_path, docker_client, fake_model_server) -> None:
    project = make_sample_project(tmp_path / "sample", bugs=2, salt="run")
    real = project.instance("1")
    # What a benchmark keeps hidden is replaced by marked values: none may reach a sandbox, a check or a file.
    blind = real.model_copy(update={"test_patch": f"diff --git a/{HIDDEN}.py b/{HIDDEN}.py\n",
                                    "FAIL_TO_PASS": [f"{HIDDEN}-f2p"], "PASS_TO_PASS": [f"{HIDDEN}-p2p"]})
    submit = Reply(tool_calls=[tool_call("submit", {})])
    fake_model_server.script = by_seed({
        SEED: [bash("sed -i 's/x \\* 2 + 1/x * 2/' calc/__init__.py"), submit],  # fixes the wrong function
        SEED + 1: [bash(f"git apply <<'PATCH'\n{real.patch}\nPATCH"),
                   Reply(tool_calls=[tool_call("str_replace_editor", {"command": "create",
                                                                      "path": "tests/test_repro.py",
                                                                      "file_text": REPRO})]),
                   Reply(tool_calls=[tool_call("run_tests", {"paths": ["tests/test_repro.py"]})]), submit],
        SEED + 2: [HttpError(400, "scripted: refused")],
    })
    settings = load_settings(None, env={}, overrides={
        "model.base_url": fake_model_server.base_url, "model.name": "fake-model", "model.retries": 0,
        "model.extra_body": {"seed": SEED}})
    builder = sample_image_builder(docker_client, project)
    options = BatchOptions(output=tmp_path / "out", model_name="fake-model", instance_timeout=180,
                           attempts=AttemptPlan(3))
    summary = run_batch([blind], builder, EndpointPool(settings.model), settings, options)

    [outcome] = summary.outcomes
    assert outcome.status == "submitted", outcome.error
    assert outcome.selection["decided_by"] == "reproduction" and outcome.selection["winner_attempts"] == [2]
    assert outcome.selection["attempts"] == {1: "submitted", 2: "submitted", 3: "model_error"}
    [prediction] = [json.loads(line) for line in (options.output / PREDICTIONS).read_text().splitlines()]
    assert set(prediction) == {"instance_id", "model_name_or_path", "model_patch"}
    assert prediction["instance_id"] == real.instance_id and "x * 1" in prediction["model_patch"]
    trajectories = sorted(p.name for p in (options.output / "trajectories").iterdir())
    assert trajectories == [f"{real.instance_id}.attempt-{n}.jsonl" for n in (1, 2, 3)] + [f"{real.instance_id}.jsonl"]
    for path in [*(options.output / "trajectories").iterdir(), options.output / RESULTS, options.output / PREDICTIONS]:
        assert HIDDEN not in path.read_text(), path
    assert HIDDEN not in json.dumps(fake_model_server.requests)
    record = [json.loads(line) for line in (options.output / "trajectories" / f"{real.instance_id}.jsonl")
              .read_text().splitlines()][-1]
    assert record["type"] == "selection"
    assert [suite["targets"] for suite in record["suites"]] == [["tests/test_repro.py"]]  # the attempt's, not F2P
    # Graded with the real hidden tests, the chosen prediction resolves the task.
    graded = grade_predictions([real], read_predictions(options.output / PREDICTIONS), builder,
                               GradeSettings(run_id="attempts", log_root=tmp_path / "logs", report_dir=tmp_path))
    assert graded.report["resolved_instances"] == 1
