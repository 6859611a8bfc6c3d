"""Lint-on-edit: refuse an edit only when it surely adds a syntax error; mention what is only possible.

Files arrive as bytes (read from the sandbox) and are parsed on the host with tree-sitter.
Only errors the edit *adds* count: a file that was already broken somewhere else must still
accept unrelated edits, so errors are matched between before and after by what they look
like (kind, token, text of their line), not by line number, which every edit shifts.

Grammars lag their languages (Rust's `safe fn`, TypeScript's `import defer`, C23's `#embed`,
`_BitInt(N)` and `auto` inference, Python's PEP 696 defaults, old-Mac CR line endings), so
an error tree-sitter reports is a suspicion, not a verdict. The rule (`lint_edit`):

1. The edit adds no error tree-sitter can see, or no grammar reads the file: it is made
   (for a file no grammar reads, the answer says it was not syntax-checked).
2. Otherwise the language's own interpreter or compiler in the sandbox is asked, where it
   has one (`LANGUAGE_CHECKS`). It accepts the file: the edit is made, with a note. It
   rejects the file but accepted the file before the edit (or the file is new): refused,
   with its complaint. It rejected the file before too: its verdict says nothing about the
   edit, so go on as if there were none.
3. With no such verdict, tree-sitter refuses only when it is sure: the edit also changes the
   balance of the file's brackets (`()`, `[]`, `{}` counted as tokens, so not inside strings
   or comments), which no version of any of these languages accepts, except C and C++ under
   conditional compilation (`#if`/`#ifdef`/`#else` branches may each open a brace) or with a
   macro whose body holds unbalanced brackets (`#define NS_BEGIN namespace foo {`, `#define CALL(f) f(`:
   the brackets a macro expands to are not tokens tree-sitter counts), which is never sure.
   Any other added error is reported as a *possible* syntax error, and the edit is made.
   Only a sure refusal stands when the same edit is sent again.
"""

from __future__ import annotations

import posixpath
import re
import secrets
import shlex
from collections import Counter
from dataclasses import dataclass, field

from tree_sitter import Node

from sandbox.base import Sandbox
from tools.encoding import decode, is_utf8, shown, shown_name, visible
from tools.languages import language_name_for, looks_generated, parser_for_language

CONTEXT_LINES = 2
MAX_REPORTED = 3
LINE_TEXT_CHARS = 200  # of a problem's line, for matching and showing: a minified line is megabytes
CHECK_DIR = "/tmp/.moe-lint"
# Syntax-only checks by the language itself, run in the sandbox on a copy of the edited
# file: {file} is its path there, {name} the path shown in messages. Exit 127: not installed;
# 126: the check itself could not run (the copy unreadable): no verdict either way.
LANGUAGE_CHECKS: dict[str, tuple[str, str]] = {
    # Compiled under the copy's own name (shown as {name} afterwards): Python prints the offending
    # line by reading the named file, and the file at {name} is still the old one, or absent.
    "python": ("python", "for py in python3 python; do command -v $py >/dev/null || continue; exec $py -c "
                         "'import sys\ntry:\n    source = open(sys.argv[1], \"rb\").read()\nexcept Exception:\n"
                         "    sys.exit(126)\nsys.stderr.write(\"moe-lint-version %d.%d\\n\" % sys.version_info[:2])\n"
                         "sys.stderr.flush()\ncompile(source, sys.argv[1], \"exec\", dont_inherit=True)' "
                         "{file}; done; exit 127"),
    "javascript": ("node", "command -v node >/dev/null || exit 127; exec node --check {file}"),
    "go": ("gofmt", "command -v gofmt >/dev/null || exit 127; exec gofmt -e {file} >/dev/null"),
    "ruby": ("ruby", "command -v ruby >/dev/null || exit 127; exec ruby -c {file} >/dev/null"),
}
VERSION_LINE = re.compile(r"^moe-lint-version (\S+)\n?", re.M)  # what a check prints of its tool's version


@dataclass(frozen=True)
class SyntaxProblem:
    """One ERROR or MISSING node, located for a person (1-based line and column)."""

    line: int
    column: int
    description: str
    signature: tuple[str, str, str] = field(repr=False)  # what it looks like, whatever line it is on


