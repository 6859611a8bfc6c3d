"""Fixtures shared by every test directory."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.fakes.openai_server import FakeOpenAIServer


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
