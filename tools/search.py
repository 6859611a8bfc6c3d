"""`search`: find text in files, or files by name, with ripgrep (or grep/find where the image lacks it).

Results are sorted by path and line and capped, and the observation says how many there
were in all, so the model knows when to narrow the search instead of reading on.
"""

from __future__ import annotations

import posixpath
import shlex
from typing import Any

from sandbox.output import cap_text
from tools.encoding import encode, files_not_utf8, from_visible, has_raw_bytes, not_utf8_note, shown, shown_name, visible
from tools.base import Observation, ToolContext, ToolError, ToolSpec
from tools.paths import RepoPath, resolve_in_repo

MAX_MATCH_LINES = 100
MAX_FILES = 200
MATCH_LINE_CHARS = 300
HAS_RG_KEY = "search.has_rg"
PATH_MAX_BYTES = 4096  # a path this long still keeps its match text in grep's cut

DESCRIPTION = """\
Search the repository. mode "content" (default): lines matching the regular expression `pattern` \
(ripgrep syntax; set fixed_strings true to search for literal text), as path:line:text. mode "files": \
files whose name matches the glob `pattern` (e.g. "test_*.py", "src/**/*.ts"). Optional: `path` (a directory \
or file to search in), `glob` (only search files matching it, e.g. "*.py"), `case_sensitive` (default true). \
Files are searched as bytes: `.` matches any byte and \\xNN (as views of a file that is not UTF-8 show its \
bytes) matches that byte; with fixed_strings it also matches the typed text \\xNN (as a UTF-8 file has it). \
Files ignored by git and hidden files are skipped. Results are sorted by path and line and capped."""


class SearchTool:
    spec = ToolSpec(
        name="search",
        description=DESCRIPTION,
        parameters={
            "type": "object",
            "properties": {
                "pattern": {"type": "string",
                            "description": "A regex (mode content) or a file-name glob (mode files)."},
                "mode": {"type": "string", "enum": ["content", "files"], "default": "content"},
                "path": {"type": "string",
                         "description": "Directory or file to search in; default the whole repository."},
                "glob": {"type": "string", "description": "Only search files whose name matches this glob, e.g. *.py."},
                "case_sensitive": {"type": "boolean", "default": True},
                "fixed_strings": {"type": "boolean", "default": False,
                                  "description": "Treat pattern as literal text, not a regex."},
            },
            "required": ["pattern"],
            "additionalProperties": False,
        },
    )

    def __call__(self, args: dict[str, Any], ctx: ToolContext) -> Observation:
        pattern = args["pattern"]
        if not pattern:
            raise ToolError("the pattern is empty; give the text, regex or file-name glob to search for")
        target = resolve_in_repo(ctx.sandbox, args.get("path") or ".")
        if not ctx.sandbox.stat(target.real).exists:
            raise ToolError(f"{target.path} does not exist; search in an existing directory or omit path")
        search = Search(ctx, target, pattern, args.get("glob"), args.get("case_sensitive", True),
                        args.get("fixed_strings", False))
        text = search.files() if args.get("mode", "content") == "files" else search.content()
        return Observation(cap_text(text, ctx.observation_max_chars)[0])


