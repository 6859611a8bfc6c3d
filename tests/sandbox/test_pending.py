"""PendingSandbox: the loop's first request leaves while the sandbox is still starting.

The start is a future that the scripted server completes (or fails) from inside the first
request, so the order is certain: the request was sent before the sandbox existed.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path

import pytest

from agent.config import LoopSettings
from agent.loop import Agent
from agent.model import OpenAIModel
from agent.run_result import RunResult
from sandbox.base import SandboxError
from sandbox.pending import NotStarted, PendingSandbox
from tests.fakes.openai_server import FakeOpenAIServer, Reply, tool_call
from tests.host_sandbox import HostSandbox
from tools.base import ToolContext
from tools.toolset import build_toolset


def run_with_pending_start(server: FakeOpenAIServer, starting: Future, start: Callable[[], None],
                           replies: list[Reply]) -> RunResult:
    """An agent on `PendingSandbox(starting)`; `start()` runs inside the first request, before it is answered."""
    seen_done: list[bool] = []

    def script(body: dict) -> Reply:
        if not seen_done:
            seen_done.append(starting.done())
            start()
        return replies[min(len(server.requests), len(replies)) - 1]

    server.script = script
    box = PendingSandbox(lambda: starting, "/testbed")
    agent = Agent(OpenAIModel(server.model_settings()), build_toolset(), ToolContext(sandbox=box, task="t"),
                  settings=LoopSettings(step_limit=2), files=["pkg/mod.py", "calc.py"])
    result = agent.run("say hi")
    assert seen_done == [False]  # the first request came while the sandbox was still starting
    # and it listed the files it was given, not the sandbox's (whose listing would wait for the start)
    assert "calc.py\npkg/mod.py" in "".join(str(m["content"]) for m in server.requests[0]["messages"])
    return result


def test_the_first_request_leaves_before_the_sandbox_and_the_tool_call_waits_for_it(
        fake_model_server: FakeOpenAIServer, tmp_path: Path) -> None:
    starting: Future = Future()
    host = HostSandbox(tmp_path / "repo")
    replies = [Reply(tool_calls=[tool_call("bash", {"command": "echo started-$((6 * 7))"})]),
               Reply(tool_calls=[tool_call("bash", {"command": "echo again"})])]
    result = run_with_pending_start(fake_model_server, starting, lambda: starting.set_result(host), replies)
    assert result.status == "step_limit", result.message
    assert host.commands[:2] == ["echo started-$((6 * 7))", "echo again"]  # ran in the sandbox the start gave
    assert "started-42" in fake_model_server.requests[1]["messages"][-1]["content"]
    assert "/testbed" in fake_model_server.requests[0]["messages"][0]["content"]  # the prompt named the workdir


def test_a_start_that_fails_ends_the_run_after_one_request(fake_model_server: FakeOpenAIServer) -> None:
    starting: Future = Future()
    replies = [Reply(tool_calls=[tool_call("bash", {"command": "ls"})])]
    result = run_with_pending_start(fake_model_server, starting,
                                    lambda: starting.set_exception(SandboxError("Docker error: no such image")), replies)
    assert result.status == "sandbox_error"
    assert result.message == "the sandbox did not start: Docker error: no such image"
    assert len(fake_model_server.requests) == 1  # the model was not asked again with an error to read


def test_close_and_start_error() -> None:
    closed: list[bool] = []

    class Box:
        workdir = "/testbed"

        def close(self) -> None:
            closed.append(True)

    running: Future = Future()
    pending = PendingSandbox(lambda: running, "/testbed")
    pending.launch()
    assert pending.workdir == "/testbed" and pending.start_error() is None  # answered without waiting
    running.set_result(Box())
    pending.close()
    assert closed == [True] and pending.start_error() is None

    failed: Future = Future()
    failed.set_exception(RuntimeError("daemon gone"))
    broken = PendingSandbox(lambda: failed, "/testbed")
    broken.launch()
    broken.close()  # nothing started: nothing to close, nothing raised
    assert isinstance(broken.start_error(), RuntimeError)
    with pytest.raises(NotStarted, match="did not start: daemon gone") as caught:
        broken.run("ls")
    assert isinstance(caught.value.__cause__, RuntimeError)


def test_nothing_starts_before_the_launch_or_after_a_close(tmp_path: Path) -> None:
    """The start is asked for once, when launched or first used; a sandbox closed first never starts."""
    launches: list[str] = []

    def launch(name: str) -> Callable[[], Future]:
        def start() -> Future:
            launches.append(name)
            done: Future = Future()
            done.set_result(HostSandbox(tmp_path / name))
            return done
        return start

    used = PendingSandbox(launch("used"), "/testbed")
    assert launches == [] and not used.launched and used.start_error() is None
    assert used.workdir == "/testbed" and launches == []
    used.started()
    used.launch()
    used.started()
    assert launches == ["used"] and used.launched  # once, on the first use

    closed = PendingSandbox(launch("closed"), "/testbed")
    closed.close()  # the run ended before its first request: nothing to remove
    closed.launch()
    with pytest.raises(NotStarted, match="the run ended before it was needed"):
        closed.run("ls")
    assert launches == ["used"] and not closed.launched
