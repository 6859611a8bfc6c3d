"""submit against a real container: what goes into the patch, what stays out, and that the repo is untouched."""

from __future__ import annotations

import pytest

from tools.base import Submitted, call_tool
from tools.submit import current_patch, submit

pytestmark = pytest.mark.docker


def submitted(ctx) -> Submitted:
    with pytest.raises(Submitted) as raised:
        call_tool(submit, {}, ctx)
    return raised.value


def applies_to_base(repo, patch: str, base: str) -> str:
    """Apply `patch` to a fresh checkout of `base`; return that checkout's path."""
    repo.write_file("/tmp/model.patch", patch.encode())
    checked = repo.run(f"rm -rf /tmp/check && git worktree add -q --detach /tmp/check {base} && "
                       "cd /tmp/check && git apply --binary /tmp/model.patch && echo applied")
    assert checked.output.strip().endswith("applied"), checked.output
    return "/tmp/check"


def test_patch_has_edits_new_and_deleted_files_and_applies(repo, ctx) -> None:
    repo.run("sed -i 's/hello /hi /' src/app.py && rm README.md && mkdir -p src/build && "
             "printf 'x = 1\\n' > src/new_mod.py && printf 'y = 2\\n' > src/build/kept.py")
    done = submitted(ctx)
    assert done.patch.count("diff --git") == 4 and "submitted a patch changing 4 files" in str(done)
    for fragment in ("+++ b/src/app.py", "+    return \"hi \" + name", "deleted file mode", "+++ b/src/new_mod.py",
                     "+++ b/src/build/kept.py"):
        assert fragment in done.patch
    check = applies_to_base(repo, done.patch, ctx.base_commit)
    assert repo.run(f"diff -r --exclude=.git {check} /testbed && echo same").output.strip() == "same"


def test_artifacts_and_ignored_files_are_left_out(repo, ctx) -> None:
    repo.run("mkdir -p src/__pycache__ .pytest_cache/v build/lib dist node_modules/x demo.egg-info .venv/bin && "
             "touch src/__pycache__/app.cpython-311.pyc src/stray.pyc .pytest_cache/v/x build/lib/a.py dist/a.whl "
             "node_modules/x/i.js demo.egg-info/PKG-INFO .venv/bin/python run.log ext.so && "
             "printf 'real\\n' > src/real_change.py")
    patch = submitted(ctx).patch
    assert patch.count("diff --git") == 1 and "src/real_change.py" in patch


def test_repository_index_and_status_are_unchanged(repo, ctx) -> None:
    repo.run("printf 'staged\\n' > staged.py && git add staged.py && printf 'untracked\\n' > loose.py && "
             "printf '# more\\n' >> src/app.py")
    status = repo.run("git status --porcelain && git diff --cached --stat").output
    index = repo.run("sha256sum .git/index").output
    patch = submitted(ctx).patch
    assert all(f"b/{name}" in patch for name in ("staged.py", "loose.py", "src/app.py"))
    assert repo.run("git status --porcelain && git diff --cached --stat").output == status
    assert repo.run("sha256sum .git/index").output == index
    assert repo.run("ls /tmp").output.strip() == ""  # the temporary index is cleaned up


def test_commits_made_by_the_model_are_in_the_patch(repo, ctx) -> None:
    repo.run("printf 'v = 1\\n' > committed.py && git add committed.py && git commit -qm wip")
    assert "+++ b/committed.py" in submitted(ctx).patch
    ctx.base_commit = None  # without a base, HEAD is the base: the commit is no longer a change
    assert submitted(ctx).patch == ""


def test_empty_patch_is_reported(ctx) -> None:
    done = submitted(ctx)
    assert done.patch == "" and "empty patch" in str(done)


def test_not_a_git_repository(repo, ctx) -> None:
    repo.run("rm -rf .git")
    obs = call_tool(submit, {}, ctx)
    assert obs.is_error and "not a git repository" in obs.text


def test_unknown_base_commit(ctx) -> None:
    ctx.base_commit = "0123456789abcdef0123456789abcdef01234567"
    obs = call_tool(submit, {}, ctx)
    assert obs.is_error and "does not exist" in obs.text


def test_repository_without_commits_diffs_against_the_empty_tree(box) -> None:
    from tools.base import ToolContext

    box.run("git init -q && printf 'first\\n' > a.txt")
    patch = submitted(ToolContext(sandbox=box)).patch
    assert "new file mode" in patch and "+first" in patch


def test_latin1_crlf_and_binary_changes_survive_the_round_trip(repo, ctx) -> None:
    latin1 = "name = 'José'\r\nvalue = 1\r\n".encode("latin-1")
    repo.write_file("legacy.py", latin1)
    repo.write_file("image.bin", bytes(range(256)) * 4)
    repo.write_file("win.txt", b"one\r\ntwo\r\n")
    patch = submitted(ctx).patch
    assert isinstance(patch, str) and "GIT binary patch" in patch and "+one\r\n" in patch
    check = applies_to_base(repo, patch, ctx.base_commit)
    assert repo.read_file(f"{check}/legacy.py") == latin1
    assert repo.read_file(f"{check}/image.bin") == bytes(range(256)) * 4
    assert repo.read_file(f"{check}/win.txt") == b"one\r\ntwo\r\n"