class Search:
    """One search request, turned into rg (or grep/find) commands run at the repository root."""

    def __init__(self, ctx: ToolContext, target: RepoPath, pattern: str, glob: str | None,
                 case_sensitive: bool, fixed_strings: bool) -> None:
        self.ctx, self.pattern, self.glob = ctx, pattern, glob
        self.case_sensitive, self.fixed_strings = case_sensitive, fixed_strings
        self.root = posixpath.normpath(ctx.sandbox.workdir)
        self.where = target.path
        self.target = posixpath.relpath(target.path, self.root)
        if HAS_RG_KEY not in ctx.state:
            ctx.state[HAS_RG_KEY] = ctx.sandbox.run("command -v rg >/dev/null").ok
        self.rg: bool = ctx.state[HAS_RG_KEY]

    def run(self, command: str) -> tuple[str, int | None]:
        """Run at the repository root in a subshell, leaving the model's shell where it was."""
        result = self.ctx.sandbox.run(f"(cd {shlex.quote(self.root)} && {command})", timeout=self.ctx.command_timeout)
        if result.timed_out:
            raise ToolError("the search timed out; narrow it with path or glob")
        return result.output, result.exit_code

    # -- content --------------------------------------------------------------
    def content(self) -> str:
        kind = "text" if self.fixed_strings else "regex"
        # Files that are not UTF-8 are searched byte by byte in both backends: `.` matches any byte and
        # `\xNN` (how views of such files show their bytes) is that byte. rg gets a bytes regex (--no-unicode,
        # with non-ASCII text spelled as its UTF-8 bytes); grep runs in the C locale with the bytes themselves.
        patterns = literal_readings(self.pattern) if self.fixed_strings else [self.pattern]
        if self.rg:
            options = ["--with-filename", "--color", "never", "--sort", "path", "-s" if self.case_sensitive else "-i"]
            options += ["--no-unicode"]
            options += ["-g", self.glob] if self.glob else []
            query = [*options, "-e", "|".join(rg_bytes_regex(text, self.fixed_strings) for text in patterns),
                     "--", self.target]
            counting = shell_words("rg", "--count", "--null", *query)
            listing = shell_words("rg", "-n", "--no-heading", "--null", "--max-columns", str(MATCH_LINE_CHARS),
                                  "--max-columns-preview", *query) + f" | head -n {MAX_MATCH_LINES}"
        else:
            options = ["-r", "-H", "-I", "--exclude-dir=.git", "-F" if self.fixed_strings else "-E"]
            options += [] if self.case_sensitive else ["-i"]
            options += [f"--include={self.glob}"] if self.glob else []
            texts = patterns if self.fixed_strings else [from_visible(self.pattern)]
            query = [*options, *(word for text in texts for word in ("-e", text)), "--"]
            # The C locale reads latin-1 files as text, as ripgrep does; -I skips files with NUL bytes.
            counting = "LC_ALL=C " + shell_words("grep", "-c", "-Z", *query, self.target)
        output, code = self.run(counting)
        counts = {}
        for path, count in named_records(output):
            if count.isdigit() and int(count):
                counts[path.removeprefix("./")] = int(count)
        if not counts:
            if code not in (0, 1):
                problem = "\n".join(output.strip().splitlines()[-6:])
                raise ToolError(f"invalid search for {kind} {self.pattern!r}: {problem}\nEscape special characters "
                                "(e.g. \\( ) or set fixed_strings true to search for the text literally.")
            return f"No matches for {kind} {self.pattern!r} in {shown_name(self.where)}{self.scope()}."
        total = sum(counts.values())
        if not self.rg:  # grep in the order rg sorts: by path, reading only the files the cap reaches
            first, reached = [], 0
            for path in sorted(counts, key=encode):
                first, reached = [*first, path], reached + counts[path]
                if reached >= MAX_MATCH_LINES:
                    break
            listing = "LC_ALL=C " + shell_words("grep", "-n", "-Z", *query, *first)
            listing += f" | cut -c 1-{MATCH_LINE_CHARS + PATH_MAX_BYTES} | head -n {MAX_MATCH_LINES}"
        output, _ = self.run(listing)
        lines, escaped = self.shown_matches([(path.removeprefix("./"), rest) for path, rest in named_records(output)],
                                            counts)
        summary = f"{plural(total, 'matching line')} in {plural(len(counts), 'file')}"
        if total > len(lines):
            summary = f"Showing {len(lines)} of {summary}; narrow the search with path or glob to see the rest"
        return f"{summary}:\n" + "\n".join(lines) + (f"\n{not_utf8_note(escaped)}" if escaped else "")

    def shown_matches(self, records: list[tuple[str, str]], counts: dict[str, int]) -> tuple[list[str], list[str]]:
        """`path:line:text` lines as the model sees them, from (path, `line:text`) records, each text by its
        FILE's rule (escaped only when the whole file is not UTF-8, see tools/encoding.py), names one by one
        (`shown_name`: a newline in one is `\\x0a`); and the files shown escaped, as shown. Long texts are cut
        to MATCH_LINE_CHARS characters before escaping."""
        absolute = {posixpath.join(self.root, path): path for path, _ in records if path in counts}
        judged = files_not_utf8(self.ctx.sandbox, sorted(absolute), self.ctx.command_timeout)
        not_utf8 = None if judged is None else {absolute[path] for path in judged if path in absolute}
        out, escaped = [], []
        for path, rest in records:
            if path not in counts:  # not a match record (a backend's message): output, not a file
                out.append(visible(f"{path}:{rest}"))
                continue
            number, _, text = rest.partition(":")
            if len(text) > MATCH_LINE_CHARS + 40:
                text = text[:MATCH_LINE_CHARS] + " [...]"
            utf8 = path not in not_utf8 if not_utf8 is not None else not has_raw_bytes(text)
            if not utf8 and shown_name(path) not in escaped:
                escaped.append(shown_name(path))
            out.append(f"{shown_name(path)}:{number}:{shown(text, utf8)}")
        return out, escaped

    # -- files ------------------------------------------------------------------
    def files(self) -> str:
        if self.rg:
            option = "-g" if self.case_sensitive else "--iglob"
            globs = [self.pattern] + ([self.glob] if self.glob else [])
            listing = shell_words("rg", "--files", "--null", "--sort", "path", *[w for g in globs for w in (option, g)],
                                  "--", self.target)
        else:
            test = "path" if "/" in self.pattern else "name"
            name = f"*/{self.pattern.removeprefix('**/')}" if test == "path" else self.pattern
            prefix = "-" if self.case_sensitive else "-i"
            extra = [prefix + "name", self.glob] if self.glob else []
            listing = shell_words("find", self.target, "-type", "f", "-not", "-path", "*/.git/*",
                                  prefix + test, name, *extra, "-print0") + " | LC_ALL=C sort -z"
        # NUL-separated names (a name may hold a newline) become lines for awk: NUL and newline swap places.
        output, _ = self.run(f"{listing} | tr '\\0\\n' '\\n\\0' | awk 'NR <= {MAX_FILES}; END {{ print \"__total \" NR }}'; "
                             "echo \"__status ${PIPESTATUS[0]}\"")
        names = [name.replace("\0", "\n").removeprefix("./") for name in output.split("\n")[:-1]]
        status = names.pop() if names and names[-1].startswith("__status ") else "__status ?"
        total_line = names.pop() if names and names[-1].startswith("__total ") else "__total 0"
        if status.split()[1] not in ("0", "1"):
            problem = "\n".join(names)[-300:] or "the search failed"
            raise ToolError(f"invalid file-name glob {self.pattern!r}: {problem}")
        if not names:
            return f"No files matching {self.pattern!r} in {shown_name(self.where)}{self.scope()}."
        total = int(total_line.split()[1])
        summary = f"{plural(total, 'file')} matching {self.pattern!r}"
        if total > len(names):
            summary = f"Showing {len(names)} of {summary}; narrow the search with path or a more specific pattern"
        return f"{summary}:\n" + "\n".join(shown_name(name) for name in names)

    def scope(self) -> str:
        parts = [f" (only files matching {self.glob!r})"] if self.glob else []
        parts += [" (ignoring case)"] if not self.case_sensitive else []
        return "".join(parts)


