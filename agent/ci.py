"""The CI bot's workflow: a GitHub issue becomes a branch `agent/issue-N` and a pull request.

`agent ci` (inside a GitHub Actions job, started by an event) and `agent pr` (on a
developer's machine, given an issue) share `fix_issue`. The issue text is untrusted: it
reaches only the model and the sandbox, which gets no host environment. The token stays
in this process: API calls carry it, and git receives it for one push through
`GIT_CONFIG_*` variables, never through a config file. Runs are idempotent per issue:
the branch is force-updated, but only from the head this run saw when it started, and
an open pull request from it is updated rather than doubled.
"""

from __future__ import annotations

import base64
import json
import os
import re
import subprocess
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from agent.config import Settings
from agent.errors import AgentError, EnvironmentProblem, UsageError
from agent.fix import FixOutcome, FixRequest, run_fix
from agent.github import GitHubClient, Issue, IssueRef, PullRequest
from agent.loop import Listener, RunResult
from agent.model import Model
from agent.workspace import GitFailed, UserRepo, git
from sandbox.base import SandboxError

WORKFLOW_PATH = Path(".github/workflows/agent.yml")
_COMMAND = re.compile(r"\s*/agent[ \t]+fix(?![\w-])[ \t]*(?P<rest>.*)", re.DOTALL | re.IGNORECASE)
_SHOWN_TEST_FAILURES = 10

Echo = Callable[[str], None]


class NotFixed(AgentError):
    """The run ended without a fix worth a pull request; the exit code is the run's."""

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.exit_code = exit_code


class PushRejected(AgentError):
    """The remote refused the branch: protection, a hook, or another run pushed first."""


# -- which events start a run -------------------------------------------------------------
@dataclass(frozen=True)
class Trigger:
    issue: IssueRef
    actor: str  # who labelled or commented: the one whose write access counts
    instructions: str = ""  # text after `/agent fix`, appended to the task


def parse_command(comment: str) -> str | None:
    """The instructions after a leading `/agent fix`, '' if none; None when it is no command."""
    found = _COMMAND.match(comment)
    return found["rest"].strip() if found else None


