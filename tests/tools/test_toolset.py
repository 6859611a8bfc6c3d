"""The tool registry: names, schemas, picking a toolset, and every tool surviving bad arguments."""

from __future__ import annotations

import jsonschema
import pytest

from tools.base import call_tool
from tools.toolset import ALL_TOOLS, UnknownTool, build_toolset

EXPECTED = ["bash", "str_replace_editor", "search", "repo_map", "outline", "run_tests", "submit"]


def test_registry_names_match_specs_and_schemas_are_valid() -> None:
    assert list(ALL_TOOLS)[: len(EXPECTED)] == EXPECTED
    for name, tool in ALL_TOOLS.items():
        assert tool.spec.name == name and len(tool.spec.description) > 40
        jsonschema.Draft202012Validator.check_schema(tool.spec.parameters)
        function = tool.spec.to_openai()["function"]
        assert function["name"] == name and function["parameters"]["type"] == "object"


def test_build_toolset_all_or_named_always_with_submit() -> None:
    assert [t.spec.name for t in build_toolset(None)] == list(ALL_TOOLS)
    assert [t.spec.name for t in build_toolset(["search", "bash"])] == ["search", "bash", "submit"]
    assert [t.spec.name for t in build_toolset(["submit", "bash", "bash"])] == ["submit", "bash"]
    assert [t.spec.name for t in build_toolset([])] == ["submit"]


def test_unknown_tool_names_are_listed_with_the_valid_ones() -> None:
    with pytest.raises(UnknownTool) as raised:
        build_toolset(["bash", "grep", "editor"])
    message = str(raised.value)
    assert "'grep', 'editor'" in message and "available tools: bash, str_replace_editor" in message
    assert isinstance(raised.value, ValueError)


@pytest.mark.docker
def test_every_tool_turns_bad_arguments_into_an_error_observation(ctx) -> None:
    for name, tool in ALL_TOOLS.items():
        required = tool.spec.parameters.get("required", [])
        for args in ({"unexpected": True}, ["not", "an", "object"], None, *([{}] if required else [])):
            obs = call_tool(tool, args, ctx)
            assert obs.is_error and obs.text.startswith("Invalid arguments"), (name, args, obs.text)
