"""The GitHub token reaches git only on the host it is for (issue 16): real git, the fake GitHub, and a
listener on another host or port that records every request's Authorization header.

Each way a repository or a git config can send a fetch or push elsewhere is tried: the remote's URL,
`pushurl`, `insteadOf`/`pushInsteadOf` rewrites (the repository's config and the user's), another
port, another name for the same address, a trailing dot, userinfo that looks like the host, and a
redirect from the right host to another one.
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator
from http.server import ThreadingHTTPServer
from pathlib import Path

import pytest

from agent.ci.push import GitRemote
from agent.errors import EnvironmentProblem, UsageError
from agent.github import api_url_for, token_hosts
from tests.agent.test_ci import ROOT, ISSUE_BODY, ISSUE_TITLE, git, make_checkout
from tests.fakes.github_server import FakeGitHub
from tests.fakes.http import FastHandler


class Listener:
    """An HTTP server on 127.0.0.1 that records each request's path and Authorization header; it answers
    404, or redirects every request to `redirect_to` when that is set."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str | None]] = []
        self.redirect_to: str | None = None
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Recording)
        self._httpd.fake = self  # type: ignore[attr-defined]

    @property
    def port(self) -> int:
        return self._httpd.server_address[1]

    def __enter__(self) -> Listener:
        import threading

        threading.Thread(target=self._httpd.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    @property
    def authorizations(self) -> list[str]:
        return [auth for _, auth in self.seen if auth]


class _Recording(FastHandler):
    def do_GET(self) -> None:
        self._answer()

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("content-length") or 0))
        self._answer()

    def _answer(self) -> None:
        self.fake.seen.append((self.path, self.headers.get("authorization")))
        if self.fake.redirect_to:
            self.send_once(302, b"", {"Location": self.fake.redirect_to + self.path})
        else:
            self.send_once(404, b"not here", {"Content-Type": "text/plain"})


@pytest.fixture
def fake_github(tmp_path: Path) -> Iterator[FakeGitHub]:
    with FakeGitHub(git_root=tmp_path / "git") as server:
        server.add_issue(1, ISSUE_TITLE, ISSUE_BODY)
        yield server


@pytest.fixture
def listener() -> Iterator[Listener]:
    with Listener() as server:
        yield server


@pytest.fixture
def repo(tmp_path: Path, fake_github: FakeGitHub, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))  # the user's git config is this test's
    monkeypatch.delenv("GIT_CONFIG_GLOBAL", raising=False)
    return make_checkout(tmp_path, fake_github)


def refused(repo: Path, fake: FakeGitHub, leads_to: str) -> None:
    """`GitRemote.of` refuses origin with one line naming where it leads, before git sends anything."""
    with pytest.raises(UsageError, match=f"the git remote 'origin' leads to '{leads_to}', not to the GitHub host"):
        GitRemote.of(repo, "origin", fake.token, fake.hosts)


def test_the_token_goes_to_the_fakes_host_and_the_push_lands(repo: Path, fake_github: FakeGitHub) -> None:
    remote = GitRemote.of(repo, "origin", fake_github.token, fake_github.hosts)
    remote.push(git(repo, "rev-parse", "HEAD").strip(), "agent/issue-1", None)
    assert fake_github.branch_head("agent/issue-1") == git(repo, "rev-parse", "HEAD").strip()


@pytest.mark.parametrize("origin", [
    "http://127.0.0.1:{listener}/octo/calc.git",  # another port of the same address
    "http://localhost:{fake}/octo/calc.git",  # another name for the fake's own address
    "http://LOCALHOST:{listener}/octo/calc.git",
    "http://127.0.0.1:{fake}@127.0.0.1:{listener}/octo/calc.git",  # userinfo that looks like the host
    "http://x-access-token:t@127.0.0.1:{listener}/octo/calc.git",
])
def test_a_remote_on_another_host_or_port_is_refused_before_anything_is_sent(
        repo: Path, fake_github: FakeGitHub, listener: Listener, origin: str) -> None:
    fake_port = fake_github.root_url.rsplit(":", 1)[1]
    url = origin.format(listener=listener.port, fake=fake_port)
    git(repo, "remote", "set-url", "origin", url)
    refused(repo, fake_github, url.split("/")[2].rpartition("@")[2].lower())
    assert listener.seen == []


