"""The GitHub REST calls the CI bot makes, through githubkit, each failure one line.

Rate limits are waited out inside githubkit's own retry hook, within a total budget
(`max_wait`): a limit that resets sooner is slept through, a later one is reported with
when it resets. Everything posted to GitHub is scrubbed of the secrets the client was
given, because error messages (a model server's address, say) can carry them onto a
public issue.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from urllib.parse import ParseResult, urlparse

from githubkit import GitHub
from githubkit.exception import GitHubException, RateLimitExceeded, RequestError, RequestFailed, RequestTimeout
from githubkit.retry import RetryOption

from agent import __version__
from agent.errors import EnvironmentProblem, UsageError
from agent.redaction import Redactor, hold, scrub

DEFAULT_API_URL = "https://api.github.com"
DEFAULT_MAX_WAIT = 60.0  # seconds of rate-limit waiting per run, in total
SERVER_ERROR_RETRIES = 2
WRITE_ROLES = frozenset({"admin", "maintain", "write"})
_SHORT_REF = re.compile(r"(?P<owner>[\w.-]+)/(?P<repo>[\w.-]+)#(?P<number>\d+)")
_URL_PATH = re.compile(r"/(?P<owner>[\w.-]+)/(?P<repo>[\w.-]+)/issues/(?P<number>\d+)/?")

Echo = Callable[[str], None]


class GitHubError(EnvironmentProblem):
    """The API refused or could not be reached; `status` is the HTTP status, if any."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class IssueRef:
    owner: str
    repo: str
    number: int
    host: str | None = None  # from a URL, `HOST` or `HOST:PORT`: tells github.com from a GitHub Enterprise server

    def __str__(self) -> str:
        return f"{self.owner}/{self.repo}#{self.number}"


@dataclass(frozen=True)
class Issue:
    ref: IssueRef
    title: str
    body: str
    state: str
    url: str


@dataclass(frozen=True)
class PullRequest:
    number: int
    url: str
    draft: bool


def parse_issue_ref(text: str) -> IssueRef:
    """`OWNER/REPO#N` or an issue's URL (github.com or GitHub Enterprise)."""
    text = text.strip()
    if found := _SHORT_REF.fullmatch(text):
        return IssueRef(found["owner"], found["repo"], int(found["number"]))
    url = urlparse(text)
    if url.scheme in ("http", "https") and url.hostname and (found := _URL_PATH.fullmatch(url.path)):
        if (host := host_of(url)) is not None:
            return IssueRef(found["owner"], found["repo"], int(found["number"]), host=host)
    raise UsageError(f"bad issue reference {text!r}: use OWNER/REPO#N or https://github.com/OWNER/REPO/issues/N")


def host_of(url: ParseResult, *, as_sent: bool = False) -> str | None:
    """`url`'s host as `HOST` or `HOST:PORT` (lower case; a scheme's default port dropped, so
    `https://ghe:443` is `ghe`); None when the port is not a number. A GitHub Enterprise server on
    a port of its own is a different server from the one on 443: the port is part of the name.

    An issue's URL only names a server whose API we call over HTTPS, so `http://ghe/...` is `ghe`.
    With `as_sent` (a URL a token is sent to, or the environment names for one) only HTTPS drops its
    port: `http://ghe` is `ghe:80`, plain text on another port, not the HTTPS server `ghe` names."""
    try:
        port = url.port
    except ValueError:
        return None
    host = (url.hostname or "").lower()
    host = f"[{host}]" if ":" in host else host
    port = _DEFAULT_PORTS.get(url.scheme) if port is None else port
    drops = url.scheme == "https" or (url.scheme == "http" and not as_sent)
    return host if port is None or (drops and port == _DEFAULT_PORTS[url.scheme]) else f"{host}:{port}"


_DEFAULT_PORTS = {"https": 443, "http": 80}


def api_url_for(ref: IssueRef | None, env: Mapping[str, str] = os.environ) -> str:
    """`GITHUB_API_URL` when set (Actions sets it, Enterprise included), else the API of the issue's host, else
    that of the configured server (`GITHUB_SERVER_URL`, else `GH_HOST`): never github.com's for a token that
    belongs to an Enterprise server."""
    if env.get("GITHUB_API_URL"):
        return env["GITHUB_API_URL"]
    server = urlparse(env.get("GITHUB_SERVER_URL") or "")
    host = (ref.host if ref is not None else None) or default_host(env)
    if host == "github.com":
        return DEFAULT_API_URL
    scheme = server.scheme if server.scheme in _DEFAULT_PORTS and host_of(server) == host else "https"
    return f"{scheme}://{host}/api/v3"


def default_host(env: Mapping[str, str] = os.environ) -> str:
    """The GitHub host an `OWNER/REPO#N` reference is on: `GITHUB_SERVER_URL`'s, else `GH_HOST` (as `gh` reads
    it), else github.com; named as `host_of` names hosts."""
    return host_of(urlparse(env.get("GITHUB_SERVER_URL") or "")) or (env.get("GH_HOST") or "").lower() or "github.com"


