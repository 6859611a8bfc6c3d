"""SWE-bench harness figures on the sample tasks, which need no network at all.

Grading: seconds per instance when every image is already built (container start, patch,
offline reinstall, tests, grading), and the peak memory of the grading process. Images
are built first and are not timed; they keep their tags, so a second run reuses them.
`eval run` throughput: 16 tasks against a scripted model server that answers after
300 ms, five model calls per task (a short real run: look around, fix, check, submit), at
--workers 1 and 8 in the same run (`workers_speedup`), with the whole machine's CPU time
per instance and the speedup that CPU time allows on this many cores. Each section is one
function returning its figures.

    python benchmarks/harness.py [--tasks 16] [--workers 1]

The last line is one JSON object with the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the scripted model server lives in tests/

from evals.grade import GradeSettings, Outcome, gold_predictions, grade_predictions
from evals.images import build_images
from evals.sample_tasks import SampleProject, make_sample_project, sample_image_builder
from sandbox.docker import connect

SALT = "benchmark"  # fixed, so the images of one run are reused by the next


def grading_figures(client: Any, project: SampleProject, args: argparse.Namespace, scratch: Path) -> dict[str, Any]:
    instances = [project.instance(str(k)) for k in range(1, args.tasks + 1)]
    builder = sample_image_builder(client, project)
    started = time.perf_counter()
    images = build_images(builder, instances, workers=args.workers)
    build_seconds = time.perf_counter() - started
    failed = [o.error for o in images if o.image is None]
    if failed:
        raise SystemExit(f"image build failed: {failed[0]}")

    settings = GradeSettings(run_id="benchmark", log_root=scratch / "logs", report_dir=scratch, workers=args.workers)
    started = time.perf_counter()
    run = grade_predictions(instances, gold_predictions(instances), builder, settings)
    grade_seconds = time.perf_counter() - started
    return {
        "instances": len(instances),
        "workers": args.workers,
        "image_build_seconds": round(build_seconds, 2),
        "grade_seconds_per_instance": round(grade_seconds / len(instances), 3),
        "test_seconds_median": round(statistics.median(r.test_seconds for r in run.results), 3),
        "resolved": run.count(Outcome.RESOLVED),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }


def run_throughput_figures(client: Any, project: SampleProject, args: argparse.Namespace,
                           scratch: Path) -> dict[str, Any]:
    """`eval run` wall time at --workers 1 and 8 against a model server that answers after 300 ms."""
    from agent.config import load_settings
    from agent.model import OpenAIModel
    from evals.run import BatchOptions, run_batch
    from tests.fakes.openai_server import Delay, FakeOpenAIServer, Reply, tool_call

    instances = [project.instance(str(k)) for k in range(1, args.tasks + 1)]
    gold = {i.problem_statement: i.patch for i in instances}

    def script(body: dict[str, Any]) -> Delay:
        """A short real-looking run: look around, apply the fix, check it, submit (5 model calls)."""
        done = sum(1 for m in body["messages"] if m["role"] == "tool")
        statement = next(s for s in gold if s in body["messages"][1]["content"])
        commands = ["git log --oneline -3", "grep -rn 'def ' calc | head",
                    f"git apply <<'P'\n{gold[statement]}\nP", "git diff --stat"]
        if done < len(commands):
            return Delay(0.3, Reply(tool_calls=[tool_call("bash", {"command": commands[done]})]))
        return Delay(0.3, Reply(tool_calls=[tool_call("submit", {})]))

    seconds: dict[int, float] = {}
    cpu: dict[int, float] = {}
    with FakeOpenAIServer(script) as server:
        settings = load_settings(None, overrides={"model.base_url": server.base_url, "model.name": "fake-model"},
                                 env={})
        for workers in (1, 8):
            builder = sample_image_builder(client, project)  # fresh, so neither run inherits the other's memo
            options = BatchOptions(output=scratch / f"run-{workers}", model_name="fake-model", workers=workers)
            started, busy = time.perf_counter(), machine_busy_seconds()
            summary = run_batch(instances, builder, OpenAIModel(settings.model), settings, options)
            seconds[workers] = time.perf_counter() - started
            cpu[workers] = machine_busy_seconds() - busy
            if summary.count("submitted") != len(instances):
                raise SystemExit(f"eval run with {workers} workers submitted {summary.count('submitted')} of "
                                 f"{len(instances)}")
    return {
        "run_seconds_workers_1": round(seconds[1], 2),
        "run_seconds_workers_8": round(seconds[8], 2),
        "workers_speedup": round(seconds[1] / seconds[8], 2),
        # All processes (dockerd, containerd, shims, runc, containers, this one), per instance at 8 workers;
        # with every core busy the 8-worker run cannot take less than this, whatever the scheduling.
        "machine_cpu_seconds_per_instance": round(cpu[8] / len(instances), 3),
        "speedup_ceiling_from_cpu": round(seconds[1] / (cpu[8] / (os.cpu_count() or 1)), 2),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }


def machine_busy_seconds() -> float:
    """CPU time the whole machine spent busy so far (Linux's /proc/stat, all cores)."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle, iowait
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


SECTIONS: list[Callable[[Any, SampleProject, argparse.Namespace, Path], dict[str, Any]]] = [
    grading_figures, run_throughput_figures,
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=16, help="sample instances to grade")
    parser.add_argument("--workers", type=int, default=1, help="instances graded at once")
    args = parser.parse_args()
    client = connect()
    figures: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="moe-harness-bench-") as scratch:
        project = make_sample_project(Path(scratch) / "sample", bugs=args.tasks, salt=SALT)
        for section in SECTIONS:
            section_figures = section(client, project, args, Path(scratch))
            print(f"{section.__name__}: {section_figures}")
            figures.update(section_figures)
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
