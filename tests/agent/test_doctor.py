"""`agent doctor` against real Docker and a scripted model server."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from agent.doctor import PROBE_MAX_TOKENS
from tests.fakes.openai_server import FakeOpenAIServer, Hang, HttpError, Reply, Trickle, tool_call

pytestmark = pytest.mark.docker
ROOT = Path(__file__).resolve().parents[2]
XML_PING = "<tool_call>\n<function=ping>\n<parameter=text>ok</parameter>\n</function>\n</tool_call>"


def doctor(server_url: str, tmp_path: Path, *args: str, model: str = "fake-model",
           config: str | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "OPENAI_BASE_URL": server_url, "AGENT_MODEL": model, "HOME": str(tmp_path)}
    env.pop("AGENT_CONFIG", None)
    if config is not None:
        (tmp_path / "user.toml").write_text(config)
        env["AGENT_CONFIG"] = str(tmp_path / "user.toml")
    return subprocess.run([sys.executable, "-m", "agent", "doctor", "-C", str(tmp_path), *args], env=env,
                          capture_output=True, text=True, timeout=120, cwd=ROOT)


HERMES_PING = '<tool_call>\n{"name": "ping", "arguments": {"text": "ok"}}\n</tool_call>'


def test_native_tool_calling_is_detected(fake_model_server, tmp_path) -> None:
    fake_model_server.script = lambda body: (Reply(tool_calls=[tool_call("ping", {"text": "ok"})]) if body.get("tools")
                                             else Reply(content="no idea"))
    done = doctor(fake_model_server.base_url, tmp_path)
    assert done.returncode == 0, done.stdout
    assert "Docker" in done.stdout and "default sandbox image" in done.stdout
    assert "serves: fake-model" in done.stdout and "context window 32,768" in done.stdout
    assert "native tool calls: 3/3 replies had a valid call" in done.stdout
    assert 'tool-call format: tool_format = "auto" (native calls), as configured' in done.stdout
    assert all(r["max_tokens"] == PROBE_MAX_TOKENS for r in fake_model_server.requests)  # probes are bounded


def test_text_formats_are_probed_when_native_is_refused(fake_model_server, tmp_path) -> None:
    def script(body):
        if body.get("tools"):
            return HttpError(400, '"auto" tool choice requires --enable-auto-tool-choice')
        return Reply(content=XML_PING if "<function=" in body["messages"][0]["content"] else "no idea")

    fake_model_server.script = script
    done = doctor(fake_model_server.base_url, tmp_path)
    assert "native tool calls: unavailable" in done.stdout and "enable-auto-tool-choice" in done.stdout
    assert "xml text tool calls: 3/3" in done.stdout and "hermes text tool calls: 0/3" in done.stdout
    # One recommendation, not one per format: the generic profile's text format is hermes, so auto is not enough.
    assert done.stdout.count("set model.tool_format") == 1 and 'set model.tool_format = "xml"' in done.stdout
    assert len(fake_model_server.requests) == 1 + 3 + 3  # a refusal is not retried; each text format sampled 3 times
    assert done.returncode == 0


def test_calls_written_as_text_are_reported_and_auto_recommended(tmp_path) -> None:
    """llama.cpp with Qwen2.5-Coder: `tools` accepted, the call comes back as text; -c 8192 is read from meta.n_ctx."""
    with FakeOpenAIServer(model="qwen2.5-coder-0.5b", max_model_len=8192, flavour="llamacpp") as server:
        server.script = lambda body: Reply(content=HERMES_PING)
        done = doctor(server.base_url, tmp_path, model="qwen2.5-coder-0.5b")
    assert "context window 8,192 tokens (profile qwen2.5-coder)" in done.stdout, done.stdout
    assert "native tool calls: 0/3 replies had a valid call; 3 wrote the call as text" in done.stdout
    assert 'tool_format = "auto" (hermes calls), as configured' in done.stdout
    assert done.returncode == 0


def test_no_working_format_is_a_failure(fake_model_server, tmp_path) -> None:
    replies = iter(["Sure! Here is how you ping: ping('ok')", "I cannot call tools.", "ok"] * 5)
    fake_model_server.script = lambda body: Reply(content=next(replies))
    done = doctor(fake_model_server.base_url, tmp_path)
    assert done.returncode == 3
    assert "no tool-call format worked in 3 tries each" in done.stdout
    assert "set model.tool_format" not in done.stdout


def test_one_lucky_sample_does_not_decide(fake_model_server, tmp_path) -> None:
    answers = iter([Reply(tool_calls=[tool_call("ping", {"text": "ok"})]), Reply(content="pong"), Reply(content="pong")])

    def script(body):
        if body.get("tools"):
            return next(answers)
        return Reply(content=HERMES_PING if "<tool_call>" in body["messages"][0]["content"] else "pong")

    fake_model_server.script = script
    done = doctor(fake_model_server.base_url, tmp_path)
    assert "native tool calls: 1/3" in done.stdout
    assert 'tool_format = "auto" (hermes calls), as configured' in done.stdout and done.returncode == 0


def test_unreachable_server_fails_with_a_fix(tmp_path) -> None:
    done = doctor("http://127.0.0.1:9/v1", tmp_path)
    assert done.returncode == 3
    assert "unreachable" in done.stdout and "OPENAI_BASE_URL" in done.stdout


def test_a_base_url_with_an_endpoint_path_is_told_to_drop_it(fake_model_server, tmp_path) -> None:
    done = doctor(fake_model_server.base_url + "/chat/completions", tmp_path)
    assert done.returncode == 3
    assert f"ends in the endpoint path /chat/completions: drop it (try {fake_model_server.base_url})" in done.stdout
    assert "lack /v1" not in done.stdout


def test_bad_config_is_reported(fake_model_server, tmp_path) -> None:
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    subprocess.run(["git", "-C", str(tmp_path), "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q",
                    "--allow-empty", "-m", "x"], check=True)
    (tmp_path / ".agent.toml").write_text("[model]\ntemperature = 9\n")
    done = doctor(fake_model_server.base_url, tmp_path, "--no-model")
    assert done.returncode == 3 and "temperature" in done.stdout


def test_git_check_names_the_version_or_how_to_get_git(tmp_path) -> None:
    check = "from agent.doctor import git_check; c = git_check(); print(c.ok, c.what, c.fix, sep='|')"
    found = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True, timeout=60, cwd=ROOT)
    ok, what, _ = found.stdout.strip().split("|")
    assert ok == "True" and re.fullmatch(r"git \d+\.\d+(\.\d+)*", what), found.stderr
    env = {**os.environ, "PATH": str(tmp_path)}  # no git command on it
    missing = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True, timeout=60, cwd=ROOT, env=env)
    assert missing.stdout.strip() == "False|git not found|install git", missing.stderr


def test_a_server_that_accepts_and_never_answers_ends_doctor_with_one_line(tmp_path) -> None:
    """The issue's example: a socket that accepts connections and never answers, not even /v1/models."""
    with socket.create_server(("127.0.0.1", 0), backlog=64) as silent:  # the kernel accepts; nobody reads
        url = f"http://127.0.0.1:{silent.getsockname()[1]}/v1"
        done = doctor(url, tmp_path, config="[model]\nrequest_timeout = 2\n")
    assert done.returncode == 3, done.stdout + done.stderr
    assert re.search(r"fail model endpoint .*: .*timed out after 1 attempt: no reply within 2s", done.stdout)
    assert done.stderr.startswith("error: model endpoint ") and done.stderr.count("\n") == 1, done.stderr


