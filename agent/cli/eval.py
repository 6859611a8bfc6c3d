"""`agent eval`: grade SWE-bench test logs and read run reports.

swebench is imported inside the commands: it takes seconds to load and only these
commands need it.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.console import Console
from rich.table import Table

from agent.errors import UsageError

if TYPE_CHECKING:
    from evals.report import RunComparison

app = typer.Typer(help="Grade SWE-bench test logs and compare run reports.", no_args_is_help=True)
console = Console(highlight=False)

# One outcome per instance, in table order (keys of evals.report.outcome_ids).
OUTCOME_LABELS = {
    "resolved": "resolved",
    "unresolved": "unresolved (patch judged wrong)",
    "infra_failure": "environment failure",
    "ambiguous_failure": "ambiguous failure",
    "error": "error (no report)",
    "empty_patch": "empty patch",
    "incomplete": "not submitted",
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
    for outcome, label in OUTCOME_LABELS.items():
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
