"""The CI bot's workflow: a GitHub issue becomes a branch `agent/issue-N` and a pull request.

`agent ci` (inside a GitHub Actions job, started by an event) and `agent pr` (on a
developer's machine, given an issue) share `fix_issue`. One module per concern: reading
the event (`event`), deciding who may trigger (`permission`), pushing (`push`), writing
the pull request and comments (`pull_request`), the workflow file (`workflow_file`).

The issue text is untrusted: it reaches only the model and the sandbox, which gets no
host environment and, in CI, no network. The patch passes the patch policy
(`agent/patch_policy.py`) before anything is committed or pushed. The token stays in
this process: API calls carry it, git receives it for one push. Runs are idempotent per
issue: the branch is force-updated only from the head this run saw when it started, and
an open pull request from it is updated rather than doubled.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from agent.attempts import AttemptPlan
from agent.ci.pull_request import failure_comment, pull_request_body, pull_title, stats_line, tests_line
from agent.ci.push import GitRemote, diffstat, prepare_checkout
from agent.config import Settings
from agent.errors import AgentError, UsageError
from agent.fix import FixOutcome, FixRequest, run_fix
from agent.github import GitHubClient, Issue, IssueRef, PullRequest
from agent.loop import Listener, RunResult
from agent.model import Model
from sandbox.base import SandboxError
from tools.encoding import visible

if TYPE_CHECKING:
    from agent.followup import FollowUp

Echo = Callable[[str], None]


class NotFixed(AgentError):
    """The run ended without a fix worth a pull request; the exit code is the run's."""

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.exit_code = exit_code


@dataclass(frozen=True)
class IssueJob:
    issue: IssueRef
    repo: Path
    instructions: str = ""
    requested_by: str | None = None
    base: str | None = None  # None: the repository's default branch
    draft: bool = True
    details_url: str | None = None  # where the job's log is, linked from a failure comment
    as_triggered: Issue | None = None  # the issue's text from the triggering event; None: read it now
    repo_instructions: bool = True  # False: leave the repository's AGENTS.md files out of the prompt
    follow_up: FollowUp | None = None  # `agent pr --continue`: that run's conversation and branch, carried on
    attempts: AttemptPlan = AttemptPlan()  # --attempts N: N loops, one patch chosen (agent/attempts.py)


@dataclass
class IssueFix:
    fix: FixOutcome
    pull: PullRequest
    created: bool  # False: an open pull request from the branch was updated

    def __str__(self) -> str:
        verb = "opened" if self.created else "updated"
        return f"{verb} {'draft ' if self.pull.draft else ''}pull request #{self.pull.number}: {self.pull.url}"


def posted_secrets(settings: Settings) -> list[str]:
    """The model endpoints (replaced ones too), their credentials and the keys: nothing posted to GitHub may contain them."""
    return [*settings.configured_endpoints(), *settings.secrets()]


def branch_for(issue: IssueRef) -> str:
    return f"agent/issue-{issue.number}"


def task_text(issue: Issue, job: IssueJob) -> str:
    """The model's task: the issue and any instructions from the comment that asked for the run. JSON
    from GitHub may hold lone `\\udXXX` escapes: shown as text (tools/encoding.py), so the request is UTF-8."""
    text = f"{issue.title}\n\n{issue.body}".strip()
    if job.instructions:
        source = f" from @{job.requested_by}" if job.requested_by else ""
        text += f"\n\nAdditional instructions{source}:\n{job.instructions}"
    return visible(text)


