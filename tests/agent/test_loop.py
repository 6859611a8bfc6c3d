"""The loop end to end: scripted model over real HTTP, tools in a real container.

Every exit status is reached here, and the history is checked to be append-only by
looking at what the server actually received.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from agent.config import LoopSettings
from agent.loop import Agent
from agent.model import OpenAIModel
from agent.trajectory import TrajectoryWriter, read_trajectory
from tests.fakes.openai_server import (
    Delay,
    FakeOpenAIServer,
    Hang,
    HttpError,
    Reply,
    Trickle,
    context_length_error,
    rate_limited,
    tool_call,
)
from tools.base import ToolContext
from tools.submit import current_patch
from tools.toolset import build_toolset

pytestmark = pytest.mark.docker
ROOT = Path(__file__).resolve().parents[2]


def git_repo(root: Path) -> Path:
    root.mkdir()
    (root / "calc.py").write_text("def add(a, b):\n    return a - b\n")
    for cmd in (["init", "-q"], ["add", "-A"], ["-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "init"]):
        subprocess.run(["git", "-C", str(root), *cmd], check=True)
    return root


@pytest.fixture
def ctx(make_sandbox, tmp_path: Path) -> ToolContext:
    box = make_sandbox(copy_from=git_repo(tmp_path / "repo"))
    return ToolContext(sandbox=box, task="add() subtracts", observation_max_chars=2000)


def make_agent(server: FakeOpenAIServer, ctx: ToolContext, tmp_path: Path, **kwargs) -> Agent:
    settings = kwargs.pop("settings", LoopSettings(step_limit=20))
    model = OpenAIModel(server.model_settings(**kwargs.pop("model", {})))
    return Agent(model, build_toolset(), ctx, settings=settings, trajectory=TrajectoryWriter(tmp_path / "t.jsonl"),
                 final_patch=current_patch, **kwargs)


FIX = {"command": "str_replace", "path": "calc.py", "old_str": "return a - b", "new_str": "return a + b"}
SESSION = [
    Reply(tool_calls=[tool_call("bash", {"command": "grep -n 'def add' calc.py"})]),
    Reply(content="Found it.", tool_calls=[tool_call("str_replace_editor", FIX)]),
    Reply(tool_calls=[tool_call("bash", {"command": "python3 -c 'import calc; print(calc.add(2, 3))'"})]),
    Reply(tool_calls=[tool_call("submit", {})]),
]


def test_scripted_session_edits_and_submits(fake_model_server, ctx, tmp_path) -> None:
    fake_model_server.script = SESSION
    result = make_agent(fake_model_server, ctx, tmp_path).run("add() subtracts")
    assert result.status == "submitted", result.message
    assert "+    return a + b" in result.patch and "-    return a - b" in result.patch
    assert result.steps == 4
    assert ctx.sandbox.run("python3 -c 'import calc; print(calc.add(2, 3))'").output == "5\n"
    traj = read_trajectory(tmp_path / "t.jsonl")
    assert traj.status == "submitted" and traj.patch == result.patch
    assert [t["name"] for s in traj.steps() for t in s.tools] == ["bash", "str_replace_editor", "bash", "submit"]
    assert "5" in traj.steps()[2].tools[0]["observation"]
    assert "api_key" not in json.dumps(traj.start["config"])


def test_history_is_append_only_and_prefix_reuse_is_measured(fake_model_server, ctx, tmp_path) -> None:
    fake_model_server.script = SESSION
    result = make_agent(fake_model_server, ctx, tmp_path).run("add() subtracts")
    sent = [r["messages"] for r in fake_model_server.requests]
    for before, after in zip(sent, sent[1:]):
        assert after[: len(before)] == before
    assert result.prefix_reuse is not None and 0.5 < result.prefix_reuse < 1.0
    requests = [e for e in read_trajectory(tmp_path / "t.jsonl").events if e["type"] == "request"]
    assert requests[0]["shared_prefix_tokens"] == 0 and requests[1]["shared_prefix_tokens"] > 0


def test_tool_results_go_back_as_tool_messages(fake_model_server, ctx, tmp_path) -> None:
    fake_model_server.script = SESSION
    make_agent(fake_model_server, ctx, tmp_path).run("task")
    second = fake_model_server.requests[1]
    assert second["tools"] and second["messages"][-1]["role"] == "tool"
    assert "def add" in second["messages"][-1]["content"]


def test_xml_text_calls_run_when_the_server_has_no_parser(fake_model_server, ctx, tmp_path) -> None:
    edit = ("<tool_call>\n<function=str_replace_editor>\n<parameter=command>str_replace</parameter>\n"
            "<parameter=path>calc.py</parameter>\n<parameter=old_str>return a - b</parameter>\n"
            "<parameter=new_str>return a + b</parameter>\n</function>\n</tool_call>")
    fake_model_server.script = [
        Reply(content="<think>the bug is in add</think>I will fix it.\n" + edit),
        Reply(content="<tool_call>\n<function=submit>\n</function>\n</tool_call>"),
    ]
    result = make_agent(fake_model_server, ctx, tmp_path).run("task")
    assert result.status == "submitted" and "+    return a + b" in result.patch
    second = fake_model_server.requests[1]["messages"]
    assert second[-1]["role"] == "user" and "<tool_response>" in second[-1]["content"]
    assert "the bug is in add" not in json.dumps(second)  # thinking is recorded, not sent back
    assert read_trajectory(tmp_path / "t.jsonl").steps()[0].response["reasoning"] == "the bug is in add"


def test_auto_falls_back_to_text_calls_when_tools_are_rejected(fake_model_server, ctx, tmp_path) -> None:
    fake_model_server.script = [
        HttpError(400, '"auto" tool choice requires --enable-auto-tool-choice and --tool-call-parser to be set'),
        Reply(content='<tool_call>{"name": "submit", "arguments": {}}</tool_call>'),
    ]
    result = make_agent(fake_model_server, ctx, tmp_path, text_format="hermes").run("task")
    assert result.status == "submitted"
    retry = fake_model_server.requests[1]
    assert "tools" not in retry and "<tool_call>" in retry["messages"][0]["content"]


def test_auto_switches_to_text_calls_when_the_model_writes_them_as_text(fake_model_server, ctx, tmp_path) -> None:
    """llama.cpp + Qwen2.5-Coder: `tools` accepted, the call written as text; the run must follow the model."""
    grep = '<tool_call>\n{"name": "bash", "arguments": {"command": "grep -n \'def add\' calc.py"}}\n</tool_call>'
    fake_model_server.script = [Reply(content=grep), Reply(content="Now I will fix it."),
                                Reply(content='<tool_call>{"name": "submit", "arguments": {}}</tool_call>')]
    result = make_agent(fake_model_server, ctx, tmp_path, text_format="hermes").run("add() subtracts")
    assert result.status == "submitted", result.message
    first, second, third = fake_model_server.requests
    assert first["tools"] and "tools" not in second and "tools" not in third
    assert "<tool_call>" in second["messages"][0]["content"]  # the system prompt now shows the text syntax
    assert second["messages"][1]["content"] == first["messages"][1]["content"]  # the task is kept
    assert "<tool_response>" in second["messages"][-1]["content"] and "def add" in second["messages"][-1]["content"]
    feedback = third["messages"][-1]["content"]
    assert "no tool call" in feedback and "<tool_call>" in feedback  # the error shows the syntax to follow
    # ... and the whole submit call: Qwen2.5-Coder-1.5B ended with empty replies once its edit was made
    assert feedback.endswith('call submit:\n<tool_call>\n{"name": "submit", "arguments": {}}\n</tool_call>\n')
    switch = [e for e in read_trajectory(tmp_path / "t.jsonl").events if e["type"] == "tool_format"]
    assert switch == [switch[0]] and switch[0]["format"] == "hermes" and "as text" in switch[0]["reason"]
    assert_conversation_recorded(read_trajectory(tmp_path / "t.jsonl"), third)  # the rebuilt history, whole


def test_a_malformed_text_call_also_switches_to_text_calls(fake_model_server, ctx, tmp_path) -> None:
    """Qwen2.5-Coder-0.5B's first reply on llama.cpp: a bare JSON call naming a tool that does not exist."""
    fake_model_server.script = [Reply(content='{"name": "add", "arguments": {"path": "calc.py"}}'),
                                Reply(content='<tool_call>{"name": "submit", "arguments": {}}</tool_call>')]
    result = make_agent(fake_model_server, ctx, tmp_path, text_format="hermes").run("task")
    assert result.status == "submitted"
    second = fake_model_server.requests[1]
    assert "tools" not in second and "no tool named 'add'" in second["messages"][-1]["content"]
    assert "<tool_call>" in second["messages"][-1]["content"]  # the error shows the syntax to follow