@dataclass(frozen=True)
class LintReport:
    """What tree-sitter saw of an edit: `ok` is False when it adds syntax errors; `message` is for the model."""

    ok: bool
    checked: bool  # False when no installed grammar reads the file: passed through unchecked
    new_problems: tuple[SyntaxProblem, ...] = ()
    message: str = ""
    unbalanced: str = ""  # how the edit changed the bracket balance ("1 more `)` than `(`"); "" when it did not
    unchecked_reason: str = ""  # why the file was not checked, for the model


@dataclass(frozen=True)
class LintOutcome:
    """The decision on one edit (see the module's rule): refused with `message`, or made with `note` ("" for none)."""

    refused: bool
    message: str = ""
    note: str = ""
    repeatable: bool = False  # the language's own check refused: the same edit sent again (next, to that file) is made


BRACKETS = {"(": ")", "[": "]", "{": "}"}
PREPROCESSED = {"c", "cpp"}
CONDITIONAL_DIRECTIVE = re.compile(rb"^[ \t]*#[ \t]*(?:if|ifdef|elif|else)\b", re.M)  # not #ifndef: include guards
# `#define NAME body` or `#define NAME(params) body`, the body running on over backslash-continued lines.
MACRO_BODY = re.compile(rb"^[ \t]*#[ \t]*define[ \t]+\w+(?:\([^)\n]*\))?((?:[^\n]*\\\r?\n)*[^\n]*)", re.M)


def check_edit(path: str, before: bytes | None, after: bytes) -> LintReport:
    """What tree-sitter says of the edit: errors `after` has that `before` did not, and the bracket balance."""
    language = language_name_for(path)
    parser = parser_for_language(language) if language else None
    if parser is None:
        reason = (f"the tree-sitter grammar for {language} is not installed" if language
                  else f"no tree-sitter grammar reads {_kind_of_file(path)}")
        return LintReport(ok=True, checked=False, unchecked_reason=reason)
    if looks_generated(path, after):  # a minified file's tree is ~60x its size
        return LintReport(ok=True, checked=False, unchecked_reason="the file looks minified or generated")
    after_tree = parser.parse(after)
    after_problems = syntax_problems(after_tree.root_node, after)
    if not after_problems:
        return LintReport(ok=True, checked=True)
    before_tree = parser.parse(before) if before is not None else None
    before_problems = syntax_problems(before_tree.root_node, before) if before_tree and before is not None else []
    added = _added_problems(before_problems, after_problems)
    if not added:
        return LintReport(ok=True, checked=True)
    after_balance = bracket_balance(after_tree.root_node, after)
    before_balance = bracket_balance(before_tree.root_node, before) if before_tree and before is not None else {}
    balance_change = {kind: after_balance.get(kind, 0) - before_balance.get(kind, 0) for kind in BRACKETS}
    # `#ifdef X` / `if (a) {` / `#else` / `if (b) {` / `#endif` is valid C with two `{` for one `}`.
    unsure = language in PREPROCESSED and (CONDITIONAL_DIRECTIVE.search(after) is not None
                                           or has_bracket_macro(after) or has_bracket_macro(before or b""))
    return LintReport(ok=False, checked=True, new_problems=tuple(added),
                      message=_rejection_message(path, after, added, len(before_problems)),
                      unbalanced="" if unsure else _describe_balance(balance_change))


def has_bracket_macro(source: bytes) -> bool:
    """Whether a C/C++ file defines a macro whose body (continued lines included) holds unbalanced
    brackets (`namespace foo {`, `f(`): then the file's real bracket balance is only known after
    preprocessing, so no count of its tokens is sure. A bracket inside a string in the body counts too,
    which at worst makes a refusal unsure."""
    for match in MACRO_BODY.finditer(source):
        body = match.group(1).decode("latin-1")  # brackets are ASCII: any byte-to-char mapping will do
        if any(body.count(opening) != body.count(closing) for opening, closing in BRACKETS.items()):
            return True
    return False


def _kind_of_file(path: str) -> str:
    """`.kt files`, or the name itself for a file without an extension (`Makefile`)."""
    name = posixpath.basename(path)
    dot = name.rfind(".")
    return f"{name[dot:]} files" if dot > 0 else name