def fix_issue(
    job: IssueJob,
    settings: Settings,
    model: Model,
    github: GitHubClient,
    remote: GitRemote,
    *,
    listener: Listener | None = None,
    echo: Echo = lambda message: None,
) -> IssueFix:
    """Fix, check the patch against the policy, push, open or update the pull request, say so on the issue.

    Any failure once the run is under way is reported on the issue, then raised.
    """
    issue = job.as_triggered or github.issue(job.issue)
    branch = branch_for(issue.ref)
    follow = job.follow_up
    root = prepare_checkout(job.repo, branch) if follow is None else job.repo
    try:
        started_from = remote.head(branch)
        if follow is not None and started_from != follow.commit:
            raise UsageError(f"{branch} on {remote.name} is not what run {follow.run_id} pushed (someone pushed "
                             "since?): not continuing it")
        request = FixRequest(task=follow.feedback if follow else task_text(issue, job), repo=root, branch=branch,
                             commit=True, title=follow.title if follow else None,
                             subject=None if follow else pull_title(issue),
                             allow_sensitive=list(settings.patch_policy.allow),
                             secrets=tuple(s for s in (remote.token,) if s),
                             repo_instructions=job.repo_instructions and follow is None, follow_up=follow,
                             attempts=job.attempts)
        outcome = run_fix(request, settings, model, listener=listener, echo=echo)
        if outcome.delivery_error is not None:  # the patch stays in the run's trajectory
            raise NotFixed(f"the fix could not be committed: {outcome.delivery_error}", outcome.exit_code)
        if outcome.commit is None or outcome.result.status != "submitted":
            raise NotFixed(f"the agent stopped without a fix ({_stopped_because(outcome.result)})",
                           outcome.exit_code or 1)
        echo(f"pushing {branch} to {remote.name}")
        remote.push(outcome.commit, branch, expected=started_from)
        return _publish(job, issue, branch, outcome, github)
    except (AgentError, SandboxError) as exc:
        _report_failure(github, issue, exc, job.details_url, echo)
        raise


def run_job(job: IssueJob, settings: Settings, github: GitHubClient, token: str | None, remote_name: str, *,
            token_hosts: frozenset[str], listener: Listener | None = None,
            echo: Echo = lambda message: None) -> IssueFix:
    """`fix_issue` with the configured model server and the named remote (shared by `agent ci` and `agent pr`);
    the token goes to git only for a remote on `token_hosts` (`agent.github.token_hosts`), else `UsageError`."""
    from agent.model import OpenAIModel

    remote = GitRemote.of(job.repo, remote_name, token, token_hosts)
    return fix_issue(job, settings, OpenAIModel(settings.model), github, remote, listener=listener, echo=echo)


def _publish(job: IssueJob, issue: Issue, branch: str, outcome: FixOutcome, github: GitHubClient) -> IssueFix:
    ref, title = issue.ref, pull_title(issue)
    body = pull_request_body(issue, outcome, diffstat(job.repo, outcome.commit or "HEAD"))
    pull = github.open_pull(ref.owner, ref.repo, branch)
    created = pull is None
    if pull is None:
        base = job.base or github.default_branch(ref.owner, ref.repo)
        pull = github.create_pull(ref.owner, ref.repo, title=title, head=branch, base=base, body=body, draft=job.draft)
    else:
        pull = github.update_pull(ref.owner, ref.repo, pull.number, title=title, body=body)
    kind = "draft pull request" if pull.draft else "pull request"
    github.comment(ref, f"{'Opened' if created else 'Updated'} {kind} #{pull.number} with a fix: {pull.url}\n\n"
                        f"{tests_line(outcome.result)}\n{stats_line(outcome.result)}")
    return IssueFix(fix=outcome, pull=pull, created=created)


def _report_failure(github: GitHubClient, issue: Issue, error: BaseException, details_url: str | None,
                    echo: Echo) -> None:
    """Tell the issue why there is no pull request; a failure to tell must not hide the first one."""
    try:
        github.comment(issue.ref, failure_comment(github.redact(str(error)), details_url))  # redact, then escape
    except AgentError as exc:
        echo(f"could not comment on {issue.ref} either: {exc}")


def _stopped_because(result: RunResult) -> str:
    if result.status == "submitted":
        return "it submitted without changing any file"
    return f"{result.status}: {result.message}" if result.message else result.status
