"""Where task repositories come from: a clone-URL template, or a folder of local mirrors.

Task images are built from a local git directory that is mounted read-only into the
build container, so building never needs the network. A folder of mirrors is used as
it is; a URL template is cloned once into the cache as a bare mirror. Git runs through
GitPython with `--git-dir` on every command, because some mirrors (such as the search
tool's snapshots) are bare directories without a config file, which `Repo` alone takes
for a work tree's parent.
"""

from __future__ import annotations

import os
import tempfile
import threading
from collections.abc import Iterable
from pathlib import Path

import git

from agent.errors import EnvironmentProblem, UsageError
from sandbox.cache import cache_home

DEFAULT_SOURCE = "https://github.com/{repo}.git"
SOURCE_ENV = "AGENT_REPO_SOURCE"
# Where the mirror of owner/name may sit inside a mirrors folder, in lookup order. The last
# is the layout the search tool's `fetch` produces (/work/.mirror/<owner>+<name>/repo).
MIRROR_LAYOUTS = (
    "{owner}__{name}.git",
    "{owner}__{name}",
    "{owner}/{name}.git",
    "{owner}/{name}",
    "{owner}+{name}/repo",
)
CLONE_TIMEOUT = 3600.0

_clone_locks: dict[Path, threading.Lock] = {}
_clone_locks_guard = threading.Lock()


class RepoSource:
    """Resolves `owner/name` to a local git directory holding its history."""

    def __init__(self, spec: str, cache_dir: Path | None = None) -> None:
        self.spec = spec
        self.template = spec if "{repo}" in spec else None
        self.folder = None if self.template else Path(spec).expanduser()
        if self.folder is not None and not self.folder.is_dir():
            raise UsageError(f"repository source {spec!r}: not a folder of mirrors, nor a URL template with {{repo}}")
        self.cache_dir = cache_dir or cache_home() / "repos"
        self._seen: set[tuple[str, str]] = set()  # (repo, commit) found: a commit never leaves a mirror

    @classmethod
    def configured(cls, flag: str | None = None, cache_dir: Path | None = None) -> RepoSource:
        """The `--repos` flag, else $AGENT_REPO_SOURCE, else GitHub."""
        return cls(flag or os.environ.get(SOURCE_ENV) or DEFAULT_SOURCE, cache_dir)

    def __str__(self) -> str:
        return self.spec

    def mirror(self, repo: str) -> Path:
        """The git directory for `repo`; a URL template is cloned into the cache on first use."""
        owner, name = _split(repo)
        if self.folder is not None:
            for layout in MIRROR_LAYOUTS:
                candidate = self.folder / layout.format(owner=owner, name=name)
                if candidate.is_dir() and (git_dir := _git_dir(candidate)) is not None:
                    return git_dir
            tried = ", ".join(layout.format(owner=owner, name=name) for layout in MIRROR_LAYOUTS)
            raise UsageError(f"no mirror of {repo} in {self.folder} (looked for {tried})")
        assert self.template is not None
        return self._cached_clone(repo, self.template.format(repo=repo))

    def mirror_with(self, repo: str, commit: str) -> Path:
        """The mirror of `repo`, refreshed once from its URL if it lacks `commit`."""
        git_dir = self.mirror(repo)
        if (repo, commit) in self._seen or has_commit(git_dir, commit):
            self._seen.add((repo, commit))
            return git_dir
        if self.template is not None:
            with _lock_for(git_dir), open_mirror(git_dir) as mirror:
                status, _, stderr = mirror.git.fetch("--quiet", "--prune", "origin", with_extended_output=True,
                                                     with_exceptions=False, kill_after_timeout=CLONE_TIMEOUT)
            if status != 0:
                raise EnvironmentProblem(f"git fetch in {git_dir} failed: {_last_line(stderr)}")
            if has_commit(git_dir, commit):
                self._seen.add((repo, commit))
                return git_dir
        raise UsageError(f"commit {commit[:12]} of {repo} is not in the mirror {git_dir}")

    def _cached_clone(self, repo: str, url: str) -> Path:
        owner, name = _split(repo)
        target = self.cache_dir / f"{owner}__{name}.git"
        with _lock_for(target):
            if not target.is_dir():
                self.cache_dir.mkdir(parents=True, exist_ok=True)
                with tempfile.TemporaryDirectory(dir=self.cache_dir, prefix=f".{owner}__{name}-") as scratch:
                    partial = Path(scratch) / "mirror.git"
                    status, _, stderr = git.Git().clone(
                        "--mirror", "--quiet", url, str(partial),
                        with_extended_output=True, with_exceptions=False, kill_after_timeout=CLONE_TIMEOUT,
                    )
                    if status != 0:
                        raise EnvironmentProblem(f"cannot clone {repo} from {url}: {_last_line(stderr)}")
                    partial.rename(target)  # whole or not at all: a broken clone never sits in the cache
        return target


def open_mirror(git_dir: Path) -> git.Repo:
    """GitPython's `Repo` for a mirror, every command of it run with `--git-dir` (see above)."""
    repo = git.Repo(git_dir)
    repo.git.set_persistent_git_options(git_dir=str(git_dir))
    return repo


def show_file(git_dir: Path, commit: str, path: str) -> str | None:
    """The text of `path` at `commit` (undecodable bytes replaced), or None when the commit has no such file."""
    with open_mirror(git_dir) as repo:
        status, data, _ = repo.git.show(f"{commit}:{path}", with_extended_output=True, with_exceptions=False,
                                        stdout_as_string=False, strip_newline_in_stdout=False, kill_after_timeout=120)
    return data.decode("utf-8", errors="replace") if status == 0 else None


def newest_commit(git_dir: Path, commits: Iterable[str]) -> str:
    """The commit with the latest commit date among `commits` (all must be in `git_dir`)."""
    with open_mirror(git_dir) as repo:
        status, out, err = repo.git.log("--no-walk=sorted", "--format=%H", *sorted(set(commits)),
                                        with_extended_output=True, with_exceptions=False, kill_after_timeout=120)
    if status != 0 or not out.strip():
        raise EnvironmentProblem(f"{git_dir}: cannot order commits by date: {_last_line(err)}")
    return out.split()[0]


def has_commit(git_dir: Path, commit: str) -> bool:
    """Whether the mirror holds `commit` (a full or abbreviated id) as a commit."""
    with open_mirror(git_dir) as repo:
        status, _, _ = repo.git.cat_file("-e", f"{commit}^{{commit}}", with_extended_output=True,
                                         with_exceptions=False, kill_after_timeout=60)
    return status == 0


def _git_dir(path: Path) -> Path | None:
    """`path` itself when it is a bare repository, `path/.git` for a working copy."""
    for candidate in (path / ".git", path):
        if candidate.is_dir() and (candidate / "HEAD").is_file() and (candidate / "objects").is_dir():
            return candidate.resolve()
    return None


def _split(repo: str) -> tuple[str, str]:
    owner, _, name = repo.partition("/")
    if not owner or not name or "/" in name:
        raise UsageError(f"{repo!r}: a repository is named owner/name")
    return owner, name


def _lock_for(path: Path) -> threading.Lock:
    with _clone_locks_guard:
        return _clone_locks.setdefault(path, threading.Lock())


def _last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else "no output"

