"""Pushing the fix: the branch `agent/issue-N` to the remote, with the token for one git process.

The token never lands in a file: git gets it as an `http.<url>.extraheader` through
`GIT_CONFIG_*` variables of the one `ls-remote` or `push` that needs it. The branch is
force-updated, but only from the head this run saw when it started (`--force-with-lease`).

The token goes only to the hosts it belongs to (`agent.github.token_hosts`). The remote's
URLs are read as git will use them (`git remote get-url`, after `insteadOf`,
`pushInsteadOf` and `pushurl` from any git config), and a remote with an HTTP(S) URL on
another host or port is refused before anything is sent. Git then enforces it once more:
the header is scoped to each checked URL (git matches it against each request's final
URL, userinfo aside) and redirects are not followed.
"""

from __future__ import annotations

import base64
import os
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

from git import Repo
from git.exc import GitCommandError, InvalidGitRepositoryError, NoSuchPathError

from agent.errors import AgentError, EnvironmentProblem, UsageError
from agent.github import host_of

PUSH_TIMEOUT = 600  # seconds for one ls-remote or push


class PushRejected(AgentError):
    """The remote refused the branch: protection, a hook, or another run pushed first."""


@dataclass(frozen=True)
class GitRemote:
    """A remote of the repository, reached with the token for one git process at a time.

    `urls` are those git fetches from and pushes to, rewrites applied; with a token, `of` has
    checked that each HTTP(S) one is on a host the token is for.
    """

    repo: Path
    name: str
    url: str
    token: str | None = field(default=None, repr=False)
    urls: tuple[str, ...] = ()

    @classmethod
    def of(cls, repo: Path, name: str = "origin", token: str | None = None,
           hosts: frozenset[str] = frozenset()) -> GitRemote:
        """The remote `name`; `UsageError` when it is missing or, with a token, reaches a host outside `hosts`
        (`HOST` or `HOST:PORT`, as `agent.github.host_of` names them: `agent.github.token_hosts`)."""
        git = _repo(repo).git
        try:
            url = git.remote("get-url", name).strip()
            urls = (url, *git.remote("get-url", "--push", "--all", name).splitlines())
        except GitCommandError:
            raise UsageError(f"{repo} has no git remote {name!r} to push to") from None
        if token:
            for each in urls:
                if _http(each) and host_of(urlparse(each), as_sent=True) not in hosts:
                    raise UsageError(
                        f"the git remote {name!r} leads to {_shown_host(each)}, not to the GitHub host the token is "
                        f"for ({', '.join(sorted(hosts)) or 'none'}): not sending it there (set GITHUB_SERVER_URL or "
                        "GH_HOST to that host if it is yours, or push with --remote to one on the token's host)")
        return cls(repo, name, url, token, urls)

    def head(self, branch: str) -> str | None:
        """The remote's commit for `branch`, None if it has no such branch."""
        status, out, err = self._git("ls-remote", self.name, f"refs/heads/{branch}")
        if status != 0:
            raise EnvironmentProblem(f"cannot read the remote {self.name!r}: {_last_line(err)}")
        return out.split()[0] if out.strip() else None

    def push(self, commit: str, branch: str, expected: str | None) -> None:
        """Force-update `branch` to `commit`, but only while the remote still has `expected` there."""
        ref = f"refs/heads/{branch}"
        status, out, err = self._git("push", "--porcelain", f"--force-with-lease={ref}:{expected or ''}", self.name,
                                     f"{commit}:{ref}")
        if status == 0:
            return
        # `--porcelain` marks a refused ref `!\t<src>:<dst>\t[<kind>] (<reason>)`.
        refused = next((line.split("\t")[-1].replace("[", "").replace("]", "")
                        for line in out.splitlines() if line.startswith("!")), None)
        if refused is not None and "stale info" in refused:
            raise PushRejected(f"{branch} changed on {self.name} while this run worked (another run for this "
                               "issue?); not overwriting it")
        said = [line.removeprefix("remote:").strip() for line in err.splitlines() if line.startswith("remote:")]
        said = [line for line in said if line]
        if refused is not None:
            raise PushRejected(f"{self.name} refused the push to {branch}: {refused}"
                               + (f": {' / '.join(said[:3])}" if said else ""))
        raise PushRejected(f"git push to {self.name} failed: {_last_line(err)}")

    def _git(self, *args: str) -> tuple[int, str, str]:
        """Run one git command with the token's header; (exit status, stdout, stderr)."""
        return _repo(self.repo).git.execute(["git", *args], with_extended_output=True, with_exceptions=False,
                                            env=self._auth_env(), kill_after_timeout=PUSH_TIMEOUT)

    def _auth_env(self) -> dict[str, str]:
        """The token as an `http.<base>.extraheader` for this process only, on the remote's checked hosts.

        Scoped to each HTTP(S) URL `of` checked (userinfo dropped), so git adds it only to requests
        whose final URL is under it, and it outranks a header `actions/checkout` may have left for
        the host (the empty value first clears any such header). Redirects are not followed: git
        would send the header on to wherever one leads.
        """
        env = {"GIT_TERMINAL_PROMPT": "0"}
        scopes = sorted({_scope(url) for url in self.urls if _http(url)})
        if not self.token or not scopes:
            return env
        basic = base64.b64encode(f"x-access-token:{self.token}".encode()).decode()
        settings = [("http.followRedirects", "false")]
        for scope in scopes:
            key = f"http.{scope}.extraheader"
            settings += [(key, ""), (key, f"AUTHORIZATION: basic {basic}")]
        start = int(os.environ.get("GIT_CONFIG_COUNT") or 0)
        for offset, (key, value) in enumerate(settings):
            env[f"GIT_CONFIG_KEY_{start + offset}"] = key
            env[f"GIT_CONFIG_VALUE_{start + offset}"] = value
        env["GIT_CONFIG_COUNT"] = str(start + len(settings))
        return env


