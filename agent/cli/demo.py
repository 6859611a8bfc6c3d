"""`agent demo`: the quick start's main job."""

from __future__ import annotations

import typer
from rich.console import Console

HELP = "Fix a bug in a small bundled project with a recorded session: real loop, real Docker sandbox, no model server."


def demo(keep: bool = typer.Option(False, "--keep", help="Keep the demo repository (its path is printed).")) -> None:
    from agent.demo import run_demo

    outcome = run_demo(Console(highlight=False), keep=keep)
    raise typer.Exit(outcome.exit_code)