def lint_edit(sandbox: Sandbox, path: str, before: bytes | None, after: bytes, timeout: float = 60,
              repeated: bool = False) -> LintOutcome:
    """Refuse the edit or let it through with a note, by the module's rule; `before` is None for a new file.

    The sandbox's interpreter may be older than the code (PEP 696 defaults under python 3.11), so its
    refusal is `repeatable`: `repeated` (the identical edit sent again as the next edit of that file,
    tracked by the editor) makes the edit with a note naming the check that rejected it. Tree-sitter's
    sure refusals stay refusals.
    """
    report = check_edit(path, before, after)
    if not report.checked:
        return LintOutcome(False, note=f"\n(Syntax not checked: {report.unchecked_reason}.)")
    if report.ok:
        return LintOutcome(False)
    first = report.new_problems[0]
    verdict = language_verdict(sandbox, path, after, timeout)
    if verdict.accepts:
        return LintOutcome(False, note=f"\n(Note: the tree-sitter grammar reports a syntax error at line {first.line}, "
                                      f"but {verdict.tool} in the sandbox accepts the file, so the edit was made.)")
    unjudged = "no interpreter or compiler in the sandbox could check this file"
    if verdict.accepts is False:
        if before is None or language_verdict(sandbox, path, before, timeout).accepts:
            checker = f"{verdict.tool} {verdict.version}".strip()
            if repeated:
                return LintOutcome(False, note=(
                    f"\n(Note: made because the same edit was sent again after its refusal; {checker} in the sandbox "
                    f"rejects it ({verdict.detail.splitlines()[-1] if verdict.detail else 'a syntax error'}) and the "
                    f"tree-sitter grammar reports a syntax error at line {first.line}.)"))
            return LintOutcome(True, repeatable=True, message=(
                f"{report.message}\n{verdict.tool} in the sandbox agrees:\n{verdict.detail}\nIf this is valid code "
                f"newer than the sandbox's {checker}, send exactly the same edit again as your next edit of "
                f"{shown_name(path)} (other calls in between are fine) and it will be applied."))
        # It rejected the file before the edit too: its verdict cannot tell what the edit added.
        unjudged = f"{verdict.tool} in the sandbox rejected this file before the edit too, so it cannot tell"
    if report.unbalanced:
        return LintOutcome(True, f"{report.message}\n(Sure without a compiler: the edit adds {report.unbalanced}. If "
                                 "the code is valid all the same, write it with bash instead.)")
    excerpt = report.message.split("\n\n")[1]
    return LintOutcome(False, note=(
        f"\n(Possible syntax error, the edit was made: the tree-sitter grammar reports {len(report.new_problems)} new "
        f"problem{'s' if len(report.new_problems) != 1 else ''}, first {excerpt}\nGrammars lag their languages and "
        f"{unjudged}, so this may be valid newer syntax; if it is a mistake, fix it.)"))


def bracket_balance(root: Node, source: bytes) -> dict[str, int]:
    """Opening minus closing brackets per kind, over the tokens tree-sitter read: a `(` inside a string or
    a comment is part of that token, not counted; tokens such as `${` or `[[` count each bracket they hold.
    Tokens the grammar skipped (an ERROR leaf) count by their text. Keys are the opening brackets."""
    balance = dict.fromkeys(BRACKETS, 0)
    cursor = root.walk()
    while True:
        node = cursor.node
        if node is not None and node.child_count == 0 and not node.is_missing and (not node.is_named or node.is_error):
            text = node.type if not node.is_error else source[node.start_byte:node.end_byte].decode("utf-8", "replace")
            for opening, closing in BRACKETS.items():
                balance[opening] += text.count(opening) - text.count(closing)
        if cursor.goto_first_child() or cursor.goto_next_sibling():
            continue
        while cursor.goto_parent():
            if cursor.goto_next_sibling():
                break
        else:
            return balance


def _describe_balance(change: dict[str, int]) -> str:
    """`1 more `)` than `(`` for each kind of bracket whose balance the edit changed (opening bracket ->
    change in opening minus closing); "" when none changed."""
    parts = []
    for opening, closing in BRACKETS.items():
        delta = change.get(opening, 0)
        if delta:
            more, fewer = (opening, closing) if delta > 0 else (closing, opening)
            parts.append(f"{abs(delta)} more `{more}` than `{fewer}`")
    return " and ".join(parts)


