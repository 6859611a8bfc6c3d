"""`eval run` on small tasks made here: predictions, trajectories, failures, resume, then grading."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from agent.config import load_settings
from agent.model import OpenAIModel
from evals.grade import GradeSettings, grade_predictions, read_predictions
from evals.run import PREDICTIONS, RESULTS, BatchOptions, finished_ids, run_batch
from evals.sample_tasks import make_sample_project, sample_image_builder
from tests.fakes.openai_server import Reply, tool_call

pytestmark = pytest.mark.docker
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    return make_sample_project(tmp_path_factory.mktemp("sample"), bugs=2, salt="run")


def solver(project):
    """A scripted model that applies each task's gold patch with bash, then submits."""
    gold = {i.problem_statement: i.patch for i in project.instances}

    def script(body):
        task = body["messages"][1]["content"]
        statement = next(s for s in gold if s in task)
        if not any(m["role"] == "tool" for m in body["messages"]):
            command = f"git apply <<'PATCH'\n{gold[statement]}\nPATCH"
            return Reply(tool_calls=[tool_call("bash", {"command": command})])
        return Reply(tool_calls=[tool_call("submit", {})])

    return script


def settings_for(server):
    return load_settings(None, overrides={"model.base_url": server.base_url, "model.name": "fake-model",
                                          "model.retries": 0}, env={})


def test_batch_writes_predictions_resumes_and_grades(project, docker_client, fake_model_server, tmp_path) -> None:
    fake_model_server.script = solver(project)
    chosen = [project.instance("1"), project.instance("2"), project.instance("broken")]
    builder = sample_image_builder(docker_client, project)
    settings = settings_for(fake_model_server)
    options = BatchOptions(output=tmp_path / "out", model_name="fake-model", workers=2, instance_timeout=120)
    summary = run_batch(chosen, builder, OpenAIModel(settings.model), settings, options)

    by_id = {o.instance_id: o for o in summary.outcomes}
    assert by_id[chosen[0].instance_id].status == "submitted"
    assert by_id[chosen[2].instance_id].status == "error" and "failed" in by_id[chosen[2].instance_id].error
    predictions = [json.loads(line) for line in (options.output / PREDICTIONS).read_text().splitlines()]
    assert sorted(p["instance_id"] for p in predictions) == sorted(i.instance_id for i in chosen[:2])
    assert all(set(p) == {"instance_id", "model_name_or_path", "model_patch"} for p in predictions)
    assert all(p["model_patch"].startswith("diff --git") for p in predictions)
    results = [json.loads(line) for line in (options.output / RESULTS).read_text().splitlines()]
    assert any(r["status"] == "error" and r["error"] for r in results)
    for instance in chosen[:2]:
        assert (options.output / "trajectories" / f"{instance.instance_id}.jsonl").is_file()

    requests_before = len(fake_model_server.requests)
    again = run_batch(chosen, builder, OpenAIModel(settings.model), settings, options)
    assert again.skipped == 2 and [o.instance_id for o in again.outcomes] == [chosen[2].instance_id]
    assert len(fake_model_server.requests) == requests_before  # finished instances never reach the model again
    assert len(finished_ids(options.output)) == 2

    graded = grade_predictions(chosen[:2], read_predictions(options.output / PREDICTIONS), builder,
                               GradeSettings(run_id="run-test", log_root=tmp_path / "logs", report_dir=tmp_path))
    assert graded.report["resolved_instances"] == 2


def test_torn_prediction_line_is_not_finished(tmp_path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / PREDICTIONS).write_text('{"instance_id": "a", "model_name_or_path": "m", "model_patch": ""}\n{"instance_')
    assert finished_ids(out) == {"a"}


