"""The user's repository, seen from the agent: a private snapshot in, a branch or patch out.

The user's working tree, index, stash and current branch are never touched while the agent
works. The sandbox gets a shallow clone of HEAD with the user's current state laid over it
(uncommitted changes to tracked files, untracked files git does not ignore), committed as
the snapshot the agent's patch is measured against. Results go back through plumbing: a
temporary index, `commit-tree` and `update-ref`, so nothing is checked out.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from agent.errors import UsageError

IDENTITY = ["-c", "user.name=moe-agent", "-c", "user.email=agent@moe-agent.invalid", "-c", "commit.gpgsign=false"]


class GitFailed(UsageError):
    """A git command failed; the message is git's own first line."""


def git(repo: Path, *args: str, env: dict[str, str] | None = None, input: bytes | None = None) -> str:
    proc = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, input=input,
                          env={**os.environ, **(env or {})})
    if proc.returncode != 0:
        message = proc.stderr.decode(errors="replace").strip().splitlines()
        raise GitFailed(f"git {args[0]} failed: {message[-1] if message else f'exit {proc.returncode}'}")
    return proc.stdout.decode(errors="replace")


@dataclass(frozen=True)
class UserRepo:
    root: Path
    head: str
    branch: str | None  # None when HEAD is detached

    @classmethod
    def find(cls, path: Path) -> UserRepo:
        if not path.exists():
            raise UsageError(f"{path}: no such directory")
        try:
            root = Path(git(path, "rev-parse", "--show-toplevel").strip())
        except GitFailed:
            raise UsageError(f"{path} is not inside a git repository (run 'git init' first, or pass -C PATH)") from None
        try:
            head = git(root, "rev-parse", "--verify", "HEAD").strip()
        except GitFailed:
            raise UsageError(f"{root} has no commits yet: commit something first") from None
        branch = git(root, "symbolic-ref", "--quiet", "--short", "HEAD").strip() if _has_branch(root) else None
        return cls(root=root, head=head, branch=branch)

    def status_fingerprint(self) -> str:
        """What must be identical before and after a run: status, HEAD, index tree, stash."""
        stash = subprocess.run(["git", "-C", str(self.root), "stash", "list"], capture_output=True, text=True).stdout
        return "\n".join([
            git(self.root, "status", "--porcelain=v2", "--branch", "--untracked-files=all"),
            git(self.root, "rev-parse", "HEAD"),
            git(self.root, "write-tree"),
            stash,
        ])


def _has_branch(root: Path) -> bool:
    return subprocess.run(["git", "-C", str(root), "symbolic-ref", "--quiet", "HEAD"], capture_output=True).returncode == 0


@dataclass(frozen=True)
class Snapshot:
    path: Path
    base_commit: str
    dirty: bool  # the user had uncommitted or untracked changes


def take_snapshot(repo: UserRepo, dest: Path) -> Snapshot:
    """A private repository at `dest` whose last commit is the user's current state."""
    dest.mkdir(parents=True, exist_ok=True)
    git(dest, "init", "--quiet")
    git(dest, "fetch", "--quiet", "--depth", "1", f"file://{repo.root}", repo.head)
    git(dest, "checkout", "--quiet", "--detach", "FETCH_HEAD")
    listed = git(repo.root, "ls-files", "-z", "--cached", "--others", "--exclude-standard")
    current = {p for p in listed.split("\0") if p}
    deleted = set(filter(None, git(repo.root, "ls-files", "-z", "--deleted").split("\0")))
    for rel in sorted(current):
        source, target = repo.root / rel, dest / rel
        if rel in deleted or not (source.exists() or source.is_symlink()):
            _remove(target)
        else:
            _copy(source, target)
    git(dest, "add", "-A")
    dirty = bool(git(dest, "status", "--porcelain"))
    git(dest, *IDENTITY, "commit", "--quiet", "--allow-empty", "--no-verify", "-m", "moe-agent: snapshot of the working tree")
    return Snapshot(path=dest, base_commit=git(dest, "rev-parse", "HEAD").strip(), dirty=dirty)


