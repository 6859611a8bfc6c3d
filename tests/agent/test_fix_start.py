"""The fix workflow's start, in-process and without Docker: the first request leaves before the sandbox exists.

`agent.fix`'s two Docker steps are replaced: preparing names an image, starting unpacks the
real snapshot into a host directory (`tests.host_sandbox`) once the scripted server has
seen the first request, so the order is certain. Everything else is the real workflow:
snapshot, loop over HTTP, patch, delivery, clean-up. The Docker tier (`test_fix.py`) runs
the same workflow with containers.
"""

from __future__ import annotations

import json
import signal
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

import agent.fix as fix
from agent.config import load_settings
from agent.errors import EnvironmentProblem, UsageError
from agent.fix import FixRequest, run_fix
from agent.workspace import materialize
from sandbox.base import SandboxError
from tests.fakes.openai_server import FakeOpenAIServer, Reply, tool_call
from tests.host_sandbox import HostSandbox
from tests.scripted_run import committed_repo, git

FIX = {"command": "str_replace", "path": "calc.py", "old_str": "return a - b", "new_str": "return a + b"}


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = committed_repo(tmp_path / "repo", {"calc.py": "def add(a, b):\n    return a - b\n"})
    (root / "notes.txt").write_text("untracked, in the snapshot\n")
    return root


@pytest.fixture(autouse=True)
def _signals_restored() -> Iterator[None]:
    """run_fix installs the CLI's signal handlers; pytest keeps its own."""
    saved = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    yield
    for signum, handler in saved.items():
        signal.signal(signum, handler)


class HostBox(HostSandbox):
    """Closed as the workflow closes a Docker sandbox: `wait` False after a finished run."""

    def close(self, wait: bool = True) -> None:
        super().close()


def host_start(monkeypatch: pytest.MonkeyPatch, box_dir: Path, first_request: threading.Event,
               fail: Exception | None = None, prepare_fails: Exception | None = None) -> list[HostSandbox]:
    """Docker's steps replaced: the start waits for the first request, then fails or unpacks the snapshot.

    Preparing (Docker's client and image check) asserts that the first request has left,
    then fails with `prepare_fails` or names an image."""
    started: list[HostSandbox] = []

    def prepare(settings, repo, run_id, taking, scratch, clock, echo):
        assert "first_request" in clock.phases, "Docker's work began before the first request left"
        if prepare_fails is not None:
            raise prepare_fails
        return fix._Prepared(client=None, image="host", cached=False, files=None, spec=None)

    def start(prepared, taking, clock, echo):
        assert first_request.wait(300), "the first request never came while the sandbox was starting"
        if fail is not None:
            raise fail
        started.append(HostBox(materialize(taking.result(), box_dir)))
        return started[-1]

    monkeypatch.setattr(fix, "_prepare_sandbox", prepare)
    monkeypatch.setattr(fix, "_start_prepared", start)
    return started


def scripted(server: FakeOpenAIServer, first_request: threading.Event, replies: list[Reply]) -> None:
    def script(body: dict) -> Reply:
        first_request.set()
        return replies[min(len(server.requests), len(replies)) - 1]

    server.script = script


