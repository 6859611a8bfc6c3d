"""`str_replace_editor`: view, create and edit files, with the command names Qwen3-Coder was trained on.

Edits keep what the model cannot see: CRLF line endings, a missing final newline and
bytes that are not UTF-8 all survive, because the file is decoded with surrogateescape
and only the replaced span changes. Every refusal says what to do instead.
"""

from __future__ import annotations

import bisect
import difflib
import hashlib
import posixpath
import re
import shlex
from dataclasses import dataclass
from typing import Any

from sandbox.output import cap_text
from tools.base import Observation, ToolContext, ToolError, ToolSpec
from tools.encoding import (
    FILE_RULE_NOTE, NOT_UTF8_NOTE, decode, encode, files_not_utf8, from_visible, has_raw_bytes, is_utf8, shown, shown_name,
)
from tools.lint import lint_edit
from tools.paths import RepoPath, resolve_in_repo

LINE_DISPLAY_CHARS = 2000  # a minified line would otherwise fill the whole observation
LARGE_FILE_BYTES = 8_000_000  # above this, files are paged through the shell and not edited here
LARGE_FILE_PAGE_LINES = 200
SNIPPET_CONTEXT_LINES = 4
UNDO_DEPTH = 10
BINARY_SNIFF_BYTES = 8192
HISTORY_KEY = "editor.history"
REFUSED_KEY = "editor.refused"  # {real path: digest of (before, after)}: an edit refused unless sent again
NEWLINE = re.compile("\n")
MAX_MATCHES_LISTED = 100

DESCRIPTION = """\
View, create and edit files in the repository.
* `view` on a file shows it with line numbers (like `cat -n`); `view_range` [start, end] shows only those \
lines (end -1 = to the end). `view` on a directory lists files up to 2 levels deep, hidden ones left out.
* `create` writes a new file with `file_text`; it refuses to overwrite an existing file.
* `str_replace` replaces `old_str` with `new_str` (empty or omitted new_str deletes). `old_str` must match \
EXACTLY ONE place in the file, whitespace included: copy it from `view`, with enough surrounding lines to be unique.
* `insert` inserts `new_str` as new lines after line `insert_line` (0 = at the top).
* `undo_edit` reverts the last edit made to `path` with this tool.
Paths are relative to the repository root or absolute inside it."""


@dataclass
class TextFile:
    """A file's text as the model sees it, plus what is needed to write it back unchanged.

    `text` has each CRLF shown as LF, so old_str never needs to type a line's ending: a line end
    in old_str matches a line end in the file whatever its bytes (`\\r\\n` typed by the model counts
    as one line end too). `crlf[i]` says whether the i-th newline of `text` (0-based) was a CRLF.
    An edit (`replace`) changes only its span: every newline outside it keeps its ending, and the
    newlines it writes take the ending around them (see `replace`). A lone `\\r` that is not part
    of a CRLF (old-Mac files, or one inside a line) is ordinary text that must match exactly.
    `utf8` is False for a file with bytes that are not UTF-8: they are lone surrogates in `text`
    (see `tools.encoding`), written back as the same bytes, and every view shows the whole file
    escaped (`shown`).
    """

    text: str
    crlf: list[bool]
    utf8: bool = True

    @classmethod
    def decode(cls, data: bytes, shown: str) -> TextFile:
        if looks_binary(data):
            raise ToolError(f"{shown} looks like a binary file; this editor only handles text. "
                            f"Inspect it with bash instead (e.g. `xxd {shlex.quote(shown)} | head`).")
        text = decode(data)
        if "\r\n" not in text:
            return cls(text, [], is_utf8(data))
        lines = text.split("\n")
        crlf = [line.endswith("\r") for line in lines[:-1]]
        text = "\n".join([line[:-1] if cr else line for line, cr in zip(lines, crlf, strict=False)] + lines[-1:])
        return cls(text, crlf, is_utf8(data))

    def replace(self, at: int, length: int, new: str, *, ending_from_before: bool = False) -> Replacement:
        """The file's bytes with `text[at:at + length]` replaced by `new` (LF line ends).

        Newlines outside the span keep their own ending, including one right after the span. The
        newlines of `new` take the ending of the first newline the span replaces; when it replaces
        none, of the line they split (the next newline), or for `ending_from_before` (an insert
        after a line) of the line before; failing that, the nearest newline on the other side.
        """
        if not any(self.crlf):
            return Replacement(encode(self.text[:at] + new + self.text[at + length:]), "\n", False)
        newlines = [found.start() for found in NEWLINE.finditer(self.text)]
        first_inside = bisect.bisect_left(newlines, at)
        after_span = bisect.bisect_left(newlines, at + length)
        before, after = first_inside - 1, after_span
        order = [before, after] if ending_from_before else [after, before]
        candidates = ([first_inside] if first_inside < after_span else []) + order
        known = [self.crlf[index] for index in candidates if 0 <= index < len(self.crlf)]
        ending = "\r\n" if known and known[0] else "\n"
        data = encode(self._raw(0, at, newlines) + new.replace("\n", ending)
                      + self._raw(at + length, len(self.text), newlines))
        return Replacement(data, ending, any(self.crlf[first_inside:after_span]))

    def _raw(self, start: int, end: int, newlines: list[int]) -> str:
        """`text[start:end]` with each newline written with its own ending."""
        first = bisect.bisect_left(newlines, start)
        out, position = [], start
        for index in range(first, bisect.bisect_left(newlines, end)):
            out.append(self.text[position:newlines[index]] + ("\r\n" if self.crlf[index] else "\n"))
            position = newlines[index] + 1
        out.append(self.text[position:end])
        return "".join(out)

    def normalise(self, model_text: str) -> str:
        """What the model typed, as `text` has it: CRLF as LF and, in a file that is not UTF-8, `\\xNN` as that byte."""
        model_text = model_text.replace("\r\n", "\n")
        return model_text if self.utf8 else from_visible(model_text)