def test_native_mode_stays_once_a_native_call_came_back(fake_model_server, ctx, tmp_path) -> None:
    fake_model_server.script = [SESSION[0], Reply(content="Thinking aloud, no call."), SESSION[3]]
    result = make_agent(fake_model_server, ctx, tmp_path).run("task")
    assert result.status == "submitted"
    assert all(r.get("tools") for r in fake_model_server.requests)


def test_repeated_action_is_named_then_ends_the_run(fake_model_server, ctx, tmp_path) -> None:
    fake_model_server.script = lambda body: Reply(tool_calls=[tool_call("bash", {"command": "grep -c add calc.py"})])
    result = make_agent(fake_model_server, ctx, tmp_path).run("task")
    assert result.status == "repeated_action" and result.steps == 4, result.message
    assert "3 times in a row" in fake_model_server.requests[3]["messages"][-1]["content"]
    assert "3 times in a row" not in json.dumps(fake_model_server.requests[2]["messages"])


def test_same_call_with_a_new_result_is_not_a_repeat(fake_model_server, ctx, tmp_path) -> None:
    fake_model_server.script = lambda body: Reply(tool_calls=[tool_call("bash", {"command": "echo x >> n; wc -l < n"})])
    result = make_agent(fake_model_server, ctx, tmp_path, settings=LoopSettings(step_limit=6)).run("task")
    assert result.status == "step_limit"


