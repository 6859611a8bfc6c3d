"""The repo map and file outlines as tools the model can call.

Files come out of the sandbox in one archive read; parsing and ranking happen on the host
with tree-sitter, so any image works, and the tag cache (keyed by content) makes a second
map of an unchanged repository parse nothing.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sandbox.output import cap_text
from tools.base import Observation, ToolContext, ToolError, ToolSpec
from tools.encoding import NOT_UTF8_NOTE, is_utf8
from tools.languages import language_name_for
from tools.overview import listing_command
from tools.paths import resolve_in_repo
from tools.tags import TagCache, format_outline, outline

MAP_DESCRIPTION = """\
Show a map of the repository: the files and definitions (classes, functions, methods) most relevant to the task, \
ranked by how the code references them (PageRank), within a token budget. Use it first to find where to look. \
`focus` adds identifiers or file names to rank toward (space separated)."""

OUTLINE_DESCRIPTION = "List a source file's classes, functions and methods with their line ranges."


def _cache(ctx: ToolContext) -> TagCache:
    return TagCache(Path(ctx.cache_dir) / "tags" if ctx.cache_dir else None)


def source_paths(ctx: ToolContext) -> list[str]:
    """Files git knows (tracked or untracked, not ignored), or every file when it is no repository."""
    listed = ctx.sandbox.run(listing_command(ctx.sandbox.workdir), timeout=60)
    return sorted({p for p in listed.output.split("\0") if p and language_name_for(p)})


class RepoMapTool:
    spec = ToolSpec(
        name="repo_map",
        description=MAP_DESCRIPTION,
        parameters={
            "type": "object",
            "properties": {
                "focus": {"type": "string", "description": "Identifiers or file names to rank toward."},
                "max_tokens": {"type": "integer", "minimum": 128, "maximum": 8192,
                               "description": "Size of the map in tokens (default 1024)."},
            },
            "additionalProperties": False,
        },
    )

    def __call__(self, args: dict[str, Any], ctx: ToolContext) -> Observation:
        paths = source_paths(ctx)
        if not paths:
            raise ToolError("no source files in a supported language were found in the repository")
        contents = ctx.sandbox.read_tree(paths)
        files = [(path, (lambda data=data: data)) for path, data in contents.items()]
        task = f"{ctx.task}\n{args.get('focus', '')}"
        from tools.repomap import build_repo_map  # numpy and scipy: a second of imports, not at start

        result = build_repo_map(files, task=task, max_tokens=args.get("max_tokens", 1024), cache=_cache(ctx))
        header = f"Repository map ({len(contents)} source files, ranked for the task):\n"
        return Observation(header + (result.text or "(nothing to show)"),
                           data={"files": len(contents), "parsed": result.parsed})


class OutlineTool:
    spec = ToolSpec(
        name="outline",
        description=OUTLINE_DESCRIPTION,
        parameters={
            "type": "object",
            "properties": {"path": {"type": "string", "description": "File path, relative to the repository root."}},
            "required": ["path"],
            "additionalProperties": False,
        },
    )

    def __call__(self, args: dict[str, Any], ctx: ToolContext) -> Observation:
        target = resolve_in_repo(ctx.sandbox, args["path"])
        path, name = target.real, target.shown
        if language_name_for(path) is None:
            raise ToolError(f"{name}: no outline for this file type; view it with str_replace_editor instead")
        try:
            source = ctx.sandbox.read_file(path)
        except (FileNotFoundError, IsADirectoryError) as exc:
            raise ToolError(f"{name}: {exc.strerror or 'cannot be read'}") from None
        symbols = outline(path, source)
        if symbols is None:
            return Observation(generated_note(name, source))
        if not symbols:
            return Observation(f"{name}: no classes or functions found")
        text = cap_text(format_outline(symbols, ctx.observation_max_chars), ctx.observation_max_chars)[0]
        if not is_utf8(source):  # the names are escaped as every view of this file shows it
            text += f"\n[Note: {name} is not valid UTF-8: in names from it, {NOT_UTF8_NOTE}.]"
        return Observation(text)


def generated_note(shown: str, source: bytes) -> str:
    """Why a minified or generated file gets no outline, and what to do instead."""
    lines = source.count(b"\n") + 1
    return (f"{shown} looks minified or generated ({len(source)} bytes on {lines} line{'s' if lines != 1 else ''}), "
            "so it has no outline; find what you need in it with the search tool.")


repo_map = RepoMapTool()
outline_tool = OutlineTool()