@dataclass(frozen=True)
class Replacement:
    """An edit as written: the file's new bytes, the ending its new lines got (`\\r\\n` or `\\n`), and
    whether the replaced span held CRLF line ends (matched by old_str's plain line ends)."""

    data: bytes
    ending: str
    spanned_crlf: bool

    def note(self, typed_crlf: bool) -> str:
        """What to tell the model when line ends were matched whatever their bytes; "" when none were."""
        if not (typed_crlf or self.spanned_crlf):
            return ""
        written = "CRLF" if self.ending == "\r\n" else "LF"
        return ("\n(Line ends in old_str were matched as plain line ends, whether the file has CRLF or LF there "
                "(`view` shows both alike): every line outside the edit kept its own ending, and the new lines "
                f"were written with {written}, as around them.)")


def looks_binary(data: bytes) -> bool:
    """NUL bytes, or bytes that are neither UTF-8 nor plausible single-byte text (latin-1 and the like)."""
    head = data[:BINARY_SNIFF_BYTES]
    if b"\0" in head:
        return True
    try:
        data.decode("utf-8")
        return False
    except UnicodeDecodeError:
        controls = sum(1 for byte in head if byte < 0x20 and byte not in b"\t\n\r\f\b\x1b")
        return controls * 100 > len(head)


def number_lines(lines: list[str], first: int, utf8: bool) -> str:
    """`cat -n` style, each line cut at LINE_DISPLAY_CHARS with a marker saying how much is hidden, and
    shown by its file's rule: escaped when the file (`utf8` False) is not UTF-8 (tools/encoding.py)."""
    out = []
    for number, line in enumerate(lines, start=first):
        hidden = len(line) - LINE_DISPLAY_CHARS  # cut before escaping, so that no escape is cut in two
        line = shown(line[:LINE_DISPLAY_CHARS], utf8)
        if hidden > 0:
            line += f" [... line truncated, {hidden} more characters]"
        out.append(f"{number:6}\t{line}")
    return "\n".join(out)


def split_lines(text: str) -> list[str]:
    """Lines as numbered in a view: a final newline does not start another line."""
    if not text:
        return []
    return text.split("\n")[:-1] if text.endswith("\n") else text.split("\n")


def describe_indent(line: str) -> str:
    indent = line[: len(line) - len(line.lstrip(" \t"))]
    if not indent:
        return "no indentation"
    counts = [(indent.count("\t"), "tab"), (indent.count(" "), "space")]
    return " and ".join(f"{count} {noun}{'s' if count > 1 else ''}" for count, noun in counts if count)


