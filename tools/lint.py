"""Lint-on-edit: refuse an edit that adds syntax errors, before it reaches the sandbox.

Files arrive as bytes (read from the sandbox) and are parsed on the host with tree-sitter.
Only errors the edit *adds* count: a file that was already broken somewhere else must still
accept unrelated edits, so errors are matched between before and after by what they look
like (kind, token, text of their line), not by line number, which every edit shifts.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from tree_sitter import Node

from tools.languages import language_name_for, parser_for_language

CONTEXT_LINES = 2
MAX_REPORTED = 3


@dataclass(frozen=True)
class SyntaxProblem:
    """One ERROR or MISSING node, located for a person (1-based line and column)."""

    line: int
    column: int
    description: str
    signature: tuple[str, str, str] = field(repr=False)  # what it looks like, whatever line it is on


@dataclass(frozen=True)
class LintReport:
    """`ok` is False only when the edit adds syntax errors; `message` is written for the model."""

    ok: bool
    checked: bool  # False when no installed grammar reads the file: passed through unchecked
    new_problems: tuple[SyntaxProblem, ...] = ()
    message: str = ""


def check_edit(path: str, before: bytes | None, after: bytes) -> LintReport:
    """Accept the edit unless `after` has syntax errors that `before` did not have."""
    language = language_name_for(path)
    parser = parser_for_language(language) if language else None
    if parser is None:
        return LintReport(ok=True, checked=False)
    after_problems = syntax_problems(parser.parse(after).root_node, after)
    if not after_problems:
        return LintReport(ok=True, checked=True)
    before_problems = syntax_problems(parser.parse(before).root_node, before) if before is not None else []
    added = _added_problems(before_problems, after_problems)
    if not added:
        return LintReport(ok=True, checked=True)
    return LintReport(ok=False, checked=True, new_problems=tuple(added),
                      message=_rejection_message(path, after, added, len(before_problems)))


def syntax_problems(root: Node, source: bytes) -> list[SyntaxProblem]:
    """Every outermost ERROR node and every MISSING node, in document order."""
    lines = source_lines(source)
    problems: list[SyntaxProblem] = []
    stack = [root]
    while stack:
        node = stack.pop()
        if node.is_missing or node.is_error:
            problems.append(_problem(node, lines))
        elif node.has_error:
            stack.extend(reversed(node.children))
    return problems


def source_lines(source: bytes) -> list[bytes]:
    """Lines as tree-sitter counts rows: split on LF only, a CR before it dropped."""
    return [line.removesuffix(b"\r") for line in source.split(b"\n")]


def _problem(node: Node, lines: list[bytes]) -> SyntaxProblem:
    row, byte_column = node.start_point
    line = lines[row] if row < len(lines) else b""
    column = len(line[:byte_column].decode("utf-8", "replace")) + 1
    line_text = line.decode("utf-8", "replace").strip()
    if node.is_missing:
        token = node.type
        return SyntaxProblem(row + 1, column, f"missing `{token}`", ("missing", token, line_text))
    snippet = (node.text or b"").split(b"\n", 1)[0].decode("utf-8", "replace").strip()[:40]
    description = f"unexpected `{snippet}`" if snippet else "syntax error"
    return SyntaxProblem(row + 1, column, description, ("error", snippet, line_text))


def _added_problems(before: list[SyntaxProblem], after: list[SyntaxProblem]) -> list[SyntaxProblem]:
    """Problems in `after` beyond those `before` already had, matched as a multiset of signatures."""
    surplus = Counter(p.signature for p in after) - Counter(p.signature for p in before)
    old_lines = {(p.signature, p.line) for p in before}
    added: list[SyntaxProblem] = []
    for signature, count in surplus.items():
        candidates = [p for p in after if p.signature == signature]
        # Of several look-alikes, blame the ones that did not sit on the same line before.
        candidates.sort(key=lambda p: (signature, p.line) in old_lines)
        added.extend(candidates[:count])
    return sorted(added, key=lambda p: (p.line, p.column))


def _rejection_message(path: str, source: bytes, added: list[SyntaxProblem], existing: int) -> str:
    count = len(added)
    plural = "s" if count != 1 else ""
    parts = [(f"The edit was NOT applied: it would add {count} syntax error{plural} to {path} "
              "(the file is unchanged).")]
    lines = [line.decode("utf-8", "replace") for line in source_lines(source)]
    if len(lines) > 1 and not lines[-1]:
        lines.pop()  # the empty "line" after a final newline
    for problem in added[:MAX_REPORTED]:
        parts.append(f"{path}:{problem.line}:{problem.column}: {problem.description}\n"
                     + _excerpt(lines, problem))
    if count > MAX_REPORTED:
        parts.append(f"... and {count - MAX_REPORTED} more.")
    if existing:
        parts.append(f"(The file already had {existing} syntax error{'s' if existing != 1 else ''} "
                     "before this edit; those alone would not block it.)")
    parts.append("Fix the edit so the file parses, then make it again.")
    return "\n\n".join(parts)


def _excerpt(lines: list[str], problem: SyntaxProblem) -> str:
    """Numbered lines around the problem, with a caret under its column."""
    first = max(1, problem.line - CONTEXT_LINES)
    last = max(problem.line, min(len(lines), problem.line + CONTEXT_LINES))
    width = len(str(last))
    out = []
    for number in range(first, last + 1):
        text = lines[number - 1] if number <= len(lines) else ""
        marker = ">" if number == problem.line else " "
        out.append(f"{marker} {number:>{width}} | {text}".rstrip())
        if number == problem.line:
            indent = "".join("\t" if ch == "\t" else " " for ch in text[: problem.column - 1])
            out.append(f"  {' ' * width} | {indent}^")
    return "\n".join(out)
