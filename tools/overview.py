"""The repository at a glance, for the task prompt: which files there are, within a character budget.

Measured against llama.cpp serving Qwen2.5-Coder-1.5B (benchmarks/real_model.py): told only
"the test `python3 test_calc.py` fails", the model guessed `tests/test_calc.py` and
`src/calc.py` in 6 of 10 runs and spent its steps on files that do not exist. Coding agents
that ground the model in the tree up front (Claude Code's directory snapshot, Aider's repo map)
save that exploration step for every model; a large model saves one model call.

The listing is git's view (tracked plus untracked, not ignored), or every file outside hidden
directories when the working directory is no repository. Names follow the tools' one rule
(`tools.encoding.shown_name`). When every path fits the budget they are listed one a line;
otherwise directories collapse to `name/ (N files)`, level by level, until it fits.
"""

from __future__ import annotations

import bisect
import shlex
from collections.abc import Iterator, Sequence

from sandbox.base import SandboxError
from tools.base import ToolContext
from tools.encoding import shown_name

MAX_CHARS = 2_000  # about 500 tokens: cheap next to a ~2,000-token system prompt
LIST_TIMEOUT = 20.0  # seconds; a listing that takes longer is left out rather than delay the first request
MAX_LISTING_BYTES = 1_000_000  # of NUL-separated names read from the sandbox: ~20,000 paths; a larger tree is cut


def listing_command(workdir: str) -> str:
    """A shell command printing the repository's files NUL-separated, relative to `workdir`: git's view
    (tracked plus untracked, not ignored), or every file outside hidden folders when it is no repository."""
    root = shlex.quote(workdir)
    return (f"git -C {root} ls-files -z --cached --others --exclude-standard 2>/dev/null "
            f"|| (cd {root} && find . -type f -not -path '*/.*' -printf '%P\\0')")


def repository_files(ctx: ToolContext) -> tuple[list[str], bool]:
    """The repository's file paths, relative to the working directory, sorted, and whether the listing was cut
    at MAX_LISTING_BYTES (a tree of hundreds of thousands of files); ([], False) when nothing can be listed.

    Raises nothing: a listing that fails (a sandbox error, a time-out) leaves the prompt without one."""
    try:
        listed = ctx.sandbox.run(f"{{ {listing_command(ctx.sandbox.workdir)}; }} | head -c {MAX_LISTING_BYTES + 1}",
                                 timeout=LIST_TIMEOUT)
    except SandboxError:
        return [], False
    if listed.exit_code != 0 or listed.timed_out:
        return [], False
    names = listed.output.split("\0")
    cut = len(listed.output.encode("utf-8", "surrogateescape")) > MAX_LISTING_BYTES
    if cut:
        names = names[:-1]  # the last name may be partial
    return sorted({path for path in names if path}), cut


def overview(paths: Sequence[str], max_chars: int = MAX_CHARS) -> str:
    """`paths` (sorted, unique) as the prompt shows them, at most `max_chars` characters; "" for no paths.

    Deepest detail that fits: all paths, else directories collapsed below depth d (d = 3, 2, 1),
    else the first entries of the top level and a count of the rest. Each try stops as soon as
    it is over the budget and counts a directory's files by bisection (a folder's paths are
    contiguous once sorted), so the work grows with what is shown, not with the tree: about
    max_chars paths read per depth, never all 20,000 of a large repository several times."""
    if not paths:
        return ""
    for depth in (None, 3, 2, 1):
        lines = _collapsed(paths, depth, max_chars)
        if lines is not None:
            return "\n".join(lines)
    shown, used = [], 0
    total = _top_level_count(paths)
    for index, line in enumerate(_line(entry, count) for entry, count in _entries(paths, 1)):
        rest = f"... and {total - index} more entries"
        if used + len(line) + 1 + len(rest) > max_chars:
            return "\n".join([*shown, rest])
        shown.append(line)
        used += len(line) + 1
    return "\n".join(shown)


def _entries(paths: Sequence[str], depth: int | None) -> Iterator[tuple[str, int]]:
    """(entry, files) in order: each file at most `depth` directories deep with 0, each directory at that depth
    (`name/`) with the number of files below it, found by bisection in the sorted `paths`."""
    at = 0
    while at < len(paths):
        path = paths[at]
        parts = path.split("/", depth) if depth is not None else [path]
        if depth is None or len(parts) <= depth:
            yield path, 0
            at += 1
            continue
        folder = "/".join(parts[:depth]) + "/"
        end = bisect.bisect_left(paths, folder[:-1] + "0", at)  # "0" follows "/": the first path past the folder
        yield folder, end - at
        at = end


def _collapsed(paths: Sequence[str], depth: int | None, budget: int) -> list[str] | None:
    """The lines of `_entries`, as shown; None once they are longer than `budget` characters joined."""
    lines: list[str] = []
    used = -1
    for entry, count in _entries(paths, depth):
        line = _line(entry, count)
        used += len(line) + 1
        if used > budget:
            return None
        lines.append(line)
    return lines


def _line(entry: str, count: int) -> str:
    """One entry as the prompt shows it: a file's name, or `dir/ (N files)`."""
    return shown_name(entry) if not count else f"{shown_name(entry)} ({count} file{'s' if count != 1 else ''})"


def _top_level_count(paths: Sequence[str]) -> int:
    """How many entries the top level has (files and folders), without listing them."""
    return sum(1 for _ in _entries(paths, 1))


def prompt_section(ctx: ToolContext, max_chars: int = MAX_CHARS, known: list[str] | None = None) -> str:
    """The task prompt's `$files`: a heading and the overview, or "" when nothing could be listed.

    `known`: the repository's paths when the workflow has them without asking the sandbox
    (`agent fix`: its snapshot's), so the first request need not wait for the container to
    start; None lists them in the sandbox."""
    paths, cut = (sorted(set(known)), False) if known is not None else repository_files(ctx)
    text = overview(paths, max_chars)
    if not text:
        return ""
    count = f"more than {len(paths)}; only those are shown" if cut else str(len(paths))
    return f"Files in the repository ({count}):\n{text}\n\n"
