"""`agent traj`: look at runs, summarise many, and replay one in a fresh sandbox."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.console import Console
from rich.panel import Panel
from rich.table import Table

from agent.errors import UsageError
from agent.terminal import escape

app = typer.Typer(help="Show, summarise and replay trajectories.", no_args_is_help=True)
console = Console(highlight=False)


def _read(path: Path):
    from agent.trajectory import read_trajectory

    try:
        return read_trajectory(path)
    except ValueError as exc:
        raise UsageError(str(exc)) from None


@app.command("show")
def show(
    file: Path = typer.Argument(..., help="A trajectory.jsonl file."),
    width: int = typer.Option(600, help="Characters of each observation to show."),
) -> None:
    """Render a run: steps, tool calls, truncated observations, stats."""
    from agent.progress import describe_call

    traj = _read(file)
    start = traj.start
    console.print(Panel(escape(str(start.get("task", ""))[:2000]), title=escape(f"task · {file}"), title_align="left"))
    if start.get("config", {}).get("instructions"):
        from agent.instructions import describe

        console.print(f"[bold]instructions[/] {escape(describe(start['config']['instructions']))}")
    if start.get("config", {}).get("continues"):
        _show_chain(traj)
    for step in traj.steps():
        usage = step.response.get("usage") or {}
        console.rule(escape(f"step {step.index} · {usage.get('prompt_tokens', 0)} prompt tokens · "
                            f"{step.request.get('shared_prefix_tokens', 0)} shared"), align="left")
        if step.response.get("reasoning"):
            console.print(f"[dim italic]{escape(step.response['reasoning'][:width])}[/]")
        if step.response.get("content"):
            console.print(escape(step.response["content"][:width]))
        for tool in step.tools:
            mark = "[red]✗[/]" if tool.get("is_error") else "[green]✓[/]"
            console.print(f"{mark} [bold]{escape(describe_call(tool['name'], tool.get('arguments')))}[/] "
                          f"[dim]({tool.get('duration', 0):.2f}s)[/]")
            text = str(tool.get("observation", ""))
            console.print(f"[dim]{escape(text[:width])}{' …' if len(text) > width else ''}[/]")
        for error in step.format_errors:
            console.print(f"[yellow]format error: {escape(error)}[/]")
    end = traj.end
    if end is None:
        console.print(f"[yellow]incomplete run[/]{' (last line torn)' if traj.torn else ''}: the process stopped before the end")
        return
    if traj.torn:  # a line written after the end (the delivery record) was cut
        console.print("[yellow]note: the last line is torn and was left out[/]")
    table = Table.grid(padding=(0, 2))
    for key in ("status", "message", "steps", "prompt_tokens", "completion_tokens", "elapsed", "prefix_reuse", "compactions"):
        table.add_row(f"[bold]{key}[/]", escape(str(end.get(key))))
    console.print(table)
    if traj.delivery:
        console.print(f"[bold]delivered[/] {escape(_delivered(traj.delivery))}")
    if end.get("patch"):
        from agent.progress import print_diff

        print_diff(console, end["patch"], exact=False)
    selection = next((e for e in reversed(traj.events) if e["type"] == "selection"), None)
    if selection is not None:  # an `--attempts` run: the record of what was tried and why this one won
        from agent.progress import print_selection

        print_selection(console, selection)


def _delivered(delivery: dict) -> str:
    return f"{delivery.get('branch')} at {str(delivery.get('commit'))[:12]}"


def _show_chain(traj) -> None:
    """The runs a follow-up continues, oldest first: `agent fix --continue` made each from the one before."""
    from agent.followup import chain

    console.print("[bold]follow-up of[/] (oldest first)")
    for n, link in enumerate(chain(traj), 1):
        if link.get("missing"):
            console.print(f"  {n}. run {escape(str(link['run_id']))}: trajectory gone ({escape(link['trajectory'])})")
            continue
        this = " [bold](this run)[/]" if link["trajectory"] == str(traj.path) else ""
        task = " ".join(str(link["task"]).split())[:80]
        where = f", {_delivered(link['delivery'])}" if link["delivery"] else ""
        console.print(f"  {n}. run {escape(str(link['run_id']))}{this}: {link['status']}{escape(where)} · "
                      f"{escape(task)}")


@app.command("stats")
def stats(
    files: list[Path] = typer.Argument(..., help="Trajectory files."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Summarise many runs: statuses, steps, tokens, time, prefix reuse."""
    rows = []
    for path in files:
        traj = _read(path)
        end, totals = traj.end or {}, traj.totals()
        rows.append({
            "file": str(path), "status": traj.status, "steps": len(traj.steps()),
            "prompt_tokens": totals["prompt_tokens"] or 0, "completion_tokens": totals["completion_tokens"] or 0,
            "elapsed": totals["elapsed"], "prefix_reuse": end.get("prefix_reuse"), "patch": bool(end.get("patch")),
        })
    if as_json:
        typer.echo(json.dumps(rows))
        return
    table = Table("file", "status", "steps", "tokens", "time", "reuse", "patch")
    for r in rows:
        table.add_row(escape(r["file"]), escape(str(r["status"])), str(r["steps"]), f"{r['prompt_tokens'] + r['completion_tokens']:,}",
                      f"{r['elapsed'] or 0:.1f}s", f"{r['prefix_reuse']:.1%}" if r["prefix_reuse"] else "-",
                      "yes" if r["patch"] else "no")
    console.print(table)
    statuses: dict[str, int] = {}
    for r in rows:
        statuses[r["status"]] = statuses.get(r["status"], 0) + 1
    total_steps = sum(r["steps"] for r in rows)
    console.print(f"{len(rows)} runs · " + ", ".join(f"{escape(str(k))} {v}" for k, v in sorted(statuses.items(), key=str))
                  + f" · {total_steps / max(1, len(rows)):.1f} steps per run · "
                  f"{sum(r['patch'] for r in rows)} with a patch")


@app.command("replay")
def replay(
    file: Path = typer.Argument(..., help="A trajectory.jsonl file of an `agent fix` run."),
    path: Path | None = typer.Option(None, "-C", help="Repository to replay in (default: the one recorded)."),
    quiet: bool = typer.Option(False, "--quiet", "-q"),
) -> None:
    """Run the recorded tool calls again, in order, in a fresh sandbox; say whether the patch is the same."""
    from agent.config import load_settings
    from agent.fix import FixRequest, run_fix
    from agent.progress import LiveProgress
    from agent.replay import ReplayModel

    from agent.followup import recorded_follow_up

    traj = _read(file)
    repo = path or Path(traj.start.get("config", {}).get("repo", "."))
    settings = load_settings(repo, overrides={"model.tool_format": traj.start.get("tool_format")})
    err = Console(stderr=True, highlight=False)
    err.print(f"[cyan]replaying {file} (recorded replies, no model server)[/]")
    used = traj.start.get("config", {}).get("instructions") is not None  # the prompt as recorded: with or without
    follow_up = recorded_follow_up(traj)  # a follow-up again resumes its conversation, on its branch's commit
    outcome = run_fix(FixRequest(task=traj.start.get("task", ""), repo=repo, commit=False, repo_instructions=used,
                                 follow_up=follow_up),
                      settings, ReplayModel.from_trajectory(traj), listener=LiveProgress(err, quiet=quiet))
    same = outcome.result.patch == traj.patch
    console.print(f"recorded status {escape(str(traj.status))}, replayed status {outcome.result.status}; "
                  f"final patch {'[green]identical[/]' if same else '[red]different[/]'}")
    raise typer.Exit(0 if same else 1)
