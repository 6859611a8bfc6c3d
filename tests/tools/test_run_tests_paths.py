"""run_tests given a path that does not exist runs nothing and says which files of that name there are.

Seen against llama.cpp with Qwen2.5-Coder-1.5B: told `python3 test_stats.py` fails, it called run_tests
with paths=["tests/test_stats.py"]; the script runner reported "1 failed" (python's "can't open file"),
and the model went looking for that message in the code. Fast: no Docker (tests/host_sandbox.py)."""

from __future__ import annotations

from pathlib import Path

from tests.host_sandbox import HostSandbox
from tools.base import ToolContext, call_tool
from tools.tests import RunTestsTool


def context(tmp_path: Path) -> ToolContext:
    repo = tmp_path / "repo"
    (repo / "pkg").mkdir(parents=True)
    (repo / "test_stats.py").write_text("assert 1 + 1 == 2\n")
    (repo / "pkg" / "test_stats.py").write_text("assert True\n")
    return ToolContext(sandbox=HostSandbox(repo), test_cmd="python3")


def test_a_missing_test_file_is_named_with_the_files_of_that_name(tmp_path: Path) -> None:
    ctx = context(tmp_path)
    obs = call_tool(RunTestsTool(), {"paths": ["tests/test_stats.py::test_largest"]}, ctx)
    assert obs.is_error and obs.text.startswith("Nothing was run. tests/test_stats.py does not exist")
    assert "files of that name: " in obs.text and "pkg/test_stats.py" in obs.text and " test_stats.py" in obs.text
    assert not any(command.startswith("python3") for command in ctx.sandbox.commands)  # the runner never ran


def test_existing_paths_and_patterns_go_to_the_runner(tmp_path: Path) -> None:
    ctx = context(tmp_path)
    assert not call_tool(RunTestsTool(), {"paths": ["test_stats.py", "pkg/"]}, ctx).is_error
    ctx.sandbox.commands.clear()
    call_tool(RunTestsTool(), {"paths": ["pkg/*.py", "./pkg/..."]}, ctx)
    assert not any("[ -e" in command for command in ctx.sandbox.commands)  # patterns are the runner's business


def test_a_missing_file_with_no_namesake_says_so_plainly(tmp_path: Path) -> None:
    obs = call_tool(RunTestsTool(), {"paths": ["nowhere/test_x.py"]}, context(tmp_path))
    assert obs.is_error and "nowhere/test_x.py does not exist in the repository. Give paths relative" in obs.text
