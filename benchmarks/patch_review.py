"""What the patch policy costs after `submit`, against a large snapshot.

`agent.fix._review` reviews every patch against the snapshot's files ({path: "MODE SHA"}). The baseline
in the same run is an ordinary one-file edit; the figures are an edit to `.gitignore` that un-ignores a
secret (one `git check-ignore`), and a new directory link into a folder holding every file of the tree
(`ln -s src ci_scripts`: each file is reviewed under the link's name, each folder classified once).

    python benchmarks/patch_review.py [--files 100000]

Times are wall seconds (git runs as a child), median of 3 rounds. The
last line is one JSON object with the figures and their ratios to the baseline.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from agent.patch_policy import review_patch  # noqa: E402

ROUNDS = 3
ORDINARY = "diff --git a/src/a.py b/src/a.py\nindex 1..2 100644\n--- a/src/a.py\n+++ b/src/a.py\n@@ -1 +1 @@\n-a\n+b\n"
UNIGNORE = ("diff --git a/.gitignore b/.gitignore\nindex 1..2 100644\n--- a/.gitignore\n+++ b/.gitignore\n"
            "@@ -1 +1,2 @@\n *.log\n+!.env\n")
NEW_LINK = ("diff --git a/ci_scripts b/ci_scripts\nnew file mode 120000\nindex 0000000..1111111\n--- /dev/null\n"
            "+++ b/ci_scripts\n@@ -0,0 +1 @@\n+src\n\\ No newline at end of file\n")


def timed(patch: str, files: dict[str, str]) -> float:
    """Median wall seconds of reviewing `patch` against `files`."""
    times = []
    for _ in range(ROUNDS):
        started = time.perf_counter()
        review_patch(patch, None, files)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=100_000, help="files in the snapshot, 100 per folder")
    args = parser.parse_args()
    files = {f"src/pkg{n // 100}/mod{n}.py": "100644 " + "0" * 40 for n in range(args.files)}
    baseline = timed(ORDINARY, files)
    figures = {"files": args.files, "ordinary_s": round(baseline, 3)}
    for name, patch in (("unignore", UNIGNORE), ("new_link", NEW_LINK)):
        seconds = timed(patch, files)
        figures[f"{name}_s"], figures[f"{name}_ratio"] = round(seconds, 3), round(seconds / baseline, 2)
        print(f"{name}: {seconds:.3f} s, {seconds / baseline:.2f}x the ordinary edit ({baseline:.3f} s)")
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
