"""What a follow-up (`agent fix --continue`) pays on the host before its sandbox starts.

A follow-up's sandbox holds the branch a run made, not the user's working tree. Builds a
synthetic repository (`fix_start.make_large`: many files, some history), a branch one
commit ahead of HEAD changing three files (what a run delivers), an uncommitted edit and
an untracked file, then measures, as medians over `--runs`, in seconds:

- `commit_snapshot`: the follow-up's snapshot (`agent.workspace.commit_snapshot`), plus
  streaming the three changed files' archive, as a run with a files image does;
- baseline `take_snapshot`: the snapshot every `agent fix` takes of the working tree;
- baseline `full checkout`: checking the branch's whole tree out into a temporary folder
  (`git read-tree -u`), what a follow-up would cost without checking files out on demand.

    python benchmarks/followup_start.py [--files 20000] [--commits 100] [--runs 3]

The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from agent.workspace import UserRepo, commit_snapshot, take_snapshot  # noqa: E402
from benchmarks.fix_start import dirty, git, make_large  # noqa: E402


def delivered_branch(repo: Path) -> str:
    """A branch one commit ahead of HEAD changing three files, made without a checkout; its commit."""
    head = git(repo, "rev-parse", "HEAD").strip()
    with tempfile.TemporaryDirectory() as tmp:
        env_index = {"GIT_INDEX_FILE": str(Path(tmp) / "index")}
        subprocess.run(["git", "-C", str(repo), "read-tree", head], env=env_index, check=True)
        for n in range(3):
            blob = git(repo, "hash-object", "-w", "--stdin", input=f"changed {n}\n".encode()).strip()
            subprocess.run(["git", "-C", str(repo), "update-index", "--cacheinfo", f"100644,{blob},pkg001/mod{n:03d}.py"],
                           env=env_index, check=True)
        tree = subprocess.run(["git", "-C", str(repo), "write-tree"], env=env_index, check=True, capture_output=True,
                              text=True).stdout.strip()
    commit = git(repo, "commit-tree", tree, "-p", head, "-m", "fix").strip()
    git(repo, "update-ref", "refs/heads/agent/fix", commit)
    return commit


def median_seconds(runs: int, work: Callable[[Path], object]) -> float:
    times = []
    for _ in range(runs):
        scratch = Path(tempfile.mkdtemp(prefix="moe-bench-"))
        try:
            began = time.perf_counter()
            work(scratch)
            times.append(time.perf_counter() - began)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
    return round(statistics.median(times), 3)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=20_000)
    parser.add_argument("--commits", type=int, default=100)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="moe-followup-bench-") as tmp:
        path = make_large(Path(tmp) / "repo", args.files, args.commits, 2048, 20)
        commit = delivered_branch(path)
        dirty(path)
        repo = UserRepo.find(path)
        changed = [f"pkg001/mod{n:03d}.py" for n in range(3)]

        def follow_up(scratch: Path) -> None:
            snapshot = commit_snapshot(repo, commit, scratch / "snapshot")
            for _ in snapshot.archive(files=changed):
                pass

        def full_checkout(scratch: Path) -> None:
            env = {"GIT_INDEX_FILE": str(scratch / "index"), "GIT_WORK_TREE": str(scratch / "tree")}
            (scratch / "tree").mkdir()
            subprocess.run(["git", "-C", str(path), "read-tree", "--reset", "-u", commit], env=env, check=True)

        ours = median_seconds(args.runs, follow_up)
        working_tree = median_seconds(args.runs, lambda scratch: take_snapshot(repo, scratch / "snapshot"))
        whole = median_seconds(args.runs, full_checkout)
    print(f"{args.files} files: follow-up snapshot + 3 changed files {ours:.3f} s; "
          f"take_snapshot {working_tree:.3f} s ({ours / working_tree:.2f}x); "
          f"whole tree checked out {whole:.3f} s ({whole / ours:.1f}x ours)")
    print(json.dumps({"files": args.files, "followup_snapshot_s": ours, "take_snapshot_s": working_tree,
                      "full_checkout_s": whole, "followup_vs_take_snapshot": round(ours / working_tree, 3),
                      "full_checkout_vs_followup": round(whole / ours, 2)}))


if __name__ == "__main__":
    main()
