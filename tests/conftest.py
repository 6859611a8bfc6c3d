"""Fixtures shared by every test directory."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.fakes.openai_server import FakeOpenAIServer

if TYPE_CHECKING:  # imported by the fixtures that use them: most tests need no tools
    from tests.host_sandbox import HostSandbox
    from tools.base import ToolContext


@pytest.fixture
def fake_model_server() -> Iterator[FakeOpenAIServer]:
    """A running scripted model server; set `.script`, then use `.model_settings()`."""
    with FakeOpenAIServer() as server:
        yield server


@pytest.fixture(autouse=True)
def _secrets_held_per_test(monkeypatch: pytest.MonkeyPatch) -> None:
    """What `agent.redaction.hold` learnt (a config's key, a fake token) stays with the test that gave it:
    in one pytest process, a word one test used as a secret would be masked in the next test's output."""
    from agent import redaction

    monkeypatch.setattr(redaction, "_HELD", set())


@pytest.fixture
def host_box(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> HostSandbox:
    """A sandbox on this machine (tests/host_sandbox.py) whose repository is `tmp_path/repo`; the lint's
    copies of edited files go to `tmp_path/checks`, not to its path inside a container."""
    from tests.host_sandbox import HostSandbox
    from tools import lint

    monkeypatch.setattr(lint, "CHECK_DIR", str(tmp_path / "checks"))
    return HostSandbox(tmp_path / "repo")


@pytest.fixture
def host_ctx(host_box: HostSandbox) -> ToolContext:
    """The tools' context over `host_box`, commands limited to 60 seconds."""
    from tools.base import ToolContext

    return ToolContext(sandbox=host_box, command_timeout=60)
