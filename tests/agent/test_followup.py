"""Follow-ups (`agent fix --continue`): the CLI in a subprocess, the scripted model over HTTP, real containers.

What the server received is the evidence that the conversation resumed as it was sent.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from agent.errors import UsageError
from agent.followup import find_follow_up, split_arguments
from agent.trajectory import TrajectoryWriter
from agent.workspace import UserRepo
from sandbox import cleanup
from tests.agent import test_ci as ci
from tests.agent.test_ci import fake_github  # noqa: F401 (fixture)
from tests.agent.test_fix import SESSION, agent, make_repo, state
from tests.fakes.openai_server import Hang, Reply, tool_call
from tests.scripted_run import ROOT, agent_command, agent_env, git

pytestmark = pytest.mark.usefixtures("files_images_removed")  # its docker tests' files images
SUBMIT = Reply(tool_calls=[tool_call("submit", {})])
NEGATIVE = {"command": "str_replace", "path": "calc.py", "old_str": "    return a + b\n",
            "new_str": "    if a < 0 or b < 0:\n        raise ValueError('negative')\n    return a + b\n"}


def run_json(done: subprocess.CompletedProcess) -> dict:
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def traj_events(path: str) -> list[dict]:
    return [json.loads(line) for line in Path(path).read_text().splitlines()]


def tip(repo: Path, branch: str) -> str:
    return git(repo, "rev-parse", f"refs/heads/{branch}").strip()


@pytest.mark.docker
def test_continue_resumes_the_conversation_and_adds_a_commit_on_the_branch(fake_model_server, tmp_path) -> None:
    repo = make_repo(tmp_path / "repo")
    fake_model_server.script = SESSION
    first = run_json(agent(repo, fake_model_server, "--json", "add() subtracts"))
    readme = {"command": "str_replace", "path": "README.md", "old_str": "calc\n", "new_str": "calc: adds numbers\n"}
    fake_model_server.script = [Reply(tool_calls=[tool_call("str_replace_editor", readme)]), SUBMIT]
    second = run_json(agent(repo, fake_model_server, "--json", "document calc"))
    parent_last = fake_model_server.requests[-1]
    (repo / "scratch.txt").write_text("mine, untracked\n")
    (repo / "calc.py").write_text("# my own edit, not committed\n")
    before, first_tip = state(repo), tip(repo, first["branch"])
    asked = len(fake_model_server.requests)

    look = Reply(tool_calls=[tool_call("bash", {"command": "git log --format=%s -1; cat README.md calc.py; ls"})])
    more = {"command": "str_replace", "path": "README.md", "old_str": "adds numbers\n",
            "new_str": "adds numbers, never negative ones\n"}
    fake_model_server.script = [look, Reply(tool_calls=[tool_call("str_replace_editor", more)]), SUBMIT]
    follow = run_json(agent(repo, fake_model_server, "--json", "--continue", "say it refuses negative numbers"))

    # The latest run that made a branch was continued, on its own branch, by one more commit.
    assert follow["branch"] == second["branch"] and follow["run_id"] not in (first["run_id"], second["run_id"])
    assert git(repo, "rev-parse", f"{follow['commit']}^").strip() == second["commit"]
    assert tip(repo, second["branch"]) == follow["commit"]
    assert git(repo, "show", f"{follow['branch']}:README.md") == "calc: adds numbers, never negative ones\n"
    assert "adds numbers, never negative ones" in follow["patch"] and "-calc: adds numbers\n" in follow["patch"]
    assert "Follow-up: say it refuses negative numbers" in git(repo, "log", "-1", "--format=%s", follow["commit"])
    assert state(repo) == before and tip(repo, first["branch"]) == first_tip

    # The server got the old conversation as an exact prefix, then the submit's result and the feedback.
    resumed = fake_model_server.requests[asked]
    sent = parent_last["messages"]
    assert json.dumps(resumed["messages"][:len(sent)]) == json.dumps(sent)
    assert resumed["tools"] == parent_last["tools"]
    reply, answer, feedback = resumed["messages"][len(sent):]
    call = reply["tool_calls"][0]
    assert reply["role"] == "assistant" and call["function"]["name"] == "submit"
    assert answer == {"role": "tool", "tool_call_id": call["id"], "content": "submitted a patch changing 1 file"}
    assert feedback["role"] == "user" and "say it refuses negative numbers" in feedback["content"]
    seen = fake_model_server.requests[asked + 1]["messages"][-1]["content"]
    assert "document calc" in seen and "calc: adds numbers" in seen  # the sandbox holds the branch...
    assert "scratch.txt" not in seen and "my own edit" not in seen  # ...not the user's working tree

    # Its trajectory names its parent; replayed, it resumes the same conversation on the same commit.
    start = traj_events(follow["trajectory"])[0]
    assert start["config"]["continues"]["run_id"] == second["run_id"]
    replayed = subprocess.run([sys.executable, "-m", "agent", "traj", "replay", "-q", follow["trajectory"]],
                              capture_output=True, text=True, cwd=ROOT, env={**os.environ, "HOME": str(tmp_path / "home")})
    assert replayed.returncode == 0 and "identical" in replayed.stdout, replayed.stdout + replayed.stderr
    assert tip(repo, second["branch"]) == follow["commit"]  # a replay delivers nothing

    # Continuing it by RUN_ID makes a chain `traj show` shows.
    fake_model_server.script = [SESSION[0], SUBMIT]  # fixes add() on this branch too
    third = run_json(agent(repo, fake_model_server, "--json", "--continue", follow["run_id"], "and fix add()"))
    assert third["branch"] == second["branch"] and git(repo, "rev-parse", f"{third['commit']}^").strip() \
        == follow["commit"]
    assert git(repo, "show", f"{third['branch']}:calc.py").endswith("return a + b\n")
    shown = subprocess.run([sys.executable, "-m", "agent", "traj", "show", third["trajectory"]], capture_output=True,
                           text=True, cwd=ROOT)
    assert shown.returncode == 0, shown.stderr
    chain = shown.stdout.split("follow-up of", 1)[1]
    order = [chain.index(run) for run in (second["run_id"], follow["run_id"], third["run_id"])]
    assert order == sorted(order) and "(this run)" in chain and first["run_id"] not in chain
    assert f"delivered {third['branch']} at {third['commit'][:12]}" in shown.stdout

    # The second run's branch has moved on: continuing it again is refused, naming the run that moved it.
    again = agent(repo, fake_model_server, "--continue", second["run_id"], "more")
    assert again.returncode == 2 and third["run_id"] in again.stderr and len(again.stderr.splitlines()) == 1


@pytest.mark.docker
def test_runs_that_cannot_be_continued_are_one_line_and_exit_2(fake_model_server, tmp_path) -> None:
    repo = make_repo(tmp_path / "repo")
    fake_model_server.script = SESSION
    done = run_json(agent(repo, fake_model_server, "--json", "add() subtracts"))
    runs, run_id, branch = repo / ".agent" / "runs", done["run_id"], done["branch"]
    lines = (runs / run_id / "trajectory.jsonl").read_text().splitlines(keepends=True)
    assert json.loads(lines[-1])["type"] == "delivery"
    other = make_repo(tmp_path / "other")

    def made(name: str, text: str | None) -> str:
        (runs / name).mkdir()
        if text is not None:
            (runs / name / "trajectory.jsonl").write_text(text)
        return name

    def delivered_to(commit: str) -> str:
        return lines[-1].replace(done["commit"], commit)

    def move_branch() -> None:
        moved = git(repo, "commit-tree", f"{done['commit']}^{{tree}}", "-p", done["commit"], "-m", "mine").strip()
        git(repo, "update-ref", f"refs/heads/{branch}", moved)

    cases = [
        (lambda: "nope", "no run nope in"),
        (lambda: made("20990101-000000-aaaaaa", None), "trajectory " + str(runs / "20990101-000000-aaaaaa")),
        (lambda: made("20990101-000000-bbbbbb", lines[0] + "{not json\n" + "".join(lines[1:])),
         "not a trajectory line"),
        (lambda: made("20990101-000000-cccccc", "".join(lines[:3])), "stops before the run ended"),
        (lambda: made("20990101-000000-dddddd", "".join(lines[:-1])), "delivered no branch"),
        (lambda: made("20990101-000000-eeeeee", "".join(lines[:-1]) + delivered_to("0" * 40)),
         "base commit unknown"),
        (lambda: git(repo, "branch", "-D", branch) and run_id, f"its branch {branch} no longer exists"),
        (lambda: move_branch() or run_id, f"its branch {branch} moved since"),
        (lambda: git(repo, "worktree", "add", "-q", str(tmp_path / "wt"), branch) or run_id, "is checked out"),
    ]
    for setup, expected in cases:
        git(repo, "update-ref", f"refs/heads/{branch}", done["commit"])
        before, folders, asked = state(repo), sorted(runs.iterdir()), len(fake_model_server.requests)
        name = setup()
        refused = agent(repo, fake_model_server, "--continue", name, "also handle negative numbers")
        assert refused.returncode == 2, (expected, refused.stderr)
        assert refused.stderr.startswith("error: ") and len(refused.stderr.splitlines()) == 1, refused.stderr
        assert expected in refused.stderr, refused.stderr
        assert len(fake_model_server.requests) == asked and set(runs.iterdir()) - set(folders) <= {runs / name}
        assert state(repo) == before

    shutil.copytree(runs / run_id, other / ".agent" / "runs" / run_id)
    foreign = agent(other, fake_model_server, "--continue", run_id, "more")
    assert foreign.returncode == 2 and f"was made in {repo}, not in {other}" in foreign.stderr
    none = agent(other, fake_model_server, "--continue", "more")  # its only run is from elsewhere
    assert none.returncode == 2 and "delivered a branch to continue" in none.stderr
    for flag in (["--apply"], ["--attempts", "2"]):
        both = agent(repo, fake_model_server, "--continue", *flag, run_id, "more")
        assert both.returncode == 2 and flag[0] in both.stderr


@pytest.mark.docker
def test_a_torn_delivery_line_is_repaired_from_the_branch(fake_model_server, tmp_path) -> None:
    """The process died writing its last line: the branch's commit, which names the run, says where it went."""
    repo = make_repo(tmp_path / "repo")
    fake_model_server.script = SESSION
    done = run_json(agent(repo, fake_model_server, "--json", "add() subtracts"))
    path = Path(done["trajectory"])
    text = path.read_text()
    path.write_text(text[:text.rstrip("\n").rfind("\n") + 20])  # the delivery line cut mid-write
    fake_model_server.script = [Reply(tool_calls=[tool_call("str_replace_editor", NEGATIVE)]), SUBMIT]
    follow = run_json(agent(repo, fake_model_server, "--json", "--continue", "refuse negative numbers"))
    assert follow["branch"] == done["branch"]
    assert git(repo, "rev-parse", f"{follow['commit']}^").strip() == done["commit"]


