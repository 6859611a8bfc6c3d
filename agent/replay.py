"""A model that answers with the replies recorded in a trajectory, in order.

Replaying a run through the same loop, in a fresh sandbox, shows whether its tool calls
still produce the same patch; the demo and the tests use it where no model server exists.
"""

from __future__ import annotations

from typing import Any

from agent.model import ModelError, ModelReply, Usage
from agent.trajectory import Trajectory


class ReplayExhausted(ModelError):
    """The recorded run had no more replies."""


class ReplayModel:
    """Serves recorded replies; compaction summaries are served as recorded too."""

    label = "replay"

    def __init__(self, replies: list[dict[str, Any]], context_window: int = 1_000_000) -> None:
        self._replies = list(replies)
        self._next = 0
        self._window = context_window
        self.max_tokens: int | None = None

    @classmethod
    def from_trajectory(cls, trajectory: Trajectory) -> ReplayModel:
        replies = []
        for event in trajectory.events:
            if event["type"] == "response":
                replies.append(event)
            elif event["type"] == "compaction":
                replies.append({"content": event.get("summary", "")})
        return cls(replies)

    def query(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]], **_: Any) -> ModelReply:
        """The next recorded reply; deadlines and progress do not apply to a recording."""
        if self._next >= len(self._replies):
            raise ReplayExhausted(f"the recorded run has no reply for request {self._next + 1}")
        event = self._replies[self._next]
        self._next += 1
        usage = event.get("usage") or {}
        return ModelReply(
            content=event.get("content"),
            native_tool_calls=event.get("tool_calls") or [],
            reasoning=event.get("reasoning"),
            usage=Usage(prompt_tokens=usage.get("prompt_tokens", 0), completion_tokens=usage.get("completion_tokens", 0)),
            finish_reason=event.get("finish_reason"),
        )

    def context_window(self, deadline: float | None = None) -> int:
        return self._window