def test_estimate_includes_the_tool_schemas(fake_model_server, ctx, tmp_path) -> None:
    """The estimate that decides compaction, against the prompt size the server then reports (it was ~1,570 low)."""
    fake_model_server.script = [SESSION[0], SESSION[2], SESSION[3]]
    seen: dict[int, list[float]] = {}
    agent = make_agent(fake_model_server, ctx, tmp_path)

    def listener(kind, data):
        if kind == "thinking":
            seen[data["step"]] = [agent._estimate()]
        elif kind == "request":
            seen[data["step"]].append(data["prompt_tokens"])

    agent.listener = listener
    assert agent.run("add() subtracts").status == "submitted"
    assert len(seen) == 3
    for estimate, reported in seen.values():
        assert abs(estimate - reported) < 0.05 * reported, seen


def test_compaction_counts_in_the_totals(fake_model_server, ctx, tmp_path) -> None:
    usage = {"prompt_tokens": 100, "completion_tokens": 10}
    steps = [Reply(tool_calls=[tool_call("bash", {"command": f"echo step {i}"})], usage=usage) for i in range(3)]
    fake_model_server.script = [*steps, context_length_error(),
                                Reply(content="SUMMARY", usage={"prompt_tokens": 5000, "completion_tokens": 700}),
                                Reply(tool_calls=[tool_call("submit", {})], usage=usage)]
    result = make_agent(fake_model_server, ctx, tmp_path).run("task")
    assert result.status == "submitted" and result.compactions == 1
    assert (result.prompt_tokens, result.completion_tokens) == (4 * 100 + 5000, 4 * 10 + 700)
    compaction = next(e for e in read_trajectory(tmp_path / "t.jsonl").events if e["type"] == "compaction")
    assert compaction["usage"]["completion_tokens"] == 700
    assert_conversation_recorded(read_trajectory(tmp_path / "t.jsonl"), fake_model_server.requests[-1])


