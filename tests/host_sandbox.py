"""A sandbox whose files and shell are this machine's: a directory and `bash -c`, for fast tool tests.

Enough of `sandbox.base.Sandbox` for the tools (editor, search, bash, outline, repo map) to run
in-process against real files and real coreutils/grep, without Docker. Output is decoded with
surrogateescape, as the Docker sandbox does, so bytes that are not UTF-8 reach the tools the
same way. Nothing is isolated: use it only on files a test wrote itself. The fixtures `host_box` and
`host_ctx` (tests/conftest.py) give one at `tmp_path/repo`; `tool` calls a tool on it as the loop does.
"""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path
from typing import Any

from sandbox.base import CommandResult, FileStat
from tools.base import ToolContext, call_tool
from tools.encoding import decode
from tools.toolset import ALL_TOOLS


def tool(ctx: ToolContext, name: str, **args: Any) -> str:
    """The text the tool `name` answers `args` with, called as the loop calls it (arguments checked
    against its schema first, a `ToolError` as the observation's text)."""
    return call_tool(ALL_TOOLS[name], args, ctx).text


class HostSandbox:
    """`root` as the repository (the workdir); commands run in bash there, one process each."""

    def __init__(self, root: Path) -> None:
        root.mkdir(parents=True, exist_ok=True)
        self.workdir = str(root)
        self.commands: list[str] = []  # every command run, in order

    def resolve(self, path: str) -> Path:
        return Path(path) if path.startswith("/") else Path(self.workdir) / path

    def run(self, command: str, timeout: float | None = None) -> CommandResult:
        self.commands.append(command)
        started = time.monotonic()
        try:
            done = subprocess.run(["bash", "-c", command], cwd=self.workdir, capture_output=True, timeout=timeout,
                                  env={"PATH": os.environ["PATH"], "HOME": self.workdir})
        except subprocess.TimeoutExpired as exc:
            return CommandResult(decode(exc.stdout or b""), None, time.monotonic() - started, timed_out=True)
        return CommandResult(decode(done.stdout + done.stderr), done.returncode, time.monotonic() - started)

    def read_file(self, path: str) -> bytes:
        target = self.resolve(path)
        if target.exists() and not target.is_file():
            raise IsADirectoryError(f"{path} is not a regular file")
        return target.read_bytes()

    def write_file(self, path: str, data: bytes) -> None:
        target = self.resolve(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)

    def stat(self, path: str) -> FileStat:
        target = self.resolve(path)
        if not target.exists() and not target.is_symlink():
            return FileStat(str(target), exists=False)
        found = target.stat() if target.exists() else target.lstat()
        return FileStat(str(target), True, is_dir=target.is_dir(), is_symlink=target.is_symlink(),
                        size=found.st_size, mode=found.st_mode & 0o7777)

    def list_dir(self, path: str, depth: int = 1) -> list[str]:
        root = self.resolve(path)
        entries = []
        for found in root.rglob("*"):
            relative = found.relative_to(root)
            if len(relative.parts) <= depth and not any(part.startswith(".") for part in relative.parts):
                entries.append(str(relative) + ("/" if found.is_dir() else ""))
        return sorted(entries)

    def read_tree(self, paths: list[str], max_file_bytes: int = 1_000_000) -> dict[str, bytes]:
        found = {}
        for path in paths:
            target = self.resolve(path)
            if target.is_file() and target.stat().st_size <= max_file_bytes:
                found[path] = target.read_bytes()
        return found

    def close(self) -> None:
        pass

