"""Snapshots of the user's state in, branches and patches out, the user's tree untouched."""

from __future__ import annotations

import os
import subprocess
import threading
from pathlib import Path

import pytest

from agent import workspace
from agent.errors import UsageError
import agent.workspace
from agent.workspace import (
    UserRepo,
    apply_to_worktree,
    commit_to_branch,
    git,
    materialize,
    slugify,
    take_snapshot,
    task_branch,
    unique_branch,
)


def make_repo(root: Path) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    git(root, "init", "-q", "-b", "main")
    (root / "app.py").write_text("def add(a, b):\n    return a - b\n")
    (root / "notes.txt").write_text("keep\n")
    (root / ".gitignore").write_text("*.log\n")
    git(root, "add", "-A")
    git(root, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "init")
    return root


def tree_bytes(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and ".git" not in p.relative_to(root).parts}


FIX = """--- a/app.py
+++ b/app.py
@@ -1,2 +1,2 @@
 def add(a, b):
-    return a - b
+    return a + b
"""


def test_snapshot_has_head_plus_local_changes_and_untracked(tmp_path: Path) -> None:
    root = make_repo(tmp_path / "user")
    (root / "notes.txt").write_text("edited\n")
    (root / "new.txt").write_text("untracked\n")
    (root / "debug.log").write_text("ignored\n")
    (root / "app.py").chmod(0o755)
    repo = UserRepo.find(root)
    before = repo.status_fingerprint()
    snap = take_snapshot(repo, tmp_path / "snap")
    out = materialize(snap, tmp_path / "out")
    assert (out / "notes.txt").read_text() == "edited\n"
    assert (out / "new.txt").read_text() == "untracked\n"
    assert not (out / "debug.log").exists()
    assert (out / "app.py").stat().st_mode & 0o100
    assert snap.dirty
    assert git(out, "status", "--porcelain") == ""  # the shipped index matches the files: nothing to rehash
    assert git(out, "rev-parse", "HEAD").strip() == snap.base_commit
    assert git(out, "rev-parse", "HEAD^").strip() == repo.head  # history is there, borrowed
    assert repo.status_fingerprint() == before


def test_snapshot_of_deleted_file_and_detached_head(tmp_path: Path) -> None:
    root = make_repo(tmp_path / "user")
    git(root, "checkout", "-q", "--detach")
    (root / "notes.txt").unlink()
    repo = UserRepo.find(root)
    assert repo.branch is None
    snap = take_snapshot(repo, tmp_path / "snap")
    assert not (materialize(snap, tmp_path / "out") / "notes.txt").exists()
    assert "notes.txt" not in snap.files


def test_branch_is_created_without_checkout(tmp_path: Path) -> None:
    root = make_repo(tmp_path / "user")
    (root / "scratch.txt").write_text("untracked, stays\n")
    repo = UserRepo.find(root)
    files, before = tree_bytes(root), repo.status_fingerprint()
    snap = take_snapshot(repo, tmp_path / "snap")
    branch, commit, included = commit_to_branch(repo, snap, FIX, "agent/fix-add", "Fix add")
    assert not included and branch == "agent/fix-add"
    assert git(root, "show", "agent/fix-add:app.py").endswith("return a + b\n")
    assert git(root, "rev-parse", "agent/fix-add^").strip() == repo.head
    assert tree_bytes(root) == files and repo.status_fingerprint() == before
    assert git(root, "symbolic-ref", "--short", "HEAD").strip() == "main"


def test_patch_needing_local_changes_carries_them_in_a_first_commit(tmp_path: Path) -> None:
    root = make_repo(tmp_path / "user")
    (root / "app.py").write_text("def add(a, b):\n    return a - b  # local\n")
    repo = UserRepo.find(root)
    snap = take_snapshot(repo, tmp_path / "snap")
    patch = FIX.replace("return a - b\n+", "return a - b  # local\n+")
    _, _, included = commit_to_branch(repo, snap, patch, "agent/x", "Fix")
    assert included
    assert "# local" not in git(root, "show", "agent/x:app.py")
    assert "uncommitted changes" in git(root, "log", "-1", "--format=%s", "agent/x^")
    assert git(root, "rev-parse", "agent/x^^").strip() == repo.head