def test_a_format_that_times_out_is_not_sampled_again_nor_are_the_others(fake_model_server, tmp_path) -> None:
    fake_model_server.script = lambda body: Hang()
    done = doctor(fake_model_server.base_url, tmp_path, config="[model]\nrequest_timeout = 2\n")
    assert len(fake_model_server.requests) == 1  # not 3 formats x 3 samples, each waiting its full timeout
    assert "native tool calls: unavailable (model server at" in done.stdout
    assert "xml text tool calls: unavailable (not tried: the server did not answer in time)" in done.stdout
    assert done.returncode == 3
    assert done.stderr.startswith("error: the model server at ") and "did not answer" in done.stderr
    assert done.stderr.count("\n") == 1, done.stderr


def test_a_probe_whose_reply_trickles_ends_at_the_request_timeout(fake_model_server, tmp_path) -> None:
    """The probe's 200 comes with a body sent a space at a time: it is cut at its timeout like a silent one."""
    fake_model_server.script = lambda body: Trickle(every=0.2, seconds=15.0, then=Reply("pong"))
    done = doctor(fake_model_server.base_url, tmp_path, config="[model]\nrequest_timeout = 2\n")
    assert len(fake_model_server.requests) == 1
    assert "native tool calls: unavailable (model server at" in done.stdout, done.stdout
    assert "no reply within 2s" in done.stdout
    assert done.returncode == 3 and done.stderr.count("\n") == 1, done.stderr


def test_a_slow_probe_shows_a_live_line_on_a_terminal(fake_model_server, tmp_path) -> None:
    from tests.agent.test_cli import in_terminal

    fake_model_server.script = lambda body: Hang()
    (tmp_path / "user.toml").write_text("[model]\nrequest_timeout = 7\n")
    shown = in_terminal(["doctor", "-C", str(tmp_path)], {
        "OPENAI_BASE_URL": fake_model_server.base_url, "AGENT_MODEL": "fake-model", "HOME": str(tmp_path),
        "AGENT_CONFIG": str(tmp_path / "user.toml")})
    assert f"asking {fake_model_server.base_url} for a native tool call (1/3): waiting for the model server, 5 s" in shown