def test_a_fragment_before_the_fakes_address_is_read_as_git_reads_it(
        repo: Path, fake_github: FakeGitHub, listener: Listener) -> None:
    """`http://LISTENER#@FAKE/...`: curl connects to LISTENER, and so does the check's reading."""
    fake = fake_github.root_url.removeprefix("http://")
    git(repo, "remote", "set-url", "origin", f"http://127.0.0.1:{listener.port}#@{fake}/octo/calc.git")
    refused(repo, fake_github, f"127.0.0.1:{listener.port}")
    assert listener.seen == []


@pytest.mark.parametrize(("origin", "leads_to"), [
    ("http://github.com/octo/calc.git", "github.com:80"),  # plain text on port 80 is not the HTTPS server
    ("http://github.com:443/octo/calc.git", "github.com:443"),
    ("https://github.com./octo/calc.git", "github.com."),
    ("https://github.com@evil.example/octo/calc.git", "evil.example"),
])
def test_github_com_look_alikes_are_refused(repo: Path, fake_github: FakeGitHub, origin: str, leads_to: str) -> None:
    git(repo, "remote", "set-url", "origin", origin)
    with pytest.raises(UsageError, match=f"leads to '{re.escape(leads_to)}', not to the GitHub host the token is for "
                                         r"\(github.com\)"):
        GitRemote.of(repo, "origin", fake_github.token, token_hosts({"GITHUB_TOKEN": "t"}))
    for same in ("https://GitHub.com/octo/calc.git", "https://github.com:443/octo/calc.git",
                 "https://x-access-token:t@github.com/octo/calc.git"):
        git(repo, "remote", "set-url", "origin", same)
        assert GitRemote.of(repo, "origin", fake_github.token, frozenset({"github.com"})).urls == (same, same)


def test_a_trailing_dot_names_another_host() -> None:
    """`localhost.` reaches what `localhost` does, but is not the configured name: refused, not normalised."""
    env = {"GITHUB_TOKEN": "ghp_x", "GH_HOST": "localhost:8443"}
    assert token_hosts(env) == {"localhost:8443"}
    assert token_hosts({**env, "GITHUB_SERVER_URL": "https://GHE.Example.com"}) == {"ghe.example.com", "localhost:8443"}
    assert "localhost.:8443" not in token_hosts(env)


def test_a_trailing_dot_remote_is_refused(repo: Path, fake_github: FakeGitHub, listener: Listener) -> None:
    url = f"http://localhost.:{listener.port}/octo/calc.git"
    git(repo, "remote", "set-url", "origin", url)
    hosts = frozenset({f"localhost:{listener.port}"})
    with pytest.raises(UsageError, match=f"leads to 'localhost.:{listener.port}'"):
        GitRemote.of(repo, "origin", fake_github.token, hosts)
    assert listener.seen == []


@pytest.mark.parametrize("key", ["insteadOf", "pushInsteadOf"])
@pytest.mark.parametrize("where", ["repository", "user"])
def test_an_insteadof_rewrite_to_another_host_is_refused(
        repo: Path, fake_github: FakeGitHub, listener: Listener, key: str, where: str) -> None:
    scope = ["config"] if where == "repository" else ["config", "--global"]
    git(repo, *scope, f"url.http://127.0.0.1:{listener.port}/.{key}", f"{fake_github.root_url}/")
    refused(repo, fake_github, f"127.0.0.1:{listener.port}")
    assert listener.seen == []


def test_a_pushurl_on_another_host_is_refused(repo: Path, fake_github: FakeGitHub, listener: Listener) -> None:
    git(repo, "config", "--add", "remote.origin.pushurl", fake_github.clone_url)
    git(repo, "config", "--add", "remote.origin.pushurl", f"http://127.0.0.1:{listener.port}/octo/calc.git")
    refused(repo, fake_github, f"127.0.0.1:{listener.port}")
    assert listener.seen == []


def test_an_ssh_remote_gets_no_token_and_is_not_refused(repo: Path, fake_github: FakeGitHub) -> None:
    git(repo, "remote", "set-url", "origin", "git@evil.example:octo/calc.git")
    remote = GitRemote.of(repo, "origin", fake_github.token, fake_github.hosts)
    assert "GIT_CONFIG_COUNT" not in remote._auth_env()  # git pushes with the user's SSH key


