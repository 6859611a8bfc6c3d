"""The real-model tier: `agent doctor` and one whole `agent fix` against llama.cpp serving Qwen2.5-Coder-0.5B.

What a real server must give, not whether a 0.5B model solves the task: the served context
is read, a tool-call format is chosen, the model's calls run in the sandbox, the run ends
with a status of the loop's own, and nothing is left behind (containers, branches, the
user's tree). The server comes from `.ci/llm-server` (built once per machine; `.ci/setup`
installs it); where it is not set up, the tier is skipped with one line (tests/tiers.py).
"""

from __future__ import annotations

import json
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.loop import STATUSES
from agent.trajectory import read_trajectory
from tests.real_model_server import SERVER_SCRIPT
from tests import scripted_run
from tests.scripted_run import committed_repo, git

# About a minute each on 2 quiet cores; a loaded machine is far slower (one 2,000-token prefill took 9 min).
pytestmark = [pytest.mark.real_model, pytest.mark.docker, pytest.mark.timeout(1800)]
SERVER = SERVER_SCRIPT
CONTEXT = 8192
MODEL = "qwen2.5-coder-0.5b"
# Modest CPU time: a small model on a CPU can ramble for the whole reply bound (2,048 tokens
# at 8,192; seen on a loaded machine: 550 tokens at 1.9 tok/s), and a few steps show the loop works.
MAX_TOKENS = 512
STEPS = 4


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def llama_server() -> Iterator[str]:
    port = free_port()
    started = subprocess.run(["bash", str(SERVER), "start", "0.5b", str(CONTEXT), str(port)], capture_output=True,
                             text=True, timeout=300)
    assert started.returncode == 0, f"llama-server is installed but did not start: {started.stderr[-500:]}"
    try:
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        subprocess.run(["bash", str(SERVER), "stop", str(port)], capture_output=True, timeout=60)


def run_agent(base_url: str, home: Path, *args: str, timeout: float = 1500) -> subprocess.CompletedProcess:
    config = home / "agent-config.toml"
    config.write_text(f"[model]\nmax_tokens = {MAX_TOKENS}\n")
    return scripted_run.run_agent(base_url, home, *args, model=MODEL, timeout=timeout,
                                  env_extra={"OPENAI_API_KEY": "none", "AGENT_CONFIG": str(config)})


def tiny_repo(root: Path) -> Path:
    return committed_repo(root, {"calc.py": "def add(a, b):\n    return a - b\n",
                                 "test_calc.py": "from calc import add\n\n\ndef test_add():\n    assert add(2, 3) == 5\n"})


def test_doctor_reads_the_served_context_and_chooses_a_format(llama_server: str, tmp_path: Path) -> None:
    done = run_agent(llama_server, tmp_path, "doctor", "-C", str(tmp_path))
    out = done.stdout
    assert f"serves: {MODEL}" in out, out
    assert f"context window {CONTEXT:,} tokens (profile qwen2.5-coder)" in out, out
    assert "native tool calls:" in out and "xml text tool calls:" in out and "hermes text tool calls:" in out
    # Exactly one verdict: a format chosen (exit 0), or the one line saying none works (exit 3).
    chosen = [line for line in out.splitlines() if "tool-call format:" in line]
    none = [line for line in out.splitlines() if "no tool-call format worked" in line]
    assert len(chosen) + len(none) == 1, out
    assert done.returncode == (0 if chosen else 3), out
    assert "Traceback" not in done.stderr


def test_fix_runs_the_model_s_calls_and_ends_cleanly(llama_server: str, tmp_path: Path, docker_client) -> None:
    repo = tiny_repo(tmp_path / "repo")
    before = (git(repo, "status", "--porcelain", "--untracked-files=all"), git(repo, "branch", "--list"),
              (repo / "calc.py").read_text())
    done = run_agent(llama_server, tmp_path, "fix", "-C", str(repo), "--step-limit", str(STEPS), "--json",
                     "add(2, 3) returns -1 instead of 5; test_calc.py fails. Fix add() in calc.py.")
    assert "Traceback" not in done.stderr, done.stderr[-2000:]
    result = json.loads(done.stdout)
    # A clean end: a status of the loop's own; never the server or the sandbox failing.
    assert result["status"] in STATUSES and result["status"] not in ("model_error", "sandbox_error", "interrupted")
    assert done.returncode == (0 if result["status"] == "submitted" and result["patch"] else 1), result
    traj = read_trajectory(Path(result["trajectory"]))
    assert traj.end is not None and traj.status == result["status"]
    assert traj.start["context_window"] == CONTEXT and traj.start["max_tokens"] == MAX_TOKENS
    formats = [e for e in traj.events if e["type"] == "tool_format"]
    assert traj.start["tool_format"] == "auto" and all(e["format"] in ("hermes", "xml") for e in formats)
    responses = [e for e in traj.events if e["type"] == "response"]
    assert responses and all(e["usage"]["prompt_tokens"] > 0 for e in responses)  # real token counts came back
    tools = [e for e in traj.events if e["type"] == "tool"]
    said = [(e.get("content") or "")[:300] for e in responses] + [str(e["errors"]) for e in traj.events
                                                                   if e["type"] == "format_error"]
    assert tools, f"the model's tool calls were never executed: {said}"
    assert all(t["observation"].strip() for t in tools)  # each call came back with what the tool said
    # Nothing left behind: no container of this run, the user's tree as it was, a branch only for a submitted patch.
    # A finished run's container ends and removes itself after the exit (off the critical path): how soon is not tested.
    label = {"label": f"moe-agent.run={result['run_id']}"}
    deadline = time.monotonic() + 60
    while docker_client.containers.list(all=True, filters=label, ignore_removed=True) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert docker_client.containers.list(all=True, filters=label, ignore_removed=True) == []
    after = (git(repo, "status", "--porcelain", "--untracked-files=all"), git(repo, "branch", "--list"),
             (repo / "calc.py").read_text())
    if result["branch"]:
        assert result["status"] == "submitted" and "agent/" in after[1]
    else:
        assert after == before
