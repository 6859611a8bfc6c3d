"""What we know about each self-hosted model we target, so users need not tune it by hand.

Values come from the Qwen model cards: native context length, the sampling the Qwen team
recommends, and the text tool-call format each family was trained on (Qwen3-Coder writes
`<tool_call><function=...><parameter=...>` XML; Qwen3 writes Hermes-style JSON in
`<tool_call>` tags). The server's own `/v1/models` context length wins over ours when it
reports one, because vLLM/SGLang may be started with a shorter `--max-model-len` or YaRN.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from agent.errors import UsageError

TextToolFormat = Literal["hermes", "xml"]

_CODER_SAMPLING = {"temperature": 0.7, "top_p": 0.8, "top_k": 20, "repetition_penalty": 1.05}
_THINKING_SAMPLING = {"temperature": 0.6, "top_p": 0.95, "top_k": 20, "min_p": 0.0}
_NON_THINKING_SAMPLING = {"temperature": 0.7, "top_p": 0.8, "top_k": 20, "min_p": 0.0}


@dataclass(frozen=True)
class Profile:
    """Defaults for one model family; settings given by the user always win over these."""

    name: str
    pattern: str  # searched case-insensitively in the served model name
    context_window: int
    text_tool_format: TextToolFormat  # used when the server cannot do native tool calls
    sampling: Mapping[str, Any] = field(default_factory=dict)
    # Reply bound per request, in tokens (the client also caps it at a quarter of the window):
    # room for a whole-file edit, not for a runaway reply.
    max_tokens: int = 8192
    thinks: bool = False  # emits `<think>...</think>` before its answer
    # Hybrid models only: sampling once thinking is switched off through
    # `chat_template_kwargs: {enable_thinking: false}`.
    non_thinking_sampling: Mapping[str, Any] | None = None

    def thinks_with(self, extra_body: Mapping[str, Any]) -> bool:
        """Whether replies carry `<think>` given the request's `chat_template_kwargs`."""
        if self.non_thinking_sampling is None:
            return self.thinks
        template_kwargs = extra_body.get("chat_template_kwargs") or {}
        return bool(template_kwargs.get("enable_thinking", self.thinks))

    def sampling_with(self, extra_body: Mapping[str, Any]) -> dict[str, Any]:
        """The recommended sampling for the mode the request puts the model in."""
        if self.non_thinking_sampling is not None and not self.thinks_with(extra_body):
            return dict(self.non_thinking_sampling)
        return dict(self.sampling)


GENERIC = Profile(name="generic", pattern="", context_window=32768, text_tool_format="hermes", max_tokens=4096)

# Most specific first: the first profile whose pattern matches wins.
PROFILES: tuple[Profile, ...] = (
    Profile(
        name="qwen3-coder-480b-a35b",
        pattern=r"qwen3-coder-480b",
        context_window=262144,
        text_tool_format="xml",
        sampling=_CODER_SAMPLING,
    ),
    Profile(
        name="qwen3-coder-30b-a3b",
        pattern=r"qwen3-coder",
        context_window=262144,
        text_tool_format="xml",
        sampling=_CODER_SAMPLING,
    ),
    Profile(
        name="qwen3-235b-a22b-instruct-2507",
        pattern=r"qwen3-235b.*instruct",
        context_window=262144,
        text_tool_format="hermes",
        sampling=_NON_THINKING_SAMPLING,
    ),
    Profile(
        name="qwen3-235b-a22b-thinking-2507",
        pattern=r"qwen3-235b.*thinking",
        context_window=262144,
        text_tool_format="hermes",
        sampling=_THINKING_SAMPLING,
        thinks=True,
    ),
    # The original hybrid release: 32768 native, 131072 only when served with YaRN
    # (which the server then reports through /v1/models).
    Profile(
        name="qwen3-235b-a22b",
        pattern=r"qwen3-235b",
        context_window=32768,
        text_tool_format="hermes",
        sampling=_THINKING_SAMPLING,
        thinks=True,
        non_thinking_sampling=_NON_THINKING_SAMPLING,
    ),
    # Qwen2.5-Coder-Instruct (0.5B-32B): small models people try first on CPU or one GPU.
    # Its chat template writes Hermes-style `<tool_call>` JSON; sampling from its model card.
    Profile(
        name="qwen2.5-coder",
        pattern=r"qwen2\.5-coder",
        context_window=32768,
        text_tool_format="hermes",
        sampling={"temperature": 0.7, "top_p": 0.8, "top_k": 20, "repetition_penalty": 1.05},
        max_tokens=4096,
    ),
    GENERIC,
)

PROFILE_NAMES: tuple[str, ...] = tuple(profile.name for profile in PROFILES)


def pick_profile(model_name: str, explicit: str | None = None) -> Profile:
    """The profile named by `explicit`, or else the first whose pattern is in `model_name`.

    Served names vary (`Qwen/Qwen3-Coder-30B-A3B-Instruct-FP8`, `qwen3-coder`), so we
    match loosely; a name we do not know gets `generic` rather than an error.
    """
    if explicit and explicit != "auto":
        for profile in PROFILES:
            if profile.name == explicit:
                return profile
        raise UsageError(f"unknown model profile {explicit!r}; choose one of: auto, {', '.join(PROFILE_NAMES)}")
    for profile in PROFILES:
        if profile.pattern and re.search(profile.pattern, model_name, re.IGNORECASE):
            return profile
    return GENERIC
