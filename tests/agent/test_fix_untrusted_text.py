"""What `agent fix` writes into git from untrusted text (an issue's title, the model's reply): control
characters shown, never obeyed; secrets masked (issue 16, items 5 and 6). In process, real git, no containers."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from agent.fix import FixOutcome, FixRequest, deliver
from agent.loop import RunResult
from agent.workspace import UserRepo, take_snapshot
from tests.scripted_run import committed_repo, git

TOKEN = "ghp_EchoedByTheModel0123456789abcd"
# A screen clear, an OSC 52 clipboard write, a bidi override, a C1 CSI, NEL, a line separator, a tag character.
HOSTILE_TITLE = (f"Crash \x1b[2J\x1b]52;c;ZWNobyBwd25lZA==\x07 in \u202eevil\u202c \x9b31m\x85\u2028 "
                 f"{TOKEN} \U000e0041 end")
CONTROLS = [chr(c) for c in [*range(0x00, 0x09), *range(0x0b, 0x20), *range(0x7f, 0xa0)]] + [
    "\u202e", "\u202c", "\u2028", "\U000e0041"]


@pytest.fixture
def delivered(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, FixOutcome]:
    """A patch delivered as `agent fix --issue` does, titled by a hostile issue, with the token in the environment."""
    monkeypatch.setenv("GITHUB_TOKEN", TOKEN)
    repo = committed_repo(tmp_path / "repo", {"calc.py": "def add(a, b):\n    return a - b\n"})
    (repo / "calc.py").write_text("def add(a, b):\n    return a + b\n")
    patch = git(repo, "diff")
    git(repo, "checkout", "-q", "--", ".")
    found = UserRepo.find(repo)
    result = RunResult(status="submitted", message="", patch=patch, steps=1, prompt_tokens=1, completion_tokens=1,
                       cost=None, elapsed=1.0, prefix_reuse=None, compactions=0)
    outcome = FixOutcome(result=result, run_id="r1", trajectory=tmp_path / "t.jsonl")
    request = FixRequest(task=f"{HOSTILE_TITLE}\n\nbody", repo=repo, title=HOSTILE_TITLE)
    deliver(outcome, request, found, take_snapshot(found, tmp_path / "scratch"))
    assert outcome.delivery_error is None and outcome.branch
    return repo, outcome


def test_an_issue_titles_controls_never_reach_the_commit_message(delivered: tuple[Path, FixOutcome]) -> None:
    repo, outcome = delivered
    message = subprocess.run(["git", "-C", str(repo), "log", "-1", "--format=%B", outcome.branch],
                             check=True, capture_output=True).stdout.decode()
    subject = message.splitlines()[0]
    assert not [c for c in message if c in CONTROLS], repr(message)
    assert subject.startswith("Crash \\x1b[2J\\x1b]52;c;ZWNobyBwd25lZA==\\x07 in \\u202eevil\\u202c \\x9b31m")
    assert subject.endswith(" end") and "\\u2028" in subject and "\\U000e0041" in subject  # one line, shown


def test_a_token_in_the_title_reaches_neither_the_commit_nor_the_branch_name(
        delivered: tuple[Path, FixOutcome]) -> None:
    repo, outcome = delivered
    message = git(repo, "log", "-1", "--format=%B", outcome.branch)
    assert TOKEN not in message and "***" in message
    assert "echoedbythemodel" not in outcome.branch.lower() and outcome.branch.startswith("agent/crash-")
