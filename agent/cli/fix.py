"""`agent fix`: read the issue, run the fix workflow, show the outcome."""

from __future__ import annotations

import functools
import json
import sys
from pathlib import Path
from typing import Any

import typer

from agent.errors import UsageError
from tools.encoding import decode, visible

HELP = "Fix an issue in the current git repository and leave a tested patch on a new branch."
ATTEMPTS_HELP = ("Run N attempts at once, each in its own sandbox with its own seed, then keep the patch that applies, "
                 "passes the tests the attempts wrote or ran, breaks no passing test, and most attempts agree on.")


def read_task(text: str | None, file: Path | None, issue: str | None) -> tuple[str, str | None]:
    """The issue text and a title, from exactly one of: TEXT, -f FILE, '-' (stdin), --issue.

    Every source is read as bytes (argv arrives surrogate-escaped, as Python decodes it; JSON from
    GitHub may hold lone `\\udXXX` escapes): bytes that are not UTF-8 are shown as `\\xNN` escapes
    (tools/encoding.py's rule for text that is no file), so the task is valid UTF-8 and nothing is lost
    from sight. Raises `UsageError` for a file that cannot be read or an empty text."""
    given = [x for x in (text, file, issue) if x is not None]
    if len(given) != 1:
        raise UsageError("give the issue exactly one way: TEXT, -f FILE, '-' for stdin, or --issue OWNER/REPO#N")
    if issue is not None:
        from agent.github import fetch_issue

        found = fetch_issue(issue)
        title = visible(found.title)
        return f"{title}\n\n{visible(found.body)}", title
    if file is not None:
        try:
            body = decode(file.read_bytes())
        except OSError as exc:
            raise UsageError(f"cannot read {file}: {exc.strerror}") from None
    elif text == "-":
        body = decode(sys.stdin.buffer.read())
    else:
        body = text or ""
    if not body.strip():
        raise UsageError("the issue text is empty")
    return visible(body), None


