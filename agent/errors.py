"""Errors the CLI turns into one line and an exit code.

Exit codes are part of the interface: 2 usage or config, 3 environment
(Docker, model server, image), 130 interrupted by SIGINT, 143 by SIGTERM
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