def test_rerun_after_a_torn_prediction_repairs_the_file_before_appending(project, docker_client, fake_model_server,
                                                                         tmp_path) -> None:
    """A crash cut predictions.jsonl's last line in half: the rerun drops the fragment and grades cleanly."""
    fake_model_server.script = solver(project)
    chosen = [project.instance("1"), project.instance("2")]
    builder = sample_image_builder(docker_client, project)
    settings = settings_for(fake_model_server)
    options = BatchOptions(output=tmp_path / "out", model_name="fake-model", instance_timeout=120)
    run_batch(chosen, builder, OpenAIModel(settings.model), settings, options)
    path = options.output / PREDICTIONS
    lines = path.read_text().splitlines(keepends=True)
    torn = json.loads(lines[-1])["instance_id"]
    path.write_text("".join(lines[:-1]) + lines[-1][: len(lines[-1]) // 2])
    notes: list[str] = []
    again = run_batch(chosen, builder, OpenAIModel(settings.model), settings, options, note=notes.append)
    assert [o.instance_id for o in again.outcomes] == [torn]
    assert len(notes) == 1 and notes[0].startswith(f"{path}: dropped a torn last line")
    assert sorted(p.instance_id for p in read_predictions(path)) == sorted(i.instance_id for i in chosen)


def cli_env(fake_model_server, home: Path) -> dict[str, str]:
    return {**os.environ, "OPENAI_BASE_URL": fake_model_server.base_url, "AGENT_MODEL": "fake-model", "HOME": str(home)}


def eval_run_argv(project, out: Path, selection: str, workers: int) -> list[str]:
    """`agent eval run` on the sample project's instances matching `selection`, images built here."""
    return [sys.executable, "-m", "agent", "eval", "run", "--dataset", str(project.dataset), "--filter", selection,
            "--output", str(out), "--repos", str(project.mirrors), "--recipes", str(project.recipes),
            "--images", "build", "--workers", str(workers)]


def test_cli_run_selects_and_reports(project, docker_client, fake_model_server, tmp_path) -> None:
    fake_model_server.script = solver(project)
    env = cli_env(fake_model_server, tmp_path)
    out = tmp_path / "cli-out"
    done = subprocess.run(eval_run_argv(project, out, r"-1$", workers=1),
                          env=env, capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    lines = (out / PREDICTIONS).read_text().splitlines()
    assert [json.loads(line)["instance_id"] for line in lines] == [project.instance("1").instance_id]
    assert "submitted" in done.stderr
    bad = subprocess.run([sys.executable, "-m", "agent", "eval", "run", "--dataset", str(tmp_path / "nope.jsonl")],
                         env=env, capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert bad.returncode == 2 and "Traceback" not in bad.stderr


def test_ctrl_c_keeps_finished_predictions_and_removes_containers(project, docker_client, fake_model_server,
                                                                  tmp_path) -> None:
    import signal
    import time

    from sandbox import cleanup
    from tests.fakes.openai_server import Delay

    solve = solver(project)

    def slow_after_first(body):
        finished = any("calc: task 1" in m.get("content", "") for m in body["messages"][1:2])
        return solve(body) if finished else Delay(30, solve(body))

    fake_model_server.script = slow_after_first
    out = tmp_path / "ctrl-c"
    proc = subprocess.Popen(eval_run_argv(project, out, r"-[12]$", workers=2), env=cli_env(fake_model_server, tmp_path),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and not ((out / PREDICTIONS).exists() and (out / PREDICTIONS).read_text()):
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    lines = (out / PREDICTIONS).read_text().splitlines()
    assert [json.loads(line)["instance_id"] for line in lines] == [project.instance("1").instance_id]
    assert [c for c in cleanup.leftovers(docker_client) if c.pid == proc.pid] == []


def last_events(path: Path) -> tuple[dict, dict]:
    """A trajectory's first and last events."""
    lines = path.read_text().splitlines()
    return json.loads(lines[0]), json.loads(lines[-1])


# (what the instances wait on when the signal comes, the signal, sent to the group or the PID, workers, attempts)
SIGNAL_CASES = [("model", "SIGINT", "group", 2, 1), ("model", "SIGTERM", "pid", 1, 1), ("model", "SIGHUP", "pid", 1, 1),
                ("sandbox", "SIGINT", "group", 2, 1), ("sandbox", "SIGTERM", "pid", 1, 1), ("model", "SIGINT", "group", 1, 2)]


@pytest.mark.parametrize("waiting_on, signame, target, workers, attempts", SIGNAL_CASES)
def test_a_signal_ends_every_instance_in_flight_as_interrupted(project, docker_client, fake_model_server, tmp_path,
                                                               waiting_on, signame, target, workers, attempts) -> None:
    """Issue 15: the requests in flight are dropped, commands abandoned; each unfinished instance's trajectory
    ends `interrupted` (never `time_limit` at --timeout, nor `sandbox_error` from its removed container), no
    container stays, the batch's files stay readable with nothing recorded as done, one line, 128 + signal."""
    import signal
    import time

    from sandbox import cleanup
    from tests.fakes.openai_server import Hang

    signum = signal.Signals[signame]
    slow = tool_call("bash", {"command": "sleep 100; echo done"})
    fake_model_server.script = lambda body: Reply(tool_calls=[slow]) if (
        waiting_on == "sandbox" and len(body["messages"]) == 2) else Hang()
    out = tmp_path / "out"
    argv = [*eval_run_argv(project, out, r"-[12]$", workers=workers), "--timeout", "90", "--attempts", str(attempts)]
    proc = subprocess.Popen(argv, env=cli_env(fake_model_server, tmp_path), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=ROOT, start_new_session=True)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and len(fake_model_server.requests) < workers and proc.poll() is None:
        time.sleep(0.1)
    time.sleep(3)  # into the request, or into the command the first reply started
    (os.killpg if target == "group" else os.kill)(proc.pid, signum)
    _, err = proc.communicate(timeout=200)

    assert proc.returncode == 128 + signum, err
    assert "Traceback" not in err and err.strip().splitlines()[-1].startswith("error: interrupted"), err
    trajectories = sorted((out / "trajectories").glob("*.jsonl"))
    instances = [p for p in trajectories if ".attempt-" not in p.name]
    assert len(instances) == workers, trajectories
    assert attempts == 1 or any(".attempt-1." in p.name for p in trajectories), trajectories
    for path in trajectories:
        start, end = last_events(path)
        assert start["type"] == "start" and end["type"] == "end", path
        assert end["status"] == "interrupted", (path, end["message"])
        assert end["message"] == f"interrupted by {signame}"  # as `agent fix` says it
    assert finished_ids(out) == set()  # readable, and nothing counts as done: the same command runs them again
    assert all(json.loads(line) for line in (out / RESULTS).read_text().splitlines())
    assert [c for c in cleanup.leftovers(docker_client) if c.pid == proc.pid] == []


@pytest.mark.parametrize("server", ["unreachable", "not JSON"])
def test_cli_run_where_no_instance_can_finish_is_one_line_and_exit_3(project, docker_client, fake_model_server,
                                                                    tmp_path, server) -> None:
    from tests.fakes.openai_server import NotJson

    env = cli_env(fake_model_server, tmp_path)
    if server == "unreachable":
        with socket.socket() as probe:  # a port nobody listens on
            probe.bind(("127.0.0.1", 0))
            env["OPENAI_BASE_URL"] = f"http://127.0.0.1:{probe.getsockname()[1]}/v1"
    else:
        fake_model_server.script = lambda body: NotJson()
    out = tmp_path / "out"
    done = subprocess.run(eval_run_argv(project, out, r"-1$", workers=1), env=env,
                          capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert done.returncode == 3, done.stderr
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("error: no instance finished (1 tried)") and "Traceback" not in done.stderr
    assert ("unreachable" if server == "unreachable" else "not a JSON object") in last
    result = json.loads((out / RESULTS).read_text())
    assert result["status"] == "model_error" and (out / "trajectories" / f"{result['instance_id']}.jsonl").is_file()
    assert finished_ids(out) == set()  # nothing recorded as done: a rerun tries it again


def test_no_configured_secret_reaches_any_file_a_batch_writes(project, docker_client, fake_model_server,
                                                              tmp_path) -> None:
    from tests.fakes.openai_server import HttpError

    key, password = "sk-eval-K3Y-987654", "Url-P4ssw0rd"
    base_url = fake_model_server.base_url.replace("http://", f"http://evaluser:{password}@")
    settings = load_settings(None, overrides={"model.base_url": base_url, "model.api_key": key,
                                              "model.name": "fake-model", "model.retries": 0}, env={})
    builder = sample_image_builder(docker_client, project)
    options = BatchOptions(output=tmp_path / "out", model_name="fake-model", workers=1, instance_timeout=120)
    fake_model_server.script = solver(project)
    run_batch([project.instance("1")], builder, OpenAIModel(settings.model), settings, options)
    fake_model_server.script = [HttpError(500)]  # a model error names the endpoint in results and trajectory
    failed = run_batch([project.instance("2")], builder, OpenAIModel(settings.model), settings, options)
    assert [o.status for o in failed.outcomes] == ["model_error"]
    error = failed.outcomes[0].error  # names the endpoint, without the userinfo that carries the password
    assert "127.0.0.1" in error and "evaluser" not in error and password not in error
    written = [path for path in options.output.rglob("*") if path.is_file()]
    assert len(written) >= 4  # predictions, results, two trajectories
    for path in written:
        text = path.read_text()
        assert key not in text and password not in text and "evaluser:" not in text, path