def tabs_vs_spaces_hint(text: str, old: str, utf8: bool) -> str | None:
    """If `old` matches once tabs are expanded, the line where it does and how the whitespace differs
    (the file's lines shown by its rule: `utf8` False for a file that is not UTF-8)."""
    if "\t" not in text and "\t" not in old:
        return None
    for tabsize in (8, 4, 2):
        expanded = text.expandtabs(tabsize)
        at = expanded.find(old.expandtabs(tabsize))
        if at < 0:
            continue
        first = expanded.count("\n", 0, at) + 1
        file_lines = text.split("\n")[first - 1 :]
        old_lines = old.split("\n")
        for offset, (mine, theirs) in enumerate(zip(file_lines, old_lines, strict=False)):
            if mine != theirs and "\t" in mine + theirs:
                return (f"old_str does not match exactly, but it would if tabs and spaces were treated alike "
                        f"(tabs vs spaces): line {first + offset} of the file has {describe_indent(mine)} "
                        f"({shown(mine.strip(), utf8)!r}), old_str has {describe_indent(theirs)}. Use the file's "
                        f"exact whitespace (a tab is \\t):\n{number_lines(file_lines[: len(old_lines)], first, utf8)}")
    return None


def closest_lines(lines: list[str], old: str) -> tuple[int, float]:
    """The 1-based first line of the window of lines most similar to `old`, and how similar (0..1).

    Lines are compared only up to a little more than `old` is long: SequenceMatcher's cost
    grows with the product of the lengths, and a minified line is megabytes long.
    """
    size = max(old.count("\n") + 1, 1)
    longest = 2 * len(old) + 200
    lines = [line[:longest] for line in lines]
    matcher = difflib.SequenceMatcher(autojunk=False)
    matcher.set_seq2(old)
    candidates = []
    for start in range(max(len(lines) - size + 1, 1)):
        matcher.set_seq1("\n".join(lines[start : start + size]))
        candidates.append((matcher.quick_ratio(), start))
    best, best_start = 0.0, 0
    for _, start in sorted(candidates, reverse=True)[:20]:
        matcher.set_seq1("\n".join(lines[start : start + size]))
        if (ratio := matcher.ratio()) > best:
            best, best_start = ratio, start
    return best_start + 1, best


