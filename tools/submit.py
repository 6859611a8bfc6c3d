"""`submit`: end the run with the patch of everything changed since the base commit.

The work tree is staged into a throwaway index (GIT_INDEX_FILE), so new files are in the
patch while the repository's own index and `git status` stay exactly as the model left
them. Build and cache artefacts, and new files too large to be source, are left out even
when the repository forgot to ignore them.
"""

from __future__ import annotations

import base64
import binascii
import shlex
from dataclasses import dataclass, field
from typing import Any

from sandbox.base import CommandResult
from tools.base import Observation, Submitted, ToolContext, ToolError, ToolSpec
from tools.encoding import is_utf8, shown_name

EMPTY_TREE = "4b825dc642cb6eb9a060e54bf8d69288fbee4904"  # `git hash-object -t tree /dev/null`
LARGE_NEW_FILE_BYTES = 1_000_000  # a new file this big is a log or a data dump, not part of a fix
ARTIFACT_DIRS = ("__pycache__", ".pytest_cache", ".mypy_cache", ".ruff_cache", ".tox", ".nox", "node_modules",
                 "*.egg-info", ".eggs", ".hypothesis", "htmlcov", ".venv")
ARTIFACT_FILES = ("*.pyc", "*.pyo", "*.so", "*.o", ".coverage", ".coverage.*", ".DS_Store")
TOP_LEVEL_ARTIFACT_DIRS = ("build", "dist", "venv")  # only at the root: src/build/ may well be source
ARTIFACT_PATHSPECS = (
    [f":(exclude,glob)**/{name}/**" for name in ARTIFACT_DIRS]
    + [f":(exclude,glob)**/{name}" for name in ARTIFACT_FILES]
    + [f":(exclude,glob){name}/**" for name in TOP_LEVEL_ARTIFACT_DIRS]
)
# Whatever the user's git config says, the patch must be a plain a/ b/ diff that `git apply` takes.
# The throwaway index and the patch, kept in the sandbox and reused by every submit: each
# process costs a few ms of CPU in a container, and this saves a mktemp and an rm.
PATCH_DIR = "/tmp/.moe-patch"  # the gitattributes file; the index and patch live in the git dir (not a tmpfs)
GIT = "git -c core.quotepath=off -c diff.noprefix=false -c diff.mnemonicPrefix=false"

DESCRIPTION = """\
Submit your work and end the run. The patch is every change in the repository (edited, new and deleted files) \
against the original commit. Only submit when you are done: the change is complete and the tests pass."""


class SubmitTool:
    spec = ToolSpec(
        name="submit",
        description=DESCRIPTION,
        parameters={"type": "object", "properties": {}, "additionalProperties": False},
    )

    def __call__(self, args: dict[str, Any], ctx: ToolContext) -> Observation:
        result = compute_patch(ctx)
        if not result.patch.strip():
            message = "submitted an empty patch: nothing in the repository differs from the base commit"
        else:
            files = result.patch.count("\ndiff --git ") + result.patch.startswith("diff --git ")
            message = f"submitted a patch changing {files} file{'s' if files != 1 else ''}"
        if result.left_out:
            names = ", ".join(map(shown_name, result.left_out))  # by the name rule: a\\xe9 vs the byte 0xE9
            message += f"; left out new files over {LARGE_NEW_FILE_BYTES // 1_000_000} MB: {names}"
        raise Submitted(result.patch, message)


@dataclass(frozen=True)
class PatchResult:
    patch: str
    left_out: list[str] = field(default_factory=list)


def current_patch(ctx: ToolContext) -> str:
    """The patch `submit` would hand in now; the loop uses it to salvage a run that ends otherwise."""
    return compute_patch(ctx).patch


def compute_patch(ctx: ToolContext) -> PatchResult:
    """The diff of the work tree (new files included, artefacts excluded) against the base commit.

    The patch is always UTF-8 text that `git apply` turns back into the same bytes: when some
    part of it is not, names are quoted by git (`core.quotepath`: octal escapes) and files
    whose contents are not UTF-8 go as git binary patches (base85), exact whatever their encoding.
    """
    data, left_out = staged_diff(ctx)
    if not is_utf8(data):
        data, left_out = staged_diff(ctx, quote_paths=True)
        unreadable = non_utf8_paths(data)
        if unreadable:
            attributes = b"".join(b'"%s" binary\n' % c_quote(b"/" + escape_glob(path)) for path in unreadable)
            data, left_out = staged_diff(ctx, attributes, quote_paths=True)
    return PatchResult(data.decode("utf-8", errors="replace"), left_out)


