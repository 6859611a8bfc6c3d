"""A local GitHub on 127.0.0.1: the REST endpoints the CI bot uses, and git over smart HTTP.

Answers are shaped like GitHub's (the fields the bot reads and their neighbours, the
rate-limit headers on every response, 401/404/422 bodies), every request is recorded,
and rate-limit errors can be queued. Repositories are served by the real
`git http-backend`, behind the same token check as the API, so a push proves the
bot's credentials reached git. Like the fake model server, sockets get TCP_NODELAY and
each response leaves in one write.
"""

from __future__ import annotations

import base64
import itertools
import json
import os
import subprocess
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tests.fakes.http import FastHandler

DOCS = "https://docs.github.com/rest"


@dataclass
class RateLimit:
    """Answer one API request with a rate-limit error instead of serving it."""

    status: int = 403
    reset_in: float = 1.0  # x-ratelimit-reset, seconds from now
    retry_after: int | None = None  # a `retry-after` header, as secondary limits send


@dataclass
class Recorded:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: Any


@dataclass
class FakeGitHub:
    """One repository `owner/name`: its issues, comments, pull requests, collaborators and git data."""

    git_root: Path
    owner: str = "octo"
    name: str = "calc"
    token: str = "ghs_fakeTokenForTests0123456789"
    default_branch: str = "main"
    issues: dict[int, dict[str, Any]] = field(default_factory=dict)
    comments: list[dict[str, Any]] = field(default_factory=list)
    pulls: list[dict[str, Any]] = field(default_factory=list)
    permissions: dict[str, str] = field(default_factory=dict)  # login -> admin/maintain/write/triage/read
    rate_limits: deque[RateLimit] = field(default_factory=deque)
    requests: list[Recorded] = field(default_factory=list)
    git_requests: list[Recorded] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._ids = itertools.count(1000)
        self._lock = threading.Lock()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._httpd.fake = self  # type: ignore[attr-defined]
        self._thread: threading.Thread | None = None

    # -- serving ---------------------------------------------------------------
    @property
    def root_url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def hosts(self) -> frozenset[str]:
        """The fake as the one host its token is for (`agent.github.token_hosts`): `127.0.0.1:PORT`."""
        return frozenset({self.root_url.removeprefix("http://")})

    @property
    def api_url(self) -> str:
        return f"{self.root_url}/api/v3"  # GitHub Enterprise's layout

    @property
    def clone_url(self) -> str:
        return f"{self.root_url}/{self.owner}/{self.name}.git"

    @property
    def bare_repo(self) -> Path:
        return self.git_root / self.owner / f"{self.name}.git"

    def start(self) -> FakeGitHub:
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="fake-github", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._thread is not None:
            self._httpd.shutdown()
            self._thread.join()
        self._httpd.server_close()

    def __enter__(self) -> FakeGitHub:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # -- state -------------------------------------------------------------------
    def add_issue(self, number: int, title: str, body: str, *, author: str = "reporter",
                  state: str = "open") -> dict[str, Any]:
        base = f"{self.api_url}/repos/{self.owner}/{self.name}/issues/{number}"
        issue = {
            "id": next(self._ids), "node_id": f"I_{number}", "url": base, "number": number, "title": title,
            "body": body, "state": state, "locked": False, "labels": [], "comments": 0,
            "repository_url": f"{self.api_url}/repos/{self.owner}/{self.name}",
            "comments_url": f"{base}/comments", "html_url": self._html(f"issues/{number}"),
            "user": self.user(author), "author_association": self.association(author),
            "created_at": _now(), "updated_at": _now(), "closed_at": None,
        }
        self.issues[number] = issue
        return issue

    def user(self, login: str) -> dict[str, Any]:
        return {"login": login, "id": abs(hash(login)) % 10**7, "type": "Bot" if login.endswith("[bot]") else "User",
                "html_url": f"{self.root_url}/{login}", "site_admin": False}

    def association(self, login: str) -> str:
        if login == self.owner:
            return "OWNER"
        return "COLLABORATOR" if login in self.permissions else "NONE"

    def comments_on(self, number: int) -> list[str]:
        return [c["body"] for c in self.comments if c["issue_number"] == number]

    def branch_head(self, branch: str) -> str | None:
        done = subprocess.run(["git", "-C", str(self.bare_repo), "rev-parse", "--verify", "--quiet",
                               f"refs/heads/{branch}"], capture_output=True, text=True)
        return done.stdout.strip() or None

    def _html(self, rest: str) -> str:
        return f"{self.root_url}/{self.owner}/{self.name}/{rest}"

    # -- the REST API ------------------------------------------------------------
    def answer(self, method: str, path: str, query: dict[str, list[str]], body: Any,
               authorized: bool) -> tuple[int, Any, dict[str, str]]:
        """Status, JSON body and extra headers for one API request."""
        with self._lock:
            if self.rate_limits:
                limit = self.rate_limits.popleft()
                headers = _rate_headers(remaining=0, reset=time.time() + limit.reset_in)
                if limit.retry_after is not None:
                    headers["retry-after"] = str(limit.retry_after)
                return limit.status, {"message": "API rate limit exceeded for installation ID 1.",
                                      "documentation_url": f"{DOCS}/overview/rate-limits-for-the-rest-api"}, headers
            if not authorized:
                return 401, {"message": "Bad credentials", "documentation_url": DOCS}, {}
            prefix = f"/repos/{self.owner}/{self.name}"
            if not path.startswith(prefix):
                return _not_found()
            route = path[len(prefix):].strip("/").split("/")
            return self._route(method, route, query, body)

    def _route(self, method: str, route: list[str], query: dict[str, list[str]],
               body: Any) -> tuple[int, Any, dict[str, str]]:
        match method, route:
            case "GET", [""]:
                return 200, {"id": 1, "name": self.name, "full_name": f"{self.owner}/{self.name}",
                             "owner": self.user(self.owner), "private": True, "html_url": f"{self.root_url}/{self.owner}/{self.name}",
                             "default_branch": self.default_branch}, {}
            case "GET", ["issues", number] if int(number) in self.issues:
                return 200, self.issues[int(number)], {}
            case "POST", ["issues", number, "comments"] if int(number) in self.issues:
                return 201, self._new_comment(int(number), body["body"]), {}
            case "GET", ["collaborators", login, "permission"]:
                if login not in self.permissions:
                    return _not_found()
                role = self.permissions[login]
                legacy = {"maintain": "write", "triage": "read"}.get(role, role)
                return 200, {"permission": legacy, "role_name": role, "user": self.user(login)}, {}
            case "GET", ["pulls"]:
                head = query.get("head", [None])[0]
                state = query.get("state", ["open"])[0]
                found = [p for p in self.pulls if (head is None or p["head"]["label"] == head)
                         and state in ("all", p["state"])]
                return 200, found, {}
            case "POST", ["pulls"]:
                return self._new_pull(body)
            case "PATCH", ["pulls", number]:
                pull = next((p for p in self.pulls if p["number"] == int(number)), None)
                if pull is None:
                    return _not_found()
                pull.update({k: body[k] for k in ("title", "body", "state") if k in body} | {"updated_at": _now()})
                return 200, pull, {}
        return _not_found()

    def _new_comment(self, number: int, text: str) -> dict[str, Any]:
        comment_id = next(self._ids)
        comment = {
            "id": comment_id, "node_id": f"IC_{comment_id}", "body": text, "issue_number": number,
            "url": f"{self.api_url}/repos/{self.owner}/{self.name}/issues/comments/{comment_id}",
            "html_url": self._html(f"issues/{number}#issuecomment-{comment_id}"),
            "issue_url": f"{self.api_url}/repos/{self.owner}/{self.name}/issues/{number}",
            "user": self.user("github-actions[bot]"), "author_association": "NONE",
            "created_at": _now(), "updated_at": _now(),
        }
        self.comments.append(comment)
        self.issues[number]["comments"] += 1
        return comment

    def _new_pull(self, body: dict[str, Any]) -> tuple[int, Any, dict[str, str]]:
        head, base = body.get("head", ""), body.get("base", "")
        branch = head.split(":")[-1]
        sha = self.branch_head(branch)
        if sha is None:
            return _invalid({"resource": "PullRequest", "field": "head", "code": "invalid"})
        if self.branch_head(base) is None:
            return _invalid({"resource": "PullRequest", "field": "base", "code": "invalid"})
        label = f"{self.owner}:{branch}"
        if any(p["head"]["label"] == label and p["state"] == "open" for p in self.pulls):
            return _invalid({"resource": "PullRequest", "code": "custom",
                             "message": f"A pull request already exists for {label}."})
        number = max([*self.issues, *(p["number"] for p in self.pulls), 0]) + 1
        pull = {
            "id": next(self._ids), "node_id": f"PR_{number}", "number": number, "state": "open", "locked": False,
            "title": body["title"], "body": body.get("body"), "draft": bool(body.get("draft", False)),
            "url": f"{self.api_url}/repos/{self.owner}/{self.name}/pulls/{number}",
            "html_url": self._html(f"pull/{number}"), "user": self.user("github-actions[bot]"),
            "head": {"label": label, "ref": branch, "sha": sha}, "base": {"label": f"{self.owner}:{base}", "ref": base},
            "author_association": "NONE", "created_at": _now(), "updated_at": _now(), "closed_at": None,
            "merged_at": None,
        }
        self.pulls.append(pull)
        return 201, pull, {}

    # -- git over smart HTTP -----------------------------------------------------
    def basic_auth(self) -> str:
        """The header value a client holding our token sends (GitHub's `x-access-token` user)."""
        return "basic " + base64.b64encode(f"x-access-token:{self.token}".encode()).decode()

    def git_backend(self, method: str, path: str, query: str, headers: dict[str, str],
                    body: bytes) -> tuple[int, dict[str, str], bytes]:
        """Run `git http-backend` as a CGI program; only requests bearing the token get in."""
        if headers.get("authorization", "").lower() != self.basic_auth().lower():
            return 401, {"WWW-Authenticate": 'Basic realm="GitHub"'}, b"authentication required\n"
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"), "GIT_PROJECT_ROOT": str(self.git_root),
            "GIT_HTTP_EXPORT_ALL": "1", "REMOTE_USER": "x-access-token", "REMOTE_ADDR": "127.0.0.1",
            "REQUEST_METHOD": method, "PATH_INFO": path, "QUERY_STRING": query,
            "CONTENT_TYPE": headers.get("content-type", ""), "CONTENT_LENGTH": str(len(body)),
            "GIT_PROTOCOL": headers.get("git-protocol", ""),
            "HTTP_CONTENT_ENCODING": headers.get("content-encoding", ""),
        }
        done = subprocess.run(["git", "http-backend"], input=body, env=env, capture_output=True)
        head, _, payload = done.stdout.partition(b"\r\n\r\n")
        status, out_headers = 200, {}
        for line in head.decode("latin-1").split("\r\n"):
            name, _, value = line.partition(":")
            if name.lower() == "status":
                status = int(value.split()[0])
            elif name:
                out_headers[name] = value.strip()
        return status, out_headers, payload


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def _rate_headers(remaining: int = 4999, reset: float | None = None) -> dict[str, str]:
    return {"x-ratelimit-limit": "5000", "x-ratelimit-remaining": str(remaining),
            "x-ratelimit-used": str(5000 - remaining), "x-ratelimit-resource": "core",
            "x-ratelimit-reset": str(int(reset if reset is not None else time.time() + 3600))}


