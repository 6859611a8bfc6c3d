"""The GitHub Actions workflow that runs `agent ci`, as `agent ci init` writes it."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from agent.errors import UsageError

WORKFLOW_PATH = Path(".github/workflows/agent.yml")


def workflow_text() -> str:
    """The workflow as shipped in the package (`agent/ci_workflow.yml`)."""
    return resources.files("agent").joinpath("ci_workflow.yml").read_text(encoding="utf-8")


def write_workflow(repo_root: Path, force: bool = False) -> Path:
    """Write `.github/workflows/agent.yml`; an existing one is kept unless `force`."""
    target = repo_root / WORKFLOW_PATH
    if target.exists() and not force:
        raise UsageError(f"{target} already exists; pass --force to overwrite it")
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(workflow_text(), encoding="utf-8")
    return target