def assert_conversation_recorded(trajectory, last_request: dict) -> None:
    """The trajectory reads back as the last request's messages, then the final reply (what a follow-up resumes)."""
    conversation = trajectory.conversation()
    sent = last_request["messages"]
    assert json.dumps(conversation[:len(sent)]) == json.dumps(sent)
    assert len(conversation) == len(sent) + 1 and conversation[-1]["role"] == "assistant"
    assert "submit" in json.dumps(conversation[-1])


def test_a_slow_compaction_ends_the_run_at_the_time_limit(fake_model_server, ctx, tmp_path) -> None:
    steps = [Reply(tool_calls=[tool_call("bash", {"command": f"echo step {i}"})]) for i in range(2)]
    fake_model_server.script = [*steps, context_length_error(), Delay(4.0, Reply(content="SUMMARY")),
                                Reply(tool_calls=[tool_call("submit", {})])]
    result = make_agent(fake_model_server, ctx, tmp_path, settings=LoopSettings(time_limit=3)).run("task")
    # The summary request is cut off at the run's deadline, not waited out, and nothing is asked after it.
    assert result.status == "time_limit" and result.compactions == 0
    assert len(fake_model_server.requests) == 4


def test_compaction_leaves_room_for_many_steps(fake_model_server, ctx, tmp_path) -> None:
    """8,000 tokens and big observations: compaction ran at steps 11, 13, 15 and 18 of one run; now far apart."""
    fake_model_server.max_model_len = 8000
    big = "x" * 1500
    fake_model_server.script = lambda body: (
        Reply(content="SUMMARY so far") if "<transcript>" in json.dumps(body["messages"][-1])
        else Reply(tool_calls=[tool_call("bash", {"command": f"echo {big} {len(fake_model_server.requests)}"})]))
    result = make_agent(fake_model_server, ctx, tmp_path, settings=LoopSettings(step_limit=24),
                        model={"max_tokens": 256}).run("task")
    assert result.status == "step_limit"
    at = [e["step"] for e in read_trajectory(tmp_path / "t.jsonl").events if e["type"] == "compaction"]
    assert len(at) >= 2, at
    assert min(b - a for a, b in zip(at, at[1:])) >= 4, at
    assert all(r["max_tokens"] == 256 for r in fake_model_server.requests)


def test_a_small_window_gets_smaller_observations(fake_model_server, ctx, tmp_path) -> None:
    fake_model_server.max_model_len = 8192
    fake_model_server.script = [Reply(tool_calls=[tool_call("bash", {"command": "seq 1 20000"})]), SESSION[3]]
    assert make_agent(fake_model_server, ctx, tmp_path).run("task").status == "submitted"
    observation = fake_model_server.requests[1]["messages"][-1]["content"]
    assert len(observation) <= 8192 * 4 // 8 < 10_000 and "20000" in observation  # head and tail kept


def test_malformed_calls_are_explained_then_format_error(fake_model_server, ctx, tmp_path) -> None:
    fake_model_server.script = [
        Reply(tool_calls=[tool_call("bash", '{"command": "ls"')]),
        Reply(tool_calls=[tool_call("no_such_tool", {})]),
        Reply(content="I think I am done."),
    ]
    result = make_agent(fake_model_server, ctx, tmp_path).run("task")
    assert result.status == "format_error"
    messages = fake_model_server.requests[2]["messages"]
    feedback = json.dumps(messages[-3:])
    assert "no_such_tool" in feedback and "bash" in feedback
    assert messages[-1]["content"].endswith("When you are done, call submit.\n")  # native calls: no text syntax


def test_wrongly_typed_arguments_are_an_observation_not_a_crash(fake_model_server, ctx, tmp_path) -> None:
    fake_model_server.script = [
        Reply(tool_calls=[tool_call("str_replace_editor", {"command": "view", "path": "calc.py", "view_range": "x"})]),
        Reply(tool_calls=[tool_call("submit", {})]),
    ]
    result = make_agent(fake_model_server, ctx, tmp_path).run("task")
    assert result.status == "submitted"
    observation = fake_model_server.requests[1]["messages"][-1]["content"]
    assert "view_range" in observation


