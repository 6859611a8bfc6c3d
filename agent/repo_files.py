"""Which of a repository's files the host may read on its behalf: prompt files, AGENTS.md, a Dockerfile's context.

A repository is untrusted, and its own `.git` holds the user's secrets, not the project's: a clone's
`.git/config` may carry a credential URL (`https://x:ghp_...@github.com/o/r`) or actions/checkout's
`http.extraheader` AUTHORIZATION. So a file the repository names is read only when its resolved path
(symlinks followed) stays inside the work tree and never passes through a `.git` directory or file, in
any letter case (case-insensitive file systems open `.GIT/config` too), and is a regular file.
"""

from __future__ import annotations

from pathlib import Path

OUTSIDE = "a file outside the repository"
IN_GIT = "a file inside .git"
NOT_A_FILE = "not a regular file"


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
