"""`agent eval`: build task images, grade predictions, grade test logs, read run reports.

swebench and Docker are imported inside the commands: they take seconds to load and
only these commands need them.
"""

from __future__ import annotations

import json
import sys
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.console import Console
from rich.table import Table

from agent.errors import EnvironmentProblem, UsageError
from agent.terminal import escape

if TYPE_CHECKING:
    from evals.datasets import TaskInstance
    from evals.grade import GradeRun, Prediction
    from evals.images import ImageBuilder, ImageOutcome
    from evals.report import RunComparison
    from evals.validation import Verdict

app = typer.Typer(help="Build SWE-bench task images, grade predictions and compare run reports.", no_args_is_help=True)
# Not on a terminal (a file, a pipe, CI): no wrapping at 80 columns, no cut table cells.
console = Console(highlight=False, soft_wrap=not sys.stdout.isatty(),
                  width=None if sys.stdout.isatty() else 100_000)

# The run report's own counts, in table order, so the table and the JSON agree.
OUTCOME_LABELS = {
    "resolved": "resolved",
    "unresolved": "unresolved",
    "error": "error (no report)",
    "empty_patch": "empty patch",
    "incomplete": "not submitted",
}
# Set apart inside unresolved + error (evals.report.failure_kind), shown under them.
APART_LABELS = {
    "infra_failure": "  of which environment failure",
    "ambiguous_failure": "  of which ambiguous failure",
}


@app.command("grade-log")
def grade_log_command(
    dataset: str = typer.Option(
        ..., "--dataset", help="Task rows: a .json/.jsonl/.parquet file or a Hugging Face dataset name."
    ),
    instance_id: str = typer.Option(..., "--instance-id", help="The instance the log belongs to."),
    log: Path = typer.Option(..., "--log", help="The test output (test_output.txt) to grade."),
    split: str = typer.Option("test", help="Split, for a Hugging Face dataset."),
    patch: Path | None = typer.Option(
        None, "--patch", help="The model patch (patch.diff); an empty file means the prediction had none."
    ),
) -> None:
    """Print the instance's report.json, graded by swebench's own parser and rules."""
    from evals.datasets import load_instances, select
    from evals.grade_log import grade_log

    if not log.is_file():
        raise UsageError(f"--log {log}: no such file")
    if patch is not None and not patch.is_file():
        raise UsageError(f"--patch {patch}: no such file")
    instance = select(load_instances(dataset, split), instance_ids=[instance_id], slice_spec=None)[0]
    log_text = log.read_text(encoding="utf-8", errors="replace")
    patch_missing = patch is not None and not patch.read_text(encoding="utf-8", errors="replace").strip()
    typer.echo(json.dumps(grade_log(instance, log_text, patch_missing=patch_missing), indent=4))


