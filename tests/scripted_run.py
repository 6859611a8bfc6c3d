"""Running `agent` as a user does, against a model server: a committed repository, the environment, the process.

One place for what every end-to-end run of `agent fix` needs, whether a test asserts on it
(tests/agent/test_fix.py, test_attempts.py, test_real_model.py) or a benchmark times it
(benchmarks/fix_start.py, benchmarks/attempts.py): the scripted OpenAI-compatible server
(`tests/fakes/openai_server.py`, re-exported here so a benchmark imports this one module),
a repository committed on `main` with a fixed identity, and `python -m agent ...` in a child
process whose HOME is the run's own (no user config, no cache of another run) and which
reads no `AGENT_CONFIG` of the machine's.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

from tests.fakes.openai_server import Delay, FakeOpenAIServer, HttpError, Reply, tool_call

__all__ = ["ROOT", "Delay", "FakeOpenAIServer", "HttpError", "Reply", "agent_command", "agent_env",
           "committed_repo", "git", "run_agent", "tool_call"]

ROOT = Path(__file__).resolve().parents[1]  # the checkout whose `agent` runs
FAKE_MODEL = "fake-model"  # the name the scripted server serves
IDENTITY = ("-c", "user.name=t", "-c", "user.email=t@t")  # commits need no user config


def git(repo: Path, *args: str) -> str:
    """`git -C repo ARGS` committing as a fixed identity; its stdout. Raises `CalledProcessError` on failure."""
    return subprocess.run(["git", "-C", str(repo), *IDENTITY, *args], check=True, capture_output=True,
                          text=True).stdout


def committed_repo(root: Path, files: Mapping[str, str], message: str = "init") -> Path:
    """`root` (made if missing) as a git repository on branch `main` whose one commit holds `files` (path
    relative to `root` -> text; folders made as needed) and whatever `root` held already."""
    root.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    git(root, "init", "-q", "-b", "main")
    git(root, "add", "-A")
    git(root, "commit", "-qm", message)
    return root


def agent_env(base_url: str, home: Path, model: str = FAKE_MODEL, **extra: str) -> dict[str, str]:
    """This process's environment for an `agent` child: the model server at `base_url` serving `model`,
    HOME at `home`, `AGENT_CONFIG` unset (the machine's config file never applies), then `extra`."""
    env = {name: value for name, value in os.environ.items() if name != "AGENT_CONFIG"}
    return env | {"OPENAI_BASE_URL": base_url, "AGENT_MODEL": model, "HOME": str(home)} | extra


def agent_command(*args: str) -> list[str]:
    """`python -m agent ARGS` with this interpreter: the argv of a child run from a checkout (cwd `ROOT`)."""
    return [sys.executable, "-m", "agent", *args]


def run_agent(base_url: str, home: Path, *args: str, model: str = FAKE_MODEL, stdin: str | None = None,
              timeout: float | None = None, env_extra: Mapping[str, str] | None = None,
              checkout: Path = ROOT) -> subprocess.CompletedProcess[str]:
    """`python -m agent ARGS` run to its end from `checkout` in `agent_env(base_url, home, model, **env_extra)`,
    `stdin` as its input; output captured as text. Raises `TimeoutExpired` after `timeout` seconds."""
    return subprocess.run(agent_command(*args), input=stdin, env=agent_env(base_url, home, model, **(env_extra or {})),
                          capture_output=True, text=True, timeout=timeout, cwd=checkout)