RG_META = frozenset("\\.+*?()|[]{}^$")


def rg_bytes_regex(pattern: str, literal: bool) -> str:
    r"""`pattern` as a ripgrep regex for --no-unicode (bytes) mode, where a non-ASCII literal is an error.

    Each non-ASCII character becomes the `\xNN` escapes of its UTF-8 bytes (`è` -> `\xc3\xa8`), so it
    still matches UTF-8 files, and a lone surrogate (a byte that is not UTF-8, from `literal_readings`)
    the escape of that byte. `literal` (fixed_strings) escapes regex syntax; in a regex `\xe8` already
    means that byte. Non-ASCII letters are then matched case-sensitively, as grep does in the C locale.
    """
    text = pattern
    out: list[str] = []
    for char in text:
        code = ord(char)
        if 0xDC80 <= code <= 0xDCFF:  # a byte that is not UTF-8, from `\xNN`
            out.append(f"\\x{code - 0xDC00:02x}")
        elif code > 0x7F:
            out.extend(f"\\x{byte:02x}" for byte in char.encode("utf-8", "surrogatepass"))
        else:
            out.append("\\" + char if literal and char in RG_META else char)
    return "".join(out)


def literal_readings(pattern: str) -> list[str]:
    """What literal text the model may mean by `pattern`: `\\xe9` read as a byte, as it is written for a
    file that is not UTF-8, and, when that differs, as the typed text, as it is written for a UTF-8
    file (tools/encoding.py). Search finds either; an edit then reads it by its file's rule."""
    return list(dict.fromkeys([from_visible(pattern), pattern]))


def named_records(output: str) -> list[tuple[str, str]]:
    """`path NUL rest NEWLINE` records (rg --null, grep -Z) as (path, rest) pairs, never split inside a path,
    which may hold a newline; `rest` (a count, or `line:text`) never does. A record cut short is left out."""
    path, *parts = output.split("\0")
    records = []
    for part in parts:
        rest, _, path_after = part.partition("\n")
        records.append((path, rest))
        path = path_after
    return records


def shell_words(*words: str) -> str:
    return " ".join(shlex.quote(word) for word in words)


def plural(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


search = SearchTool()