def test_apply_to_worktree_and_refusal_on_conflict(tmp_path: Path) -> None:
    root = make_repo(tmp_path / "user")
    repo = UserRepo.find(root)
    apply_to_worktree(repo, FIX)
    assert (root / "app.py").read_text().endswith("a + b\n")
    git(root, "checkout", "-q", "--", "app.py")
    (root / "app.py").write_text("def add(a, b):\n    return b - a\n")
    files = tree_bytes(root)
    with pytest.raises(UsageError, match="nothing was changed"):
        apply_to_worktree(repo, FIX)
    assert tree_bytes(root) == files


def test_not_a_repo_and_empty_repo_are_usage_errors(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="not inside a git repository"):
        UserRepo.find(tmp_path)
    subprocess.run(["git", "init", "-q", str(tmp_path / "empty")], check=True)
    with pytest.raises(UsageError, match="no commits"):
        UserRepo.find(tmp_path / "empty")
    with pytest.raises(UsageError, match="no such directory"):
        UserRepo.find(tmp_path / "missing")


@pytest.mark.parametrize(("secret", "title", "branch"), [
    ("correct-horse-battery-staple", "Correct Horse Battery Staple bug", "agent/bug"),
    ("lm-studio", "Support LM Studio: read its base URL", "agent/support-read-its-base-url"),
    ("Sk_Live_42abcXYZ", "rotate sk live 42abcxyz in the config", "agent/rotate-in-the-config"),
    ("lm-studio", "fix xlm-studio2 parsing", "agent/fix-parsing"),
    ("lm-studio", "LM  studio", "agent/fix-abc123"),
    ("correct-horse-battery-staple", "correct horse battery staple " + "x" * 50, "agent/" + "x" * 40),
])
def test_a_branch_name_made_from_the_task_never_spells_a_held_secret(monkeypatch, secret, title, branch) -> None:
    """#16: `OPENAI_API_KEY=correct-horse-battery-staple`, task `Correct Horse Battery Staple bug` made the
    branch `agent/correct-horse-battery-staple-bug` (reported as `agent/***-bug`, which does not exist): the
    words spelling a held secret in the slug's form are dropped, or the name falls back to `agent/fix-<id>`."""
    monkeypatch.setenv("OPENAI_API_KEY", secret)
    made = task_branch(title, "20261201-043000-abc123")
    assert made == branch
    assert slugify(secret) not in made and secret not in made


def test_a_task_branch_keeps_every_word_when_no_secret_is_spelled(monkeypatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "correct-horse-battery-staple")
    assert task_branch("Fix: add() returns the DIFFERENCE!", "20261201-043000-abc123") == \
        "agent/fix-add-returns-the-difference"
    assert task_branch("correct horse battery", "20261201-043000-abc123") == "agent/correct-horse-battery"


def test_branch_names(tmp_path: Path) -> None:
    assert slugify("Fix: add() returns the DIFFERENCE!") == "fix-add-returns-the-difference"
    assert slugify("!!!") == "fix"
    root = make_repo(tmp_path / "user")
    repo = UserRepo.find(root)
    git(root, "branch", "agent/fix")
    assert unique_branch(repo, "agent/fix") == "agent/fix-2"
    assert unique_branch(repo, "agent/other") == "agent/other"


def objects_and_refs(root: Path) -> tuple[set[str], str]:
    objects = {str(p.relative_to(root / ".git")) for p in (root / ".git" / "objects").rglob("*")}
    return objects, git(root, "for-each-ref")


def test_snapshot_writes_nothing_into_the_users_git(tmp_path: Path) -> None:
    root = make_repo(tmp_path / "user")
    (root / "notes.txt").write_text("edited\n")
    (root / "new.txt").write_text("untracked\n")
    repo = UserRepo.find(root)
    before = objects_and_refs(root), sorted(p.name for p in (root / ".git").iterdir())
    snap = take_snapshot(repo, tmp_path / "snap")
    materialize(snap, tmp_path / "out")
    assert (objects_and_refs(root), sorted(p.name for p in (root / ".git").iterdir())) == before
    new_objects = {p.name for p in snap.objects.rglob("*") if p.is_file()}
    assert len(new_objects) >= 3  # the two blobs, a tree, the commit


