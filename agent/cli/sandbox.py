"""`agent sandbox`: build the default image, list and prune leftover containers."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from agent.errors import UsageError

app = typer.Typer(help="Build the sandbox image; list and remove leftover sandbox containers.", no_args_is_help=True)
console = Console(highlight=False)


@app.command("build")
def build(
    offline: bool | None = typer.Option(
        None, "--offline/--online",
        help="debootstrap + docker import (no registry) or a Dockerfile; default: offline when no registry answers.",
    ),
    release: str = typer.Option("bookworm", help="Debian release for the image (bullseye, bookworm, trixie)."),
    ca_bundle: Path | None = typer.Option(
        None, "--ca-bundle", envvar="AGENT_CA_BUNDLE",
        help="Extra PEM CA bundle to trust (TLS-intercepting proxies); baked into the image.",
    ),
    mirror: str | None = typer.Option(None, help="Debian mirror for the offline build."),
    force: bool = typer.Option(False, "--force", help="Rebuild even if an image with the same content hash exists."),
    timeout: float = typer.Option(1800, help="Give up after this many seconds."),
) -> None:
    """Build (or reuse) the default sandbox image: bash, git, python3, ripgrep, patch."""
    from sandbox.certs import bundle_problem
    from sandbox.docker import connect
    from sandbox.images import DEFAULT_MIRROR, RELEASE_PYTHON, ImageRecipe, build_image

    if release not in RELEASE_PYTHON:
        raise UsageError(f"unknown release {release!r}: use one of {', '.join(RELEASE_PYTHON)}")
    if ca_bundle is not None and (problem := bundle_problem(ca_bundle)):
        raise UsageError(f"--ca-bundle: {problem}")
    recipe = ImageRecipe(release=release, ca_bundle=ca_bundle, mirror=mirror or DEFAULT_MIRROR)
    client = connect()
    with console.status(f"building {recipe.tag}") as status:
        tag = build_image(recipe, client, offline=offline, force=force, timeout=timeout,
                          echo=lambda step: status.update(f"{recipe.tag}: {step}"))
    console.print(f"[green]ready[/] {tag}")


@app.command("ls")
def ls(as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """List sandbox containers (this machine's, found by label)."""
    from sandbox.cleanup import leftovers
    from sandbox.docker import connect

    found = leftovers(connect())
    if as_json:
        typer.echo(json.dumps([item.__dict__ for item in found]))
        return
    if not found:
        console.print("no sandbox containers")
        return
    table = Table("id", "run", "image", "status", "age", "owner")
    for item in found:
        owner = f"{item.pid or '?'}@{item.host or '?'} ({item.owner})"
        table.add_row(item.id[:12], item.run_id, item.image, item.status, _age(item.age_seconds), owner)
    console.print(table)


@app.command("prune")
def prune(
    older_than: str = typer.Option("0s", "--older-than", help="Only containers older than this (30m, 2h, 1d)."),
    run: str | None = typer.Option(None, "--run", help="Only containers of this run id (or eval batch id)."),
    force: bool = typer.Option(False, "--force", help="Also containers whose run is alive, or on another host."),
) -> None:
    """Remove leftover sandbox containers and temporary copies: those whose run's process is gone, unless --force."""
    from sandbox import cleanup
    from sandbox.docker import connect

    try:
        age = cleanup.parse_age(older_than)
    except ValueError as exc:
        raise UsageError(f"--older-than: {exc}") from None
    client = connect()
    removed = cleanup.prune(client, older_than=age, run_id=run, force=force)
    console.print(f"removed {len(removed)} container{'s' if len(removed) != 1 else ''}")
    copies = cleanup.reap_scratch()  # whatever --run says: a copy whose process is gone is nobody's
    if copies:
        console.print(f"removed {len(copies)} temporary cop{'ies' if len(copies) != 1 else 'y'} of runs that are gone")
    kept = [item for item in cleanup.leftovers(client, run) if item.owner != "gone" and item.age_seconds >= age]
    if kept and not force:
        console.print(f"kept {len(kept)} whose run is alive or on another host (--force removes them too)")


def _age(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds / size:.0f}{unit}"
    return f"{seconds:.0f}s"