@pytest.mark.docker
def test_limits_and_ctrl_c_leave_the_branch_as_it_was(fake_model_server, tmp_path, docker_client) -> None:
    repo = make_repo(tmp_path / "repo")
    fake_model_server.script = SESSION
    done = run_json(agent(repo, fake_model_server, "--json", "add() subtracts"))
    before = state(repo)

    fake_model_server.script = [Reply(tool_calls=[tool_call("str_replace_editor", NEGATIVE)])]
    limited = agent(repo, fake_model_server, "--json", "--step-limit", "1", "--continue", "refuse negatives")
    assert limited.returncode == 1, limited.stderr
    result = json.loads(limited.stdout)
    assert result["status"] == "step_limit" and result["branch"] is None and "raise ValueError" in result["patch"]
    assert tip(repo, done["branch"]) == done["commit"] and state(repo) == before
    assert traj_events(result["trajectory"])[0]["config"]["continues"]["run_id"] == done["run_id"]

    fake_model_server.script = [Hang()]
    asked = len(fake_model_server.requests)
    proc = subprocess.Popen(agent_command("fix", "-C", str(repo), "--json", "--continue", "refuse negatives"),
                            env=agent_env(fake_model_server.base_url, tmp_path / "home"), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=ROOT)
    deadline = time.monotonic() + 120  # a guard against hanging, not a speed target
    while len(fake_model_server.requests) == asked and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    interrupted = json.loads(out)
    assert interrupted["status"] == "interrupted" and interrupted["branch"] is None
    assert tip(repo, done["branch"]) == done["commit"] and state(repo) == before
    assert [c for c in cleanup.leftovers(docker_client) if c.pid == proc.pid] == []
    events = traj_events(interrupted["trajectory"])
    assert events[0]["config"]["continues"]["run_id"] == done["run_id"] and events[-1]["status"] == "interrupted"


