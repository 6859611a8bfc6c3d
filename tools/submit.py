"""`submit`: end the run with the patch of everything changed since the base commit.

The work tree is staged into a throwaway index (GIT_INDEX_FILE), so new files are in the
patch while the repository's own index and `git status` stay exactly as the model left
them. Build and cache artefacts, and new files too large to be source, are left out even
when the repository forgot to ignore them.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field
from typing import Any

from tools.base import Observation, Submitted, ToolContext, ToolError, ToolSpec

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
            message += f"; left out new files over {LARGE_NEW_FILE_BYTES // 1_000_000} MB: {', '.join(result.left_out)}"
        raise Submitted(result.patch, message)


@dataclass(frozen=True)
class PatchResult:
    patch: str
    left_out: list[str] = field(default_factory=list)


def current_patch(ctx: ToolContext) -> str:
    """The patch `submit` would hand in now; the loop uses it to salvage a run that ends otherwise."""
    return compute_patch(ctx).patch


def compute_patch(ctx: ToolContext) -> PatchResult:
    """The diff of the work tree (new files included, artefacts excluded) against the base commit."""
    staged = stage(ctx)
    try:
        data = diff(ctx, staged, attributes="")
        unreadable = non_utf8_paths(data)
        if unreadable:
            # A str patch cannot carry latin-1 text verbatim; as git binary patches those files survive intact.
            data = diff(ctx, staged, attributes="".join(f"/{escape_glob(path)} binary\n" for path in unreadable))
        return PatchResult(data.decode("utf-8", errors="replace"), staged.left_out)
    finally:
        ctx.sandbox.run(f"rm -rf -- {shlex.quote(staged.tmp)}")


@dataclass(frozen=True)
class StagedTree:
    """A throwaway index holding the work tree, in a temporary directory inside the sandbox."""

    top: str
    base: str
    tmp: str
    left_out: list[str]


def stage(ctx: ToolContext) -> StagedTree:
    root = shlex.quote(ctx.sandbox.workdir)
    excludes = " ".join(map(shlex.quote, ARTIFACT_PATHSPECS))
    script = f"""
cd {root} 2>/dev/null || {{ echo "__moe_error the repository root {root} does not exist"; exit 0; }}
top=$(git rev-parse --show-toplevel 2>/dev/null) || {{ echo "__moe_error not a git repository"; exit 0; }}
cd "$top"
base={shlex.quote(ctx.base_commit or "HEAD")}
if ! git rev-parse -q --verify "$base^{{commit}}" >/dev/null; then
  [ "$base" = HEAD ] && base={EMPTY_TREE} || {{ echo "__moe_error the base commit $base does not exist"; exit 0; }}
fi
base=$(git rev-parse "$base")
index=$(git rev-parse --git-path index)
tmp=$(mktemp -d)
git ls-files -z --others --exclude-standard | sed -z 's|^|./|' \\
  | xargs -0 -r sh -c 'find "$@" -maxdepth 0 -type f -size +{LARGE_NEW_FILE_BYTES}c -print0' find \\
  | sed -z 's|^\\./||' > "$tmp/large"
[ -f "$index" ] && cp "$index" "$tmp/index"
export GIT_INDEX_FILE="$tmp/index"
git add -u -- . && git add -A -- . {excludes} >/dev/null 2>&1 || echo "__moe_error git add failed"
if [ -s "$tmp/large" ]; then
  git --literal-pathspecs rm -q --cached --ignore-unmatch --pathspec-from-file="$tmp/large" --pathspec-file-nul
  tr '\\0' '\\n' < "$tmp/large" | sed 's/^/__moe_large /'
fi
printf '__moe_top %s\\n__moe_base %s\\n__moe_tmp %s\\n' "$top" "$base" "$tmp"
"""
    result = ctx.sandbox.run(f"( {script} )", timeout=max(ctx.command_timeout, 120))
    found: dict[str, str] = {}
    left_out = []
    for line in result.output.splitlines():
        key, _, value = line.partition(" ")
        if key == "__moe_large":
            left_out.append(value)
        found.setdefault(key, value)
    if found.get("__moe_error") == "not a git repository":
        raise ToolError(f"{ctx.sandbox.workdir} is not a git repository, so there is no base commit to make a patch "
                        "against; the run cannot be submitted")
    if "__moe_tmp" not in found:
        raise ToolError(f"could not compute the patch: {found.get('__moe_error') or result.output.strip()[-500:]}")
    staged = StagedTree(found["__moe_top"], found["__moe_base"], found["__moe_tmp"], left_out)
    if "__moe_error" in found:
        ctx.sandbox.run(f"rm -rf -- {shlex.quote(staged.tmp)}")
        raise ToolError(f"could not compute the patch: {found['__moe_error']}")
    return staged


def diff(ctx: ToolContext, staged: StagedTree, attributes: str) -> bytes:
    """The staged tree against the base, read as bytes: the shell would mangle text that is not UTF-8."""
    tmp = shlex.quote(staged.tmp)
    config = ""
    try:
        if attributes:
            ctx.sandbox.write_file(f"{staged.tmp}/attributes", attributes.encode("utf-8", errors="surrogateescape"))
            config = f" -c core.attributesFile={tmp}/attributes"
        result = ctx.sandbox.run(
            f"(cd {shlex.quote(staged.top)} && GIT_INDEX_FILE={tmp}/index {GIT}{config} diff --cached --binary "
            f"--no-color --no-ext-diff --no-renames {shlex.quote(staged.base)} > {tmp}/patch)"
        )
        if not result.ok:
            raise ToolError(f"could not compute the patch: git diff failed: {result.output.strip()[-500:]}")
        return ctx.sandbox.read_file(f"{staged.tmp}/patch")
    except OSError as exc:
        raise ToolError(f"could not compute the patch: {exc}") from None


def non_utf8_paths(patch: bytes) -> list[str]:
    """Files whose part of the patch is not UTF-8 (with --no-renames, `diff --git a/P b/P` names P twice)."""
    paths = []
    for chunk in patch.split(b"diff --git a/")[1:]:
        try:
            chunk.decode("utf-8")
        except UnicodeDecodeError:
            header = chunk.split(b"\n", 1)[0]
            paths.append(header[: (len(header) - 3) // 2].decode("utf-8", errors="surrogateescape"))
    return paths


def escape_glob(path: str) -> str:
    return "".join("\\" + char if char in "*?[\\" else char for char in path)


submit = SubmitTool()
