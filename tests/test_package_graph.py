"""Imports go one way: CLI -> workflows (agent fix/ci, evals) -> loop, model, settings -> tools -> sandbox.

`evals` is a workflow above the agent's core: it imports errors, settings and the loop's
entry point from `agent`, and nothing in `agent` but the CLI (the top layer, which wires
every command) imports `evals`. Every import statement counts, those inside functions too.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def imports_of(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def modules(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


def offenders(paths: list[Path], forbidden: tuple[str, ...]) -> list[str]:
    inside = tuple(f"{prefix}." for prefix in forbidden)
    return [f"{path.relative_to(ROOT)} imports {name}" for path in paths for name in sorted(imports_of(path))
            if name in forbidden or name.startswith(inside)]


def test_only_the_cli_imports_evals() -> None:
    below_cli = [path for path in modules("agent") if "cli" not in path.relative_to(ROOT / "agent").parts
                 and path.name != "__main__.py"]
    assert offenders(below_cli, ("evals",)) == []


@pytest.mark.parametrize("package", ["evals", "tools", "sandbox"])
def test_nothing_below_imports_the_cli(package: str) -> None:
    assert offenders(modules(package), ("agent.cli",)) == []


@pytest.mark.parametrize("package", ["tools", "sandbox"])
def test_tools_and_sandbox_know_neither_agent_nor_evals(package: str) -> None:
    assert offenders(modules(package), ("agent", "evals")) == []


def test_commands_do_not_import_each_other() -> None:
    commands = [path for path in modules("agent/cli") if path.name != "__init__.py"]
    assert offenders(commands, tuple(f"agent.cli.{path.stem}" for path in commands)) == []