@app.command("report")
def report_command(
    run: Path = typer.Argument(..., help="A run report <model>.<run_id>.json, or a run directory of instance folders."),
    other: Path | None = typer.Argument(None, help="A second run to compare with the first."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of tables."),
) -> None:
    """Show a run's results; with two runs, which instances each one resolved."""
    from evals.report import compare_runs, load_run_report, outcome_ids

    runs = [(run, load_run_report(run))] + ([(other, load_run_report(other))] if other else [])
    if as_json:
        result: dict[str, Any] = {"runs": {str(path): report for path, report in runs}}
        if other:
            result["comparison"] = asdict(compare_runs(runs[0][1], runs[1][1]))
        typer.echo(json.dumps(result, indent=2))
        return

    table = Table(title="SWE-bench results")
    table.add_column("outcome")
    for path, report in runs:
        table.add_column(_run_name(path), justify="right")
    outcomes = [outcome_ids(report) for _, report in runs]
    table.add_row("total", *(str(report["total_instances"]) for _, report in runs))
    for outcome, label in (*OUTCOME_LABELS.items(), *APART_LABELS.items()):
        counts = (_count(ids[outcome], report) for ids, (_, report) in zip(outcomes, runs))
        table.add_row(label, *counts)
    console.print(table)
    if other:
        _print_comparison(compare_runs(runs[0][1], runs[1][1]), _run_name(run), _run_name(other))


def _count(ids: set[str], report: dict[str, Any]) -> str:
    total = report["total_instances"]
    return f"{len(ids)} ({100 * len(ids) / total:.1f}%)" if total else str(len(ids))


def _run_name(path: Path) -> str:
    return path.name.removesuffix(".json")


def _print_comparison(comparison: RunComparison, name_a: str, name_b: str) -> None:
    table = Table(title="resolved instances compared")
    table.add_column("resolved by")
    table.add_column("count", justify="right")
    table.add_column("instances")
    rows = ((f"{name_a} only", comparison.only_a), (f"{name_b} only", comparison.only_b), ("both", comparison.both))
    for label, ids in rows:
        table.add_row(label, str(len(ids)), ", ".join(ids))
    console.print(table)


# -- task images and grading ------------------------------------------------------

DATASET = typer.Option(..., "--dataset", help="Task rows: a .json/.jsonl/.parquet file or a Hugging Face dataset name.")
SPLIT = typer.Option("test", help="Split, for a Hugging Face dataset.")
INSTANCE_IDS = typer.Option(None, "--instance-ids", help="Only these instances (repeat, or separate with commas).")
FILTER = typer.Option(None, "--filter", help="Only instances whose id matches this regular expression.")
SLICE = typer.Option(None, "--slice", help="Keep start:stop of the selection, e.g. 0:50.")
SHUFFLE = typer.Option(False, "--shuffle", help="Shuffle before slicing.")
SEED = typer.Option(0, "--seed", help="Seed for --shuffle.")
ONLY_VALIDATED = typer.Option(
    None, "--only-validated", help="Keep only the instance ids listed in this file (written by --save-validated)."
)
REPOS = typer.Option(
    None, "--repos", help="Repository source: a folder of mirrors, or a URL template with {repo} "
    "(default: $AGENT_REPO_SOURCE, else https://github.com/{repo}.git)."
)
RECIPES = typer.Option(None, "--recipes", help="Extra recipe folder(s), read before the built-in recipes.")
PULL = typer.Option(
    None, "--pull/--build", help="Pull official prebuilt images, or build them offline (default: pull when a registry answers)."
)
WORKERS = typer.Option(1, "--workers", min=1, help="Instances handled at once.")
BUILD_CPUS = typer.Option(
    None, "--build-cpus", min=0.1, help="CPUs each image build container may use (default: no limit)."
)
AS_JSON = typer.Option(False, "--json", help="Print one JSON document instead of progress and tables.")
CA_BUNDLE = typer.Option(None, "--ca-bundle", help="Extra CA bundle pip must trust when building environments.")
BLOBS = typer.Option(
    None, "--blobs", help="Files or folders holding blobs a partial mirror lacks (repeatable); a file is used only "
    "for the blob whose git id it has."
)


@app.command("images")
def images_command(
    dataset: str = DATASET,
    split: str = SPLIT,
    instance_ids: list[str] | None = INSTANCE_IDS,
    filter_regex: str | None = FILTER,
    slice_spec: str | None = SLICE,
    shuffle: bool = SHUFFLE,
    seed: int = SEED,
    only_validated: Path | None = ONLY_VALIDATED,
    repos: str | None = REPOS,
    recipes: list[Path] | None = RECIPES,
    pull: bool | None = PULL,
    workers: int = WORKERS,
    force: bool = typer.Option(False, "--force", help="Rebuild environment and instance layers even if present."),
    ca_bundle: Path | None = CA_BUNDLE,
    build_cpus: float | None = BUILD_CPUS,
    blobs: list[Path] | None = BLOBS,
    as_json: bool = AS_JSON,
) -> None:
    """Build (or pull) the image of every selected task; unchanged layers are reused."""
    from evals.images import ImageOutcome, build_images

    rows, instances = _select(dataset, split, instance_ids, filter_regex, slice_spec, shuffle, seed, only_validated)
    builder = _image_builder(repos, recipes, pull, force, ca_bundle, dataset=rows, build_cpus=build_cpus,
                             quiet=as_json, blobs=blobs)

    def report(outcome: ImageOutcome) -> None:
        iid = outcome.instance.instance_id
        if as_json:
            return
        if outcome.image is None:
            console.print(f"[red]failed[/] {iid}: {escape(outcome.error)}", markup=True)
            return
        layers = ", ".join(f"{layer.action} {layer.tag} ({layer.seconds:.1f}s)" for layer in outcome.image.layers)
        notes = "".join(f"; {note}" for note in (*outcome.image.notes, *outcome.image.caveats))
        console.print(f"[green]ready[/] {iid}: {escape(layers + notes)}", markup=True)

    outcomes = build_images(builder, instances, workers, on_done=report)
    failed = [o for o in outcomes if o.image is None]
    if as_json:
        typer.echo(json.dumps({"ready": len(outcomes) - len(failed), "total": len(outcomes),
                               "images": [_image_json(o) for o in outcomes]}, indent=2))
    else:
        console.print(f"{len(outcomes) - len(failed)} of {len(outcomes)} images ready")
    if failed:
        raise EnvironmentProblem(f"{len(failed)} of {len(outcomes)} images could not be had: "
                                 f"{', '.join(o.instance.instance_id for o in failed[:5])}")


def _image_json(outcome: ImageOutcome) -> dict[str, Any]:
    """One instance's image for `eval images --json`: tag, layers (seconds), notes, or the error."""
    image = outcome.image
    row: dict[str, Any] = {"instance_id": outcome.instance.instance_id, "seconds": round(outcome.seconds, 3)}
    if image is None:
        return row | {"error": outcome.error}
    return row | {
        "image": image.tag, "pulled": image.pulled, "notes": list(image.notes), "caveats": list(image.caveats),
        "layers": [{"tag": layer.tag, "action": layer.action, "seconds": round(layer.seconds, 3)}
                   for layer in image.layers],
    }


@app.command("grade")
def grade_command(
    dataset: str = DATASET,
    run_id: str = typer.Option(..., "--run-id", help="Names the run; logs go to <log-dir>/<run-id>/<model>/<id>/."),
    predictions: Path | None = typer.Option(
        None, "--predictions", help="predictions.jsonl: instance_id, model_name_or_path, model_patch."
    ),
    gold: bool = typer.Option(False, "--gold", help="Grade the rows' own (gold) patches."),
    empty: bool = typer.Option(False, "--empty", help="Grade an empty patch (test patch only). With --gold: validate."),
    split: str = SPLIT,
    instance_ids: list[str] | None = INSTANCE_IDS,
    filter_regex: str | None = FILTER,
    slice_spec: str | None = SLICE,
    shuffle: bool = SHUFFLE,
    seed: int = SEED,
    only_validated: Path | None = ONLY_VALIDATED,
    save_validated: Path | None = typer.Option(
        None, "--save-validated", help="With --gold --empty: write the ids of the valid instances here."
    ),
    repos: str | None = REPOS,
    recipes: list[Path] | None = RECIPES,
    pull: bool | None = PULL,
    workers: int = WORKERS,
    timeout: float = typer.Option(1800.0, "--timeout", min=1, help="Seconds the tests of one instance may take."),
    force: bool = typer.Option(False, "--force", help="Grade again instances that already have a report.json."),
    log_dir: Path = typer.Option(Path("logs/run_evaluation"), "--log-dir", help="Root of the official log layout."),
    report_dir: Path = typer.Option(Path("."), "--report-dir", help="Where <model>.<run_id>.json is written."),
    ca_bundle: Path | None = CA_BUNDLE,
    build_cpus: float | None = BUILD_CPUS,
    blobs: list[Path] | None = BLOBS,
    as_json: bool = AS_JSON,
    executor_kind: str = typer.Option(
        "local", "--executor", help="local (threads here) or ray (tasks on a Ray cluster's nodes)."
    ),
    ray_address: str | None = typer.Option(
        None, "--ray-address", help="A Ray cluster's host:port, or auto (default: $RAY_ADDRESS, a cluster "
        "'ray start' runs here, else one started for this run)."
    ),
) -> None:
    """Evaluate predictions in task images and write the official logs and run report."""
    from evals.executors import make_executor
    from evals.grade import GradeSettings, empty_predictions, gold_predictions, grade_predictions, validate
    from evals.validation import write_summary, write_validated

    if sum([predictions is not None, gold or empty]) != 1:
        raise UsageError("give --predictions FILE, or --gold and/or --empty")
    if save_validated is not None and not (gold and empty):
        raise UsageError("--save-validated needs --gold --empty (validation)")
    if "/" in run_id or not run_id.strip():
        raise UsageError(f"--run-id {run_id!r}: a plain name, without '/'")
    rows, selected = _select(dataset, split, instance_ids, filter_regex, slice_spec, shuffle, seed, only_validated)
    say = _quiet if as_json else console.print
    chosen = _read_chosen(predictions, rows, selected, say) if predictions is not None else []
    runnable = [i for i in selected if i.runnable]
    if len(runnable) < len(selected):
        say(f"skipping {len(selected) - len(runnable)} instances without a test_patch")
        chosen = [p for p in chosen if p.instance_id in {i.instance_id for i in runnable}]
    settings = GradeSettings(run_id=run_id, log_root=log_dir, report_dir=report_dir, timeout=timeout,
                             workers=workers, force=force)
    builder = _image_builder(repos, recipes, pull, False, ca_bundle, local_docker=executor_kind == "local",
                             dataset=rows, build_cpus=build_cpus, quiet=as_json, blobs=blobs)
    executor = make_executor(executor_kind, workers, ray_address)  # a Ray driver lets go when the process ends
    options: dict[str, Any] = {"echo": None if as_json else console.print, "executor": executor}
    if gold and empty:
        gold_run, empty_run, verdicts = validate(runnable, builder, settings, **options)
        summary = write_summary(report_dir / f"validation.{run_id}.json", verdicts)
        saved = write_validated(save_validated, verdicts) if save_validated is not None else None
        if as_json:
            typer.echo(json.dumps(_runs_json([gold_run, empty_run]) | {
                "validation": json.loads(summary.read_text(encoding="utf-8")), "validation_file": str(summary),
                "validated_ids_file": str(saved) if saved else None}, indent=2))
            return
        _print_runs([gold_run, empty_run])
        _print_validation(runnable, verdicts)
        console.print(f"validation: {summary}")
        if saved is not None:
            console.print(f"validated ids: {saved}")
        return
    if predictions is not None:
        runs = [grade_predictions(runnable, chosen, builder, settings, **options)]
    elif gold:
        runs = [grade_predictions(runnable, gold_predictions(runnable), builder, settings, **options)]
    else:
        runs = [grade_predictions(runnable, empty_predictions(runnable), builder, settings, skip_patch=True,
                                  **options)]
    if as_json:
        typer.echo(json.dumps(_runs_json(runs), indent=2))
    else:
        _print_runs(runs)


def _quiet(*_: Any, **__: Any) -> None:
    """Progress goes nowhere under --json: stdout holds the one JSON document."""


def _read_chosen(path: Path, rows: list[TaskInstance], selected: list[TaskInstance], say: Any) -> list[Prediction]:
    """The predictions for the selected instances, as run_evaluation takes them.

    A prediction for an instance the dataset lacks is an error, as upstream; one for an
    instance the selection (--instance-ids, --filter, --slice) left out is not graded.
    """
    from evals.grade import read_predictions

    predictions = read_predictions(path, note=lambda line: say(f"note: {escape(line)}"))
    known = {row.instance_id for row in rows}
    unknown = sorted({p.instance_id for p in predictions} - known)
    if unknown:
        raise UsageError(f"--predictions {path}: instances not in the dataset: {', '.join(unknown[:5])}"
                         + (f" and {len(unknown) - 5} more" if len(unknown) > 5 else ""))
    wanted = {i.instance_id for i in selected}
    chosen = [p for p in predictions if p.instance_id in wanted]
    if not chosen:
        raise UsageError(f"--predictions {path}: none of the {len(predictions)} predictions is for a selected instance")
    if len(chosen) < len(predictions):
        say(f"grading {len(chosen)} of {len(predictions)} predictions: the rest are for instances not selected")
    return chosen


def _runs_json(runs: list[GradeRun]) -> dict[str, Any]:
    """`eval grade --json`: per model, the run report and where it and the logs are."""
    return {"runs": {run.model: {"run_report": run.report, "run_report_file": str(run.report_path),
                                 "log_dir": str(run.run_dir)} for run in runs}}


def _select(
    dataset: str,
    split: str,
    instance_ids: list[str] | None,
    filter_regex: str | None,
    slice_spec: str | None,
    shuffle: bool,
    seed: int,
    only_validated: Path | None,
) -> tuple[list[TaskInstance], list[TaskInstance]]:
    """Every dataset row, and the ones --only-validated and the selection flags keep (evals.datasets.select)."""
    from evals.datasets import load_instances, select
    from evals.validation import keep_validated

    ids = [part for value in instance_ids or [] for part in value.replace(",", " ").split()] or None
    rows = load_instances(dataset, split)
    chosen = select(keep_validated(rows, only_validated), instance_ids=ids, filter_regex=filter_regex,
                    slice_spec=slice_spec, shuffle=shuffle, seed=seed)
    if not chosen:
        raise UsageError("no instances selected")
    return rows, chosen


def _image_builder(
    repos: str | None, recipes: list[Path] | None, pull: bool | None, force: bool, ca_bundle: Path | None,
    local_docker: bool = True, dataset: list[TaskInstance] | None = None, build_cpus: float | None = None,
    quiet: bool = False, blobs: list[Path] | None = None,
) -> ImageBuilder:
    """The builder; without `local_docker` (Ray) it holds no client here: each node uses its own engine."""
    from evals.blobs import BlobStore
    from evals.images import ImageBuilder, ImageSource, RecipeBook
    from evals.repos import RepoSource
    from sandbox.certs import bundle_problem
    from sandbox.docker import connect

    if ca_bundle is not None and (problem := bundle_problem(ca_bundle)):
        raise UsageError(f"--ca-bundle: {problem}")
    source = ImageSource.AUTO if pull is None else ImageSource.PULL if pull else ImageSource.BUILD
    repo_source, recipe_book = RepoSource.configured(repos), RecipeBook(recipes or [])  # bad flags fail before Docker
    blob_store = BlobStore(blobs) if blobs else None
    return ImageBuilder(
        connect() if local_docker else None, repo_source, recipes=recipe_book, source=source, ca_bundle=ca_bundle,
        force=force, dataset=tuple(dataset or ()), build_cpus=build_cpus, blobs=blob_store,
        echo=None if quiet else lambda text: console.print(f"  {escape(text)}", style="dim"),
    )


def _print_runs(runs: list[GradeRun]) -> None:
    from evals.grade import Outcome

    table = Table(title="graded")
    table.add_column("outcome")
    for run in runs:
        table.add_column(run.model, justify="right")
    for outcome in Outcome:
        label = f"{outcome.value} (environment)" if outcome.environment_failure else outcome.value
        table.add_row(label, *(str(run.count(outcome)) for run in runs))
    table.add_row("total", *(str(len(run.results)) for run in runs))
    console.print(table)
    for run in runs:
        console.print(f"{run.model}: logs {run.run_dir}, run report {run.report_path}")


def _print_validation(instances: list[TaskInstance], verdicts: list[Verdict]) -> None:
    repo_of = {i.instance_id: i.repo for i in instances}
    table = Table(title="validation: gold resolves, empty patch does not")
    for column in ("repository", "instances", "gold resolved", "empty unresolved", "valid", "label defects", "errors"):
        table.add_column(column, justify="left" if column == "repository" else "right")
    environment = {"build_failed", "container_error", "timeout"}
    for repo in sorted(set(repo_of.values())):
        mine = [v for v in verdicts if repo_of[v.instance_id] == repo]
        table.add_row(
            repo, str(len(mine)), str(sum(v.gold == "resolved" for v in mine)),
            str(sum(v.empty == "unresolved" for v in mine)), str(sum(v.valid for v in mine)),
            str(sum(v.label_defect for v in mine)), str(sum(v.gold in environment or v.empty in environment for v in mine)),
        )
    console.print(table)
    for verdict in verdicts:
        if not verdict.valid:
            known = " (known)" if verdict.known_label_defect else ""
            console.print(f"  {verdict.instance_id}: {escape(verdict.reason)}{known}")
    unfaithful = sorted({(repo_of[v.instance_id], v.unfaithful) for v in verdicts if v.unfaithful})
    for repo, reason in unfaithful:
        console.print(f"  not faithful, {repo}: {escape(reason)}")