def test_the_first_request_does_not_wait_for_the_sandbox(fake_model_server: FakeOpenAIServer, repo: Path,
                                                          tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    first_request = threading.Event()
    box_dir = tmp_path / "box"
    started = host_start(monkeypatch, box_dir, first_request)
    scripted(fake_model_server, first_request, [
        Reply(tool_calls=[tool_call("bash", {"command": "cat notes.txt"})]),
        Reply(tool_calls=[tool_call("str_replace_editor", FIX)]),
        Reply(tool_calls=[tool_call("submit", {})]),
    ])
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    settings = load_settings(repo, overrides={"sandbox.workdir": str(box_dir)}, env={
        "OPENAI_BASE_URL": fake_model_server.base_url, "AGENT_MODEL": "fake-model", "HOME": str(tmp_path / "home")})
    outcome = run_fix(FixRequest(task="add() subtracts", repo=repo, branch="agent/add"), settings)
    assert outcome.result.status == "submitted", outcome.result.message
    assert started and "untracked, in the snapshot" in fake_model_server.requests[1]["messages"][-1]["content"]
    assert "+    return a + b" in outcome.result.patch and "notes.txt" not in outcome.result.patch
    assert git(repo, "show", "agent/add:calc.py").endswith("return a + b\n")
    assert outcome.timings["first_request"] <= outcome.timings["total"]
    events = [json.loads(line) for line in outcome.trajectory.read_text().splitlines()]
    assert outcome.image == "host" and [e["image"] for e in events if e["type"] == "sandbox"] == ["host"]
    assert (repo / "calc.py").read_text().endswith("return a - b\n")  # the user's tree untouched


def test_a_start_that_fails_after_the_first_request_ends_the_run(fake_model_server: FakeOpenAIServer, repo: Path,
                                                                 tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    first_request = threading.Event()
    host_start(monkeypatch, tmp_path / "box", first_request, fail=SandboxError("cannot start a container: no room"))
    scripted(fake_model_server, first_request, [Reply(tool_calls=[tool_call("bash", {"command": "ls"})])])
    settings = load_settings(repo, env={"OPENAI_BASE_URL": fake_model_server.base_url, "AGENT_MODEL": "fake-model",
                                        "HOME": str(tmp_path / "home")})
    outcome = run_fix(FixRequest(task="add() subtracts", repo=repo), settings)
    assert outcome.result.status == "sandbox_error" and outcome.exit_code == 3
    assert outcome.result.message == "the sandbox did not start: cannot start a container: no room"
    assert len(fake_model_server.requests) == 1 and outcome.branch is None
    assert outcome.trajectory.read_text().count('"type": "end"') == 1


def test_a_start_that_fails_otherwise_raises_its_own_error(fake_model_server: FakeOpenAIServer, repo: Path,
                                                           tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    first_request = threading.Event()
    host_start(monkeypatch, tmp_path / "box", first_request, fail=PermissionError(13, "Permission denied", "x"))
    scripted(fake_model_server, first_request, [Reply(tool_calls=[tool_call("bash", {"command": "ls"})])])
    settings = load_settings(repo, env={"OPENAI_BASE_URL": fake_model_server.base_url, "AGENT_MODEL": "fake-model",
                                        "HOME": str(tmp_path / "home")})
    with pytest.raises(PermissionError):
        run_fix(FixRequest(task="add() subtracts", repo=repo), settings)


def test_a_failed_setup_after_the_first_request_ends_the_run_with_its_own_error(
        fake_model_server: FakeOpenAIServer, repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Docker's work begins once the first request has left; a setup that fails then ends the run at the
    second request, even when the model never calls a tool, and raises its error once the trajectory is closed."""
    first_request = threading.Event()
    host_start(monkeypatch, tmp_path / "box", first_request,
               prepare_fails=EnvironmentProblem("setup commands failed: exit code 7"))
    scripted(fake_model_server, first_request, [Reply(content="let me think about it")])
    settings = load_settings(repo, env={"OPENAI_BASE_URL": fake_model_server.base_url, "AGENT_MODEL": "fake-model",
                                        "HOME": str(tmp_path / "home")})
    with pytest.raises(EnvironmentProblem, match="setup commands failed: exit code 7"):
        run_fix(FixRequest(task="add() subtracts", repo=repo), settings)
    assert len(fake_model_server.requests) == 1  # the second waited for the sandbox, and never left
    [trajectory] = (repo / ".agent" / "runs").glob("*/trajectory.jsonl")
    assert trajectory.read_text().count('"status": "sandbox_error"') == 1
    assert (repo / "calc.py").read_text().endswith("return a - b\n") and git(repo, "branch") == "* main\n"


def test_a_run_that_ends_before_its_first_request_starts_no_sandbox(
        fake_model_server: FakeOpenAIServer, repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    asked: list[str] = []

    def docker_step(*args: object) -> None:
        asked.append("docker")
        raise SandboxError("Docker was asked")

    monkeypatch.setattr(fix, "_prepare_sandbox", docker_step)
    monkeypatch.setattr(fix, "_start_prepared", docker_step)
    settings = load_settings(repo, overrides={"tools.enabled": ["bash", "no_such_tool"]},
                             env={"OPENAI_BASE_URL": fake_model_server.base_url, "AGENT_MODEL": "fake-model",
                                  "HOME": str(tmp_path / "home")})
    with pytest.raises(UsageError, match="no_such_tool"):
        run_fix(FixRequest(task="add() subtracts", repo=repo), settings)
    assert asked == [] and fake_model_server.requests == []
