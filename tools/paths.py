"""Where a path the model names really lives, refusing any that lead out of the repository.

The model works on one tree, the repository at the sandbox workdir. A `..`, an absolute
path elsewhere or a symlink out of the tree would let an edit land where no patch shows it.
"""

from __future__ import annotations

import posixpath
import shlex
from dataclasses import dataclass

from sandbox.base import Sandbox
from tools.base import ToolError
from tools.encoding import NAME_SHOWN_CHARACTER, name_from_visible, shown_name


@dataclass(frozen=True)
class RepoPath:
    """A confined path: `path` as the model named it (normalised, absolute), `real` with symlinks resolved."""

    path: str
    real: str

    @property
    def shown(self) -> str:
        """`path` as messages show it: escaped when the name is not UTF-8 or holds a backslash (tools/encoding.py)."""
        return shown_name(self.path)


def is_within(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip("/") + "/")


def resolve_in_repo(sandbox: Sandbox, path: str) -> RepoPath:
    """Resolve `path` (relative to the repository root, or absolute inside it) or say why not."""
    root = posixpath.normpath(sandbox.workdir)
    if not path.strip():
        raise ToolError(f"the path is empty; give a path relative to the repository root {root} or absolute inside it")
    if "\0" in path:
        raise ToolError(f"the path {shown_name(path)} contains a NUL character, which no file name holds; "
                        "write a newline or another control character in a name as \\xNN (\\x0a), as tools show it")
    named = posixpath.normpath(posixpath.join(root, path.strip()))
    if NAME_SHOWN_CHARACTER.search(named):  # a name shown with \xNN for a byte that is not UTF-8 or a control
        raw = name_from_visible(named)
        if sandbox.stat(raw).exists or not sandbox.stat(named).exists:
            named = raw
    if not is_within(named, root):
        raise ToolError(f"{path} is outside the repository {root}; use a path inside it "
                        f"(relative to {root}, or absolute starting with {root}/)")
    # readlink -m resolves every symlink on the way, and tolerates parts that do not exist yet.
    result = sandbox.run(f"command readlink -m -z -- {shlex.quote(root)} {shlex.quote(named)} || true")
    parts = result.output.split("\0")
    if len(parts) < 3 or not parts[0] or not parts[1]:
        raise ToolError(f"cannot resolve {path}: {result.output.strip() or 'readlink failed'} "
                        "(a symlink loop?); use another path")
    real_root, real = parts[0], parts[1]
    if not is_within(real, real_root):
        raise ToolError(f"{path} goes through a symlink to {real}, which is outside the repository {root}; "
                        "only files inside the repository can be used")
    return RepoPath(path=named, real=real)
