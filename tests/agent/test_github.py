"""The GitHub client against a local fake GitHub: real HTTP through githubkit, no network."""

from __future__ import annotations

import socket
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.errors import UsageError
from agent.github import GitHubClient, GitHubError, IssueRef, api_url_for, fetch_issue, find_token, parse_issue_ref
from tests.fakes.github_server import FakeGitHub, RateLimit


@pytest.fixture
def fake_github(tmp_path: Path) -> Iterator[FakeGitHub]:
    with FakeGitHub(git_root=tmp_path / "git") as server:
        yield server


def client(fake: FakeGitHub, **options) -> GitHubClient:
    return GitHubClient(fake.token, fake.api_url, **options)


@pytest.mark.parametrize(("text", "expected"), [
    ("octo/calc#12", IssueRef("octo", "calc", 12)),
    ("  my-org/my.repo_x#3 ", IssueRef("my-org", "my.repo_x", 3)),
    ("https://github.com/octo/calc/issues/12", IssueRef("octo", "calc", 12, host="github.com")),
    ("https://ghe.example.com/team/svc/issues/7/", IssueRef("team", "svc", 7, host="ghe.example.com")),
])
def test_issue_references(text: str, expected: IssueRef) -> None:
    assert parse_issue_ref(text) == expected


@pytest.mark.parametrize("text", ["octo/calc", "octo/calc#x", "calc#3", "", "https://github.com/octo/calc/pull/3",
                                  "ftp://github.com/octo/calc/issues/3", "octo/calc#3 extra"])
def test_bad_issue_references_are_one_line_usage_errors(text: str) -> None:
    with pytest.raises(UsageError, match="bad issue reference") as raised:
        parse_issue_ref(text)
    assert "\n" not in str(raised.value)


def test_api_url_prefers_the_environment_then_the_issue_host() -> None:
    ghe = IssueRef("a", "b", 1, host="ghe.example.com")
    assert api_url_for(ghe, {"GITHUB_API_URL": "https://ghe.example.com/api/v3"}) == "https://ghe.example.com/api/v3"
    assert api_url_for(ghe, {}) == "https://ghe.example.com/api/v3"
    assert api_url_for(IssueRef("a", "b", 1, host="github.com"), {}) == "https://api.github.com"
    assert api_url_for(None, {}) == "https://api.github.com"


@pytest.mark.parametrize(("url", "host", "api"), [
    ("https://HOST:8443/o/r/issues/1", "host:8443", "https://host:8443/api/v3"),  # the tester's example
    ("https://ghe.example.com:443/o/r/issues/1", "ghe.example.com", "https://ghe.example.com/api/v3"),
    ("http://ghe.example.com:80/o/r/issues/1", "ghe.example.com", "https://ghe.example.com/api/v3"),
    ("https://ghe.example.com:80/o/r/issues/1", "ghe.example.com:80", "https://ghe.example.com:80/api/v3"),
    ("https://[fd00::1]:8443/o/r/issues/1", "[fd00::1]:8443", "https://[fd00::1]:8443/api/v3"),
    ("https://user:pw@ghe.example.com:9000/o/r/issues/1", "ghe.example.com:9000",
     "https://ghe.example.com:9000/api/v3"),  # userinfo never reaches the API URL
])
def test_an_enterprise_server_on_its_own_port_is_read_on_that_port(url: str, host: str, api: str) -> None:
    ref = parse_issue_ref(url)
    assert (ref.host, api_url_for(ref, {})) == (host, api)


def test_a_port_that_is_not_a_number_is_a_bad_reference() -> None:
    with pytest.raises(UsageError, match="bad issue reference"):
        parse_issue_ref("https://ghe.example.com:x/o/r/issues/1")


