"""Fixtures for tool tests: a real sandbox whose /testbed is a small committed git repository."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from sandbox.docker import DockerSandbox
from tools.base import Observation, ToolContext, call_tool
from tools.toolset import ALL_TOOLS

APP = """\
import os


def greet(name):
    return "hello " + name


def main():
    print(greet(os.environ.get("USER", "world")))
"""


@pytest.fixture
def repo(box: DockerSandbox) -> DockerSandbox:
    """`box` with a committed repository: src/app.py, README.md and a .gitignore for *.log."""
    box.write_file("src/app.py", APP.encode())
    box.write_file("README.md", b"# demo\n")
    box.write_file(".gitignore", b"*.log\n")
    made = box.run("git init -q && git add -A && git commit -qm base")
    assert made.ok, made.output
    return box


@pytest.fixture
def ctx(repo: DockerSandbox) -> ToolContext:
    base = repo.run("git rev-parse HEAD").output.strip()
    return ToolContext(sandbox=repo, base_commit=base, command_timeout=60, max_command_timeout=120)


@pytest.fixture
def call(ctx: ToolContext) -> Callable[..., Observation]:
    """Call a tool by name the way the loop does: schema validation first, ToolError as an error observation."""

    def run(tool: str, **args: Any) -> Observation:
        return call_tool(ALL_TOOLS[tool], args, ctx)

    return run