def test_step_limit(fake_model_server, ctx, tmp_path) -> None:
    fake_model_server.script = lambda body: Reply(tool_calls=[tool_call("bash", {"command": "true"})])
    result = make_agent(fake_model_server, ctx, tmp_path, settings=LoopSettings(step_limit=3)).run("task")
    assert result.status == "step_limit" and result.steps == 3


def test_token_limit(fake_model_server, ctx, tmp_path) -> None:
    fake_model_server.script = lambda body: Reply(tool_calls=[tool_call("bash", {"command": "true"})],
                                                  usage={"prompt_tokens": 600, "completion_tokens": 10})
    result = make_agent(fake_model_server, ctx, tmp_path, settings=LoopSettings(token_limit=1500)).run("task")
    assert result.status == "token_limit" and result.steps == 3


def test_time_limit(fake_model_server, ctx, tmp_path) -> None:
    fake_model_server.script = lambda body: Reply(tool_calls=[tool_call("bash", {"command": "sleep 0.3"})])
    result = make_agent(fake_model_server, ctx, tmp_path, settings=LoopSettings(time_limit=0.5)).run("task")
    assert result.status == "time_limit"


def test_a_request_cut_by_the_time_limit_ends_the_run_as_time_limit(fake_model_server, ctx, tmp_path) -> None:
    fake_model_server.script = [Hang()] * 3
    result = make_agent(fake_model_server, ctx, tmp_path, settings=LoopSettings(time_limit=1.0),
                        model={"request_timeout": 600.0}).run("task")
    assert result.status == "time_limit" and "while waiting for the model server" in result.message
    assert len(fake_model_server.requests) == 1
    assert read_trajectory(tmp_path / "t.jsonl").status == "time_limit"


def test_a_trickling_reply_ends_the_run_at_the_time_limit(fake_model_server, ctx, tmp_path) -> None:
    """A server that answers 200 and then sends its body a space at a time: the run still ends `time_limit`."""
    fake_model_server.script = [Trickle(every=0.2, seconds=10.0)] * 3
    result = make_agent(fake_model_server, ctx, tmp_path, settings=LoopSettings(time_limit=1.5),
                        model={"request_timeout": 600.0}).run("task")
    assert result.status == "time_limit" and "while waiting for the model server" in result.message, result.message
    assert len(fake_model_server.requests) == 1
    assert read_trajectory(tmp_path / "t.jsonl").status == "time_limit"


def test_a_command_longer_than_the_time_left_is_stopped_at_the_time_limit(fake_model_server, ctx, tmp_path) -> None:
    """The issue's example: `sleep 100` as the first call of a run with a short time limit (it ran to its end)."""
    fake_model_server.script = [Reply(tool_calls=[tool_call("bash", {"command": "sleep 100; echo done"})]),
                                Reply(tool_calls=[tool_call("submit", {})])]
    result = make_agent(fake_model_server, ctx, tmp_path, settings=LoopSettings(time_limit=3)).run("task")
    assert result.status == "time_limit"
    [tool] = [e for e in read_trajectory(tmp_path / "t.jsonl").events if e["type"] == "tool"]
    assert "stopped by the run's time limit ([loop] time_limit)" in tool["observation"]
    assert "pass a larger timeout" not in tool["observation"]
    assert tool["data"]["out_of_time"] is True and tool["data"]["timed_out"] is True
    assert len(fake_model_server.requests) == 1


def test_a_test_run_longer_than_the_time_left_is_stopped_at_the_time_limit(fake_model_server, ctx, tmp_path) -> None:
    """run_tests asks for a longer timeout than bash: the run's time limit caps it the same way."""
    ctx.test_cmd = "sleep 100; python3 -m pytest"
    fake_model_server.script = [Reply(tool_calls=[tool_call("run_tests", {})]),
                                Reply(tool_calls=[tool_call("submit", {})])]
    result = make_agent(fake_model_server, ctx, tmp_path, settings=LoopSettings(time_limit=3)).run("task")
    assert result.status == "time_limit"
    [tool] = [e for e in read_trajectory(tmp_path / "t.jsonl").events if e["type"] == "tool"]
    assert "stopped by the run's time limit ([loop] time_limit)" in tool["observation"], tool["observation"]
    assert tool["data"]["out_of_time"] is True


