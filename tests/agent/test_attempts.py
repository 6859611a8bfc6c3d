"""`agent fix --attempts N` end to end: the CLI in a subprocess, a scripted model over HTTP, real containers.

Each attempt's requests carry its seed (`extra_body.seed` in the repository's config, plus
the attempt's index), which is how the scripted server tells the attempts apart.
"""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path

import docker
import pytest

from agent.trajectory import read_trajectory
from sandbox import cleanup
from tests.fakes.openai_server import Delay, HttpError, Reply, tool_call
from tests.scripted_run import ROOT, agent_command, agent_env, committed_repo, git, run_agent

pytestmark = [pytest.mark.docker, pytest.mark.usefixtures("files_images_removed")]
SEED = 100
ISSUE = "add(2, 3) returns -1 instead of 5"
REPRO = """import unittest

import calc


class Repro(unittest.TestCase):
    def test_add(self):
        self.assertEqual(calc.add(2, 3), 5)
"""


def make_repo(root: Path) -> Path:
    """calc.add subtracts; test_calc.py's existing test of calc.sub passes at the base."""
    return committed_repo(root, {
        "calc.py": "def add(a, b):\n    return a - b\n\n\ndef sub(a, b):\n    return a - b\n",
        "test_calc.py": "import unittest\n\nimport calc\n\n\nclass Sub(unittest.TestCase):\n"
                        "    def test_sub(self):\n        self.assertEqual(calc.sub(5, 3), 2)\n",
        "setup.py": "from setuptools import setup\n\nsetup(name='calc')\n",
        ".agent.toml": f"[model]\nextra_body = {{ seed = {SEED} }}\n",
    })


def edit(old: str, new: str, path: str = "calc.py") -> Reply:
    return Reply(tool_calls=[tool_call("str_replace_editor", {"command": "str_replace", "path": path,
                                                               "old_str": old, "new_str": new})])


WRITE_REPRO = Reply(tool_calls=[tool_call("str_replace_editor", {"command": "create", "path": "test_repro.py",
                                                                  "file_text": REPRO})])
RUN_REPRO = Reply(tool_calls=[tool_call("run_tests", {"paths": ["test_repro.py"]})])
SUBMIT = Reply(tool_calls=[tool_call("submit", {})])


def by_seed(scripts: dict[int, list]) -> object:
    """Answer each request from the script of the attempt whose seed it carries, one step per assistant turn."""

    def answer(body: dict) -> object:
        steps = scripts[body["seed"]]
        return steps[sum(1 for message in body["messages"] if message["role"] == "assistant")]

    return answer


def agent(repo: Path, server, *args: str, timeout: float = 240) -> subprocess.CompletedProcess:
    return run_agent(server.base_url, repo.parent / "home", "fix", "-C", str(repo), *args, ISSUE, timeout=timeout)