class EditorTool:
    spec = ToolSpec(
        name="str_replace_editor",
        description=DESCRIPTION,
        parameters={
            "type": "object",
            "properties": {
                "command": {"type": "string", "enum": ["view", "create", "str_replace", "insert", "undo_edit"],
                            "description": "The command to run."},
                "path": {"type": "string", "description": "File or directory, relative to the repository root or "
                                                          "absolute inside it, e.g. `src/app.py`."},
                "file_text": {"type": "string", "description": "For `create`: the whole content of the new file."},
                "old_str": {"type": "string", "description": "For `str_replace`: the exact text to replace."},
                "new_str": {"type": "string", "description": "For `str_replace`: the replacement. For `insert`: "
                                                             "the lines to insert."},
                "insert_line": {"type": "integer", "minimum": 0,
                                "description": "For `insert`: new_str goes after this line (0 = top of file)."},
                "view_range": {"type": "array", "items": {"type": "integer"}, "minItems": 2, "maxItems": 2,
                               "description": "For `view` on a file: [start, end] line numbers, 1-based; end -1 "
                                              "means to the end of the file."},
            },
            "required": ["command", "path"],
            "additionalProperties": False,
        },
    )

    def __call__(self, args: dict[str, Any], ctx: ToolContext) -> Observation:
        target = resolve_in_repo(ctx.sandbox, args["path"])
        command = args["command"]
        if command == "view":
            text = self.view(ctx, target, args.get("view_range"))
        elif command == "create":
            text = self.create(ctx, target, required(args, "file_text", command))
        elif command == "str_replace":
            text = self.str_replace(ctx, target, required(args, "old_str", command), args.get("new_str") or "")
        elif command == "insert":
            text = self.insert(ctx, target, required(args, "insert_line", command), required(args, "new_str", command))
        else:
            text = self.undo(ctx, target)
        return Observation(cap_text(text, ctx.observation_max_chars)[0])

    # -- view ---------------------------------------------------------------
    def view(self, ctx: ToolContext, target: RepoPath, view_range: list[int] | None) -> str:
        stat = ctx.sandbox.stat(target.real)
        if not stat.exists:
            raise ToolError(missing_message(target))
        if stat.is_dir:
            if view_range is not None:
                raise ToolError(f"view_range only applies to files, and {target.shown} is a directory; omit it")
            try:
                entries = ctx.sandbox.list_dir(target.real, depth=2)
            except OSError as exc:
                raise ToolError(f"cannot list {target.shown}: {exc}") from None
            listing = "\n".join(shown_name(posixpath.join(target.path, entry)) for entry in entries) or "(empty directory)"
            return f"Files and directories up to 2 levels deep in {target.shown}, excluding hidden items:\n{listing}"
        if stat.size > LARGE_FILE_BYTES:
            return self.view_large(ctx, target, stat.size, view_range)
        file = load(ctx, target)
        lines = split_lines(file.text)
        if not lines:
            return f"{target.shown} is empty."
        header = f"Here's the result of running `cat -n` on {target.shown}"
        if not file.utf8:
            header = (f"Note: {target.shown} is not valid UTF-8 (perhaps latin-1 or another legacy encoding); "
                      f"{NOT_UTF8_NOTE}; {FILE_RULE_NOTE}. Edits keep its bytes as they are.\n{header}")
        if any(file.crlf):
            header = (f"Note: {sum(file.crlf)} of the {len(lines)} lines of {target.shown} end with CRLF (\\r\\n); "
                      "they are shown, and may be typed in old_str, as plain line ends, and edits keep each line's "
                      f"own ending.\n{header}")
        if view_range is None:
            return page(header, lines, 1, ctx.observation_max_chars, file.utf8)
        start, end = check_range(view_range, len(lines), target)
        shown_lines = number_lines(lines[start - 1 : end], start, file.utf8)
        return f"{header} (lines {start}-{end} of {len(lines)}):\n{shown_lines}"

    def view_large(self, ctx: ToolContext, target: RepoPath, size: int, view_range: list[int] | None) -> str:
        """Page a huge file with sed in the sandbox, so its bytes never cross into this process."""
        quoted = shlex.quote(target.real)
        counted = ctx.sandbox.run(f"head -c {BINARY_SNIFF_BYTES} -- {quoted} | tr -dc '\\000' | wc -c; "
                                  f"wc -l < {quoted}; tail -c 1 -- {quoted} | wc -l")
        numbers = counted.output.split()
        if not counted.ok or len(numbers) != 3 or not all(n.isdigit() for n in numbers):
            raise ToolError(f"cannot read {target.shown}: {counted.output.strip()}")
        nuls, newlines, ends_with_newline = map(int, numbers)
        if nuls:
            raise ToolError(f"{target.shown} looks like a binary file ({size / 1e6:.1f} MB); inspect it with bash "
                            f"instead (e.g. `xxd {quoted} | head`).")
        total_lines = newlines + (not ends_with_newline)  # wc counts newlines, not an unterminated last line
        start, end = check_range(view_range or [1, LARGE_FILE_PAGE_LINES], total_lines, target)
        byte_budget = ctx.observation_max_chars * 4
        page_text = ctx.sandbox.run(f"sed -n '{start},{end}p;{end}q' -- {quoted} | head -c {byte_budget}").output
        lines = split_lines(page_text)
        not_utf8 = files_not_utf8(ctx.sandbox, [target.real], ctx.command_timeout)  # the whole file decides
        utf8 = not (target.real in not_utf8 if not_utf8 is not None else has_raw_bytes(page_text))
        note = (f"{target.shown} is large ({size / 1e6:.1f} MB, {total_lines} lines), so it is shown in pages "
                f"of at most {LARGE_FILE_PAGE_LINES} lines. Use view_range to see other parts, or the search tool "
                f"to find what you need. Edit it with bash (sed, python), not with this tool.")
        if not utf8:
            note += f"\nNote: {target.shown} is not valid UTF-8; {NOT_UTF8_NOTE}; {FILE_RULE_NOTE}."
        return f"{note}\nLines {start}-{start + len(lines) - 1}:\n" + number_lines(lines, start, utf8)

    # -- edits --------------------------------------------------------------
    def create(self, ctx: ToolContext, target: RepoPath, file_text: str) -> str:
        stat = ctx.sandbox.stat(target.real)
        if stat.exists:
            kind = "directory" if stat.is_dir else "file"
            raise ToolError(f"a {kind} already exists at {target.shown}; `create` does not overwrite. "
                            "Use `view` to read it and `str_replace` or `insert` to change it.")
        note = save(ctx, target, None, encode(file_text))
        return f"File created successfully at: {target.shown}{note}"

    def str_replace(self, ctx: ToolContext, target: RepoPath, old_str: str, new_str: str) -> str:
        if not old_str:
            raise ToolError("old_str is empty; give the exact text to replace (copy it from `view`)")
        before, file = load_for_edit(ctx, target)
        old, new = file.normalise(old_str), file.normalise(new_str)
        if old == new:
            raise ToolError("old_str and new_str are identical, so nothing would change; give the new text in new_str")
        starts = match_starts(file.text, old)
        typed = old_str.replace("\r\n", "\n")
        if not starts and not file.utf8 and old != typed and typed in file.text:
            # Never guess: reading old_str's \xNN as text and new_str's as bytes wrote bytes for text.
            raise ToolError(f"old_str matches nothing in {target.shown} with its \\xNN read as bytes; the file has "
                            "them as typed text there, which is shown and written with a doubled backslash "
                            "(\\\\xe9 for the text \\xe9): copy old_str and new_str from `view` that way")
        halved = from_visible(old) if file.utf8 and "\\\\x" in old else old
        if not starts and halved != old and halved in file.text:
            # Copied from escaped command output: in a UTF-8 file nothing is escaped, so \\xe9 is that text.
            raise ToolError(f"old_str matches nothing in {target.shown}, but would with each doubled backslash before "
                            f"xNN halved: {target.shown} is UTF-8, so it is shown and written as it is, never escaped "
                            "(the text \\xe9 is typed with one backslash). Escaped text comes from command output "
                            "with bytes that are not UTF-8; copy old_str and new_str from `view` of the file instead")
        if not starts:
            raise ToolError(no_match_message(file, old, target))
        if len(starts) > 1:
            times = f"{len(starts)}{' or more' if len(starts) == MAX_MATCHES_LISTED else ''}"
            raise ToolError(f"old_str occurs {times} times in {target.shown} (matches may overlap), starting at "
                            f"{match_places(file.text, starts)}; include more surrounding lines in old_str so that "
                            "it matches exactly once")
        at = starts[0]
        text = file.text[:at] + new + file.text[at + len(old) :]
        replacement = file.replace(at, len(old), new)
        note = save(ctx, target, before, replacement.data) + replacement.note("\r\n" in old_str)
        first = text.count("\n", 0, at) + 1
        return edited_message(target, text, first, first + new.count("\n")) + note

    def insert(self, ctx: ToolContext, target: RepoPath, insert_line: int, new_str: str) -> str:
        before, file = load_for_edit(ctx, target)
        lines = split_lines(file.text)
        if insert_line > len(lines):
            raise ToolError(f"insert_line {insert_line} is past the end of {target.shown}, which has {len(lines)} "
                            f"lines; use a number from 0 to {len(lines)}")
        new_lines = split_lines(file.normalise(new_str)) or [""]
        if insert_line == len(lines) and file.text and not file.text.endswith("\n"):
            at, inserted = len(file.text), "\n" + "\n".join(new_lines)  # keep the missing final newline missing
        else:
            at = sum(len(line) + 1 for line in lines[:insert_line])
            inserted = "\n".join(new_lines) + "\n"
        text = file.text[:at] + inserted + file.text[at:]
        note = save(ctx, target, before, file.replace(at, 0, inserted, ending_from_before=True).data)
        return edited_message(target, text, insert_line + 1, insert_line + len(new_lines)) + note

    def undo(self, ctx: ToolContext, target: RepoPath) -> str:
        stack = ctx.state.get(HISTORY_KEY, {}).get(target.real)
        if not stack:
            raise ToolError(f"there is no edit of {target.shown} to undo (only edits made with this tool can be "
                            "undone)")
        previous = stack.pop()
        if previous is None:
            removed = ctx.sandbox.run(f"rm -f -- {shlex.quote(target.real)}")
            if not removed.ok:
                stack.append(previous)
                raise ToolError(f"cannot remove {target.shown}: {removed.output.strip()}")
            return f"Undid the creation of {target.shown}: the file was removed."
        write(ctx, target, previous)
        return f"Last edit to {target.shown} undone successfully."


