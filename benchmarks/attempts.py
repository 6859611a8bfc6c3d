"""`agent fix --attempts 3` against one attempt: wall time, and whether the right patch is chosen.

Generates a repository in the run: a package of `--modules` small modules, each with a
unittest file, and one planted bug (`geometry.area` adds where it should multiply). The
scripted OpenAI-compatible server (`tests/scripted_run.py`) answers every request after 300 ms, as a
busy server would; each attempt is told apart by the seed its requests carry. Three
scripts of the same length (six model calls: look, search, edit, test, ..., submit):

- attempt 1 fixes the bug, writes a reproduction test, runs it, submits (the right patch);
- attempt 2 "fixes" it by special-casing the example in the issue (passes the example,
  fails the reproduction test, which checks another input);
- attempt 3 edits the wrong function.

One attempt (the right script, without `--attempts`) is the baseline measured in the same
run, `--runs` times each (medians). Both are `python -m agent fix --json` processes, so
the times include start-up, delivery and, for three attempts, the checks in fresh
sandboxes that choose the patch.

    python benchmarks/attempts.py [--runs 3] [--modules 40] [--keep DIR]

Target (issue 19): three attempts at once take at most 1.6x the wall time of one. The last
line is one JSON object: `attempts_wall_ratio` (whole command, 3 attempts / 1),
`chose_correct` (every run of 3 chose attempt 1's patch), and the parts.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.scripted_run import Delay, FakeOpenAIServer, Reply, committed_repo, run_agent, tool_call  # noqa: E402

SEED = 7000
LATENCY = 0.3  # seconds before the scripted server answers
ISSUE = "geometry.area(2, 3) returns 5; a 2 by 3 rectangle's area is 6"


def make_repository(root: Path, modules: int) -> Path:
    """A package `shapes` of `modules` modules with tests, `geometry.area` broken; seed = SEED in .agent.toml."""
    rng = random.Random(19)
    package = root / "shapes"
    (root / "tests").mkdir(parents=True)
    package.mkdir()
    (package / "__init__.py").write_text("")
    (root / "tests" / "__init__.py").write_text("")
    (package / "geometry.py").write_text("def area(width, height):\n    return width + height\n\n\n"
                                         "def perimeter(width, height):\n    return 2 * (width + height)\n")
    (root / "tests" / "test_geometry.py").write_text(
        "import unittest\n\nfrom shapes import geometry\n\n\nclass Perimeter(unittest.TestCase):\n"
        "    def test_perimeter(self):\n        self.assertEqual(geometry.perimeter(2, 3), 10)\n")
    for index in range(modules):
        k = rng.randrange(2, 50)
        (package / f"part{index:03d}.py").write_text(f"def scale(x):\n    return x * {k}\n")
        (root / "tests" / f"test_part{index:03d}.py").write_text(
            f"import unittest\n\nfrom shapes import part{index:03d}\n\n\nclass Scale(unittest.TestCase):\n"
            f"    def test_scale(self):\n        self.assertEqual(part{index:03d}.scale(3), {3 * k})\n")
    (root / "setup.py").write_text("from setuptools import setup\n\nsetup(name='shapes', packages=['shapes'])\n")
    return committed_repo(root, {".agent.toml": f"[model]\nextra_body = {{ seed = {SEED} }}\n"}, "shapes")


def call(name: str, **arguments: Any) -> Reply:
    return Reply(tool_calls=[tool_call(name, arguments)])


def edit(old: str, new: str) -> Reply:
    return call("str_replace_editor", command="str_replace", path="shapes/geometry.py", old_str=old, new_str=new)


LOOK = call("str_replace_editor", command="view", path="shapes/geometry.py")
SEARCH = call("search", pattern="def area")
REPRO = ("import unittest\n\nfrom shapes import geometry\n\n\nclass Area(unittest.TestCase):\n"
         "    def test_area(self):\n        self.assertEqual(geometry.area(4, 5), 20)\n")
SCRIPTS = {
    SEED: [LOOK, SEARCH, edit("return width + height\n\n\ndef perimeter", "return width * height\n\n\ndef perimeter"),
           call("str_replace_editor", command="create", path="tests/test_area.py", file_text=REPRO),
           call("run_tests", paths=["tests/test_area.py"]), call("submit")],
    SEED + 1: [LOOK, SEARCH, edit("    return width + height\n\n\ndef perimeter",
                                  "    if (width, height) == (2, 3):\n        return 6\n"
                                  "    return width + height\n\n\ndef perimeter"),
               call("bash", command="python3 -c 'from shapes import geometry; print(geometry.area(2, 3))'"),
               call("run_tests", paths=["tests/test_geometry.py"]), call("submit")],
    SEED + 2: [LOOK, SEARCH, edit("return 2 * (width + height)", "return width * height"),
               call("bash", command="python3 -c 'from shapes import geometry; print(geometry.perimeter(2, 3))'"),
               call("run_tests", paths=["tests/test_geometry.py"]), call("submit")],
}


def answer(body: dict[str, Any]) -> Delay:
    """After LATENCY seconds, the next step of the attempt the request's seed names (no seed: attempt 1's)."""
    steps = SCRIPTS[body.get("seed", SEED)]
    return Delay(LATENCY, steps[sum(1 for m in body["messages"] if m["role"] == "assistant")])


def run_fix(repo: Path, server: FakeOpenAIServer, home: Path, *args: str) -> tuple[float, dict[str, Any]]:
    began = time.perf_counter()
    done = run_agent(server.base_url, home, "fix", "-C", str(repo), "--json", "--no-commit", *args, ISSUE, timeout=900)
    wall = time.perf_counter() - began
    if done.returncode != 0:
        raise SystemExit(f"agent fix {' '.join(args)} exited {done.returncode}: {done.stderr.strip()[-800:]}")
    return wall, json.loads(done.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--modules", type=int, default=40)
    parser.add_argument("--keep", type=Path, help="Build the repository here and keep it.")
    args = parser.parse_args()
    work = args.keep or Path(tempfile.mkdtemp(prefix="moe-bench-attempts-"))
    try:
        repo = make_repository(work / "repo", args.modules)
        single, triple, chosen, checks, loops, phases = [], [], [], [], [], []
        with FakeOpenAIServer(answer) as server:
            run_fix(repo, server, work / "home")  # warm-up: the setup and files images, not timed
            for run in range(args.runs):
                wall, result = run_fix(repo, server, work / "home")
                single.append(wall)
                loops.append(result["timings"].get("loop", 0.0))
                wall, result = run_fix(repo, server, work / "home", "--attempts", "3")
                triple.append(wall)
                record = result["selection"]
                chosen.append(record["winner_attempts"][:1] == [1] and "width * height" in result["patch"])
                checks.append(record["timing"]["checks"])
                phases.append(record["timing"]["attempts"])
                print(f"run {run + 1}: one attempt {single[-1]:.2f} s, three {triple[-1]:.2f} s "
                      f"(attempts {record['timing']['attempts']:.2f} s, checks {checks[-1]:.2f} s); chosen: "
                      f"attempt {record['winner_attempts']} by {record['decided_by']}: {record['reason']}")
        figures = {
            "attempts_wall_ratio": round(statistics.median(triple) / statistics.median(single), 3),
            "chose_correct": all(chosen),
            "one_attempt_s": round(statistics.median(single), 3),
            "three_attempts_s": round(statistics.median(triple), 3),
            "attempts_phase_s": round(statistics.median(phases), 3),  # the three loops at once, to the last end
            "checks_s": round(statistics.median(checks), 3),
            "one_attempt_loop_s": round(statistics.median(loops), 3),
            "model_latency_s": LATENCY, "runs": args.runs, "cpus": os.cpu_count(),
            "target_ratio": 1.6,
        }
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
