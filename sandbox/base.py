"""The sandbox protocol: what tools and the loop may ask of a running sandbox.

Starting and stopping a sandbox (image, limits, mounts) lives in `sandbox.docker`;
this module only says how to talk to one that is already running.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable


class SandboxError(Exception):
    """The sandbox could not do what was asked (engine down, container gone, ...).

    The message is one line meant for a human; the CLI prints it as is.
    """


class ImageMissing(SandboxError):
    """The image a sandbox needs is not present locally."""


@dataclass(frozen=True)
class CommandResult:
    """The outcome of one shell command in a sandbox.

    `output` is decoded with surrogateescape: bytes that are not UTF-8 survive as lone
    surrogates (see `tools.encoding`), so a file name read from it can be used again.
    """

    output: str
    exit_code: int | None
    duration: float
    timed_out: bool = False
    truncated_bytes: int = 0
    restarted: bool = False
    notes: tuple[str, ...] = field(default_factory=tuple)
    out_of_time: bool = False  # stopped (or not started) because the run's time limit came, not its own timeout

    @property
    def ok(self) -> bool:
        return self.exit_code == 0 and not self.timed_out


@dataclass(frozen=True)
class FileStat:
    """What `stat` says about one path inside the sandbox."""

    path: str
    exists: bool
    is_dir: bool = False
    is_symlink: bool = False
    size: int = 0
    mode: int = 0
    link_target: str = ""


@runtime_checkable
class Sandbox(Protocol):
    """A running, isolated place to run commands and touch files."""

    workdir: str

    def run(self, command: str, timeout: float | None = None) -> CommandResult: ...

    def read_file(self, path: str) -> bytes: ...

    def write_file(self, path: str, data: bytes) -> None: ...

    def stat(self, path: str) -> FileStat: ...

    def list_dir(self, path: str, depth: int = 1) -> list[str]: ...

    def read_tree(self, paths: list[str], max_file_bytes: int = 1_000_000) -> dict[str, bytes]: ...

    def close(self) -> None: ...