def test_retries_are_recorded_and_shown(fake_model_server, ctx, tmp_path) -> None:
    fake_model_server.script = [rate_limited(0.01), *SESSION]
    seen: list[tuple[str, dict]] = []
    agent = make_agent(fake_model_server, ctx, tmp_path, listener=lambda kind, data: seen.append((kind, data)))
    result = agent.run("t")
    assert result.status == "submitted"
    retries = [data for kind, data in seen if kind == "model_retry"]
    assert retries == [{"step": 1, "attempt": 2, "attempts": 3, "reason": "HTTP 429", "wait": 0.0}]
    recorded = [e for e in read_trajectory(tmp_path / "t.jsonl").events if e["type"] == "model_retry"]
    assert [(e["attempt"], e["reason"]) for e in recorded] == [(2, "HTTP 429")]


def test_model_error_keeps_the_trajectory(fake_model_server, ctx, tmp_path) -> None:
    fake_model_server.script = [SESSION[0], HttpError(500), HttpError(500)]
    result = make_agent(fake_model_server, ctx, tmp_path, model={"retries": 1, "retry_backoff_base": 0}).run("task")
    assert result.status == "model_error" and "500" in result.message
    traj = read_trajectory(tmp_path / "t.jsonl")
    assert traj.status == "model_error" and len(traj.steps()) == 1


def test_limits_salvage_the_patch_made_so_far(fake_model_server, ctx, tmp_path) -> None:
    fake_model_server.script = [SESSION[1]] + [SESSION[0]] * 5
    result = make_agent(fake_model_server, ctx, tmp_path, settings=LoopSettings(step_limit=2)).run("task")
    assert result.status == "step_limit" and "+    return a + b" in result.patch


def test_sandbox_error(fake_model_server, ctx, tmp_path, docker_client) -> None:
    def script(body):
        if len(fake_model_server.requests) == 2:
            docker_client.api.remove_container(ctx.sandbox.id, force=True)
        return SESSION[0]

    fake_model_server.script = script
    result = make_agent(fake_model_server, ctx, tmp_path).run("task")
    assert result.status == "sandbox_error" and "container" in result.message


def test_interrupted_saves_everything(fake_model_server, ctx, tmp_path) -> None:
    fake_model_server.script = SESSION

    def listener(kind, data):
        if kind == "tool" and data["name"] == "str_replace_editor":
            raise KeyboardInterrupt

    result = make_agent(fake_model_server, ctx, tmp_path, listener=listener).run("task")
    assert result.status == "interrupted"
    assert read_trajectory(tmp_path / "t.jsonl").status == "interrupted"


def test_context_length_error_triggers_compaction(fake_model_server, ctx, tmp_path) -> None:
    steps = [Reply(tool_calls=[tool_call("bash", {"command": f"echo step {i}"})]) for i in range(14)]
    fake_model_server.script = [*steps, context_length_error(), Reply(content="SUMMARY: add() is in calc.py"),
                                Reply(tool_calls=[tool_call("submit", {})])]
    result = make_agent(fake_model_server, ctx, tmp_path).run("add() subtracts")
    assert result.status == "submitted" and result.compactions == 1
    last = fake_model_server.requests[-1]["messages"]
    assert any("SUMMARY: add() is in calc.py" in (m.get("content") or "") for m in last)
    assert last[0]["role"] == "system" and "add() subtracts" in last[1]["content"]  # system and task are kept
    assert len(last) < len(fake_model_server.requests[-4]["messages"])
    events = read_trajectory(tmp_path / "t.jsonl").events
    assert any(e["type"] == "compaction" for e in events)