def test_the_token_goes_only_to_the_configured_host_and_port() -> None:
    env = {"GITHUB_TOKEN": "ghp_mine", "PATH": "/nonexistent", "GITHUB_SERVER_URL": "https://ghe.example.com:8443"}
    assert find_token(env, host=parse_issue_ref("https://GHE.example.com:8443/o/r/issues/1").host) == "ghp_mine"
    for other in ("https://ghe.example.com/o/r/issues/1", "https://ghe.example.com:9443/o/r/issues/1",
                  "https://evil.example:8443/o/r/issues/1"):
        assert find_token(env, host=parse_issue_ref(other).host) is None, other
    on_443 = {"GITHUB_TOKEN": "ghp_mine", "PATH": "/nonexistent", "GITHUB_SERVER_URL": "https://ghe.example.com"}
    assert find_token(on_443, host=parse_issue_ref("https://ghe.example.com:443/o/r/issues/1").host) == "ghp_mine"
    assert find_token(on_443, host=parse_issue_ref("https://ghe.example.com:8443/o/r/issues/1").host) is None


def test_token_from_the_environment_then_the_gh_cli(tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    assert find_token({"GITHUB_TOKEN": "ghp_env", "PATH": str(bin_dir)}) == "ghp_env"
    assert find_token({"GH_TOKEN": "ghp_gh_env", "PATH": str(bin_dir)}) == "ghp_gh_env"
    assert find_token({"PATH": str(bin_dir)}) is None  # no gh installed
    gh = bin_dir / "gh"
    gh.write_text('#!/bin/sh\n[ "$1 $2 $3 $4" = "auth token --hostname ghe.example.com" ] && echo ghp_from_gh\n')
    gh.chmod(gh.stat().st_mode | stat.S_IEXEC)
    assert find_token({"PATH": str(bin_dir)}, host="ghe.example.com") == "ghp_from_gh"
    assert find_token({"PATH": str(bin_dir)}, host="github.com") is None  # gh not logged in there: exit 1


def test_reads_an_issue_with_the_token(fake_github: FakeGitHub) -> None:
    fake_github.add_issue(7, "add() subtracts", "calc.add(2, 3) returns -1")
    issue = client(fake_github).issue(IssueRef("octo", "calc", 7))
    assert (issue.title, issue.body, issue.state) == ("add() subtracts", "calc.add(2, 3) returns -1", "open")
    assert issue.url.endswith("/octo/calc/issues/7")
    request = fake_github.requests[-1]
    assert (request.method, request.path) == ("GET", "/repos/octo/calc/issues/7")
    assert request.headers["authorization"] == f"token {fake_github.token}"


def test_fetch_issue_for_agent_fix_reads_token_and_api_url_from_the_environment(
        fake_github: FakeGitHub, monkeypatch: pytest.MonkeyPatch) -> None:
    fake_github.add_issue(3, "crash on empty input", "")
    monkeypatch.setenv("GITHUB_API_URL", fake_github.api_url)
    monkeypatch.setenv("GITHUB_TOKEN", fake_github.token)
    found = fetch_issue("octo/calc#3")
    assert (found.title, found.body) == ("crash on empty input", "")


def test_a_redirect_to_another_port_is_refused_and_nothing_is_read_there(fake_github: FakeGitHub,
                                                                         tmp_path: Path) -> None:
    with FakeGitHub(git_root=tmp_path / "other", token=fake_github.token) as other:
        other.add_issue(7, "planted", "text from the redirect's target")
        fake_github.add_issue(7, "add() subtracts", "calc.add(2, 3) returns -1")
        fake_github.redirects["/repos/octo/calc/issues/7"] = f"{other.api_url}/repos/octo/calc/issues/7"
        with pytest.raises(GitHubError, match=r"redirected to another host or port \(http://127\.0\.0\.1:\d+/api/v3/"
                                              r"repos/octo/calc/issues/7\); redirects are followed only within it "
                                              r"\(while reading issue octo/calc#7\)") as raised:
            client(fake_github).issue(IssueRef("octo", "calc", 7))
        assert raised.value.exit_code == 3 and "\n" not in str(raised.value)
        assert other.requests == []


def test_a_redirect_within_the_api_is_followed_with_the_token(fake_github: FakeGitHub) -> None:
    fake_github.add_issue(7, "add() subtracts", "calc.add(2, 3) returns -1")
    fake_github.redirects["/repos/octo/old-name/issues/7"] = f"{fake_github.api_url}/repos/octo/calc/issues/7"
    issue = client(fake_github).issue(IssueRef("octo", "old-name", 7))
    assert issue.body == "calc.add(2, 3) returns -1"
    assert [r.path for r in fake_github.requests] == ["/repos/octo/old-name/issues/7", "/repos/octo/calc/issues/7"]


def test_missing_issue_and_bad_token_are_one_line_errors(fake_github: FakeGitHub) -> None:
    with pytest.raises(GitHubError, match=r"answered 404 while reading issue octo/calc#9: Not Found \(does it exist"):
        client(fake_github).issue(IssueRef("octo", "calc", 9))
    fake_github.add_issue(9, "t", "b")
    with pytest.raises(GitHubError, match=r"answered 401 .*Bad credentials \(check the token\)") as raised:
        GitHubClient("ghp_wrong", fake_github.api_url).issue(IssueRef("octo", "calc", 9))
    assert raised.value.status == 401 and raised.value.exit_code == 3


def test_a_pull_request_is_not_an_issue(fake_github: FakeGitHub) -> None:
    fake_github.add_issue(4, "t", "b")["pull_request"] = {"url": "x"}
    with pytest.raises(UsageError, match="octo/calc#4 is a pull request"):
        client(fake_github).issue(IssueRef("octo", "calc", 4))


def test_unreachable_api_is_one_line(tmp_path: Path) -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(GitHubError, match=f"cannot reach the GitHub API at http://127.0.0.1:{port}"):
        GitHubClient("t0ken", f"http://127.0.0.1:{port}").issue(IssueRef("o", "r", 1))


def test_primary_rate_limit_is_waited_out(fake_github: FakeGitHub) -> None:
    fake_github.add_issue(1, "t", "b")
    fake_github.rate_limits.append(RateLimit(status=403, reset_in=1))
    said: list[str] = []
    github = client(fake_github, echo=said.append)
    assert github.issue(IssueRef("octo", "calc", 1)).title == "t"
    assert [r.path for r in fake_github.requests] == ["/repos/octo/calc/issues/1"] * 2
    assert github.retry.waited >= 1 and said == [f"GitHub API rate limit reached; waiting {github.retry.waited:.0f} s"]


def test_secondary_rate_limit_honours_retry_after(fake_github: FakeGitHub) -> None:
    fake_github.add_issue(1, "t", "b")
    fake_github.rate_limits.append(RateLimit(status=429, reset_in=3600, retry_after=1))
    github = client(fake_github)
    assert github.issue(IssueRef("octo", "calc", 1)).title == "t"
    assert github.retry.waited == 1 and len(fake_github.requests) == 2


def test_long_rate_limit_is_reported_not_waited(fake_github: FakeGitHub) -> None:
    fake_github.add_issue(1, "t", "b")
    fake_github.rate_limits.append(RateLimit(status=403, reset_in=3600))
    github = client(fake_github, max_wait=60)
    with pytest.raises(GitHubError, match=r"rate limit exceeded while reading issue octo/calc#1: it resets in "
                                          r"(59|60) min, beyond this run's 60 s of waiting") as raised:
        github.issue(IssueRef("octo", "calc", 1))
    assert raised.value.status == 403 and len(fake_github.requests) == 1 and github.retry.waited == 0


def test_rate_limit_budget_is_for_the_whole_run(fake_github: FakeGitHub) -> None:
    fake_github.add_issue(1, "t", "b")
    github = client(fake_github, max_wait=1.5)
    fake_github.rate_limits.append(RateLimit(reset_in=1))
    github.issue(IssueRef("octo", "calc", 1))
    fake_github.rate_limits.append(RateLimit(reset_in=1))
    with pytest.raises(GitHubError, match="rate limit exceeded"):
        github.issue(IssueRef("octo", "calc", 1))
    assert len(fake_github.requests) == 3


@pytest.mark.parametrize(("role", "allowed"), [
    ("admin", True), ("maintain", True), ("write", True), ("triage", False), ("read", False)])
def test_write_access_comes_from_the_permission_api(fake_github: FakeGitHub, role: str, allowed: bool) -> None:
    fake_github.permissions["dev"] = role
    assert client(fake_github).can_write("octo", "calc", "dev") == (allowed, role)
    assert fake_github.requests[-1].path == "/repos/octo/calc/collaborators/dev/permission"


def test_someone_who_is_no_collaborator_cannot_write(fake_github: FakeGitHub) -> None:
    assert client(fake_github).can_write("octo", "calc", "passer-by") == (False, "none")


def test_comments_never_carry_the_secrets(fake_github: FakeGitHub) -> None:
    fake_github.add_issue(1, "t", "b")
    github = client(fake_github, secrets=["http://10.1.2.3:8000/v1", "sk-model-key", None, ""])
    url = github.comment(IssueRef("octo", "calc", 1),
                         f"cannot reach http://10.1.2.3:8000/v1 with sk-model-key or {fake_github.token}")
    assert fake_github.comments_on(1) == ["cannot reach *** with *** or ***"]
    assert url.endswith(f"/octo/calc/issues/1#issuecomment-{fake_github.comments[0]['id']}")


def test_pull_request_create_find_update(fake_github: FakeGitHub, tmp_path: Path) -> None:
    push_branches(fake_github, tmp_path, "main", "agent/issue-1")
    github = client(fake_github)
    assert github.default_branch("octo", "calc") == "main"
    assert github.open_pull("octo", "calc", "agent/issue-1") is None
    pull = github.create_pull("octo", "calc", title="Fix #1", head="agent/issue-1", base="main", body="v1", draft=True)
    assert pull.draft and pull.url.endswith(f"/octo/calc/pull/{pull.number}")
    assert github.open_pull("octo", "calc", "agent/issue-1") == pull
    assert fake_github.requests[-1].query == {"state": ["open"], "head": ["octo:agent/issue-1"]}
    assert github.update_pull("octo", "calc", pull.number, title="Fix #1", body="v2") == pull
    assert [p["body"] for p in fake_github.pulls] == ["v2"]
    with pytest.raises(GitHubError, match="answered 422 .*A pull request already exists for octo:agent/issue-1"):
        github.create_pull("octo", "calc", title="again", head="agent/issue-1", base="main", body="", draft=False)


def test_a_pull_request_needs_the_branch_pushed_first(fake_github: FakeGitHub, tmp_path: Path) -> None:
    push_branches(fake_github, tmp_path, "main")
    with pytest.raises(GitHubError, match="answered 422 .*Validation Failed: head invalid"):
        client(fake_github).create_pull("octo", "calc", title="t", head="agent/issue-5", base="main", body="",
                                        draft=True)


def push_branches(fake: FakeGitHub, tmp_path: Path, *branches: str) -> None:
    """A bare repository for the fake with one commit on each of `branches`."""
    fake.bare_repo.mkdir(parents=True)
    subprocess.run(["git", "init", "-q", "--bare", str(fake.bare_repo)], check=True)
    work = tmp_path / "seed"
    subprocess.run(["git", "init", "-q", str(work)], check=True)
    subprocess.run(["git", "-C", str(work), "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q",
                    "--allow-empty", "-m", "seed"], check=True)
    for branch in branches:
        subprocess.run(["git", "-C", str(work), "push", "-q", str(fake.bare_repo), f"HEAD:refs/heads/{branch}"],
                       check=True)


def test_a_github_token_no_http_header_can_carry_is_a_usage_error_without_its_value() -> None:
    with pytest.raises(UsageError) as caught:
        GitHubClient("ghp_tökén0123456789", "http://127.0.0.1:9/api/v3")
    assert "GitHub token" in str(caught.value) and "tökén" not in str(caught.value)