def fix(
    text: str | None = typer.Argument(None, help="The issue text, or '-' to read it from stdin."),
    feedback: str | None = typer.Argument(None, help="With --continue RUN_ID: the feedback.", show_default=False),
    file: Path | None = typer.Option(None, "--file", "-f", help="Read the issue text from a file."),
    issue: str | None = typer.Option(None, "--issue", help="A GitHub issue: OWNER/REPO#N or its URL (needs GITHUB_TOKEN for private repos)."),
    path: Path = typer.Option(Path("."), "-C", help="Run in this repository instead of the current directory."),
    apply: bool = typer.Option(False, "--apply", help="Apply the patch to the working tree instead of making a branch."),
    patch_out: Path | None = typer.Option(None, "--patch-out", help="Also write the patch to this file."),
    no_commit: bool = typer.Option(False, "--no-commit", help="Neither branch nor apply; just report (and --patch-out)."),
    partial: bool = typer.Option(False, "--partial", help="Also branch/apply a patch the agent did not submit (step or time limit); still exit 1."),
    branch: str | None = typer.Option(None, "--branch", help="Branch name (default agent/<slug of the issue>)."),
    model: str | None = typer.Option(None, "--model", "-m", help="Served model name (AGENT_MODEL)."),
    base_url: str | None = typer.Option(None, "--base-url", help="OpenAI-compatible endpoint (OPENAI_BASE_URL)."),
    tool_format: str | None = typer.Option(None, "--tool-format", help="auto, native, hermes or xml."),
    step_limit: int | None = typer.Option(None, "--step-limit", help="Stop after this many model calls."),
    image: str | None = typer.Option(None, "--image", help="Sandbox image (default: [sandbox] image or the default image)."),
    as_json: bool = typer.Option(False, "--json", help="Print a machine-readable result at the end."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No live progress."),
    no_instructions: bool = typer.Option(False, "--no-instructions",
                                         help="Leave the repository's AGENTS.md files out of the prompt."),
    attempts: int = typer.Option(1, "--attempts", min=1, help=ATTEMPTS_HELP),
    attempts_temperature: float | None = typer.Option(None, "--attempts-temperature", min=0, max=2,
                                                      help="Sampling temperature of the attempts (default: the profile's)."),
    follow: bool = typer.Option(False, "--continue",
                                help="[RUN_ID] FEEDBACK: continue a run (default: the latest that made a branch) "
                                     "with your feedback; its branch gets a further commit."),
) -> None:
    from agent.attempts import AttemptPlan
    from agent.config import load_settings
    from agent.fix import FixRequest, run_fix, runs_dir
    from agent.followup import find_follow_up, split_arguments
    from agent.redaction import mask_held, scrub_with_patch
    from agent.terminal import escape
    from agent.workspace import UserRepo

    run_id, text = split_arguments(follow, text, feedback, file is not None)
    task, title = read_task(text, file, issue)
    if apply and no_commit:
        raise UsageError("--apply and --no-commit contradict each other")
    if follow and (apply or branch or issue or attempts > 1):
        raise UsageError("--continue resumes one conversation on the run's own branch: it takes no --apply, --branch, "
                         "--issue or --attempts")
    repo = UserRepo.find(path)
    settings = load_settings(repo.root, overrides={
        "model.name": model, "model.base_url": base_url, "model.tool_format": tool_format,
        "loop.step_limit": step_limit, "sandbox.image": image,
    })
    follow_up = None
    if follow:
        follow_up = find_follow_up(repo, runs_dir(settings, repo), run_id, task, settings.sandbox.workdir)
        settings, title = follow_up.settings(settings), follow_up.title
    # rich (its console, the live progress) is not loaded on --json's or --quiet's way to the first request
    echo = (lambda m: None) if quiet or as_json else (lambda m: _stderr().print(f"[dim]{escape(m)}[/]"))
    progress = None
    if not (quiet or as_json):
        from agent.progress import LiveProgress

        progress = LiveProgress(_stderr())
    if follow_up is not None:
        echo(f"continuing run {follow_up.run_id} on {follow_up.branch}")
    outcome = run_fix(
        FixRequest(task=task, repo=repo.root, branch=branch, apply=apply, commit=not no_commit, patch_out=patch_out,
                   title=title, cwd=path, repo_instructions=not (no_instructions or follow), partial=partial,
                   follow_up=follow_up, attempts=AttemptPlan(attempts, attempts_temperature)),
        settings, listener=progress, echo=echo, found=repo,
    )
    if outcome.result.status == "interrupted":  # one line and the JSON, however it was run
        from sandbox.cleanup import mark_reported

        mark_reported()
        try:  # SIGHUP: the terminal they went to may be gone
            if as_json:
                typer.echo(mask_held(json.dumps(scrub_with_patch(outcome.to_json()))))
            _stderr().print(f"[bold red]error:[/] interrupted (trajectory: {escape(str(outcome.trajectory))})",
                      soft_wrap=True)
        except OSError:
            pass
        raise typer.Exit(outcome.exit_code)
    if as_json:
        typer.echo(mask_held(json.dumps(scrub_with_patch(outcome.to_json()))))
    else:
        from rich.console import Console

        from agent.progress import print_diff, print_review, print_summary

        print_diff(Console(highlight=False), outcome.result.patch)
        extra = {"trajectory": escape(str(outcome.trajectory))}
        if outcome.instructions and (outcome.instructions.files or outcome.instructions.skipped):
            extra["instructions"] = escape(outcome.instructions.summary())
        if outcome.result.extra.get("selection"):
            from agent.selection import describe  # loaded already: the attempts chose with it

            extra["attempts"] = escape(describe(outcome.result.extra["selection"]))
        if outcome.branch:
            branch = escape(outcome.branch)
            extra["branch"] = f"[bold]{branch}[/] (not checked out; try: git diff HEAD {branch})"
        if outcome.applied:
            extra["applied"] = "to your working tree"
        for note in map(escape, outcome.notes):
            extra["note"] = extra["note"] + "; " + note if "note" in extra else note
        print_summary(_stderr(), outcome.result, extra)
        print_review(_stderr(), outcome.review)
    raise typer.Exit(outcome.exit_code)



@functools.cache
def _stderr() -> Any:
    """The console on stderr, made on first use: rich is loaded only to show something."""
    from rich.console import Console

    return Console(stderr=True, highlight=False)