def test_a_redirect_from_the_tokens_host_is_not_followed(
        repo: Path, fake_github: FakeGitHub, listener: Listener) -> None:
    """The token's host answers with a redirect to another port: git stops there; the header goes nowhere else."""
    with Listener() as other:
        listener.redirect_to = f"http://127.0.0.1:{other.port}"
        git(repo, "remote", "set-url", "origin", f"http://127.0.0.1:{listener.port}/octo/calc.git")
        remote = GitRemote.of(repo, "origin", fake_github.token, frozenset({f"127.0.0.1:{listener.port}"}))
        with pytest.raises(EnvironmentProblem, match="cannot read the remote 'origin'"):
            remote.head("agent/issue-1")
        assert listener.authorizations and other.seen == []


def test_the_api_goes_to_the_configured_server_not_github_com() -> None:
    """A token for an Enterprise server named by GH_HOST or GITHUB_SERVER_URL is not sent to api.github.com."""
    assert api_url_for(None, {"GH_HOST": "GHE.example.com:8443"}) == "https://ghe.example.com:8443/api/v3"
    assert api_url_for(None, {"GITHUB_SERVER_URL": "http://127.0.0.1:8080"}) == "http://127.0.0.1:8080/api/v3"
    assert api_url_for(None, {"GITHUB_SERVER_URL": "https://github.com"}) == "https://api.github.com"
    assert api_url_for(None, {}) == "https://api.github.com"


def test_agent_pr_refuses_a_remote_off_the_configured_host_with_one_line(
        tmp_path: Path, repo: Path, fake_github: FakeGitHub, listener: Listener) -> None:
    """The tester's repro: origin on another port, the API on the fake; GH_HOST and GITHUB_SERVER_URL unset."""
    git(repo, "remote", "set-url", "origin", f"http://127.0.0.1:{listener.port}/someone/mirror.git")
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path / "home"), "GITHUB_TOKEN": fake_github.token,
           "GITHUB_API_URL": fake_github.api_url, "OPENAI_BASE_URL": "http://127.0.0.1:9/v1", "AGENT_MODEL": "m"}
    done = subprocess.run([sys.executable, "-m", "agent", "pr", "--issue", "octo/calc#1", "-C", str(repo)],
                          env=env, capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert done.returncode == 2, done.stderr
    [line] = done.stderr.strip().splitlines()
    assert f"leads to '127.0.0.1:{listener.port}', not to the GitHub host the token is for" in line
    assert fake_github.token not in done.stderr + done.stdout
    assert listener.seen == [] and fake_github.pulls == [] and fake_github.comments_on(1) == []


def test_an_api_redirect_to_another_host_does_not_carry_the_token(listener: Listener) -> None:
    """httpx, under githubkit, drops the Authorization header on a redirect to another origin."""
    from agent.github import GitHubClient, GitHubError, IssueRef

    with Listener() as other:
        listener.redirect_to = f"http://127.0.0.1:{other.port}"
        client = GitHubClient("ghp_redirectedToken0123456789", f"http://127.0.0.1:{listener.port}/api/v3")
        with pytest.raises(GitHubError, match="404"):
            client.issue(IssueRef("octo", "calc", 1))
        assert listener.authorizations and other.seen and other.authorizations == []


def test_gh_s_token_for_the_default_host_goes_only_there(tmp_path: Path) -> None:
    """No GITHUB_TOKEN, GH_HOST names an Enterprise server: `gh` is asked for that host's token, which goes
    to that host's API and git only (never github.com's token to the Enterprise server)."""
    from agent.github import find_token

    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    gh = bin_dir / "gh"
    gh.write_text('#!/bin/sh\n[ "$4" = "ghe.example.com" ] && echo ghp_enterprise && exit 0\nexit 1\n')
    gh.chmod(0o755)
    env = {"PATH": f"{bin_dir}:/usr/bin:/bin", "GH_HOST": "ghe.example.com"}
    assert find_token(env) == "ghp_enterprise"
    assert token_hosts(env) == {"ghe.example.com"} and api_url_for(None, env) == "https://ghe.example.com/api/v3"
    assert find_token({"PATH": env["PATH"]}) is None  # github.com: gh is not logged in there
