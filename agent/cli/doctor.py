"""`agent doctor`: check the environment, one line per check, with a fix when it fails."""

from __future__ import annotations

import shutil
import subprocess

import typer
from rich.console import Console

HELP = "Check Docker, the sandbox image, git and the model endpoint; print a fix for each failure."
console = Console(highlight=False)


def doctor() -> None:
    from sandbox.base import SandboxError
    from sandbox.docker import connect
    from sandbox.images import default_image, image_exists

    failures = 0

    def report(ok: bool, what: str, fix: str = "") -> None:
        nonlocal failures
        failures += not ok
        mark = "[green]ok[/]  " if ok else "[red]fail[/]"
        console.print(f"{mark} {what}" + (f"  [dim]-> {fix}[/]" if fix and not ok else ""))

    git = shutil.which("git")
    report(bool(git), f"git {_version(['git', '--version']) if git else 'not found'}", "install git")
    try:
        client = connect(timeout=10)
        report(True, f"Docker {client.version().get('Version', '?')} reachable")
        tag = default_image()
        report(image_exists(client, tag), f"default image {tag}", "build it with 'agent sandbox build'")
    except SandboxError as exc:
        report(False, str(exc))
    if failures:
        raise typer.Exit(3)


def _version(cmd: list[str]) -> str:
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        return "?"
