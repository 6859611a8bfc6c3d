"""The commit `agent ci`/`agent pr` push carries the pull request's title as its subject, byte for byte
(issue 16): references unlinked by an invisible word joiner (U+2060), never a literal `\\u2060`.

In-process, without Docker: the fix workflow's sandbox is a host directory (`test_fix_start.host_start`),
the model the scripted server, GitHub the fake (REST and git over HTTP); `fix_issue` is the real one.
"""

from __future__ import annotations

import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.ci import IssueJob, fix_issue
from agent.ci.push import GitRemote
from agent.config import load_settings
from agent.github import GitHubClient, Issue, IssueRef
from agent.model import OpenAIModel
from tests.agent.test_ci import FIX, ISSUE_BODY, make_checkout
from tests.agent.test_fix_start import _signals_restored, host_start, scripted  # noqa: F401 (autouse fixture)
from tests.fakes.github_server import FakeGitHub
from tests.fakes.openai_server import FakeOpenAIServer, Reply, tool_call

JOINER = "\u2060"


@pytest.fixture
def fake_github(tmp_path: Path) -> Iterator[FakeGitHub]:
    with FakeGitHub(git_root=tmp_path / "git") as server:
        yield server


@pytest.mark.parametrize(("title", "subject"), [
    ("add() regression since #12 (see PR #13)", f"Fix #1: add() regression since #{JOINER}12 (see PR #{JOINER}13)"),
    ("closes GH-2; see https://github.com/o/r/issues/3 and o/r/pull/4",
     f"Fix #1: closes GH-{JOINER}2; see https://github.com/o/r/issues/{JOINER}3 and o/r/pull/{JOINER}4"),
    (f"a planted joiner #{JOINER}5 is shown", "Fix #1: a planted joiner #\\u20605 is shown"),
])
def test_the_pushed_commit_subject_is_the_pull_request_title_with_invisible_joiners(
        tmp_path: Path, fake_github: FakeGitHub, fake_model_server: FakeOpenAIServer,
        monkeypatch: pytest.MonkeyPatch, title: str, subject: str) -> None:
    repo = make_checkout(tmp_path, fake_github)
    first_request = threading.Event()
    host_start(monkeypatch, tmp_path / "box", first_request)
    scripted(fake_model_server, first_request, [Reply(tool_calls=[tool_call("str_replace_editor", FIX)]),
                                                Reply(tool_calls=[tool_call("submit", {})])])
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    settings = load_settings(repo, overrides={"sandbox.workdir": str(tmp_path / "box")}, env={
        "OPENAI_BASE_URL": fake_model_server.base_url, "AGENT_MODEL": "fake-model", "HOME": str(tmp_path / "home")})
    fake_github.add_issue(1, title, ISSUE_BODY)
    issue = Issue(IssueRef("octo", "calc", 1), title, ISSUE_BODY, "open", "u")
    github = GitHubClient(fake_github.token, fake_github.api_url)
    remote = GitRemote.of(repo, "origin", fake_github.token, fake_github.hosts)

    done = fix_issue(IssueJob(issue=issue.ref, repo=repo, as_triggered=issue), settings, OpenAIModel(settings.model),
                     github, remote)

    [pull] = fake_github.pulls
    assert pull["title"] == subject and done.fix.commit == fake_github.branch_head("agent/issue-1")
    raw = subprocess.run(["git", "-C", str(fake_github.bare_repo), "cat-file", "commit", done.fix.commit or ""],
                         check=True, capture_output=True).stdout
    message = raw.split(b"\n\n", 1)[1]
    assert message.split(b"\n", 1)[0] == subject.encode()  # UTF-8 E2 81 A0 where a joiner is, nothing else
    assert message.count("\u2060".encode()) == subject.count(JOINER)