@dataclass(frozen=True)
class LanguageVerdict:
    """What the language's own tool said of a file: `accepts` is None when none could be asked."""

    accepts: bool | None
    tool: str = ""
    detail: str = ""  # its complaint, last lines, when it rejects
    version: str = ""  # of the tool ("3.11"), when its check prints it; "" when unknown


def language_verdict(sandbox: Sandbox, path: str, data: bytes, timeout: float = 60) -> LanguageVerdict:
    """Ask the sandbox's interpreter or compiler whether `data`, as the file at `path`, is valid syntax."""
    language = language_name_for(path)
    if language not in LANGUAGE_CHECKS:
        return LanguageVerdict(None)
    tool, template = LANGUAGE_CHECKS[language]
    copy = f"{CHECK_DIR}/{secrets.token_hex(4)}-{posixpath.basename(path)}"
    try:
        sandbox.write_file(copy, data)
    except OSError:
        return LanguageVerdict(None)
    command = template.format(file=shlex.quote(copy), name=shlex.quote(path))
    result = sandbox.run(f"( {command} ) 2>&1; rc=$?; rm -f -- {shlex.quote(copy)}; exit $rc", timeout=timeout)
    if result.timed_out or result.exit_code in (None, 126, 127):
        return LanguageVerdict(None, tool)
    version = VERSION_LINE.search(result.output)
    output = VERSION_LINE.sub("", result.output, count=1)
    if result.exit_code == 0:
        return LanguageVerdict(True, tool, version=version.group(1) if version else "")
    complaint = visible("\n".join(output.replace(copy, path).strip().splitlines()[-4:]))  # output: its own rule
    return LanguageVerdict(False, tool, complaint[:1000], version.group(1) if version else "")


def syntax_problems(root: Node, source: bytes) -> list[SyntaxProblem]:
    """Every outermost ERROR node and every MISSING node, in document order; what they show of the
    file is shown by its rule (escaped when the file is not UTF-8, tools/encoding.py)."""
    lines = source_lines(source)
    utf8 = is_utf8(source)
    problems: list[SyntaxProblem] = []
    stack = [root]
    while stack:
        node = stack.pop()
        if node.is_missing or node.is_error:
            problems.append(_problem(node, lines, source, utf8))
        elif node.has_error:
            stack.extend(reversed(node.children))
    return problems


def source_lines(source: bytes) -> list[bytes]:
    """Lines as tree-sitter counts rows: split on LF only, a CR before it dropped."""
    return [line.removesuffix(b"\r") for line in source.split(b"\n")]


def _problem(node: Node, lines: list[bytes], source: bytes, utf8: bool) -> SyntaxProblem:
    row, byte_column = node.start_point
    line = lines[row] if row < len(lines) else b""
    column = len(shown(decode(line[:byte_column]), utf8)) + 1  # in characters as the line is shown
    if len(line) > LINE_TEXT_CHARS:  # the part around the problem; a whole minified line per error is quadratic
        line = line[max(byte_column - LINE_TEXT_CHARS // 2, 0):byte_column + LINE_TEXT_CHARS // 2]
    line_text = line.decode("utf-8", "replace").strip()
    if node.is_missing:
        token = node.type
        return SyntaxProblem(row + 1, column, f"missing `{token}`", ("missing", token, line_text))
    text = source[node.start_byte:min(node.end_byte, node.start_byte + 200)]
    snippet = shown(decode(text.split(b"\n", 1)[0]), utf8).strip()[:40]
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
    path = shown_name(path)
    parts = [(f"The edit was NOT applied: it would add {count} syntax error{plural} to {path} "
              "(the file is unchanged).")]
    utf8 = is_utf8(source)
    lines = [shown(decode(line), utf8) for line in source_lines(source)]
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
        column = problem.column
        if len(text) > 2 * LINE_TEXT_CHARS:  # a window around the problem, not a megabyte of minified code
            start = max(column - 1 - LINE_TEXT_CHARS // 2, 0) if number == problem.line else 0
            text = ("..." if start else "") + text[start:start + LINE_TEXT_CHARS] + "..."
            column = column - start + (3 if start else 0)
        marker = ">" if number == problem.line else " "
        out.append(f"{marker} {number:>{width}} | {text}".rstrip())
        if number == problem.line:
            indent = "".join("\t" if ch == "\t" else " " for ch in text[: column - 1])
            out.append(f"  {' ' * width} | {indent}^")
    return "\n".join(out)