def configured_hosts(env: Mapping[str, str] = os.environ) -> set[str]:
    """The GitHub hosts the environment's token is for: those of `GITHUB_SERVER_URL`,
    `GITHUB_API_URL` (`api.HOST` counts for HOST) and `GH_HOST`; github.com when none is set.
    A host on a port other than its scheme's default is named `HOST:PORT` (`host_of`)."""
    hosts = {host_of(urlparse(env.get(var) or ""), as_sent=True) or ""
             for var in ("GITHUB_SERVER_URL", "GITHUB_API_URL")}
    hosts |= {host.removeprefix("api.") for host in hosts} | {env.get("GH_HOST") or ""}
    return {host.lower() for host in hosts if host} or {"github.com"}


def token_hosts(env: Mapping[str, str] = os.environ, host: str | None = None) -> frozenset[str]:
    """Where the token `find_token(env, host)` answers with may be sent: `configured_hosts` for the
    environment's, `host` (`default_host` for None) for the one `gh` keeps for it. Every git fetch or push
    and API call that carries the token goes to one of these (`agent/ci/push.py` checks the remote)."""
    if any(env.get(name) for name in ("GITHUB_TOKEN", "GH_TOKEN")) and (
            host is None or host.lower() in configured_hosts(env)):
        return frozenset(configured_hosts(env))
    return frozenset({(host or default_host(env)).lower()})


def find_token(env: Mapping[str, str] = os.environ, host: str | None = None) -> str | None:
    """`GITHUB_TOKEN` (or `GH_TOKEN`), else what the `gh` CLI is logged in with, if it is installed.

    The environment's token belongs to `configured_hosts`: for an issue URL on any other
    host (`host`, None for OWNER/REPO#N) it is not sent, so a link in an issue cannot
    collect it; `gh` keeps a token per host and answers for that host only (`token_hosts`).
    """
    if (host is None or host.lower() in configured_hosts(env)) and (
            found := next((env[name] for name in ("GITHUB_TOKEN", "GH_TOKEN") if env.get(name)), None)):
        return found
    host = host or default_host(env)
    gh = shutil.which("gh", path=env.get("PATH"))
    if gh is None:
        return None
    done = subprocess.run([gh, "auth", "token", "--hostname", host], capture_output=True, text=True, timeout=30)
    token = done.stdout.strip() if done.returncode == 0 else ""
    hold([token])  # not in the environment, so `scrub` learns it here
    return token or None


def fetch_issue(text: str) -> Issue:
    """The issue behind a reference, for `agent fix --issue`; a token is needed only for private repos."""
    ref = parse_issue_ref(text)
    return GitHubClient(find_token(host=ref.host), api_url_for(ref)).issue(ref)


class RateLimitBudget:
    """githubkit's `auto_retry` hook: sleep through rate limits while the total stays in budget.

    githubkit's default retries a rate limit once however long its reset is (an hour,
    say), and logs tracebacks; a CI job wants a bound and one line per wait.
    """

    def __init__(self, budget: float, echo: Echo) -> None:
        self.budget = budget
        self.waited = 0.0
        self.echo = echo

    def __call__(self, exc: GitHubException, retry_count: int) -> RetryOption:
        if isinstance(exc, RateLimitExceeded):
            wait = max(exc.retry_after.total_seconds(), 1.0)  # resets are whole seconds: never spin
            if self.waited + wait > self.budget:
                return RetryOption(False)
            self.waited += wait
            self.echo(f"GitHub API rate limit reached; waiting {wait:.0f} s")
            return RetryOption(True, timedelta(seconds=wait))
        if isinstance(exc, RequestFailed) and exc.response.status_code >= 500 and retry_count < SERVER_ERROR_RETRIES:
            self.echo(f"GitHub API answered {exc.response.status_code}; retrying")
            return RetryOption(True, timedelta(seconds=2**retry_count))
        return RetryOption(False)


