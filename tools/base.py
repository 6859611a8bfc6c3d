"""The tool protocol: a JSON schema the model sees, and a host-side call against a sandbox.

Tools never know about the loop: they get arguments and a `ToolContext`, and return an
`Observation`. The one way a tool steers the run is raising `Submitted`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from sandbox.base import Sandbox
from tools.encoding import OUTPUT_NOTE, has_raw_bytes, visible


@dataclass(frozen=True)
class ToolSpec:
    """What the model is told about a tool."""

    name: str
    description: str
    parameters: dict[str, Any]

    def to_openai(self) -> dict[str, Any]:
        return {
            "type": "function",
            "function": {"name": self.name, "description": self.description, "parameters": self.parameters},
        }


@dataclass
class Observation:
    """What a tool call produced, as the model will read it.

    Tools show file contents by each file's rule and names one by one (tools/encoding.py), so
    their text carries no lone surrogate. Whatever still does (the output of a command run by
    `run_tests` or `submit`) is treated as command output here: escaped as a whole, with
    `OUTPUT_NOTE`, so the model, the trajectory and the terminal never get a lone surrogate.
    """

    text: str
    is_error: bool = False
    data: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if has_raw_bytes(self.text):
            self.text = visible(self.text) + f"\n[Note: {OUTPUT_NOTE}.]"


@dataclass
class ToolContext:
    """What every tool may use: the sandbox and the run's limits, never the loop."""

    sandbox: Sandbox
    task: str = ""
    base_commit: str | None = None
    command_timeout: float = 120.0
    max_command_timeout: float = 1800.0
    observation_max_chars: int = 20_000
    test_cmd: str | None = None
    cache_dir: str | None = None
    state: dict[str, Any] = field(default_factory=dict)


class Tool(Protocol):
    spec: ToolSpec

    def __call__(self, args: dict[str, Any], ctx: ToolContext) -> Observation: ...


class ToolError(Exception):
    """A call the model can fix: the message tells it what was wrong and what is expected."""


class Submitted(Exception):
    """The model submitted; carries the final patch (possibly empty)."""

    def __init__(self, patch: str, message: str = "") -> None:
        super().__init__(message or ("submitted an empty patch" if not patch.strip() else "submitted"))
        self.patch = patch


def argument_errors(spec: ToolSpec, args: Any) -> list[str]:
    """Every way `args` breaks the tool's schema, worded for the model."""
    if not isinstance(args, dict):
        return [f"arguments for {spec.name} must be a JSON object, got {type(args).__name__}"]
    import jsonschema  # a tenth of `agent fix`'s start-up imports: paid at the first tool call instead

    validator = jsonschema.Draft202012Validator(spec.parameters)
    errors = []
    for error in sorted(validator.iter_errors(args), key=lambda e: list(e.path)):
        where = ".".join(str(p) for p in error.path)
        errors.append(f"{spec.name}: {where + ': ' if where else ''}{error.message}")
    return errors


def call_tool(tool: Tool, args: Any, ctx: ToolContext) -> Observation:
    """Validate, then call; a `ToolError` or bad arguments become an error observation."""
    problems = argument_errors(tool.spec, args)
    if problems:
        expected = ", ".join(
            f"{name}{'' if name in tool.spec.parameters.get('required', []) else '?'}"
            for name in tool.spec.parameters.get("properties", {})
        )
        return Observation("Invalid arguments: " + "; ".join(problems) + f". Expected parameters: {expected}.",
                           is_error=True)
    try:
        return tool(args, ctx)
    except ToolError as exc:
        return Observation(str(exc), is_error=True)
