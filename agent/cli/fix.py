"""`agent fix`: reserved; filled by the fix-workflow issue."""

from __future__ import annotations

from agent.errors import UsageError

HELP = "Fix an issue in the current git repository and leave a tested patch on a new branch."


def fix() -> None:
    raise UsageError("'agent fix' is not available in this version yet")