class GitHubClient:
    """The handful of REST calls the bot needs; answers are read as plain JSON.

    We read only the fields we use rather than validating whole response models, so
    older GitHub Enterprise servers, whose answers lack newer fields, work too.
    """

    def __init__(
        self,
        token: str | None,
        api_url: str = DEFAULT_API_URL,
        *,
        max_wait: float = DEFAULT_MAX_WAIT,
        secrets: Iterable[str | None] = (),
        echo: Echo = lambda message: None,
    ) -> None:
        from agent.config import header_value_problem

        if token and (problem := header_value_problem(token)):  # httpx would raise UnicodeEncodeError later
            raise UsageError(f"the GitHub token (GITHUB_TOKEN, GH_TOKEN or gh's) {problem}; the value is not shown")
        self.api_url = api_url
        self.retry = RateLimitBudget(max_wait, echo)
        hold([token])
        self._redactor = Redactor([token, *secrets])  # the endpoints too: repository secrets in CI
        self._gh = GitHub(token, base_url=api_url, auto_retry=self.retry, http_cache=False, timeout=30.0,
                          user_agent=f"moe-agent/{__version__}")

    def redact(self, text: str) -> str:
        """`text` without the client's secrets and the process's (`scrub`), escaped forms included."""
        return self._redactor(scrub(text))

    def issue(self, ref: IssueRef) -> Issue:
        with self._failures(f"reading issue {ref}"):
            data = self._gh.rest.issues.get(ref.owner, ref.repo, ref.number).json()
        if data.get("pull_request"):
            raise UsageError(f"{ref} is a pull request, not an issue")
        return Issue(ref=ref, title=data["title"], body=data.get("body") or "", state=data["state"],
                     url=data["html_url"])

    def comment(self, ref: IssueRef, body: str) -> str:
        with self._failures(f"commenting on {ref}"):
            data = self._gh.rest.issues.create_comment(ref.owner, ref.repo, ref.number, body=self.redact(body)).json()
        return data["html_url"]

    def can_write(self, owner: str, repo: str, user: str) -> tuple[bool, str]:
        """Whether `user` may push to the repository, and the role GitHub reports."""
        try:
            with self._failures(f"checking {user}'s permission on {owner}/{repo}"):
                data = self._gh.rest.repos.get_collaborator_permission_level(owner, repo, user).json()
        except GitHubError as exc:
            if exc.status == 404:  # not a collaborator (or no such user)
                return False, "none"
            raise
        role = data.get("role_name") or data.get("permission") or "none"
        return role in WRITE_ROLES or data.get("permission") in WRITE_ROLES, role

    def default_branch(self, owner: str, repo: str) -> str:
        with self._failures(f"reading {owner}/{repo}"):
            return self._gh.rest.repos.get(owner, repo).json()["default_branch"]

    def open_pull(self, owner: str, repo: str, branch: str) -> PullRequest | None:
        """The open pull request from `branch` of the same repository, if there is one."""
        with self._failures(f"listing pull requests of {owner}/{repo}"):
            found = self._gh.rest.pulls.list(owner, repo, state="open", head=f"{owner}:{branch}").json()
        return _pull(found[0]) if found else None

    def create_pull(self, owner: str, repo: str, *, title: str, head: str, base: str, body: str,
                    draft: bool) -> PullRequest:
        with self._failures(f"opening a pull request on {owner}/{repo}"):
            return _pull(self._gh.rest.pulls.create(owner, repo, title=self.redact(title), head=head, base=base,
                                                    body=self.redact(body), draft=draft).json())

    def update_pull(self, owner: str, repo: str, number: int, *, title: str, body: str) -> PullRequest:
        with self._failures(f"updating pull request #{number} of {owner}/{repo}"):
            return _pull(self._gh.rest.pulls.update(owner, repo, number, title=self.redact(title),
                                                    body=self.redact(body)).json())

    @contextmanager
    def _failures(self, action: str) -> Iterator[None]:
        """githubkit's exceptions as one line naming what we were doing."""
        try:
            yield
        except RateLimitExceeded as exc:
            raise GitHubError(
                f"GitHub API rate limit exceeded while {action}: it resets in {_duration(exc.retry_after)}, "
                f"beyond this run's {self.retry.budget:g} s of waiting (--max-wait)", exc.response.status_code,
            ) from None
        except RequestFailed as exc:
            status = exc.response.status_code
            hint = {401: " (check the token)", 404: " (does it exist, and may the token see it?)"}.get(status, "")
            raise GitHubError(f"GitHub API answered {status} while {action}: {_message(exc.response)}{hint}",
                              status) from None
        except RequestTimeout:
            raise GitHubError(f"GitHub API at {self.api_url} timed out while {action}") from None
        except RequestError as exc:
            raise GitHubError(f"cannot reach the GitHub API at {self.api_url} while {action}: {exc.exc}") from None


def _pull(data: dict[str, Any]) -> PullRequest:
    return PullRequest(number=data["number"], url=data["html_url"], draft=bool(data.get("draft")))


def _message(response: Any) -> str:
    """GitHub's `message`, plus the first validation error's, which says what was wrong."""
    try:
        data = response.json()
    except ValueError:
        return response.text[:200] or response.reason_phrase
    message = str(data.get("message", "")) if isinstance(data, dict) else ""
    errors = data.get("errors") if isinstance(data, dict) else None
    if errors and isinstance(errors[0], dict):
        first = errors[0]
        message += ": " + str(first.get("message") or f"{first.get('field', '?')} {first.get('code', 'invalid')}")
    return message or response.reason_phrase


def _duration(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    return f"{seconds} s" if seconds < 120 else f"{seconds // 60} min"
