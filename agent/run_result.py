"""What one run of the loop came to: `RunResult`.

Its own module, free of the model client's imports, so that a run interrupted while those
imports are still loading (a signal in the first second of `agent fix`) can still be given
its result without importing them again from a half-imported state.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class RunResult:
    """How a run ended (`status`, one of agent.loop.STATUSES), its patch, and what it cost: tokens,
    dollars (`cost`, None when unknown) and seconds (`elapsed`, `model_time`)."""

    status: str
    message: str
    patch: str
    steps: int
    prompt_tokens: int
    completion_tokens: int
    cost: float | None
    elapsed: float
    prefix_reuse: float | None
    compactions: int
    last_tests: dict[str, Any] | None = None
    model_time: float = 0.0  # seconds spent waiting for the model, compaction requests included
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def has_patch(self) -> bool:
        return bool(self.patch.strip())