def test_clean_tree_snapshot_is_head_itself(tmp_path: Path) -> None:
    root = make_repo(tmp_path / "user")
    repo = UserRepo.find(root)
    snap = take_snapshot(repo, tmp_path / "snap")
    assert snap.base_commit == repo.head and not snap.dirty
    assert sorted(snap.files) == [".gitignore", "app.py", "notes.txt"]


def test_snapshot_of_symlinks_submodules_and_odd_names(tmp_path: Path) -> None:
    lib = make_repo(tmp_path / "lib")
    root = make_repo(tmp_path / "user")
    git(root, "-c", "protocol.file.allow=always", "submodule", "add", "-q", str(lib), "vendor/lib")
    git(root, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "sub")
    (root / "vendor" / "lib" / "app.py").write_text("changed in the submodule\n")
    (root / "vendor" / "lib" / "extra.txt").write_text("untracked in the submodule\n")
    (root / "link").symlink_to("app.py")
    deep = root / "a" / ("d" * 120) / "caf\u00e9 file.txt"
    deep.parent.mkdir(parents=True)
    deep.write_text("long path\n")
    repo = UserRepo.find(root)
    out = materialize(take_snapshot(repo, tmp_path / "snap"), tmp_path / "out")
    assert (out / "vendor" / "lib" / "app.py").read_text() == "changed in the submodule\n"
    assert (out / "vendor" / "lib" / "extra.txt").is_file() and not (out / "vendor" / "lib" / ".git").exists()
    assert os.readlink(out / "link") == "app.py"
    assert (out / deep.relative_to(root)).read_text() == "long path\n"
    assert git(out, "status", "--porcelain") == ""
    # the submodule stays a gitlink (at the commit checked out in it): its files are in no tree of ours
    assert git(out, "ls-tree", "HEAD", "vendor/lib").split()[:2] == ["160000", "commit"]
    assert git(out, "ls-files", "vendor/lib") == "vendor/lib\n"


