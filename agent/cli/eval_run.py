"""`agent eval run`: batch inference over SWE-bench tasks, with live progress and resume."""

from __future__ import annotations

import time
from contextlib import closing
from pathlib import Path

import typer
from rich.console import Console

from agent.errors import EnvironmentProblem, UsageError
from agent.terminal import escape


def run(
    dataset: str = typer.Option(..., "--dataset", "-d", help="A .json/.jsonl/.parquet file or a Hugging Face dataset name."),
    split: str = typer.Option("test", help="Dataset split (Hugging Face datasets)."),
    output: Path = typer.Option(Path("runs/eval"), "--output", "-o", help="Where predictions.jsonl and trajectories go."),
    instance_ids: list[str] | None = typer.Option(None, "--instance-ids", help="Only these instances (repeatable)."),
    filter_regex: str | None = typer.Option(None, "--filter", help="Only instance ids matching this regex."),
    slice_spec: str | None = typer.Option(None, "--slice", help="A slice of the selection, e.g. 0:50."),
    shuffle: bool = typer.Option(False, "--shuffle", help="Shuffle before slicing."),
    seed: int = typer.Option(0, "--seed", help="Seed for --shuffle."),
    only_validated: Path | None = typer.Option(None, "--only-validated", help="Keep instances listed in this file."),
    workers: int = typer.Option(
        1, "--workers", "-w", min=1, help="Instances run in parallel (--executor ray: slots of a cluster started here)."
    ),
    timeout: float = typer.Option(1800, "--timeout", help="Per-instance time limit in seconds."),
    model: str | None = typer.Option(None, "--model", "-m", help="Served model name (AGENT_MODEL)."),
    base_url: str | None = typer.Option(None, "--base-url", help="OpenAI-compatible endpoint (OPENAI_BASE_URL)."),
    step_limit: int | None = typer.Option(None, "--step-limit", help="Model calls per instance."),
    repos: str | None = typer.Option(None, "--repos", help="Repository source: a folder of mirrors or a URL template."),
    recipes: list[Path] | None = typer.Option(None, "--recipes", help="Extra recipe folders."),
    blobs: list[Path] | None = typer.Option(None, "--blobs", help="Files or folders holding blobs a partial mirror "
                                            "lacks; a file is used only for the blob whose git id it has."),
    image_source: str = typer.Option("auto", "--images", help="auto, pull or build."),
    executor_kind: str = typer.Option(
        "local", "--executor", help="local (threads here) or ray (tasks on a Ray cluster's nodes)."
    ),
    ray_address: str | None = typer.Option(
        None, "--ray-address", help="A Ray cluster's host:port, or auto (default: $RAY_ADDRESS, a cluster "
        "'ray start' runs here, else one started for this run)."
    ),
    attempts: int = typer.Option(1, "--attempts", min=1, help="Attempts per instance, run at once; the prediction "
                                 "is the patch the checks choose (never by the instance's own tests)."),
    attempts_temperature: float | None = typer.Option(None, "--attempts-temperature", min=0, max=2,
                                                      help="Sampling temperature of the attempts."),
) -> None:
    """Run the agent on each task in its image; write predictions.jsonl in the official format."""
    from agent.attempts import AttemptPlan
    from agent.config import load_settings
    from agent.endpoints import EndpointPool
    from evals.blobs import BlobStore
    from evals.datasets import load_instances, select
    from evals.executors import make_executor
    from evals.images import ImageBuilder, ImageSource, RecipeBook
    from evals.repos import RepoSource
    from evals.run import FINISHED, BatchOptions, InstanceOutcome, run_batch
    from evals.validation import keep_validated
    from sandbox.docker import connect

    settings = load_settings(None, overrides={"model.name": model, "model.base_url": base_url,
                                              "loop.step_limit": step_limit})
    try:
        source = ImageSource(image_source)
    except ValueError:
        raise UsageError(f"--images {image_source!r}: use auto, pull or build") from None
    rows = load_instances(dataset, split)
    chosen = select(rows, instance_ids=instance_ids, filter_regex=filter_regex,
                    slice_spec=slice_spec, shuffle=shuffle, seed=seed)
    chosen = keep_validated(chosen, only_validated)
    if not chosen:
        raise UsageError("no instances selected")
    repo_source, recipe_book = RepoSource.configured(repos), RecipeBook(recipes or [])  # bad flags fail first
    blob_store = BlobStore(blobs) if blobs else None
    options = BatchOptions(output=output, model_name=settings.model.name, workers=workers, instance_timeout=timeout,
                           attempts=AttemptPlan(attempts, attempts_temperature))
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
    from rich.table import Table

    console = Console(stderr=True, highlight=False)
    counts = {"running": 0, "failed": 0, "tokens": 0}
    progress = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                        TextColumn("{task.fields[detail]}"), TimeElapsedColumn(), TimeRemainingColumn(),
                        console=console)

    def on_update(kind: str, item) -> None:
        if kind == "start":
            counts["running"] += 1
        else:
            outcome: InstanceOutcome = item
            counts["running"] -= 1
            counts["failed"] += outcome.status in ("error", "model_error", "sandbox_error")
            counts["tokens"] += outcome.prompt_tokens + outcome.completion_tokens
            mark = "[green]✓" if outcome.patch else "[red]✗" if outcome.error else "[yellow]∅"
            progress.console.print(f"{mark}[/] {escape(outcome.instance_id)} {escape(outcome.status)} "
                                   f"{outcome.steps} steps {outcome.elapsed:.0f}s {escape(outcome.error[:100])}")
            progress.advance(task)
        progress.update(task, detail=f"running {counts['running']} · failed {counts['failed']} · "
                                     f"{counts['tokens'] / 1000:.0f}k tokens")

    started = time.monotonic()
    with closing(make_executor(executor_kind, workers, ray_address)) as executor:
        # With Ray each node builds and runs on its own Docker engine: this machine needs none.
        builder = ImageBuilder(connect() if executor_kind == "local" else None, repo_source, recipe_book,
                               source=source, ca_bundle=settings.sandbox.ca_bundle, dataset=tuple(rows),
                               blobs=blob_store)
        with progress:
            task = progress.add_task("instances", total=len(chosen), detail="")
            summary = run_batch(chosen, builder, EndpointPool(settings.model), settings, options,
                                on_update=on_update, executor=executor,
                                note=lambda line: progress.console.print(f"note: {escape(line)}"))
    table = Table("status", "instances", title=f"{len(chosen)} instances, {summary.skipped} already done, "
                                                f"{time.monotonic() - started:.0f}s")
    statuses: dict[str, int] = {}
    for outcome in summary.outcomes:
        statuses[outcome.status] = statuses.get(outcome.status, 0) + 1
    for status, n in sorted(statuses.items()):
        table.add_row(status, str(n))
    table.add_row("with a patch", str(sum(1 for o in summary.outcomes if o.patch)))
    if summary.interrupted:
        from sandbox.cleanup import interrupted_by, mark_reported

        mark_reported()
        try:  # SIGHUP: the terminal may be gone; the batch's files and the exit code still say it
            console.print(table)
            console.print(f"[bold red]error:[/] interrupted (the instances in flight end `interrupted` and are not "
                          f"recorded; the same command again runs them: {escape(str(output / 'predictions.jsonl'))})",
                          soft_wrap=True)
        except OSError:
            pass
        raise typer.Exit(128 + (interrupted_by() or 2))  # 129 for SIGHUP, 130 for Ctrl-C, 143 for SIGTERM
    console.print(table)
    console.print(f"predictions: {output / 'predictions.jsonl'}")
    failed = [o for o in summary.outcomes if o.status not in FINISHED]
    if failed and len(failed) == len(summary.outcomes):  # not one ran to its end: the setup, not the tasks
        raise EnvironmentProblem(f"no instance finished ({len(failed)} tried); {failed[0].instance_id}: "
                                 f"{failed[0].error or failed[0].status}; see {output / 'results.jsonl'}, "
                                 "and rerun to try them again")
