"""`agent ci`: reserved; filled by its own issue."""

from __future__ import annotations

import typer

from agent.errors import UsageError

app = typer.Typer(help="(coming) the ci commands.", no_args_is_help=True)


@app.command("status")
def status() -> None:
    """Say that this group is not available yet."""
    raise UsageError("'agent ci' is not available in this version yet")