def test_compaction_before_the_window_is_full(fake_model_server, ctx, tmp_path) -> None:
    fake_model_server.max_model_len = 8000
    big = "x" * 3000
    steps = [Reply(tool_calls=[tool_call("bash", {"command": f"echo {big[:1500]} {i}"})]) for i in range(14)]
    fake_model_server.script = lambda body: (Reply(content="SUMMARY so far")
                                             if "<transcript>" in json.dumps(body["messages"][-1])
                                             else steps[min(len(fake_model_server.requests) - 1, 13)])
    agent = make_agent(fake_model_server, ctx, tmp_path, settings=LoopSettings(step_limit=14),
                       model={"max_tokens": 256})
    result = agent.run("task")
    assert result.compactions >= 1
    assert result.status == "step_limit"


def test_killed_run_leaves_a_readable_trajectory(fake_model_server, sandbox_image, tmp_path) -> None:
    fake_model_server.script = lambda body: Reply(tool_calls=[tool_call("bash", {"command": "sleep 0.2"})])
    path = tmp_path / "killed.jsonl"
    script = textwrap.dedent(f"""
        from pathlib import Path
        from agent.config import ModelSettings
        from agent.loop import Agent
        from agent.model import OpenAIModel
        from agent.trajectory import TrajectoryWriter
        from sandbox.docker import SandboxSpec, start_sandbox
        from tools.base import ToolContext
        from tools.toolset import build_toolset
        box = start_sandbox(SandboxSpec(image={sandbox_image!r}, run_id="pytest-killed"))
        model = OpenAIModel(ModelSettings(base_url={fake_model_server.base_url!r}, name="fake-model"))
        Agent(model, build_toolset(), ToolContext(sandbox=box), trajectory=TrajectoryWriter(Path({str(path)!r}))).run("t")
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], cwd=ROOT)
    try:
        deadline = time.monotonic() + 60
        while proc.poll() is None and time.monotonic() < deadline:
            if path.exists() and path.read_text().count('"type": "tool"') >= 3:
                break
            time.sleep(0.05)
        assert proc.poll() is None, "the run died before it could be killed"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        proc.kill()
        subprocess.run("docker ps -aq --filter label=moe-agent.run=pytest-killed | xargs -r docker rm -f",
                       shell=True, capture_output=True)
    traj = read_trajectory(path)
    assert traj.status == "incomplete"
    steps = traj.steps()
    assert len(steps) >= 3 and all(s.tools for s in steps[:3])
    assert traj.start["task"] == "t"


def test_text_mode_describes_tools_in_the_prompt(fake_model_server, ctx, tmp_path) -> None:
    fake_model_server.script = [Reply(content="<tool_call>\n<function=submit>\n</function>\n</tool_call>")]
    result = make_agent(fake_model_server, ctx, tmp_path, tool_format="xml").run("task")
    assert result.status == "submitted"
    first = fake_model_server.requests[0]
    assert "tools" not in first
    system = first["messages"][0]["content"]
    assert "<function=example_function_name>" in system and "<name>str_replace_editor</name>" in system


def test_valid_calls_run_next_to_malformed_ones_which_are_reported_not_counted(fake_model_server, ctx,
                                                                              tmp_path) -> None:
    # Issue 17 item 4: three replies in a row with one good and one broken call used to end as format_error.
    mixed = Reply(tool_calls=[tool_call("bash", {"command": "echo ran >> runs.txt"}, "c1"),
                              tool_call("bash", '{"command": "ls"', "c2")])
    fake_model_server.script = [mixed, mixed, mixed, Reply(tool_calls=[tool_call("submit", {})])]
    result = make_agent(fake_model_server, ctx, tmp_path, settings=LoopSettings(max_format_errors=2)).run("task")
    assert result.status == "submitted", result.message
    assert ctx.sandbox.run("cat runs.txt").output == "ran\nran\nran\n"
    second = fake_model_server.requests[1]["messages"]
    assert [m["role"] for m in second[-3:]] == ["assistant", "tool", "user"]
    assert second[-2]["tool_call_id"] == "c1" and "exit code: 0" in second[-2]["content"]
    assert "Tool call 2 (bash): its arguments are not valid JSON" in second[-1]["content"]
    events = [e for e in read_trajectory(tmp_path / "t.jsonl").events if e["type"] == "format_error"]
    assert [e["consecutive"] for e in events] == [0, 0, 0]


def test_text_reply_with_a_good_and_a_broken_call_reports_both_in_one_message(fake_model_server, ctx,
                                                                                tmp_path) -> None:
    good = "<tool_call>\n<function=bash>\n<parameter=command>\npwd\n</parameter>\n</function>\n</tool_call>"
    fake_model_server.script = [
        Reply(content=good + '\n<tool_call>\n{"name": "bash", "arguments": {"command": "ls" "-l"}}\n</tool_call>'),
        Reply(content='{"name": "submit", "arguments": {}}'),  # a bare JSON call, as Qwen2.5-Coder writes it
    ]
    result = make_agent(fake_model_server, ctx, tmp_path).run("task")  # auto: the server sent no native calls
    assert result.status == "submitted", result.message
    last = fake_model_server.requests[1]["messages"][-1]
    assert last["role"] == "user" and "<tool_response>" in last["content"]
    assert "Some of your tool calls were not run:\n- Tool call 2:" in last["content"]


def test_call_inside_thinking_is_not_run_and_the_model_is_told_so(fake_model_server, ctx, tmp_path) -> None:
    fake_model_server.script = [
        Reply(content="<think>I will run <tool_call>\n{\"name\": \"bash\", \"arguments\": {\"command\": \"touch x\"}}\n"
                      "</tool_call></think>"),
        Reply(content='<tool_call>\n{"name": "submit", "arguments": {}}\n</tool_call>'),
    ]
    result = make_agent(fake_model_server, ctx, tmp_path).run("task")
    assert result.status == "submitted", result.message
    assert ctx.sandbox.run("test -e x; echo $?").output == "1\n"  # never ran
    told = fake_model_server.requests[1]["messages"][-1]["content"]
    assert "Your tool call (bash) was written inside your reasoning (<think>...</think>), so it was not run" in told


def test_the_task_prompt_lists_the_repository_files(fake_model_server, ctx, tmp_path) -> None:
    """Qwen2.5-Coder-1.5B on llama.cpp, told `python3 test_calc.py` fails, guessed tests/test_calc.py and
    src/calc.py in 6 of 10 real runs: the first message now shows the tree (tools/overview.py)."""
    fake_model_server.script = [SESSION[3]]
    assert make_agent(fake_model_server, ctx, tmp_path).run("add() subtracts").status == "submitted"
    task = fake_model_server.requests[0]["messages"][1]["content"]
    assert "Files in the repository (1):\ncalc.py\n\nResolve the issue" in task


def test_an_empty_reply_is_asked_again_and_never_kept_in_the_conversation(fake_model_server, ctx, tmp_path) -> None:
    """Qwen2.5-Coder-1.5B on llama.cpp answered "\\n" after a failing test, then only empty replies while
    the empty turn stayed in the conversation. Now the first empty reply is asked again unchanged, a
    second gets the format-error feedback, and no empty assistant turn is ever sent back."""
    fake_model_server.script = [SESSION[0], Reply(content="\n"), Reply(content=""), SESSION[3]]
    result = make_agent(fake_model_server, ctx, tmp_path).run("add() subtracts")
    assert result.status == "submitted", result.message
    first_empty, again, after_two = fake_model_server.requests[1:4]
    assert again["messages"] == first_empty["messages"]  # asked again as it was
    assert after_two["messages"][:-1] == first_empty["messages"]  # no empty turn, only the feedback added
    assert after_two["messages"][-1]["role"] == "user" and "your reply was empty" in after_two["messages"][-1]["content"]
    errors = [e for e in read_trajectory(tmp_path / "t.jsonl").events if e["type"] == "format_error"]
    assert [e["consecutive"] for e in errors] == [1, 2]


def test_empty_replies_still_end_the_run_at_the_format_error_limit(fake_model_server, ctx, tmp_path) -> None:
    fake_model_server.script = [Reply(content="")] * 3
    result = make_agent(fake_model_server, ctx, tmp_path).run("task")
    assert result.status == "format_error" and "your reply was empty" in result.message
    assert len(fake_model_server.requests) == 3
