"""Errors the CLI turns into one line and an exit code.

Exit codes are part of the interface: 2 usage or config, 3 environment
(Docker, model server, image), 129 interrupted by SIGHUP, 130 by SIGINT, 143 by SIGTERM
(docs/ending-runs.md).
"""

from __future__ import annotations


class AgentError(Exception):
    """An error with a one-line message for the user and an exit code."""

    exit_code: int = 1


class UsageError(AgentError):
    """Bad flags, bad config values, bad input files."""

    exit_code = 2


class EnvironmentProblem(AgentError):
    """Something outside our code is missing or broken: Docker, the model server, an image."""

    exit_code = 3


# The extra (pyproject's optional-dependencies) that installs each optional top-level module.
EXTRA_OF_MODULE = {
    "githubkit": "ci",
    "swebench": "eval",
    "datasets": "eval",
    "huggingface_hub": "eval",
    "pyarrow": "eval",
    "ray": "ray",
}


class MissingExtra(UsageError):
    """An optional feature was used without the extra that installs its libraries (exit 2)."""

    def __init__(self, extra: str, module: str) -> None:
        super().__init__(f"this needs the '{extra}' extra ({module} is not installed): pip install 'moe-agent[{extra}]'")
        self.extra = extra


def missing_extra(exc: ModuleNotFoundError) -> MissingExtra | None:
    """The `MissingExtra` behind a failed import of an optional module; None for any other module."""
    module = (exc.name or "").partition(".")[0]
    extra = EXTRA_OF_MODULE.get(module)
    return MissingExtra(extra, module) if extra else None