def test_large_new_files_are_left_out_and_named(repo, ctx) -> None:
    repo.run("head -c 50000000 /dev/zero | tr '\\0' 'a' > dump.txt && printf 'small\\n' > small.txt")
    done = submitted(ctx)
    assert "small.txt" in done.patch and "dump.txt" not in done.patch and len(done.patch) < 1_000
    assert "left out new files over 1 MB: dump.txt" in str(done)


def test_a_large_artefact_is_left_out_as_an_artefact_not_named_as_a_large_file(repo, ctx) -> None:
    repo.run("mkdir -p node_modules/x && head -c 2000000 /dev/zero > node_modules/x/big.bin && printf 'n\\n' > n.txt")
    done = submitted(ctx)
    assert done.patch.count("diff --git") == 1 and "n.txt" in done.patch
    assert "big.bin" not in str(done) and "left out" not in str(done)


def test_a_patch_too_big_for_the_shell_output_is_read_as_a_file(repo, ctx) -> None:
    assert repo.run("head -c 700000 /dev/urandom | base64 > big.txt").ok
    done = submitted(ctx)  # base64-encoded, the patch is over the shell's 1 MB of output
    check = applies_to_base(repo, done.patch, ctx.base_commit)
    assert repo.read_file(f"{check}/big.txt") == repo.read_file("big.txt")
    assert repo.run("git status --short").output == "?? big.txt\n"


def test_without_base64_in_the_image_the_patch_is_read_as_a_file(repo, ctx) -> None:
    repo.run("printf 'x = 1\\n' > src/new_mod.py && rm \"$(command -v base64)\"")
    patch = submitted(ctx).patch
    assert patch.startswith("diff --git a/src/new_mod.py") and "+x = 1" in patch


def test_a_workdir_below_the_repository_top_diffs_the_whole_repository(repo, ctx) -> None:
    repo.run("printf 'x = 1\\n' > src/new_mod.py && printf '# more\\n' >> README.md")
    repo.workdir = "/testbed/src"  # as when the sandbox starts in a package of a bigger repository
    patch = submitted(ctx).patch
    assert "a/README.md" in patch and "b/src/new_mod.py" in patch
    assert repo.run("git status --short").output == " M README.md\n?? src/new_mod.py\n"


def test_symlink_pointing_outside_is_a_symlink_in_the_patch(repo, ctx) -> None:
    repo.run("ln -s /etc/passwd leak")
    patch = submitted(ctx).patch
    assert "new file mode 120000" in patch and "root:" not in patch


def test_current_patch_matches_submit_and_leaves_the_shell_alone(repo, ctx) -> None:
    repo.run("printf '# x\\n' >> README.md && cd /tmp && export KEEP=1")
    assert current_patch(ctx) == submitted(ctx).patch
    assert repo.run('pwd; echo "$KEEP"; echo "${GIT_INDEX_FILE:-unset}"').output == "/tmp\n1\nunset\n"


def test_unexpected_arguments_are_refused(ctx) -> None:
    obs = call_tool(submit, {"message": "done"}, ctx)
    assert obs.is_error and obs.text.startswith("Invalid arguments")


def test_submit_on_a_full_disk_says_why_and_keeps_the_work(make_sandbox) -> None:
    """A disk truly full (here the repository's git dir on a small /tmp): git's own reason, and the way out."""
    from tools.base import ToolContext

    box = make_sandbox(tmp_size="16m")
    made = box.run("git init -q --separate-git-dir=/tmp/dotgit . && printf 'a = 1\\n' > a.py && git add -A && "
                   "git commit -qm base && git rev-parse HEAD")
    assert made.ok, made.output
    ctx = ToolContext(sandbox=box, base_commit=made.output.split()[-1], command_timeout=60, max_command_timeout=120)
    assert current_patch(ctx) == ""
    box.run("printf 'a = 2\\n' > a.py && head -c 200000 /dev/urandom > data.bin")
    assert "No space left on device" in box.run("dd if=/dev/zero of=/tmp/fill bs=1M count=64").output
    observation = call_tool(submit, {}, ctx)
    assert observation.is_error, observation
    assert "could not compute the patch: git add failed: " in observation.text
    assert "No space left on device" in observation.text  # git's reason, not only that it failed
    assert "/tmp holds at most 16m" in observation.text  # and where the limit is
    assert box.run("cat a.py").output == "a = 2\n"  # the run's work is still there
    box.run("rm /tmp/fill")
    assert "+a = 2" in submitted(ctx).patch


def test_submit_works_while_the_model_s_writes_are_stopped(make_sandbox) -> None:
    """Past the sandbox's disk limit the model's shell may not grow files; the patch's few may still be written."""
    from tools.base import ToolContext

    box = make_sandbox(disk_size="64m")
    made = box.run("git init -q && printf 'a = 1\\n' > a.py && git add -A && git commit -qm base && "
                   "git rev-parse HEAD")
    ctx = ToolContext(sandbox=box, base_commit=made.output.split()[-1], command_timeout=60, max_command_timeout=120)
    box.run("printf 'a = 2\\n' > a.py")
    filled = box.run("dd if=/dev/zero of=/testbed/big.log bs=1M count=50 2>/dev/null; "
                     "dd if=/dev/zero of=/testbed/more.log bs=1M count=30 2>/dev/null")
    assert any(note.startswith("no space left") for note in filled.notes), filled.notes
    assert "+a = 2" in submitted(ctx).patch