def required(args: dict[str, Any], name: str, command: str) -> Any:
    if args.get(name) is None:
        raise ToolError(f"`{command}` needs the `{name}` parameter")
    return args[name]


def check_range(view_range: list[int], total: int, target: RepoPath) -> tuple[int, int]:
    start, end = view_range
    if start < 1 or start > max(total, 1):
        raise ToolError(f"view_range start {start} is outside {target.shown}, which has {total} lines; "
                        f"use a start from 1 to {max(total, 1)}")
    if end == -1 or end > total:
        end = total
    if end < start:
        raise ToolError(f"view_range end {end} is before start {start}; use [start, end] with end >= start, "
                        "or end -1 for the end of the file")
    return start, end


def page(header: str, lines: list[str], first: int, budget: int, utf8: bool) -> str:
    """The whole file if it fits the observation, else the lines that fit and how to see the rest."""
    body = number_lines(lines, first, utf8)
    if len(body) + len(header) < budget:
        return f"{header}:\n{body}"
    count, used = 0, len(header) + 300
    for line in lines:
        used += len(shown(line[:LINE_DISPLAY_CHARS], utf8)) + 60
        if used > budget:
            break
        count += 1
    count = max(count, 1)
    return (f"{header} (lines 1-{count} of {len(lines)}; the file is too long to show at once):\n"
            f"{number_lines(lines[:count], first, utf8)}\n"
            f"[... {len(lines) - count} more lines. Use view_range [{count + 1}, {min(count * 2, len(lines))}] "
            "to see the next part, or the search tool to find what you need.]")


