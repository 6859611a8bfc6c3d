"""`agent pr`: what the CI bot does, from a developer's machine: an issue in, a pull request out."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer

from agent.errors import UsageError

if TYPE_CHECKING:
    from agent.config import Settings
    from agent.followup import FollowUp
    from agent.workspace import UserRepo

HELP = "Fix a GitHub issue here, push branch agent/issue-N to origin and open (or update) its pull request."


def pr(
    first: str | None = typer.Argument(None, help="With --continue: [RUN_ID] FEEDBACK.", show_default=False),
    second: str | None = typer.Argument(None, hidden=True),
    issue: str = typer.Option(..., "--issue", help="OWNER/REPO#N or the issue's URL."),
    path: Path = typer.Option(Path("."), "-C", help="Run in this repository instead of the current directory."),
    remote: str = typer.Option("origin", "--remote", help="The git remote to push the branch to."),
    base: str | None = typer.Option(None, "--base", help="Base branch of the pull request (default: the repository's)."),
    draft: bool = typer.Option(True, "--draft/--ready", help="Open the pull request as a draft, or ready for review."),
    instructions: str | None = typer.Option(None, "--instructions", help="Extra instructions appended to the issue."),
    max_wait: float = typer.Option(60.0, "--max-wait", envvar="AGENT_GITHUB_MAX_WAIT", min=0,
                                   help="Seconds of GitHub rate-limit waiting allowed in total; longer limits fail."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No live progress."),
    no_instructions: bool = typer.Option(False, "--no-instructions",
                                         help="Leave the repository's AGENTS.md files out of the prompt."),
    attempts: int = typer.Option(1, "--attempts", min=1,
                                 help="Run N attempts at once and push the patch the checks choose (see agent fix)."),
    attempts_temperature: float | None = typer.Option(None, "--attempts-temperature", min=0, max=2,
                                                      help="Sampling temperature of the attempts."),
    follow: bool = typer.Option(False, "--continue",
                                help="[RUN_ID] FEEDBACK: continue this issue's last `agent pr` run (or RUN_ID) with "
                                     "your feedback: one more commit, pushed to the same pull request."),
) -> None:
    """Needs a token: GITHUB_TOKEN, or the one `gh auth login` stored."""
    from rich.console import Console

    from agent.attempts import AttemptPlan
    from agent.ci import IssueJob, branch_for, posted_secrets, run_job
    from agent.config import load_settings
    from agent.github import GitHubClient, api_url_for, find_token, parse_issue_ref, token_hosts
    from agent.progress import LiveProgress, status_line
    from agent.terminal import visible
    from agent.workspace import UserRepo

    ref = parse_issue_ref(issue)
    token = find_token(host=ref.host)
    if token is None:
        raise UsageError("no GitHub token: set GITHUB_TOKEN, or log in with 'gh auth login'")
    repo = UserRepo.find(path)
    settings = load_settings(repo.root)
    follow_up = None
    if follow and attempts > 1:
        raise UsageError("--continue resumes one conversation: it takes no --attempts")
    if follow or first is not None:
        follow_up = _follow_up(follow, first, second, repo, settings, branch_for(ref))
        settings = follow_up.settings(settings)
    github = GitHubClient(token, api_url_for(ref), max_wait=max_wait, secrets=posted_secrets(settings),
                          echo=status_line)
    job = IssueJob(issue=ref, repo=repo.root, instructions=(instructions or "").strip(), base=base, draft=draft,
                   repo_instructions=not no_instructions, follow_up=follow_up,
                   attempts=AttemptPlan(attempts, attempts_temperature))
    done = run_job(job, settings, github, token, remote, token_hosts=token_hosts(host=ref.host), echo=status_line,
                   listener=LiveProgress(Console(stderr=True, highlight=False), quiet=quiet))
    typer.echo(visible(str(done)))


def _follow_up(follow: bool, first: str | None, second: str | None, repo: UserRepo, settings: Settings,
               branch: str) -> FollowUp:
    """The run `--continue` carries on; it must be one that made this issue's branch."""
    from agent.fix import runs_dir
    from agent.followup import find_follow_up, split_arguments

    if not follow:
        raise UsageError("agent pr takes no TEXT argument: feedback goes with --continue")
    run_id, feedback = split_arguments(follow, first, second, False)
    if not (feedback or "").strip():
        raise UsageError("--continue needs your feedback: agent pr --issue REF --continue [RUN_ID] \"what to change\"")
    found = find_follow_up(repo, runs_dir(settings, repo), run_id, feedback, settings.sandbox.workdir)
    if found.branch != branch:
        raise UsageError(f"run {found.run_id} made {found.branch}, not {branch}: continue it with 'agent fix --continue'")
    return found