def test_history_is_borrowed_not_copied(tmp_path: Path) -> None:
    root = make_repo(tmp_path / "user")
    for n in range(3):
        (root / "app.py").write_text(f"version {n}\n")
        git(root, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qam", f"v{n}")
    repo = UserRepo.find(root)
    snap = take_snapshot(repo, tmp_path / "snap")
    assert not any(snap.objects.rglob("*/*"))  # a clean tree: not one object written
    out = materialize(snap, tmp_path / "out")
    assert git(out, "log", "--format=%s").split() == ["v2", "v1", "v0", "init"]
    assert (out / ".git" / "objects" / "info" / "alternates").read_text().strip() == str(repo.objects)


def test_fix_on_branch_after_dirty_snapshot_migrates_only_needed_objects(tmp_path: Path) -> None:
    root = make_repo(tmp_path / "user")
    (root / "app.py").write_text("def add(a, b):\n    return a - b  # local\n")
    (root / "new.txt").write_text("untracked\n")
    repo = UserRepo.find(root)
    snap = take_snapshot(repo, tmp_path / "snap")
    patch = FIX.replace("return a - b\n+", "return a - b  # local\n+")
    _, _, included = commit_to_branch(repo, snap, patch, "agent/x", "Fix")
    assert included
    assert git(root, "fsck", "--no-dangling", "--connectivity-only") == ""
    # nothing of the run outlives it unreachable: not the snapshot commit, not a blob or tree
    assert git(root, "fsck", "--unreachable", "--no-reflogs", "--no-progress") == ""
    with pytest.raises(workspace.GitFailed):
        git(root, "cat-file", "-e", snap.base_commit)
    assert git(root, "show", "agent/x~1:new.txt") == "untracked\n"


def test_archive_without_gnu_tar_is_the_same(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = make_repo(tmp_path / "user")
    (root / "pkg" / "deep").mkdir(parents=True)
    (root / "pkg" / "deep" / "big.bin").write_bytes(os.urandom(3 << 20))  # streamed in pieces, not read whole
    (root / "pkg" / "run.sh").write_text("#!/bin/sh\n")
    (root / "pkg" / "run.sh").chmod(0o755)
    (root / "link").symlink_to("pkg/run.sh")
    (root / ("n" * 150)).write_text("long name\n")
    snap = take_snapshot(UserRepo.find(root), tmp_path / "snap")
    with_tar = materialize(snap, tmp_path / "gnu")
    monkeypatch.setattr(workspace, "_gnu_tar", lambda: None)
    without = materialize(snap, tmp_path / "python")
    assert tree_bytes(with_tar) == tree_bytes(without) == tree_bytes(root)
    for out in (with_tar, without):
        assert os.readlink(out / "link") == "pkg/run.sh" and (out / "pkg" / "run.sh").stat().st_mode & 0o111
        assert git(out, "status", "--porcelain") == ""


def test_branch_taken_by_another_run_meanwhile_gets_the_next_name(tmp_path: Path, monkeypatch) -> None:
    """Another run creates our chosen name between our choice and our commit: we take the next one."""
    root = make_repo(tmp_path / "user")
    repo = UserRepo.find(root)
    snap = take_snapshot(repo, tmp_path / "snap")
    real_commit = agent.workspace._commit

    def commit_while_another_run_takes_the_name(*args, **kwargs):
        made = real_commit(*args, **kwargs)
        git(root, "branch", "agent/fix-add")  # the other run wins the race for the name
        git(root, "branch", "agent/fix-add-2")
        return made

    monkeypatch.setattr(agent.workspace, "_commit", commit_while_another_run_takes_the_name)
    branch, commit, _ = commit_to_branch(repo, snap, FIX, "agent/fix-add", "Fix add")
    assert branch == "agent/fix-add-3"
    assert git(root, "rev-parse", branch).strip() == commit
    assert git(root, "rev-parse", "agent/fix-add").strip() == repo.head  # the other run's branch is untouched


def test_a_branch_named_like_a_folder_of_the_name_moves_the_name_out_of_it(tmp_path: Path, monkeypatch) -> None:
    """`agent` blocks every `agent/...`; `agent/x` alone blocks nothing; one made meanwhile is handled too."""
    root = make_repo(tmp_path / "user")
    repo = UserRepo.find(root)
    git(root, "branch", "agent/other")
    assert commit_to_branch(repo, take_snapshot(repo, tmp_path / "s1"), FIX, "agent/fix-add", "Fix add")[0] \
        == "agent/fix-add"
    git(root, "branch", "team")
    assert commit_to_branch(repo, take_snapshot(repo, tmp_path / "s2"), FIX, "team/x/fix-add", "Fix add")[0] \
        == "team-x-fix-add"
    real_commit = agent.workspace._commit

    def commit_while_someone_makes_a_branch_named_like_the_folder(*args, **kwargs):
        made = real_commit(*args, **kwargs)
        git(root, "branch", "-D", "agent/other", "agent/fix-add")
        git(root, "branch", "agent")
        return made

    monkeypatch.setattr(agent.workspace, "_commit", commit_while_someone_makes_a_branch_named_like_the_folder)
    branch, commit, _ = commit_to_branch(repo, take_snapshot(repo, tmp_path / "s3"), FIX, "agent/fix-add", "Fix add")
    assert branch == "agent-fix-add" and git(root, "rev-parse", branch).strip() == commit


def lock_ref(root: Path, branch: str) -> Path:
    """Hold `branch`'s ref lock, as a concurrent `git update-ref` of it (or one that died) does."""
    lock = root / ".git" / "refs" / "heads" / f"{branch}.lock"
    lock.parent.mkdir(parents=True, exist_ok=True)
    lock.write_text("")
    return lock


def test_a_locked_name_is_busy_like_a_taken_one(tmp_path: Path) -> None:
    root = make_repo(tmp_path / "user")
    repo = UserRepo.find(root)
    lock_ref(root, "agent/fix-add")
    git(root, "branch", "agent/fix-add-2")
    branch, commit, _ = commit_to_branch(repo, take_snapshot(repo, tmp_path / "snap"), FIX, "agent/fix-add", "Fix add")
    assert branch == "agent/fix-add-3" and git(root, "rev-parse", branch).strip() == commit
    assert (root / ".git" / "refs" / "heads" / "agent" / "fix-add.lock").is_file()


def test_when_every_name_is_locked_the_error_names_the_lock_file(tmp_path: Path) -> None:
    root = make_repo(tmp_path / "user")
    repo = UserRepo.find(root)
    locks = [lock_ref(root, name) for name in ("agent/fix-add", "agent/fix-add-2", "agent/fix-add-3")]
    with pytest.raises(workspace.GitFailed) as caught:
        workspace.claim_branch(repo, "agent/fix-add", repo.head, attempts=3)
    assert str(locks[-1]) in str(caught.value) and "remove the file manually" not in str(caught.value)
    assert "no free branch name after 3 tries from agent/fix-add" in str(caught.value)


def test_a_git_failure_says_what_git_complained_of_not_its_advice(tmp_path: Path) -> None:
    root = make_repo(tmp_path / "user")
    lock = lock_ref(root, "agent/x")
    with pytest.raises(workspace.GitFailed) as caught:
        git(root, "update-ref", "refs/heads/agent/x", "HEAD", "")
    assert str(caught.value).startswith("git update-ref failed: ") and str(lock) in str(caught.value)
    assert "remove the file manually" in caught.value.stderr  # all git said is kept


def test_concurrent_runs_in_one_repository_each_get_a_branch(tmp_path: Path) -> None:
    root = make_repo(tmp_path / "user")
    repo = UserRepo.find(root)
    snaps = [take_snapshot(repo, tmp_path / f"snap{i}") for i in range(4)]
    barrier, made, errors = threading.Barrier(4), [], []

    def deliver(snap) -> None:
        barrier.wait()
        try:
            made.append(commit_to_branch(repo, snap, FIX, "agent/fix-add", "Fix add")[0])
        except Exception as exc:
            errors.append(exc)

    threads = [threading.Thread(target=deliver, args=(snap,)) for snap in snaps]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert sorted(made) == ["agent/fix-add", "agent/fix-add-2", "agent/fix-add-3", "agent/fix-add-4"]
    for branch in made:
        assert git(root, "show", f"{branch}:app.py").endswith("return a + b\n")


def _prefixed_snapshot(tmp_path: Path) -> Snapshot:
    root = make_repo(tmp_path / "user")
    (root / "pkg").mkdir()
    (root / "pkg" / "conf.py").symlink_to("../../shared/conf.py")  # leaves the repository, relatively
    (root / "pkg" / "mod.py").write_text("X = 1\n")
    return take_snapshot(UserRepo.find(root), tmp_path / "snap")


@pytest.mark.parametrize("gnu", [True, False])
def test_archive_under_a_prefix_names_entries_but_never_link_targets(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, gnu: bool) -> None:
    import io
    import tarfile

    snap = _prefixed_snapshot(tmp_path)
    if not gnu:
        monkeypatch.setattr(workspace, "_gnu_tar", lambda: None)
    data = b"".join(snap.archive(prefix="testbed"))
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        members = {m.name: m for m in tar.getmembers()}
    assert all(name.startswith("testbed/") for name in members)
    assert {"testbed/app.py", "testbed/pkg/mod.py", "testbed/.git/HEAD"} <= set(members)
    assert members["testbed/pkg/conf.py"].linkname == "../../shared/conf.py"


@pytest.mark.parametrize("gnu", [True, False])
def test_an_archive_for_a_sandbox_user_owns_every_entry_by_that_user(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, gnu: bool) -> None:
    """Without CAP_CHOWN/DAC_OVERRIDE the sandbox's user could not write files the host user owns."""
    import io
    import tarfile

    snap = _prefixed_snapshot(tmp_path)
    if not gnu:
        monkeypatch.setattr(workspace, "_gnu_tar", lambda: None)
    data = b"".join(snap.archive(prefix="testbed", owner=(4321, 4322)))
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        members = tar.getmembers()
    assert {"testbed/app.py", "testbed/pkg", "testbed/pkg/conf.py", "testbed/.git/index"} <= {m.name for m in members}
    assert {(m.uid, m.gid) for m in members} == {(4321, 4322)}


@pytest.mark.docker
def test_a_relative_link_out_of_the_repository_arrives_as_a_link(tmp_path: Path, make_sandbox) -> None:
    """Docker refuses such a link unpacked at the workdir; unpacked at / under the workdir's name it is kept."""
    snap = _prefixed_snapshot(tmp_path)
    box = make_sandbox()
    box.unpack(snap.archive(prefix=box.workdir.strip("/")), dest="/")
    out = box.run("readlink pkg/conf.py; cat pkg/mod.py")
    assert out.output.split() == ["../../shared/conf.py", "X", "=", "1"]


def _git_dir_names(root: Path) -> list[str]:
    return sorted(p.name for p in (root / ".git").iterdir())


def test_split_index_ships_a_whole_index_and_writes_nothing_into_the_users_git(tmp_path: Path) -> None:
    root = make_repo(tmp_path / "user")
    git(root, "config", "core.splitIndex", "true")
    git(root, "update-index", "--split-index")
    (root / "notes.txt").write_text("edited\n")
    (root / "new.txt").write_text("untracked\n")
    repo = UserRepo.find(root)
    before = _git_dir_names(root)
    snap = take_snapshot(repo, tmp_path / "snap")
    assert _git_dir_names(root) == before
    out = materialize(snap, tmp_path / "out")
    assert git(out, "status", "--porcelain") == ""  # its index needs no sharedindex.* the sandbox lacks
    assert not list((out / ".git").glob("sharedindex.*"))
    assert git(out, "show", "HEAD:new.txt") == "untracked\n"
    commit_to_branch(repo, snap, FIX, "agent/fix", "Fix")
    assert _git_dir_names(root) == before


def test_an_index_that_is_not_split_is_copied_as_it_is(tmp_path: Path, monkeypatch) -> None:
    import agent.workspace as workspace

    root = make_repo(tmp_path / "user")
    ran: list[tuple[str, ...]] = []
    real_run = workspace._run
    monkeypatch.setattr(workspace, "_run", lambda cwd, args, *rest, **kw: ran.append(args) or real_run(cwd, args, *rest, **kw))
    take_snapshot(UserRepo.find(root), tmp_path / "snap")
    assert not [args for args in ran if "--no-split-index" in args]  # no rewrite of a 20,000-entry index for nothing


def test_skip_worktree_and_assume_unchanged_files_ship_as_they_are_in_the_working_tree(tmp_path: Path) -> None:
    root = make_repo(tmp_path / "user")
    git(root, "update-index", "--skip-worktree", "notes.txt")
    git(root, "update-index", "--assume-unchanged", "app.py")
    git(root, "update-index", "--skip-worktree", "--assume-unchanged", ".gitignore")
    (root / ".gitignore").write_text("*.log\n*.bak\n")
    (root / "notes.txt").write_text("local\n")
    (root / "app.py").write_text("def add(a, b):\n    return a - b  # local\n")
    repo = UserRepo.find(root)
    bits = git(root, "ls-files", "-v")
    snap = take_snapshot(repo, tmp_path / "snap")
    out = materialize(snap, tmp_path / "out")
    assert (out / "notes.txt").read_text() == "local\n"
    assert (out / ".gitignore").read_text() == "*.log\n*.bak\n" == git(out, "show", "HEAD:.gitignore")
    assert git(out, "show", "HEAD:notes.txt") == "local\n" and "# local" in git(out, "show", "HEAD:app.py")
    (out / "app.py").write_text("def add(a, b):\n    return a + b\n")  # the agent's edit is seen
    assert git(out, "status", "--porcelain") == " M app.py\n"
    assert "+    return a + b" in git(out, "diff")
    assert git(root, "ls-files", "-v") == bits  # the user's index keeps its bits


def test_sparse_checkout_leaves_out_what_is_not_in_the_working_tree(tmp_path: Path) -> None:
    root = make_repo(tmp_path / "user")
    git(root, "update-index", "--skip-worktree", "notes.txt")
    (root / "notes.txt").unlink()  # what sparse checkout does
    snap = take_snapshot(UserRepo.find(root), tmp_path / "snap")
    assert not snap.dirty and "notes.txt" not in snap.files
    assert git(materialize(snap, tmp_path / "out"), "status", "--porcelain") == ""


def test_untracked_nested_repository_without_commits_is_left_out_like_git_status_does(tmp_path: Path) -> None:
    root = make_repo(tmp_path / "user")
    for name in ("tools/nested", "b nested"):
        (root / name).mkdir(parents=True)
        git(root / name, "init", "-q")
        (root / name / "x.py").write_text("x\n")
    (root / "tools" / "kept.py").write_text("kept\n")
    snap = take_snapshot(UserRepo.find(root), tmp_path / "snap")
    assert "tools/kept.py" in snap.files
    assert not any("nested" in path for path in snap.files)


def test_git_failure_names_the_subcommand_past_global_options(tmp_path: Path) -> None:
    root = make_repo(tmp_path / "user")
    with pytest.raises(workspace.GitFailed, match=r"^git rev-parse failed: "):
        git(root, "-c", "core.quotePath=false", "-C", ".", "rev-parse", "--verify", "no-such-ref")


def test_users_exclude_rules_follow_into_the_sandbox(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = make_repo(tmp_path / "user")
    (root / ".git" / "info").mkdir(exist_ok=True)
    (root / ".git" / "info" / "exclude").write_text("secret.env\n")
    (root / ".git" / "info" / "attributes").write_text("*.py text eol=crlf\n")
    (tmp_path / "global-ignore").write_text("*.tmp\n")
    git(root, "config", "core.excludesFile", str(tmp_path / "global-ignore"))
    out = materialize(take_snapshot(UserRepo.find(root), tmp_path / "snap"), tmp_path / "out")
    (out / "secret.env").write_text("TOKEN=1\n")
    (out / "scratch.tmp").write_text("x\n")
    (out / "kept.py").write_text("x\n")
    assert git(out, "status", "--porcelain", "--untracked-files=all") == "?? kept.py\n"
    assert git(out, "check-attr", "eol", "--", "kept.py") == "kept.py: eol: crlf\n"


def test_users_core_settings_shape_the_sandboxs_diff(tmp_path: Path) -> None:
    root = make_repo(tmp_path / "user")
    git(root, "config", "core.fileMode", "false")
    git(root, "config", "core.autocrlf", "true")
    with open(root / ".git" / "config", "a") as config:
        config.write("[core]\n\tquotePath\n")  # a true boolean written without a value
    (root / "app.py").chmod(0o755)  # not a change, for this user's git
    (root / "notes.txt").write_bytes(b"one\r\ntwo\r\n")  # a checkout with autocrlf: the blob has LF
    git(root, "add", "notes.txt")
    git(root, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "crlf")
    snap = take_snapshot(UserRepo.find(root), tmp_path / "snap")
    assert not snap.dirty
    out = materialize(snap, tmp_path / "out")
    assert git(out, "config", "core.autocrlf").strip() == "true" == git(out, "config", "core.quotePath").strip()
    (out / "notes.txt").write_bytes(b"one\r\ntwo\r\nthree\r\n")  # the agent's edit
    git(out, "add", "-A")
    diff = git(out, "diff", "--cached")
    assert "old mode" not in diff and "\r" not in diff
    assert [line for line in diff.splitlines() if line[:1] in "+-" and line[:3] not in ("+++", "---")] == ["+three"]


def test_sha256_repository(tmp_path: Path) -> None:
    root = tmp_path / "user"
    root.mkdir()
    git(root, "init", "-q", "--object-format=sha256")
    (root / "a.txt").write_text("a\n")
    git(root, "add", "-A")
    git(root, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "init")
    (root / "a.txt").write_text("b\n")
    repo = UserRepo.find(root)
    snap = take_snapshot(repo, tmp_path / "snap")
    out = materialize(snap, tmp_path / "out")
    assert len(snap.base_commit) == 64
    assert git(out, "status", "--porcelain") == ""
    assert git(out, "rev-parse", "HEAD^").strip() == repo.head
    patch = "--- a/a.txt\n+++ b/a.txt\n@@ -1 +1 @@\n-b\n+c\n"
    branch, _, included = commit_to_branch(repo, snap, patch, "agent/fix", "Fix")
    assert included and git(root, "show", f"{branch}:a.txt") == "c\n"


def _fork_with_relative_alternates(tmp_path: Path) -> tuple[UserRepo, Path]:
    upstream = make_repo(tmp_path / "repo")
    git(tmp_path, "clone", "-q", "--shared", str(upstream), "fork")
    fork = tmp_path / "fork"
    (fork / ".git" / "objects" / "info" / "alternates").write_text("../../../repo/.git/objects\n")
    (fork / "new.txt").write_text("new\n")
    return UserRepo.find(fork), upstream


def test_relative_alternates_resolve_from_their_mount_points(tmp_path: Path) -> None:
    repo, upstream = _fork_with_relative_alternates(tmp_path)
    shared = repo.shared_objects()
    assert shared == [repo.objects, (upstream / ".git" / "objects").resolve()]
    mounts = workspace.sandbox_object_paths(shared)
    # as git in the sandbox reads the fork's mounted info/alternates: relative to where it is mounted
    assert os.path.normpath(os.path.join(mounts[shared[0]], "../../../repo/.git/objects")) == mounts[shared[1]]
    assert all(path.startswith("/run/moe-git/") for path in mounts.values())
    assert len(set(mounts.values())) == 2


@pytest.mark.docker
def test_relative_alternates_work_in_the_sandbox(tmp_path: Path, make_sandbox) -> None:
    repo, _ = _fork_with_relative_alternates(tmp_path)
    snap = take_snapshot(repo, tmp_path / "snap")
    box = make_sandbox(readonly_mounts=workspace.sandbox_object_paths(list(snap.shared)))
    box.unpack(snap.archive(prefix=box.workdir.strip("/")), dest="/")
    out = box.run("git log --format=%s 2>&1; git status --porcelain 2>&1")
    assert out.output.split("\n")[:2] == ["moe-agent: snapshot of the working tree", "init"]
    assert "error" not in out.output and "fatal" not in out.output


def test_commit_snapshot_is_the_branch_not_the_working_tree_and_writes_nothing_into_the_users_git(
        tmp_path: Path) -> None:
    """A follow-up's sandbox: the branch a run made, files checked out of git only as the archive sends them."""
    root = make_repo(tmp_path / "user")
    repo = UserRepo.find(root)
    _, commit, _ = commit_to_branch(repo, take_snapshot(repo, tmp_path / "s1"), FIX + """--- a/notes.txt
+++ /dev/null
@@ -1 +0,0 @@
-keep
--- /dev/null
+++ b/tests.py
@@ -0,0 +1 @@
+import app
""", "agent/fix", "fix")
    (root / "app.py").write_text("mine, not committed\n")
    (root / "scratch.txt").write_text("untracked\n")
    before, git_before = repo.status_fingerprint(), objects_and_refs(root)
    snap = workspace.commit_snapshot(repo, "agent/fix", tmp_path / "s2")
    assert snap.base_commit == git(root, "rev-parse", "agent/fix").strip() and not snap.dirty
    assert sorted(snap.files) == [".gitignore", "app.py", "tests.py"]
    assert list((tmp_path / "s2" / "tree").iterdir()) == []  # nothing checked out before it is sent
    out = materialize(snap, tmp_path / "out")
    assert tree_bytes(out) == {".gitignore": b"*.log\n", "app.py": b"def add(a, b):\n    return a + b\n",
                               "tests.py": b"import app\n"}
    assert git(out, "status", "--porcelain", "--untracked-files=all") == ""
    assert git(out, "rev-parse", "HEAD").strip() == commit
    assert repo.status_fingerprint() == before and objects_and_refs(root) == git_before


def test_commit_snapshot_keeps_submodules_as_gitlinks_and_reads_nothing_of_the_working_tree(tmp_path: Path) -> None:
    lib = make_repo(tmp_path / "lib")
    root = make_repo(tmp_path / "user")
    git(root, "-c", "protocol.file.allow=always", "submodule", "add", "-q", str(lib), "vendor/lib")
    git(root, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "sub")
    repo = UserRepo.find(root)
    _, commit, _ = commit_to_branch(repo, take_snapshot(repo, tmp_path / "s1"), FIX, "agent/fix", "fix")
    snap = workspace.commit_snapshot(repo, commit, tmp_path / "s2")
    assert snap.submodules == ("vendor/lib",) and not any(p.startswith("vendor/lib/") for p in snap.files)
    out = materialize(snap, tmp_path / "out")
    assert (out / "app.py").read_text() == "def add(a, b):\n    return a + b\n"
    assert git(out, "rev-parse", "HEAD").strip() == commit and not snap.dirty
