"""`agent ci`: the GitHub Actions bot; `agent ci init`: the workflow that runs it."""

from __future__ import annotations

import os
from pathlib import Path

import typer
from rich.console import Console

from agent.errors import UsageError

HELP = "Run the CI bot in a GitHub Actions job: a labelled issue or an '/agent fix' comment becomes a pull request."
app = typer.Typer(help=HELP, invoke_without_command=True)


@app.callback(invoke_without_command=True)
def ci(
    ctx: typer.Context,
    label: str = typer.Option("agent", "--label", envvar="AGENT_CI_LABEL", help="The issue label that starts a run."),
    draft: bool = typer.Option(True, "--draft/--ready", envvar="AGENT_CI_DRAFT",
                               help="Open the pull request as a draft (AGENT_CI_DRAFT=false: ready for review)."),
    path: Path = typer.Option(Path("."), "-C", help="The checked-out repository (default: the current directory)."),
    remote: str = typer.Option("origin", "--remote", help="The git remote to push the branch to."),
    base: str | None = typer.Option(None, "--base", help="Base branch of the pull request (default: the repository's)."),
    max_wait: float = typer.Option(60.0, "--max-wait", envvar="AGENT_GITHUB_MAX_WAIT", min=0,
                                   help="Seconds of GitHub rate-limit waiting allowed in total; longer limits fail."),
    network: bool = typer.Option(False, "--network/--no-network", envvar="AGENT_CI_NETWORK",
                                 help="Give the sandbox network access (off unless the workflow opts in)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No live progress."),
    no_instructions: bool = typer.Option(False, "--no-instructions",
                                         help="Leave the repository's AGENTS.md files out of the prompt."),
    attempts: int = typer.Option(1, "--attempts", min=1, envvar="AGENT_CI_ATTEMPTS",
                                 help="Run N attempts at once and push the patch the checks choose (see agent fix)."),
    attempts_temperature: float | None = typer.Option(None, "--attempts-temperature", min=0, max=2,
                                                      help="Sampling temperature of the attempts."),
) -> None:
    """Act on the event in GITHUB_EVENT_PATH; anything it does not ask for exits 0 saying why."""
    if ctx.invoked_subcommand is not None:
        return
    from agent.attempts import AttemptPlan
    from agent.ci import IssueJob, posted_secrets, run_job
    from agent.ci.event import read_trigger
    from agent.ci.permission import authorize
    from agent.config import load_settings
    from agent.github import GitHubClient, api_url_for, token_hosts
    from agent.progress import LiveProgress, status_line
    from agent.terminal import visible
    from agent.workspace import UserRepo

    trigger = read_trigger(os.environ, label)
    if isinstance(trigger, str):
        typer.echo(visible(trigger))  # names a label the event chose
        raise typer.Exit(0)
    token = os.environ.get("GITHUB_TOKEN")
    if not token:
        raise UsageError("GITHUB_TOKEN is not set: pass it to the step (env: GITHUB_TOKEN: ${{ secrets.GITHUB_TOKEN }})")
    repo = UserRepo.find(path)
    settings = load_settings(repo.root, overrides={"sandbox.network": network})  # set either way: forced off
    github = GitHubClient(token, api_url_for(None), max_wait=max_wait, secrets=posted_secrets(settings),
                          echo=status_line)
    refusal = authorize(github, trigger)
    if refusal is not None:
        typer.echo(visible(refusal))
        raise typer.Exit(0)
    job = IssueJob(issue=trigger.ref, repo=repo.root, instructions=trigger.instructions,
                   requested_by=trigger.actor, base=base, draft=draft, details_url=actions_run_url(),
                   as_triggered=trigger.issue, repo_instructions=not no_instructions,
                   attempts=AttemptPlan(attempts, attempts_temperature))
    done = run_job(job, settings, github, token, remote, token_hosts=token_hosts(os.environ), echo=status_line,
                   listener=LiveProgress(Console(stderr=True, highlight=False), quiet=quiet))
    typer.echo(visible(str(done)))


@app.command("init")
def init(
    path: Path = typer.Option(Path("."), "-C", help="The repository to add the workflow to."),
    force: bool = typer.Option(False, "--force", help="Overwrite an existing workflow file."),
) -> None:
    """Write .github/workflows/agent.yml, the GitHub Actions workflow that runs 'agent ci'."""
    from agent.ci.workflow_file import write_workflow
    from agent.workspace import UserRepo

    written = write_workflow(UserRepo.find(path).root, force=force)
    typer.echo(f"wrote {written}")
    typer.echo("next: add the repository secrets OPENAI_BASE_URL, OPENAI_API_KEY and AGENT_MODEL, "
               "commit the file, then label an issue 'agent' or comment '/agent fix' on it")


def actions_run_url() -> str | None:
    """This job's page, when running in GitHub Actions."""
    server, repository, run = (os.environ.get(k) for k in ("GITHUB_SERVER_URL", "GITHUB_REPOSITORY", "GITHUB_RUN_ID"))
    return f"{server}/{repository}/actions/runs/{run}" if server and repository and run else None