@pytest.mark.docker
def test_agent_pr_continue_pushes_a_further_commit_to_the_same_pull_request(tmp_path, fake_github,
                                                                            fake_model_server) -> None:
    repo = ci.make_checkout(tmp_path, fake_github)
    env = ci.developer_env(fake_github, fake_model_server)
    issue = f"{fake_github.root_url}/octo/calc/issues/1"
    fake_model_server.script = list(SESSION)
    assert ci.agent(["pr", "--issue", issue, "-C", str(repo), "-q"], tmp_path, env).returncode == 0
    pushed, asked = fake_github.branch_head("agent/issue-1"), len(fake_model_server.requests)
    fake_model_server.script = [Reply(tool_calls=[tool_call("str_replace_editor", NEGATIVE)]), SUBMIT]
    done = ci.agent(["pr", "--issue", issue, "-C", str(repo), "-q", "--continue", "refuse negative numbers"],
                    tmp_path, env)
    assert done.returncode == 0, done.stderr
    [pull] = fake_github.pulls
    assert done.stdout.strip() == f"updated draft pull request #{pull['number']}: {pull['html_url']}"
    head = fake_github.branch_head("agent/issue-1")
    assert git(repo, "rev-parse", f"{head}^").strip() == pushed and tip(repo, "agent/issue-1") == head
    assert "raise ValueError('negative')" in git(repo, "show", f"{head}:calc.py")
    sent = fake_model_server.requests[asked - 1]["messages"]
    assert json.dumps(fake_model_server.requests[asked]["messages"][:len(sent)]) == json.dumps(sent)

    # Someone else pushed to the branch since: the follow-up is refused, and nothing is pushed over it.
    theirs = git(repo, "commit-tree", f"{head}^{{tree}}", "-p", head, "-m", "theirs").strip()
    git(repo, "-c", f"http.extraheader=AUTHORIZATION: {fake_github.basic_auth()}", "push", "-q", "origin",
        f"{theirs}:refs/heads/agent/issue-1")
    refused = ci.agent(["pr", "--issue", issue, "-C", str(repo), "-q", "--continue", "more"], tmp_path, env)
    assert refused.returncode == 2 and "someone pushed" in refused.stderr, refused.stderr
    assert fake_github.branch_head("agent/issue-1") == theirs and tip(repo, "agent/issue-1") == head
    wrong = ci.agent(["pr", "--issue", issue, "-C", str(repo), "-q", "more"], tmp_path, env)
    assert wrong.returncode == 2 and "--continue" in wrong.stderr