def _http(url: str) -> bool:
    return url.lower().startswith(("http://", "https://"))


def _scope(url: str) -> str:
    """An HTTP(S) URL without userinfo, query or fragment: a git `http.<url>.*` key that matches requests
    on its host (and port) under its path, whatever user they name."""
    parts = urlparse(url)
    return f"{parts.scheme.lower()}://{parts.netloc.rpartition('@')[2].lower()}{parts.path}"


def _shown_host(url: str) -> str:
    """The host (and port) a URL reaches, for a refusal line: never its userinfo, which may hold a credential."""
    parts = urlparse(url)
    return repr(host_of(parts, as_sent=True) or parts.netloc.rpartition("@")[2])


def prepare_checkout(repo: Path, branch: str) -> Path:
    """Refuse local changes, drop `branch` left here by an earlier run; return the repository's root.

    The agent works on a snapshot of the working tree; uncommitted changes would end up
    pushed with the fix. A stale local branch would make the fix land under another
    name; the remote keeps the earlier result until the push replaces it.
    """
    found = _repo(repo)
    root = Path(found.working_tree_dir or repo)
    if found.is_dirty(untracked_files=True):
        raise UsageError(f"{root} has uncommitted changes, which would be pushed with the fix: "
                         "commit or stash them first")
    if not found.head.is_detached and found.head.is_valid() and found.active_branch.name == branch:
        raise UsageError(f"{branch} is checked out in {root}; switch to another branch first")
    if f"refs/heads/{branch}" in {head.path for head in found.heads}:
        found.git.update_ref("-d", f"refs/heads/{branch}")
    return root


def diffstat(repo: Path, commit: str) -> str:
    """`git show --stat` of `commit`: what a reviewer reads first."""
    return _repo(repo).git.show("--stat", "--format=", commit).strip("\n")


def _repo(path: Path) -> Repo:
    try:
        return Repo(path, search_parent_directories=True)
    except (InvalidGitRepositoryError, NoSuchPathError):
        raise UsageError(f"{path} is not inside a git repository (run 'git init' first, or pass -C PATH)") from None


def _last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else "no output"
