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