def staged_diff(ctx: ToolContext, attributes: bytes = b"", quote_paths: bool = False) -> tuple[bytes, list[str]]:
    """Stage the work tree into a throwaway index and diff it against the base, in one command.

    The patch comes back base64-encoded in the command's output (the shell would mangle
    text that is not UTF-8); one too big for the output is read as a file instead. Each
    process here costs a few ms of CPU in a container, so the common case runs as few as
    it can: one rev-parse, the untracked-file listing (artefacts left out), the index copy, two adds (the
    second of the files listed, no second walk of the tree), the diff, base64.
    """
    attributes_file = ""
    if attributes:
        attributes_file = f"{PATCH_DIR}/attributes"
        try:
            ctx.sandbox.write_file(attributes_file, attributes)
        except OSError as exc:
            raise ToolError(f"could not compute the patch: {exc}") from None
    found, left_out, result = _stage_and_diff(ctx, attributes_file, quote_paths)
    if "__moe_patch" in found and not result.truncated_bytes:
        try:
            return base64.b64decode(found["__moe_patch"], validate=True), left_out
        except binascii.Error:
            pass  # no base64 in the image: its complaint is not the patch
    try:  # too big for the output, or no base64: the patch is still in its file
        return ctx.sandbox.read_file(f"{found.get('__moe_tmp', PATCH_DIR)}/patch"), left_out
    except OSError as exc:
        raise ToolError(f"could not compute the patch: {exc}") from None


def _stage_and_diff(ctx: ToolContext, attributes_file: str,
                    quote_paths: bool) -> tuple[dict[str, str], list[str], CommandResult]:
    root = shlex.quote(ctx.sandbox.workdir)
    excludes = " ".join(map(shlex.quote, ARTIFACT_PATHSPECS))
    config = f" -c core.attributesFile={shlex.quote(attributes_file)}" if attributes_file else ""
    config += " -c core.quotepath=on" if quote_paths else ""
    # The model's shell may have been barred from growing files (sandbox.disk: past the disk
    # limit); the patch's few small files may still be written, in this subshell only.
    script = f"""
ulimit -S -f "$(ulimit -H -f)" 2>/dev/null
cd {root} 2>/dev/null || {{ echo "__moe_error the repository root {root} does not exist"; exit 0; }}
base={shlex.quote(ctx.base_commit or "HEAD")}
where=$(git rev-parse --show-toplevel --git-path index "$base^{{commit}}" 2>/dev/null); found=$?
mapfile -t where <<< "$where"
[ "${{#where[@]}}" -ge 3 ] || {{ echo "__moe_error not a git repository"; exit 0; }}
top=${{where[0]}}; index=${{where[1]}}; commit=${{where[2]}}
case $index in /*) ;; *) index=$PWD/$index ;; esac
if [ "$found" != 0 ]; then
  [ "$base" = HEAD ] && commit={EMPTY_TREE} || {{ echo "__moe_error the base commit $base does not exist"; exit 0; }}
fi
cd "$top"
tmp=$(git rev-parse --absolute-git-dir 2>/dev/null)/moe-patch  # not /tmp: a tmpfs Docker's archive API cannot read
[ -d "$tmp" ] || mkdir -p "$tmp" || {{ echo "__moe_error cannot create $tmp"; exit 0; }}
echo "__moe_tmp $tmp"
: > "$tmp/large"
git ls-files -z --others --exclude-standard -- . {excludes} > "$tmp/new"
if [ -s "$tmp/new" ]; then
  sed -z 's|^|./|' "$tmp/new" | xargs -0 -r sh -c 'find "$@" -maxdepth 0 -type f -size +{LARGE_NEW_FILE_BYTES}c -print0' find \\
    | sed -z 's|^\\./||' > "$tmp/large"
fi
# -p: the copy keeps the index's mtime, by which git tells a file edited in the second it was staged
if [ -f "$index" ]; then cp -p "$index" "$tmp/index"; else rm -f "$tmp/index"; fi
export GIT_INDEX_FILE="$tmp/index"
# the new files listed above: `add -A` would walk the whole tree a second time (0.1-0.2 s at 20,000 files)
failed=$( {{ git add -u -- . && {{ [ ! -s "$tmp/new" ] || git --literal-pathspecs add --pathspec-from-file="$tmp/new" --pathspec-file-nul; }}; }} 2>&1 >/dev/null ) \
  || {{ echo "__moe_error git add failed: $(printf %s "$failed" | tail -n 2 | tr '\n' ' ')"; exit 0; }}
if [ -s "$tmp/large" ]; then
  git --literal-pathspecs rm -q --cached --ignore-unmatch --pathspec-from-file="$tmp/large" --pathspec-file-nul
  tr '\\0\\n' '\\n\\0' < "$tmp/large" | sed 's/^/__moe_large /'  # a newline in a name: NUL, put back below
fi
{GIT}{config} diff --cached --binary --no-color --no-ext-diff --no-renames "$commit" > "$tmp/patch" 2> "$tmp/err" \\
  || {{ echo "__moe_error git diff failed: $(tail -c 500 "$tmp/err")"; exit 0; }}
printf "\\n__moe_patch "; base64 -w0 < "$tmp/patch"; echo
"""
    result = ctx.sandbox.run(f"( {script} )", timeout=max(ctx.command_timeout, 120))
    found: dict[str, str] = {}
    left_out = []
    for line in result.output.splitlines():
        key, _, value = line.partition(" ")
        if key == "__moe_large":
            left_out.append(value.replace("\0", "\n"))
        found.setdefault(key, value)
    if found.get("__moe_error") == "not a git repository":
        raise ToolError(f"{ctx.sandbox.workdir} is not a git repository, so there is no base commit to make a patch "
                        "against; the run cannot be submitted")
    if "__moe_error" in found:  # the sandbox's notes say why when it is out of space, and how to get some back
        raise ToolError(" ".join([f"could not compute the patch: {found['__moe_error'].strip()}", *result.notes]))
    if "__moe_patch" not in found and not result.truncated_bytes:
        raise ToolError(f"could not compute the patch: {result.output.strip()[-500:]}")
    return found, left_out, result


