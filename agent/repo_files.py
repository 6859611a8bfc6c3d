"""Which of a repository's files the host may read on its behalf: prompt files, AGENTS.md, a Dockerfile's context.

A repository is untrusted, and its own `.git` holds the user's secrets, not the project's: a clone's
`.git/config` may carry a credential URL (`https://x:ghp_...@github.com/o/r`) or actions/checkout's
`http.extraheader` AUTHORIZATION. So a file the repository names is read only when its resolved path
(symlinks followed) stays inside the work tree and never passes through a `.git` directory or file, in
any letter case (case-insensitive file systems open `.GIT/config` too), and is a regular file.
What goes into the prompt (prompt files, AGENTS.md) must moreover be in the snapshot git would take
(`snapshot_refusal`): tracked, or untracked and not ignored, for the path named and for the file a link
leads to, so a committed `.gitignore` of `.env` plus `system = ".env"` cannot read the user's local `.env`.
"""

from __future__ import annotations

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
