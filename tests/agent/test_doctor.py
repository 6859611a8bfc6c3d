"""`agent doctor` against real Docker and a scripted model server."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.fakes.openai_server import HttpError, Reply, tool_call

pytestmark = pytest.mark.docker
ROOT = Path(__file__).resolve().parents[2]
XML_PING = "<tool_call>\n<function=ping>\n<parameter=text>ok</parameter>\n</function>\n</tool_call>"


def doctor(server_url: str, tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "OPENAI_BASE_URL": server_url, "AGENT_MODEL": "fake-model", "HOME": str(tmp_path)}
    return subprocess.run([sys.executable, "-m", "agent", "doctor", "-C", str(tmp_path), *args], env=env,
                          capture_output=True, text=True, timeout=120, cwd=ROOT)


def test_native_tool_calling_is_detected(fake_model_server, tmp_path) -> None:
    fake_model_server.script = lambda body: Reply(tool_calls=[tool_call("ping", {"text": "ok"})])
    done = doctor(fake_model_server.base_url, tmp_path)
    assert done.returncode == 0, done.stdout
    assert "Docker" in done.stdout and "default sandbox image" in done.stdout
    assert "serves: fake-model" in done.stdout and "context window 32,768" in done.stdout
    assert "native tool calling works" in done.stdout


def test_text_formats_are_probed_when_native_is_refused(fake_model_server, tmp_path) -> None:
    def script(body):
        if body.get("tools"):
            return HttpError(400, '"auto" tool choice requires --enable-auto-tool-choice')
        return Reply(content=XML_PING if "<function=" in body["messages"][0]["content"] else "no idea")

    fake_model_server.script = script
    done = doctor(fake_model_server.base_url, tmp_path)
    assert "native tool calling unavailable" in done.stdout
    assert "xml text tool calls work" in done.stdout
    assert "hermes text tool calls were not produced" in done.stdout
    assert len(fake_model_server.requests) == 3  # one tiny request per format


def test_unreachable_server_fails_with_a_fix(tmp_path) -> None:
    done = doctor("http://127.0.0.1:9/v1", tmp_path)
    assert done.returncode == 3
    assert "unreachable" in done.stdout and "OPENAI_BASE_URL" in done.stdout


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