def _not_found() -> tuple[int, Any, dict[str, str]]:
    return 404, {"message": "Not Found", "documentation_url": DOCS, "status": "404"}, {}


def _invalid(error: dict[str, Any]) -> tuple[int, Any, dict[str, str]]:
    return 422, {"message": "Validation Failed", "errors": [error], "documentation_url": DOCS, "status": "422"}, {}


class _Handler(FastHandler):
    fake: FakeGitHub

    def do_GET(self) -> None:
        self._serve("GET")

    def do_POST(self) -> None:
        self._serve("POST")

    def do_PATCH(self) -> None:
        self._serve("PATCH")

    def _serve(self, method: str) -> None:
        url = urlsplit(self.path)
        headers = {name.lower(): value for name, value in self.headers.items()}
        raw = self._body()
        if url.path.startswith("/api/v3/"):
            body = json.loads(raw) if raw else None
            path = url.path.removeprefix("/api/v3")
            self.fake.requests.append(Recorded(method, path, parse_qs(url.query), headers, body))
            authorized = headers.get("authorization", "").split(" ")[-1] == self.fake.token
            status, payload, extra = self.fake.answer(method, path, parse_qs(url.query), body, authorized)
            self._send(status, json.dumps(payload).encode(), {"Content-Type": "application/json; charset=utf-8",
                                                              **_rate_headers(), **extra})
        else:
            self.fake.git_requests.append(Recorded(method, url.path, parse_qs(url.query), headers, None))
            status, out_headers, payload = self.fake.git_backend(method, url.path, url.query, headers, raw)
            self._send(status, payload, out_headers)

    def _body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":  # git's large pushes
            chunks = []
            while size := int(self.rfile.readline().split(b";")[0].strip() or b"0", 16):
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            self.rfile.readline()
            return b"".join(chunks)
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _send(self, status: int, payload: bytes, headers: dict[str, str]) -> None:
        self.send_once(status, payload, headers)