def missing_message(target: RepoPath) -> str:
    return (f"{target.shown} does not exist (it may have been deleted or moved). Use `view` on its directory "
            f"{shown_name(posixpath.dirname(target.path))} to see what is there, or `create` to make a new file.")


def load(ctx: ToolContext, target: RepoPath) -> TextFile:
    return TextFile.decode(read(ctx, target), target.shown)


def load_for_edit(ctx: ToolContext, target: RepoPath) -> tuple[bytes, TextFile]:
    stat = ctx.sandbox.stat(target.real)
    if not stat.exists:
        raise ToolError(missing_message(target))
    if stat.is_dir:
        raise ToolError(f"{target.shown} is a directory; give the path of a file inside it")
    if stat.size > LARGE_FILE_BYTES:
        raise ToolError(f"{target.shown} is too large to edit with this tool ({stat.size / 1e6:.1f} MB); "
                        "edit it with bash (sed, python) instead")
    data = read(ctx, target)
    return data, TextFile.decode(data, target.shown)


def read(ctx: ToolContext, target: RepoPath) -> bytes:
    try:
        return ctx.sandbox.read_file(target.real)
    except IsADirectoryError:
        raise ToolError(f"{target.shown} is not a regular file; give the path of a file") from None
    except OSError:
        raise ToolError(missing_message(target)) from None


def write(ctx: ToolContext, target: RepoPath, data: bytes) -> None:
    try:
        ctx.sandbox.write_file(target.real, data)
    except OSError as exc:
        raise ToolError(f"cannot write {target.shown}: {exc}") from None


def save(ctx: ToolContext, target: RepoPath, before: bytes | None, after: bytes) -> str:
    """Write an edit unless it surely adds a syntax error (tools/lint.py), remember the old content for `undo_edit`;
    return a note for the model ("" when there is nothing to say)."""
    note = lint_note(ctx, target, before, after)
    write(ctx, target, after)
    stack = ctx.state.setdefault(HISTORY_KEY, {}).setdefault(target.real, [])
    stack.append(before)
    del stack[:-UNDO_DEPTH]
    return note


def lint_note(ctx: ToolContext, target: RepoPath, before: bytes | None, after: bytes) -> str:
    """Raise ToolError when lint-on-edit refuses the edit (tools/lint.py says when); else its note, maybe "".

    A refusal that yields to a repeat (the sandbox's interpreter may be older than the code) is
    remembered per file: the same edit (same file content before and after) sent again as the next
    edit of that file is made, whatever other calls came in between; any other edit of the file
    forgets it.
    """
    refused: dict[str, bytes] = ctx.state.setdefault(REFUSED_KEY, {})
    edit = hashlib.sha256(b"new" if before is None else b"old" + hashlib.sha256(before).digest())
    edit.update(hashlib.sha256(after).digest())
    repeated = refused.pop(target.real, None) == edit.digest()
    outcome = lint_edit(ctx.sandbox, target.path, before, after, timeout=min(ctx.command_timeout, 60),
                        repeated=repeated)
    if outcome.refused:
        if outcome.repeatable:
            refused[target.real] = edit.digest()
        raise ToolError(outcome.message)
    return outcome.note