def non_utf8_paths(patch: bytes) -> list[bytes]:
    """Files whose part of the patch is not UTF-8, as raw path bytes (with --no-renames,
    `diff --git a/P b/P` names P twice; git C-quotes P when it has special bytes)."""
    paths = []
    for chunk in (b"\n" + patch).split(b"\ndiff --git ")[1:]:
        if is_utf8(chunk):
            continue
        header = chunk.split(b"\n", 1)[0]
        if header.startswith(b'"'):
            paths.append(c_unquote(header[1:header.index(b'" "')])[2:])
        else:
            paths.append(header[2:2 + (len(header) - 5) // 2])
    return paths


C_ESCAPES = {ord("a"): 7, ord("b"): 8, ord("t"): 9, ord("n"): 10, ord("v"): 11, ord("f"): 12, ord("r"): 13,
             ord('"'): 34, ord("\\"): 92}
C_ESCAPED = {value: key for key, value in C_ESCAPES.items()}


def c_unquote(quoted: bytes) -> bytes:
    """The bytes of a name git wrote C-quoted (without its double quotes): `\\n`, `\\"`, octal `\\351`."""
    out, index = bytearray(), 0
    while index < len(quoted):
        byte = quoted[index]
        if byte == 0x5C and index + 1 < len(quoted):
            escaped = quoted[index + 1]
            if 0x30 <= escaped <= 0x37:
                out.append(int(quoted[index + 1:index + 4], 8))
                index += 4
                continue
            out.append(C_ESCAPES.get(escaped, escaped))
            index += 2
            continue
        out.append(byte)
        index += 1
    return bytes(out)


def c_quote(raw: bytes) -> bytes:
    """The inverse of `c_unquote`, as git's attribute files read a pattern in double quotes."""
    out = bytearray()
    for byte in raw:
        if byte in C_ESCAPED:
            out += b"\\" + bytes([C_ESCAPED[byte]])
        elif byte < 0x20 or byte >= 0x7F:
            out += b"\\%03o" % byte
        else:
            out.append(byte)
    return bytes(out)


def escape_glob(path: bytes) -> bytes:
    """`path` as a gitattributes pattern that matches only itself: glob characters escaped."""
    return b"".join(b"\\" + bytes([byte]) if byte in b"*?[\\" else bytes([byte]) for byte in path)


submit = SubmitTool()