def _copy(source: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    if source.is_symlink():
        _remove(target)
        target.symlink_to(os.readlink(source))
    elif source.is_dir():  # a submodule: its files, without its .git pointer
        shutil.copytree(source, target, symlinks=True, dirs_exist_ok=True, ignore=shutil.ignore_patterns(".git"))
    else:
        _remove(target)
        shutil.copy2(source, target)


def _remove(target: Path) -> None:
    if target.is_symlink() or target.is_file():
        target.unlink()
    elif target.is_dir():
        shutil.rmtree(target)


def slugify(text: str, limit: int = 40) -> str:
    words = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
    return (words[:limit].rstrip("-") or "fix")


def unique_branch(repo: UserRepo, name: str) -> str:
    """The first of `name`, `name-2`, `name-3`... that no branch has yet (a hint: `claim_branch` decides)."""
    candidate, n = name, 2
    while subprocess.run(["git", "-C", str(repo.root), "rev-parse", "--verify", "--quiet", f"refs/heads/{candidate}"],
                         capture_output=True).returncode == 0:
        candidate, n = f"{name}-{n}", n + 1
    return candidate


def claim_branch(repo: UserRepo, name: str, commit: str, attempts: int = 100) -> str:
    """Create the first free branch of `name`, `name-2`, ... at `commit`; return its name.

    Each try is one `update-ref` that only creates (expected old value: none), so two runs
    in one repository can never take the same name: the loser moves on to the next one.
    Raises `GitFailed` for any other refusal, or after `attempts` names were all taken.
    """
    candidate = unique_branch(repo, name)
    n = int(candidate.rsplit("-", 1)[1]) if candidate != name else 1
    for _ in range(attempts):
        try:
            git(repo.root, "update-ref", f"refs/heads/{candidate}", commit, "")
            return candidate
        except GitFailed as exc:
            if "exists" not in str(exc):
                raise
        n += 1
        candidate = f"{name}-{n}"
    raise GitFailed(f"no free branch name after {attempts} tries from {name}")


def commit_to_branch(
    repo: UserRepo, snapshot: Snapshot, patch: str, branch: str, message: str
) -> tuple[str, str, bool]:
    """Commit `patch` on a new branch from HEAD without checking anything out.

    `branch` is the wanted name; the first free one of `branch`, `branch-2`... is taken
    (`claim_branch`). Returns (branch, commit, included_local_changes). When the patch needs the user's uncommitted
    changes to apply, they go in a first commit of their own, so the branch says so.
    """
    with tempfile.TemporaryDirectory(prefix="moe-index-") as tmp:
        env = {"GIT_INDEX_FILE": str(Path(tmp) / "index")}
        git(repo.root, "read-tree", repo.head, env=env)
        parent, included = repo.head, False
        try:
            git(repo.root, "apply", "--cached", "--whitespace=nowarn", "-", env=env, input=patch.encode())
        except GitFailed:
            if not snapshot.dirty:
                raise
            git(repo.root, "fetch", "--quiet", str(snapshot.path), snapshot.base_commit)
            parent = _commit(repo, env, git(snapshot.path, "rev-parse", f"{snapshot.base_commit}^{{tree}}").strip(),
                             repo.head, "moe-agent: your uncommitted changes, which the fix builds on")
            git(repo.root, "read-tree", parent, env=env)
            git(repo.root, "apply", "--cached", "--whitespace=nowarn", "-", env=env, input=patch.encode())
            included = True
        tree = git(repo.root, "write-tree", env=env).strip()
        commit = _commit(repo, env, tree, parent, message)
    return claim_branch(repo, branch, commit), commit, included


def _commit(repo: UserRepo, env: dict[str, str], tree: str, parent: str, message: str) -> str:
    return git(repo.root, *IDENTITY, "commit-tree", tree, "-p", parent, "-m", message, env=env).strip()


def apply_to_worktree(repo: UserRepo, patch: str) -> None:
    """Apply to the working tree, or refuse without changing anything."""
    try:
        git(repo.root, "apply", "--check", "-", input=patch.encode())
    except GitFailed as exc:
        raise UsageError(f"the patch does not apply to your working tree, nothing was changed ({exc})") from None
    git(repo.root, "apply", "-", input=patch.encode())
