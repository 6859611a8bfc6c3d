"""Docker sandboxes: starting them (deployment) and talking to them (runtime)."""

from sandbox.base import CommandResult, FileStat, ImageMissing, Sandbox, SandboxError

__all__ = ["CommandResult", "FileStat", "ImageMissing", "Sandbox", "SandboxError"]
