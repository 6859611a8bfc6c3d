"""What masking secrets costs per trajectory event, and per short line scrubbed.

Every string of every trajectory event goes through `agent.redaction.scrub`. The scrubber is
built from the environment's secrets and the held ones, and is now rebuilt only when either
changed; the baseline in the same run is the scrubber as it was before, reading the
environment again on each call (two regexes per variable). The environment is padded with
harmless variables to `--variables` (a GitHub Actions runner has about 100), holding two
secrets as CI does (`GITHUB_TOKEN`, `OPENAI_API_KEY`).

    python benchmarks/trajectory_scrub.py [--variables 100] [--events 2000]

Times are microseconds (median of 5 rounds). The last line is one JSON object with the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from agent import redaction  # noqa: E402
from agent.redaction import Redactor, held_secrets  # noqa: E402
from agent.trajectory import TrajectoryWriter  # noqa: E402

ROUNDS = 5
LINE = "collected 12 items; tests/test_parser.py::test_empty_config PASSED"


def uncached_scrubber() -> Redactor:
    """The scrubber as `_scrubber` found it before the cache: the environment read on every call."""
    held = held_secrets()
    if held not in redaction._SCRUBBERS:
        redaction._SCRUBBERS.clear()
        redaction._SCRUBBERS[held] = Redactor(held)
    return redaction._SCRUBBERS[held]


def step_events(step: int) -> list[tuple[str, dict[str, Any]]]:
    """One loop step's events as the loop writes them: the request's new messages, the reply, the tool."""
    command = f"python -m pytest -q tests/test_parser.py -k case_{step}"
    call = {"id": f"call_{step}", "type": "function",
            "function": {"name": "bash", "arguments": json.dumps({"command": command})}}
    output = "\n".join(f"tests/test_parser.py::test_case_{n} PASSED" for n in range(20))
    return [
        ("thinking", {"step": step}),
        ("request", {"step": step, "prompt_tokens": 4000 + step, "shared_prefix_tokens": 3900,
                     "new_messages": [{"role": "tool", "tool_call_id": f"call_{step - 1}", "content": output}]}),
        ("response", {"step": step, "content": "Let me run the parser's tests.", "tool_calls": [call]}),
        ("tool", {"step": step, "name": "bash", "arguments": {"command": command}, "observation": output,
                  "is_error": False}),
    ]


def median_us(work: Callable[[], None], count: int) -> float:
    """Median over `ROUNDS` of the microseconds `work` took, per one of the `count` things it does."""
    rounds = []
    for _ in range(ROUNDS):
        started = time.perf_counter()
        work()
        rounds.append((time.perf_counter() - started) / count * 1e6)
    return statistics.median(rounds)


def measure(scrubber: Callable[[], Redactor], events: int, scratch: Path) -> dict[str, float]:
    """Microseconds per short line scrubbed and per event written, with `scrubber` behind `scrub`."""
    redaction._scrubber = scrubber
    script = [event for step in range(events // 4) for event in step_events(step)]

    def write_events() -> None:
        writer = TrajectoryWriter(scratch / "trajectory.jsonl")
        for kind, data in script:
            writer.event(kind, **data)
        writer.close()

    def scrub_lines() -> None:
        for _ in range(events):
            redaction.scrub(LINE)

    return {"line": median_us(scrub_lines, events), "event": median_us(write_events, len(script))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variables", type=int, default=100, help="pad the environment to this many variables")
    parser.add_argument("--events", type=int, default=2000)
    args = parser.parse_args()
    os.environ["GITHUB_TOKEN"] = "ghs_BenchmarkToken0123456789abcdef"
    os.environ["OPENAI_API_KEY"] = "sk-benchmark-0123456789abcdef"
    for n in range(len(os.environ), args.variables):
        os.environ[f"BENCH_SETTING_{n}"] = f"/opt/tool-{n}/bin:/usr/local/share/value-{n}"
    cached_scrubber = redaction._scrubber
    with tempfile.TemporaryDirectory(prefix="moe-agent-bench-scrub-") as scratch:
        before = measure(uncached_scrubber, args.events, Path(scratch))
        after = measure(cached_scrubber, args.events, Path(scratch))
        check = TrajectoryWriter(Path(scratch) / "check.jsonl")
        check.event("response", content=f"token {os.environ['GITHUB_TOKEN']}")
        check.close()
        assert os.environ["GITHUB_TOKEN"] not in (Path(scratch) / "check.jsonl").read_text()
    figures = {
        "variables": len(os.environ),
        "scrub_line_us": round(after["line"], 2),
        "scrub_line_us_before": round(before["line"], 2),
        "scrub_line_speedup": round(before["line"] / after["line"], 1),
        "event_us": round(after["event"], 2),
        "event_us_before": round(before["event"], 2),
        "event_speedup": round(before["event"] / after["event"], 1),
    }
    print(f"{figures['variables']} environment variables: a short line scrubbed in {figures['scrub_line_us']} us "
          f"(was {figures['scrub_line_us_before']} us, {figures['scrub_line_speedup']}x); a trajectory event "
          f"written in {figures['event_us']} us (was {figures['event_us_before']} us, {figures['event_speedup']}x)")
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
