"""`agent doctor`: check the environment, one line per check, with a fix when it fails."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape

from agent.errors import EnvironmentProblem

HELP = "Check Docker, the sandbox image, git, config files and the model endpoint; print a fix for each failure."


def doctor(
    path: Path = typer.Option(Path("."), "-C", help="Check the configuration of this repository."),
    no_model: bool = typer.Option(False, "--no-model", help="Skip the model endpoint checks."),
) -> None:
    from agent.doctor import run_checks

    console = Console(highlight=False)
    failed: list[str] = []
    with Console(stderr=True, highlight=False).status("checking git and Docker") as live:  # shown on terminals only
        for check in run_checks(path, probe_model=not no_model, status=lambda text: live.update(escape(text))):
            mark = "[green]ok  [/]" if check.ok and not check.warning else "[yellow]warn[/]" if check.ok or check.warning else "[red]fail[/]"
            if not check.ok and not check.warning:
                failed.append(check.what)
            fix = f"  [dim]-> {escape(check.fix)}[/]" if check.fix and (not check.ok or check.warning) else ""
            console.print(f"{mark} {escape(check.what)}{fix}", soft_wrap=True)
    if failed:
        more = f" (and {len(failed) - 1} more failed check{'s' if len(failed) > 2 else ''})" if len(failed) > 1 else ""
        raise EnvironmentProblem(f"{failed[0]}{more}")