def started(repo: Path, server, *args: str) -> subprocess.Popen:
    """`agent fix --json -q` in the background."""
    return subprocess.Popen(agent_command("fix", "-C", str(repo), *args, "--json", "-q", ISSUE),
                            env=agent_env(server.base_url, repo.parent / "home"), cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def terminated(process: subprocess.Popen) -> dict:
    """SIGTERM to the run: it exits 143 with its JSON saying `interrupted`, which is returned."""
    process.send_signal(signal.SIGTERM)
    out, err = process.communicate(timeout=90)
    assert process.returncode == 143, err
    result = json.loads(out)
    assert result["status"] == "interrupted"
    return result


def test_the_candidate_passing_the_reproduction_test_wins_over_two_that_agree(fake_model_server, tmp_path) -> None:
    repo = make_repo(tmp_path / "repo")
    wrong = edit("def add(a, b):\n    return a - b", "def add(a, b):\n    return b - a")
    fake_model_server.script = by_seed({
        SEED: [wrong, SUBMIT],  # two attempts agree on the same wrong fix
        SEED + 1: [edit("return a - b\n\n\ndef sub", "return a + b\n\n\ndef sub"), WRITE_REPRO, RUN_REPRO, SUBMIT],
        SEED + 2: [wrong, SUBMIT],
    })
    done = agent(repo, fake_model_server, "--attempts", "3", "--json")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    record = result["selection"]
    assert record["decided_by"] == "reproduction", record
    assert record["winner_attempts"] == [2] and record["chosen_attempt"] == 2
    by_number = {c["candidate"]: c for c in record["candidates"]}
    assert sorted(c["attempts"] for c in by_number.values()) == [[1, 3], [2]]  # the wrong two grouped
    winner = by_number[record["winner"]]
    assert winner["applies"] and winner["reproduced"] == 1 and winner["broken"] == []
    loser = next(c for c in by_number.values() if c["attempts"] == [1, 3])
    assert loser["reproduced"] == 0 and loser["reproduction"][0]["after"] == "fail"
    assert record["suites"] == [{"attempt": 2, "targets": ["test_repro.py"], "before": "fail", "reproduces": True}]
    assert record["base_tests"]["ran"] and record["base_tests"]["passed"] >= 1
    assert "+    return a + b" in result["patch"] and "test_repro.py" in result["patch"]
    assert git(repo, "show", f"{result['branch']}:calc.py").startswith("def add(a, b):\n    return a + b\n")
    # Every attempt's trajectory is kept; the run's own is the winner's with the record at its end.
    run_dir = Path(result["trajectory"]).parent
    for attempt in record["attempts"]:
        assert Path(attempt["trajectory"]).parent == run_dir
        assert read_trajectory(Path(attempt["trajectory"])).status == "submitted"
    main = read_trajectory(Path(result["trajectory"]))
    selections = [event for event in main.events if event["type"] == "selection"]
    assert main.start["config"]["attempt"] == 2 and len(selections) == 1  # then the delivery event (follow-ups)
    assert selections[0]["decided_by"] == "reproduction" and main.events[-1]["type"] == "delivery"
    seeds = sorted({request["seed"] for request in fake_model_server.requests})
    assert seeds == [SEED, SEED + 1, SEED + 2]
    shown = subprocess.run(agent_command("traj", "show", result["trajectory"]),
                           capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert shown.returncode == 0, shown.stderr
    assert "selection" in shown.stdout and "reproduction" in shown.stdout and "attempt-1.jsonl" in shown.stdout


def test_a_failing_attempt_does_not_stop_the_others(fake_model_server, tmp_path) -> None:
    repo = make_repo(tmp_path / "repo")
    right = edit("return a - b\n\n\ndef sub", "return a + b\n\n\ndef sub")
    fake_model_server.script = by_seed({
        SEED: [HttpError(400, "scripted: this attempt's request is refused")],
        SEED + 1: [right, SUBMIT],
        SEED + 2: [edit("return a - b\n\n\ndef sub", "# the same fix, one line longer\n    return a + b\n\n\ndef sub"),
                   SUBMIT],
    })
    done = agent(repo, fake_model_server, "--attempts", "3", "--json")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    record = result["selection"]
    statuses = {a["attempt"]: a["status"] for a in record["attempts"]}
    assert statuses == {1: "model_error", 2: "submitted", 3: "submitted"}
    assert "refused" in record["attempts"][0]["message"]
    # Neither has reproduction tests and both keep test_sub passing: the smaller patch wins.
    assert record["decided_by"] == "size" and record["winner_attempts"] == [2]
    assert result["status"] == "submitted" and result["exit_code"] == 0
    plain = agent(repo, fake_model_server, "--attempts", "3", "--no-commit")
    assert plain.returncode == 0, plain.stderr
    assert "candidate" in plain.stderr and "chosen by size" in plain.stderr


def test_sigterm_stops_every_attempt_and_removes_their_containers(fake_model_server, tmp_path, docker_client) -> None:
    repo = make_repo(tmp_path / "repo")
    slow = Delay(60, SUBMIT)
    fake_model_server.script = by_seed({SEED: [slow], SEED + 1: [slow], SEED + 2: [slow]})
    process = started(repo, fake_model_server, "--attempts", "3")
    deadline = time.monotonic() + 120
    while len({r["seed"] for r in fake_model_server.requests}) < 3 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert len({r["seed"] for r in fake_model_server.requests}) == 3, "the three attempts never all asked"
    result = terminated(process)
    run_dir = Path(result["trajectory"]).parent
    ends = [read_trajectory(run_dir / f"attempt-{n}.jsonl").end for n in (1, 2, 3)]
    assert [end["status"] for end in ends] == ["interrupted"] * 3
    assert read_trajectory(Path(result["trajectory"])).status == "interrupted"
    assert not [c for c in cleanup.leftovers(docker_client, result["run_id"])]


def test_agent_pr_with_attempts_puts_the_record_in_the_pull_request(tmp_path, fake_model_server) -> None:
    from tests.agent.test_ci import ISSUE_BODY, ISSUE_TITLE, agent as run_agent, developer_env, make_checkout
    from tests.fakes.github_server import FakeGitHub

    with FakeGitHub(git_root=tmp_path / "git") as github:
        github.add_issue(1, ISSUE_TITLE, ISSUE_BODY)
        repo = make_checkout(tmp_path, github)
        (repo / ".agent.toml").write_text(f"[model]\nextra_body = {{ seed = {SEED} }}\n")
        git(repo, "add", ".agent.toml")
        git(repo, "commit", "-qm", "seed")
        git(repo, "-c", f"http.extraheader=AUTHORIZATION: {github.basic_auth()}", "push", "-q", "origin", "main")
        fake_model_server.script = by_seed({
            SEED: [edit("return a - b", "return b - a"), SUBMIT],
            SEED + 1: [edit("return a - b", "return a + b"), WRITE_REPRO, RUN_REPRO, SUBMIT],
        })
        done = run_agent(["pr", "--issue", f"{github.root_url}/octo/calc/issues/1", "-C", str(repo), "-q",
                          "--attempts", "2"], tmp_path, developer_env(github, fake_model_server))
        assert done.returncode == 0, done.stderr
        [pull] = github.pulls
    body = pull["body"]
    assert "### Attempts" in body and "chosen by **reproduction**" in body
    assert "| 2 | 2 | yes | 1 of 1 | 0 |" in body and "| 1 | 1 | yes | 0 of 1 | 0 |" in body
    assert "How the attempts ended: 1: `submitted`, 2: `submitted`." in body
    assert git(repo, "show", f"{pull['head']['sha']}:calc.py").endswith("return a + b\n")


def test_sigterm_during_the_checks_stops_them_and_removes_their_sandboxes(fake_model_server, tmp_path,
                                                                         docker_client) -> None:
    repo = make_repo(tmp_path / "repo")
    with (repo / ".agent.toml").open("a") as config:
        config.write('\n[sandbox]\ntest_cmd = "sleep 300"\n')  # the base's run of the repository's tests hangs
    git(repo, "commit", "-qam", "tests that hang")
    fake_model_server.script = by_seed({SEED: [edit("return a - b\n\n\ndef sub", "return b + a\n\n\ndef sub"), SUBMIT],
                                        SEED + 1: [edit("return a - b\n\n\ndef sub", "return a + b\n\n\ndef sub"),
                                                   SUBMIT]})
    process = started(repo, fake_model_server, "--attempts", "2")

    def ended(path: Path) -> bool:
        try:
            return read_trajectory(path).end is not None
        except ValueError:  # not written yet
            return False

    def checking() -> bool:  # both attempts ended and a container of this process runs the hanging tests
        done = [path for path in (repo / ".agent" / "runs").glob("*/attempt-*.jsonl") if ended(path)]
        mine = docker_client.containers.list(filters={"label": f"{cleanup.LABEL}.pid={process.pid}"},
                                              ignore_removed=True)  # one may go between listing and inspecting
        return len(done) == 2 and any("sleep 300" in " ".join(row) for box in mine for row in processes(box))

    def processes(box: docker.models.containers.Container) -> list[list[str]]:
        try:  # a container listed a moment ago may have stopped since: Docker answers 409 (or 404) to `top`
            return box.top().get("Processes") or []
        except docker.errors.APIError:
            return []

    deadline = time.monotonic() + 180
    while not checking() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.5)
    assert checking(), "the checks never ran the repository's tests"
    result = terminated(process)
    run_dir = Path(result["trajectory"]).parent
    # The attempts had ended; the run itself ends interrupted, nothing delivered, no container left.
    assert [read_trajectory(run_dir / f"attempt-{n}.jsonl").status for n in (1, 2)] == ["submitted"] * 2
    assert read_trajectory(Path(result["trajectory"])).status == "interrupted"
    assert not result.get("branch")
    assert not [c for c in cleanup.leftovers(docker_client, result["run_id"])]


def test_a_run_with_attempts_is_continued_from_the_chosen_attempts_conversation(fake_model_server, tmp_path) -> None:
    repo = make_repo(tmp_path / "repo")
    longer = edit("return a - b\n\n\ndef sub", "# swapped\n    return b + a\n\n\ndef sub")
    fake_model_server.script = by_seed({
        SEED: [longer, SUBMIT, edit("return a + b", "return int(a) + int(b)"), SUBMIT],  # steps 3-4: the follow-up
        SEED + 1: [edit("return a - b\n\n\ndef sub", "return a + b\n\n\ndef sub"), SUBMIT]})
    done = agent(repo, fake_model_server, "--attempts", "2", "--json")
    assert done.returncode == 0, done.stderr
    first = json.loads(done.stdout)
    assert first["selection"]["winner_attempts"] == [2] and first["selection"]["decided_by"] == "size"
    chosen_last = [r for r in fake_model_server.requests if r["seed"] == SEED + 1][-1]
    asked = len(fake_model_server.requests)

    follow = agent(repo, fake_model_server, "--continue", "--json")  # the latest run; ISSUE is the feedback
    assert follow.returncode == 0, follow.stderr
    second = json.loads(follow.stdout)
    # The chosen attempt's conversation is the exact prefix of the follow-up's first request...
    resumed = fake_model_server.requests[asked]["messages"]
    assert json.dumps(resumed[:len(chosen_last["messages"])]) == json.dumps(chosen_last["messages"])
    assert ISSUE in resumed[-1]["content"] and resumed[-1]["role"] == "user"
    # ...and its patch lands as a further commit on the branch the attempts' run delivered.
    assert second["branch"] == first["branch"]
    assert git(repo, "rev-parse", f"{second['commit']}^").strip() == first["commit"]
    assert git(repo, "show", f"{second['branch']}:calc.py").startswith("def add(a, b):\n    return int(a) + int(b)\n")
