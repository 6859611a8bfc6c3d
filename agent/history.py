"""The conversation, append-only, so the server's prefix cache hits on every request.

vLLM and SGLang reuse the KV cache of the longest prompt prefix they have seen. Rewriting
an early message (truncating an old observation, say) throws that away for everything
after it, so observations are capped when appended and never touched again. The one
exception is compaction, done once when the context is full, and recorded.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from sandbox.output import cap_text

Message = dict[str, Any]


def _serialise(message: Message) -> str:
    return json.dumps(message, sort_keys=True, ensure_ascii=False)


@dataclass
class PrefixStats:
    """How much of each request the previous request already sent."""

    requests: int = 0
    prompt_tokens: int = 0
    shared_tokens: int = 0

    @property
    def reuse(self) -> float | None:
        """Shared prefix tokens over prompt tokens, for every request after the first."""
        return round(self.shared_tokens / self.prompt_tokens, 4) if self.prompt_tokens else None


@dataclass
class History:
    """Messages in order; `observation_max_chars` caps what tools add, at append time."""

    observation_max_chars: int = 20_000
    messages: list[Message] = field(default_factory=list)
    stats: PrefixStats = field(default_factory=PrefixStats)
    _serialised: list[str] = field(default_factory=list)
    _sent: list[str] = field(default_factory=list)

    def append(self, message: Message) -> Message:
        self.messages.append(message)
        self._serialised.append(_serialise(message))
        return message

    def append_observation(self, message: Message) -> Message:
        text, _ = cap_text(message.get("content") or "", self.observation_max_chars)
        return self.append({**message, "content": text})

    def chars(self) -> int:
        return sum(map(len, self._serialised))

    def record_request(self, prompt_tokens: int | None, tools: list[dict[str, Any]] | None = None) -> dict[str, Any]:
        """Measure the prefix this request shares with the previous one, in chars and tokens.

        Tool schemas count as the first part of the prompt: chat templates render them
        into the system turn, ahead of every message.
        """
        current = [json.dumps(tools or [], sort_keys=True), *self._serialised]
        shared = 0
        for old, new in zip(self._sent, current):
            if old != new:
                shared += len(_common_prefix(old, new))
                break
            shared += len(new)
        total = sum(len(s) for s in current) or 1
        tokens = prompt_tokens if prompt_tokens is not None else total // 4
        shared_tokens = round(tokens * shared / total)
        if self._sent:
            self.stats.requests += 1
            self.stats.prompt_tokens += tokens
            self.stats.shared_tokens += shared_tokens
        self._sent = current
        return {"prompt_tokens": tokens, "shared_prefix_tokens": shared_tokens, "shared_prefix_chars": shared,
                "prompt_chars": total}

    def compact(self, summary: str, keep_head: int, keep_recent: int) -> tuple[int, int]:
        """Replace the middle with a summary; keep the first `keep_head` and a tail of whole turns.

        Returns (messages before, messages after). The tail starts at an assistant message,
        so a tool result is never separated from the call it answers.
        """
        before = len(self.messages)
        start = max(keep_head, before - keep_recent)
        while start < before and self.messages[start].get("role") != "assistant":
            start += 1
        note = {"role": "user", "content": summary}
        kept = self.messages[:keep_head] + [note] + self.messages[start:]
        self.messages, self._serialised = [], []
        for message in kept:
            self.append(message)
        return before, len(self.messages)


def _common_prefix(a: str, b: str) -> str:
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return a[:n]