@pytest.mark.parametrize(("follow", "first", "second", "file", "expected"), [
    (True, "fix it too", None, False, (None, "fix it too")),
    (True, "20260101-000000-abcdef", "fix it too", False, ("20260101-000000-abcdef", "fix it too")),
    (True, "20260101-000000-abcdef", None, True, ("20260101-000000-abcdef", None)),
    (True, "-", None, False, (None, "-")),
    (False, "the issue", None, False, (None, "the issue")),
])
def test_positional_arguments_with_and_without_continue(follow, first, second, file, expected) -> None:
    assert split_arguments(follow, first, second, file) == expected


def test_a_second_text_without_continue_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="--continue"):
        split_arguments(False, "one", "two", False)


def test_a_text_format_conversation_resumes_in_that_format(tmp_path) -> None:
    """A run that fell back to text calls: its last reply gets a <tool_response>, the follow-up keeps the format."""
    repo = make_repo(tmp_path / "repo")
    head = git(repo, "rev-parse", "HEAD").strip()
    git(repo, "branch", "agent/fix-add", head)
    messages = [{"role": "system", "content": "s"}, {"role": "user", "content": "fix add"},
                {"role": "assistant", "content": "<tool_call>\n{\"name\": \"submit\", \"arguments\": {}}\n</tool_call>"}]
    writer = TrajectoryWriter(repo / ".agent" / "runs" / "20260101-000000-abcdef" / "trajectory.jsonl")
    writer.event("start", task="fix add", config={"repo": str(repo), "run_id": "20260101-000000-abcdef"},
                 tool_format="auto")
    writer.event("tool_format", native=False, format="hermes", reason="the model wrote its call as text")
    writer.event("request", new_messages=messages[:2])
    writer.event("end", status="submitted", message="submitted a patch changing 1 file", new_messages=messages[2:])
    writer.event("delivery", branch="agent/fix-add", commit=head, base_commit=head)
    writer.close()
    found = find_follow_up(UserRepo.find(repo), repo / ".agent" / "runs", None, "negatives too", "/testbed")
    assert found.tool_format == "hermes" and found.branch == "agent/fix-add" and found.commit == head
    assert found.messages[:3] == messages
    assert found.messages[3] == {"role": "user",
                                 "content": "<tool_response>\nsubmitted a patch changing 1 file\n</tool_response>"}
    assert found.messages[4]["role"] == "user" and "negatives too" in found.messages[4]["content"]
    assert "/testbed" in found.messages[4]["content"] and len(found.messages) == 5