def read_trigger(env: Mapping[str, str], label: str) -> Trigger | str:
    """The run this Actions event asks for, or a one-line reason why it asks for none."""
    path = env.get("GITHUB_EVENT_PATH")
    if not path:
        raise UsageError("GITHUB_EVENT_PATH is not set: 'agent ci' runs inside a GitHub Actions job "
                         "(on your machine, use 'agent pr --issue OWNER/REPO#N')")
    try:
        payload = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise UsageError(f"cannot read the event file {path}: {exc.strerror}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise UsageError(f"the event file {path} is not valid JSON: {exc}") from None
    if not isinstance(payload, dict):
        raise UsageError(f"the event file {path} holds no JSON object")
    return trigger_from_event(env.get("GITHUB_EVENT_NAME", ""), payload, env.get("GITHUB_REPOSITORY"), label)


def trigger_from_event(name: str, payload: dict[str, Any], repository: str | None, label: str) -> Trigger | str:
    if name not in ("issues", "issue_comment"):
        return f"nothing to do: 'agent ci' acts on issues and issue_comment events, not {name or 'this one'}"
    issue, action = payload.get("issue"), payload.get("action")
    if not isinstance(issue, dict) or not isinstance(issue.get("number"), int):
        raise UsageError(f"the {name} event has no issue number in it")
    number = issue["number"]
    if issue.get("pull_request"):
        return f"nothing to do: #{number} is a pull request, not an issue"
    if issue.get("state") == "closed":
        return f"nothing to do: issue #{number} is closed"
    if name == "issues":
        if action != "labeled":
            return f"nothing to do for an issue being {action}"
        added = (payload.get("label") or {}).get("name")
        if added != label:
            return f"nothing to do: issue #{number} was labelled {added!r}, not {label!r}"
        actor, instructions = _login(payload.get("sender")), ""
    else:
        if action != "created":
            return f"nothing to do for a comment being {action}"
        comment = payload.get("comment") or {}
        command = parse_command(comment.get("body") or "")
        if command is None:
            return f"nothing to do: the comment on #{number} is not an '/agent fix' command"
        actor, instructions = _login(comment.get("user")), command
    full_name = repository or (payload.get("repository") or {}).get("full_name") or ""
    owner, _, repo = full_name.partition("/")
    if not owner or not repo:
        raise UsageError("GITHUB_REPOSITORY is not set and the event names no repository")
    return Trigger(IssueRef(owner, repo, number), actor, instructions)


def _login(user: Any) -> str:
    if not isinstance(user, dict) or not user.get("login"):
        raise UsageError("the event does not say who triggered it")
    return user["login"]


def authorize(github: GitHubClient, trigger: Trigger) -> str | None:
    """None when the actor may start a run; else why not, after saying so politely on the issue.

    Asks the permission API rather than trusting `author_association`: MEMBER and
    COLLABORATOR there do not imply write access to this repository.
    """
    ref = trigger.issue
    allowed, role = github.can_write(ref.owner, ref.repo, trigger.actor)
    if allowed:
        return None
    github.comment(ref, f"Thanks @{trigger.actor}! moe-agent only starts for people with write access to this "
                        f"repository, so it did not run. A maintainer can start it on this issue for you.")
    return f"not running: @{trigger.actor} has {role} access to {ref.owner}/{ref.repo}, and write is needed"


# -- pushing ------------------------------------------------------------------------------
@dataclass(frozen=True)
class GitRemote:
    """A remote of the repository, reached with the token for one git process at a time."""

    repo: Path
    name: str
    url: str
    token: str | None = field(default=None, repr=False)

    @classmethod
    def of(cls, repo: Path, name: str = "origin", token: str | None = None) -> GitRemote:
        try:
            url = git(repo, "remote", "get-url", name).strip()
        except GitFailed:
            raise UsageError(f"{repo} has no git remote {name!r} to push to") from None
        return cls(repo, name, url, token)

    def head(self, branch: str) -> str | None:
        """The remote's commit for `branch`, None if it has no such branch."""
        done = self._git("ls-remote", self.name, f"refs/heads/{branch}")
        if done.returncode != 0:
            raise EnvironmentProblem(f"cannot read the remote {self.name!r}: {_last_line(done.stderr)}")
        return done.stdout.split()[0] if done.stdout.strip() else None

    def push(self, commit: str, branch: str, expected: str | None) -> None:
        """Force-update `branch` to `commit`, but only while the remote still has `expected` there."""
        ref = f"refs/heads/{branch}"
        done = self._git("push", "--porcelain", f"--force-with-lease={ref}:{expected or ''}", self.name,
                         f"{commit}:{ref}")
        if done.returncode == 0:
            return
        # `--porcelain` marks a refused ref `!\t<src>:<dst>\t[<kind>] (<reason>)`.
        refused = next((line.split("\t")[-1].replace("[", "").replace("]", "")
                        for line in done.stdout.splitlines() if line.startswith("!")), None)
        if refused is not None and "stale info" in refused:
            raise PushRejected(f"{branch} changed on {self.name} while this run worked (another run for this "
                               "issue?); not overwriting it")
        said = [line.removeprefix("remote:").strip() for line in done.stderr.splitlines() if line.startswith("remote:")]
        said = [line for line in said if line]
        if refused is not None:
            raise PushRejected(f"{self.name} refused the push to {branch}: {refused}"
                               + (f": {' / '.join(said[:3])}" if said else ""))
        raise PushRejected(f"git push to {self.name} failed: {_last_line(done.stderr)}")

    def _git(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["git", "-C", str(self.repo), *args], capture_output=True, text=True, timeout=600,
                              env={**os.environ, **self._auth_env()})

    def _auth_env(self) -> dict[str, str]:
        """The token as an `http.<url>.extraheader` for this process only.

        Scoped to the remote's URL, so it outranks a header `actions/checkout` may have
        left for the host; the empty value first clears any such header.
        """
        env = {"GIT_TERMINAL_PROMPT": "0"}
        if not self.token or not self.url.startswith(("http://", "https://")):
            return env
        basic = base64.b64encode(f"x-access-token:{self.token}".encode()).decode()
        start = int(os.environ.get("GIT_CONFIG_COUNT") or 0)
        key = f"http.{self.url}.extraheader"
        for offset, value in enumerate(("", f"AUTHORIZATION: basic {basic}")):
            env[f"GIT_CONFIG_KEY_{start + offset}"] = key
            env[f"GIT_CONFIG_VALUE_{start + offset}"] = value
        env["GIT_CONFIG_COUNT"] = str(start + 2)
        return env


def _last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else "no output"


def prepare_checkout(repo: Path, branch: str) -> None:
    """Refuse local changes, and drop `branch` left here by an earlier run.

    The agent works on a snapshot of the working tree; uncommitted changes would end up
    pushed with the fix. A stale local branch would make the fix land under another
    name; the remote keeps the earlier result until the push replaces it.
    """
    found = UserRepo.find(repo)
    if git(found.root, "status", "--porcelain"):
        raise UsageError(f"{found.root} has uncommitted changes, which would be pushed with the fix: "
                         "commit or stash them first")
    if found.branch == branch:
        raise UsageError(f"{branch} is checked out in {found.root}; switch to another branch first")
    git(found.root, "update-ref", "-d", f"refs/heads/{branch}")


# -- the workflow -------------------------------------------------------------------------
@dataclass(frozen=True)
class IssueJob:
    issue: IssueRef
    repo: Path
    instructions: str = ""
    requested_by: str | None = None
    base: str | None = None  # None: the repository's default branch
    draft: bool = True
    details_url: str | None = None  # where the job's log is, linked from a failure comment


@dataclass
class IssueFix:
    fix: FixOutcome
    pull: PullRequest
    created: bool  # False: an open pull request from the branch was updated


def branch_for(issue: IssueRef) -> str:
    return f"agent/issue-{issue.number}"


def pull_title(issue: Issue) -> str:
    return f"Fix #{issue.ref.number}: {issue.title}"


def task_text(issue: Issue, job: IssueJob) -> str:
    text = f"{issue.title}\n\n{issue.body}".strip()
    if job.instructions:
        source = f" from @{job.requested_by}" if job.requested_by else ""
        text += f"\n\nAdditional instructions{source}:\n{job.instructions}"
    return text


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
    """Fix, push, open or update the pull request, and say so on the issue.

    Any failure once the run is under way is reported on the issue, then raised.
    """
    issue = github.issue(job.issue)
    branch = branch_for(issue.ref)
    prepare_checkout(job.repo, branch)
    try:
        started_from = remote.head(branch)
        outcome = run_fix(FixRequest(task=task_text(issue, job), repo=job.repo, branch=branch, commit=True,
                                     title=pull_title(issue)), settings, model, listener=listener, echo=echo)
        if outcome.commit is None or outcome.result.status != "submitted":
            raise NotFixed(f"the agent stopped without a fix ({_stopped_because(outcome.result)})",
                           outcome.exit_code or 1)
        echo(f"pushing {branch} to {remote.name}")
        remote.push(outcome.commit, branch, expected=started_from)
        return _publish(job, issue, branch, outcome, github)
    except (AgentError, SandboxError) as exc:
        _report_failure(github, issue, exc, job.details_url, echo)
        raise


def _publish(job: IssueJob, issue: Issue, branch: str, outcome: FixOutcome, github: GitHubClient) -> IssueFix:
    ref, title = issue.ref, pull_title(issue)
    body = pull_request_body(issue, outcome, git(job.repo, "show", "--stat", "--format=", outcome.commit).strip("\n"))
    pull = github.open_pull(ref.owner, ref.repo, branch)
    created = pull is None
    if pull is None:
        base = job.base or github.default_branch(ref.owner, ref.repo)
        pull = github.create_pull(ref.owner, ref.repo, title=title, head=branch, base=base, body=body, draft=job.draft)
    else:
        pull = github.update_pull(ref.owner, ref.repo, pull.number, title=title, body=body)
    kind = "draft pull request" if pull.draft else "pull request"
    github.comment(ref, f"{'Opened' if created else 'Updated'} {kind} #{pull.number} with a fix: {pull.url}\n\n"
                        f"{_tests_line(outcome.result)}\n{_stats_line(outcome.result)}")
    return IssueFix(fix=outcome, pull=pull, created=created)


def _report_failure(github: GitHubClient, issue: Issue, error: BaseException, details_url: str | None,
                    echo: Echo) -> None:
    """Tell the issue why there is no pull request; a failure to tell must not hide the first one."""
    details = f"\n\nThe job's log and the run's trajectory: {details_url}" if details_url else ""
    try:
        github.comment(issue.ref, f"moe-agent did not open a pull request: {error}{details}")
    except AgentError as exc:
        echo(f"could not comment on {issue.ref} either: {exc}")


def _stopped_because(result: RunResult) -> str:
    if result.status == "submitted":
        return "it submitted without changing any file"
    return f"{result.status}: {result.message}" if result.message else result.status


def pull_request_body(issue: Issue, outcome: FixOutcome, diffstat: str) -> str:
    """What changed, which tests ran and how they went, what the run cost, and `Fixes #N`."""
    result = outcome.result
    return "\n".join([
        f"moe-agent's fix for #{issue.ref.number}, **{issue.title}**. Review it like any contribution.",
        "", "### What changed", "", "```", diffstat or "(no files)", "```",
        "", "### Tests", "", _tests_line(result), *_failed_tests(result),
        "", "### Run", "", "| steps | tokens | time | prefix reuse |", "|---:|---:|---:|---:|",
        (f"| {result.steps} | {result.prompt_tokens:,} prompt + {result.completion_tokens:,} completion "
         f"| {result.elapsed:.0f} s | {_reuse(result)} |"),
        "", f"Run `{outcome.run_id}`, status `{result.status}`.", "", f"Fixes #{issue.ref.number}",
    ])


def _tests_line(result: RunResult) -> str:
    tests = result.last_tests
    if not tests:
        return "The agent ran no test suite through its test tool: check the change by hand."
    failed = len(tests.get("failed", [])) + len(tests.get("errors", []))
    verdict = "passed" if not failed and tests.get("exit_code", 0) == 0 else "failed"
    return (f"Last test run {verdict}: {tests.get('passed', 0)} passed, {failed} failed, "
            f"{tests.get('skipped', 0)} skipped (`{tests.get('command', '?')}`).")


def _failed_tests(result: RunResult) -> list[str]:
    tests = result.last_tests or {}
    names = [*tests.get("failed", []), *tests.get("errors", [])]
    shown = [f"- `{name}`" for name in names[:_SHOWN_TEST_FAILURES]]
    return shown + ([f"- and {len(names) - _SHOWN_TEST_FAILURES} more"] if len(names) > _SHOWN_TEST_FAILURES else [])


def _stats_line(result: RunResult) -> str:
    return (f"{result.steps} steps, {result.prompt_tokens + result.completion_tokens:,} tokens, "
            f"{result.elapsed:.0f} s, prefix reuse {_reuse(result)}.")


def _reuse(result: RunResult) -> str:
    return f"{result.prefix_reuse:.0%}" if result.prefix_reuse is not None else "-"


# -- the workflow file ----------------------------------------------------------------------
def workflow_text() -> str:
    return resources.files("agent").joinpath("ci_workflow.yml").read_text(encoding="utf-8")


def write_workflow(repo_root: Path, force: bool = False) -> Path:
    """Write `.github/workflows/agent.yml`; an existing one is kept unless `force`."""
    target = repo_root / WORKFLOW_PATH
    if target.exists() and not force:
        raise UsageError(f"{target} already exists; pass --force to overwrite it")
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(workflow_text(), encoding="utf-8")
    return target
