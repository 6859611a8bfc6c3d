"""`agent doctor`: check the environment, one line per check, with a fix when it fails."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape

HELP = "Check Docker, the sandbox image, git, config files and the model endpoint; print a fix for each failure."


def doctor(
    path: Path = typer.Option(Path("."), "-C", help="Check the configuration of this repository."),
    no_model: bool = typer.Option(False, "--no-model", help="Skip the model endpoint checks."),
) -> None:
    from agent.doctor import run_checks

    console = Console(highlight=False)
    failures = 0
    for check in run_checks(path, probe_model=not no_model):
        mark = "[green]ok  [/]" if check.ok and not check.warning else "[yellow]warn[/]" if check.ok or check.warning else "[red]fail[/]"
        failures += not check.ok and not check.warning
        fix = f"  [dim]-> {escape(check.fix)}[/]" if check.fix and (not check.ok or check.warning) else ""
        console.print(f"{mark} {escape(check.what)}{fix}", soft_wrap=True)
    if failures:
        raise typer.Exit(3)
