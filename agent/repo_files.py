"""Which of a repository's files the host may read on its behalf: prompt files, AGENTS.md, a Dockerfile's context.

A repository is untrusted, and its own `.git` holds the user's secrets, not the project's: a clone's
`.git/config` may carry a credential URL (`https://x:ghp_...@github.com/o/r`) or actions/checkout's
`http.extraheader` AUTHORIZATION. So a file the repository names is read only when its resolved path
(symlinks followed) stays inside the work tree and never passes through a `.git` directory or file, in
any letter case (case-insensitive file systems open `.GIT/config` too), and is a regular file.
What goes into the prompt (prompt files, AGENTS.md) must moreover be in the snapshot git would take
(`snapshot_refusal`): tracked, or untracked and not ignored, for the path named and for the file a link
leads to, so a committed `.gitignore` of `.env` plus `system = ".env"` cannot read the user's local `.env`.
A repository Dockerfile's build context holds the same files (`snapshot_listing`): its `COPY .env` finds nothing.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

OUTSIDE = "a file outside the repository"
IN_GIT = "a file inside .git"
NOT_A_FILE = "not a regular file"
IGNORED = "a file git ignores, so not in the snapshot"


def in_git(parts: tuple[str, ...] | list[str]) -> bool:
    """Whether a path, as its components relative to the work tree, passes through any `.git` (any case)."""
    return any(part.casefold() == ".git" for part in parts)


def refusal(path: Path, root: Path) -> str | None:
    """Why the host may not read `path` for the repository at `root` (OUTSIDE, IN_GIT, NOT_A_FILE), None if it may.

    Symlinks are resolved first; a missing file is not refused here (reading it fails with its own error).
    """
    target = path.resolve()
    top = root.resolve()
    if not target.is_relative_to(top):
        return OUTSIDE
    named = path.relative_to(root).parts if path.is_relative_to(root) else ()
    if in_git(target.relative_to(top).parts) or in_git(named):
        return IN_GIT
    if target.exists() and not target.is_file():
        return NOT_A_FILE
    return None


def snapshot_refusal(path: Path, root: Path) -> str | None:
    """`refusal`, and IGNORED when git ignores `path` or the file it links to (tracked files never are).

    Outside a git work tree nothing is ignored. Raises nothing: a git that cannot be run refuses (IGNORED).
    """
    if (refused := refusal(path, root)) is not None:
        return refused
    top = root.resolve()
    names = {path.resolve().relative_to(top).as_posix()}  # `refusal` checked it lies inside
    if path.is_relative_to(root):
        names.add(path.relative_to(root).as_posix())
    try:
        proc = subprocess.run(["git", "-C", str(top), "check-ignore", "--stdin", "-z"],
                              input="\0".join(sorted(names)).encode() + b"\0",
                              capture_output=True, timeout=30, check=False)
    except (OSError, subprocess.SubprocessError):
        return IGNORED
    if proc.returncode == 0:
        return IGNORED
    if proc.returncode == 1 or b"not a git repository" in proc.stderr:
        return None
    return IGNORED


class ListingFailed(Exception):
    """git could not list a work tree's files (not installed, a broken repository): its message, one line."""


def snapshot_listing(directory: Path) -> set[str] | None:
    """The files below `directory` that git would snapshot: tracked and present, or untracked and not ignored
    (`.gitignore`, `info/exclude`, `core.excludesFile`: what `git add -A` leaves out), and the files of the
    submodules checked out there, read the same way. Shape: POSIX paths relative to `directory`, symlinks
    as themselves (the files they name are in only when listed too); None when `directory` is not in a git
    work tree (nothing is ignored there). Raises `ListingFailed` when git cannot list it.
    """
    listed: set[str] = set()
    pending = [""]
    while pending:
        prefix = pending.pop()
        names = _git_listing(directory / prefix)
        if names is None:
            if not prefix:
                return None
            continue  # a submodule that is not checked out: nothing of it is in the snapshot
        for name in names:
            path = directory / prefix / name
            rel = f"{prefix}{name}".rstrip("/")
            if path.is_dir() and not path.is_symlink():
                if (path / ".git").exists():
                    pending.append(rel + "/")  # a submodule (or nested repository): its own files and rules
            elif path.is_symlink() or path.exists():
                listed.add(rel)  # tracked files deleted from the work tree are listed by git, not present
    return listed


def _git_listing(directory: Path) -> list[str] | None:
    """`git ls-files` of what a snapshot holds below `directory`, None outside a work tree."""
    try:
        proc = subprocess.run(["git", "-C", str(directory), "ls-files", "-z", "--cached", "--others",
                               "--exclude-standard", "--deduplicate"], capture_output=True, timeout=120, check=False)
    except (OSError, subprocess.SubprocessError) as exc:
        raise ListingFailed(f"cannot list the files of {directory} with git: {exc}") from None
    if proc.returncode == 0:
        return [name for name in os.fsdecode(proc.stdout).split("\0") if name]
    if b"not a git repository" in proc.stderr:
        return None
    reason = proc.stderr.decode(errors="replace").strip().splitlines()
    raise ListingFailed(f"cannot list the files of {directory} with git: {reason[-1] if reason else proc.returncode}")
