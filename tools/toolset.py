"""The registry of tools the model may be given, and the toolset a run asks for by name."""

from __future__ import annotations

from tools.base import Tool
from tools.code_map import outline_tool, repo_map
from tools.editor import str_replace_editor
from tools.search import search
from tools.shell import bash
from tools.submit import submit
from tools.tests import run_tests

# Every tool by the name the model calls it, in the order the model sees them.
# New tools (the repo map / outline tool is next) are imported above and added to this tuple.
ALL_TOOLS: dict[str, Tool] = {
    tool.spec.name: tool
    for tool in (
        bash,
        str_replace_editor,
        search,
        repo_map,
        outline_tool,
        run_tests,
        submit,
    )
}


class UnknownTool(ValueError):
    """A configured tool name that no tool answers to; the message lists the valid names.

    A ValueError, so that a pydantic validator on `tools.enabled` can call `build_toolset`
    and have bad names reported as a config error.
    """


def build_toolset(names: list[str] | None = None) -> list[Tool]:
    """The tools for a run: all of them, or the ones named (always with `submit`, the only way to finish)."""
    if names is None:
        return list(ALL_TOOLS.values())
    unknown = [name for name in names if name not in ALL_TOOLS]
    if unknown:
        raise UnknownTool(f"unknown tool{'s' if len(unknown) > 1 else ''} {', '.join(map(repr, unknown))} in "
                          f"tools.enabled; available tools: {', '.join(ALL_TOOLS)}")
    wanted = dict.fromkeys([*names, submit.spec.name])
    return [ALL_TOOLS[name] for name in wanted]