def match_starts(text: str, old: str, limit: int = MAX_MATCHES_LISTED) -> list[int]:
    """Where `old` starts in `text`, overlapping matches included (`count` would miss them), at most `limit`."""
    starts, at = [], text.find(old)
    while at >= 0 and len(starts) < limit:
        starts.append(at)
        at = text.find(old, at + 1)
    return starts


def match_places(text: str, starts: list[int]) -> str:
    """`lines 3, 4` for matches on distinct lines; a line with several (`aa` in `aaa`) names their
    columns too, `line 1 (columns 1, 2)`: 1-based, counted in characters."""
    columns: dict[int, list[int]] = {}
    for at in starts:
        columns.setdefault(text.count("\n", 0, at) + 1, []).append(at - (text.rfind("\n", 0, at) + 1) + 1)
    parts = [f"{line}" if len(cols) == 1 else f"{line} (columns {', '.join(map(str, cols))})"
             for line, cols in columns.items()]
    return f"line{'s' if len(columns) > 1 else ''} {', '.join(parts)}"


def carriage_return_hint(text: str, old: str) -> str | None:
    """If `old` matches once carriage returns are ignored, or once a lone `\\r` and `\\n` are taken
    alike (a file with CR-only line ends, `alpha\\rbeta\\r`), say that `\\r` is the only difference."""
    if "\r" not in text and "\r" not in old:
        return None
    bare = text.replace("\r", "")
    at = bare.find(old.replace("\r", ""))
    if at >= 0:
        line = bare.count("\n", 0, at) + 1
        where = ("the file has carriage returns (\\r) that old_str lacks" if "\r" in text
                 else "old_str has carriage returns (\\r) that the file lacks")
        return (f"No replacement was performed: old_str would match at line {line} except for carriage returns: "
                f"{where}. Line endings (CRLF or LF) need not be typed, but a \\r inside a line must be: "
                "write it as \\r where the file has one, and nowhere else.")
    at = text.replace("\r", "\n").find(old.replace("\r", "\n"))
    if at < 0:
        return None
    line = text.count("\n", 0, at) + 1
    return (f"No replacement was performed: old_str would match at line {line} if \\r and \\n were the same: "
            "the file ends lines there with a lone carriage return (\\r, old Mac style) or has one inside a "
            "line, where old_str has \\n (or the reverse). Write \\r exactly where the file has one.")


def no_match_message(file: TextFile, old: str, target: RepoPath) -> str:
    text = file.text
    hint = carriage_return_hint(text, old) or tabs_vs_spaces_hint(text, old, file.utf8)
    if hint:
        return hint
    message = f"No replacement was performed: old_str does not appear verbatim in {target.shown}."
    lines = split_lines(text)
    first, similarity = closest_lines(lines, old)
    if similarity >= 0.5:
        window = lines[first - 1 : first + old.count("\n")]
        message += (f" The most similar lines ({first}-{first + len(window) - 1}) are:\n"
                    f"{number_lines(window, first, file.utf8)}\n"
                    "Copy old_str exactly from the file, whitespace included.")
    else:
        message += " Nothing similar was found; `view` the file and copy old_str exactly from it."
    return message


def edited_message(target: RepoPath, text: str, first: int, last: int) -> str:
    """The edited region as a `view` of the edited file shows it (by the file's rule after the edit)."""
    lines = split_lines(text)
    start = max(first - SNIPPET_CONTEXT_LINES, 1)
    end = min(last + SNIPPET_CONTEXT_LINES, len(lines))
    return (f"The file {target.shown} has been edited. Here's a snippet of the edited region (lines {start}-{end}):\n"
            f"{number_lines(lines[start - 1 : end], start, not has_raw_bytes(text))}\n"
            "Review the changes and make sure they are as expected; edit the file again if necessary.")


str_replace_editor = EditorTool()
