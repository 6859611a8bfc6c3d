"""`agent ci` / `agent pr` and the repository's AGENTS.md: in the prompt, named in the pull request, or left out."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.ci.pull_request import pull_request_body
from agent.fix import FixOutcome
from agent.github import Issue, IssueRef
from agent.instructions import read_instructions
from agent.loop import RunResult
from tests.agent.test_ci import (  # noqa: F401 (fake_github is a fixture)
    SESSION, agent, ci_env, developer_env, fake_github, git, labelled, make_checkout, task_sent, write_event,
)
from tests.fakes.github_server import FakeGitHub

RULES = "Run the tests with python3 -m unittest.\n"


def test_pull_request_body_names_the_instructions_used(tmp_path: Path) -> None:
    (tmp_path / "AGENTS.md").write_text(RULES)
    result = RunResult(status="submitted", message="", patch="p", steps=1, prompt_tokens=1, completion_tokens=1,
                       cost=None, elapsed=1.0, prefix_reuse=None, compactions=0)
    issue = Issue(IssueRef("octo", "calc", 5), "t", "", "open", "u")
    outcome = FixOutcome(result=result, run_id="r", trajectory=tmp_path / "t.jsonl",
                         instructions=read_instructions(tmp_path))
    assert "Repository instructions: AGENTS\\.md." in pull_request_body(issue, outcome, "")
    outcome.instructions = None
    assert "Repository instructions" not in pull_request_body(issue, outcome, "")


def checkout_with_rules(tmp_path: Path, fake: FakeGitHub) -> Path:
    repo = make_checkout(tmp_path, fake)
    (repo / "AGENTS.md").write_text(RULES)
    git(repo, "add", "AGENTS.md")
    git(repo, "commit", "-qm", "agents file")
    git(repo, "-c", f"http.extraheader=AUTHORIZATION: {fake.basic_auth()}", "push", "-q", "origin", "main")
    return repo


@pytest.mark.docker
def test_ci_puts_agents_md_in_the_prompt_and_names_it_in_the_pull_request(
        tmp_path: Path, fake_github: FakeGitHub, fake_model_server) -> None:
    repo = checkout_with_rules(tmp_path, fake_github)
    fake_model_server.script = list(SESSION)
    event = write_event(tmp_path, "issues", labelled())
    done = agent(["ci", "-C", str(repo)], tmp_path, ci_env(fake_github, fake_model_server, event))
    assert done.returncode == 0, done.stderr
    task = task_sent(fake_model_server)
    assert task.index(RULES.strip()) < task.index("<issue>")
    [pull] = fake_github.pulls
    assert "Repository instructions: AGENTS\\.md." in pull["body"]


@pytest.mark.docker
def test_pr_no_instructions_leaves_agents_md_out(tmp_path: Path, fake_github: FakeGitHub, fake_model_server) -> None:
    repo = checkout_with_rules(tmp_path, fake_github)
    fake_model_server.script = list(SESSION)
    done = agent(["pr", "--issue", f"{fake_github.root_url}/octo/calc/issues/1", "-C", str(repo), "-q",
                  "--no-instructions"], tmp_path, developer_env(fake_github, fake_model_server))
    assert done.returncode == 0, done.stderr
    task = task_sent(fake_model_server)
    assert RULES.strip() not in task and "repository_instructions" not in task
    [pull] = fake_github.pulls
    assert "Repository instructions" not in pull["body"]
