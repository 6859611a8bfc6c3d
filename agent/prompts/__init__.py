"""Prompt templates live in files next to this module; config may override each one.

Templates use `$name` placeholders (string.Template), so code with braces needs no escaping.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from string import Template

HERE = Path(__file__).parent
NAMES = ("system", "task", "format_error", "compaction", "compacted", "repeated_action", "follow_up")


def _load(value: str | None, name: str) -> str:
    """The built-in template, or the override's text as given.

    Settings have already read a template file a config value names (`agent.config`, where a
    repository's paths are checked); reading a value as a path again here would let a repository's
    `~/.aws/credentials` or `/proc/self/environ`, taken there for text, into the prompt.
    """
    if value is None:
        return (HERE / f"{name}.md").read_text(encoding="utf-8")
    return value


@dataclass(frozen=True)
class Prompts:
    system: str
    task: str
    format_error: str
    compaction: str
    compacted: str
    repeated_action: str
    follow_up: str

    @classmethod
    def load(cls, overrides: dict[str, str | None] | None = None) -> Prompts:
        overrides = overrides or {}
        return cls(**{name: _load(overrides.get(name), name) for name in NAMES})

    @staticmethod
    def render(template: str, **values: object) -> str:
        return Template(template).safe_substitute({k: str(v) for k, v in values.items()})
