"""What making requests sendable (lone surrogates shown as text) costs over a whole run.

Every request goes through `agent.surrogates`. The baseline in the same run is the walk of
the whole request at every step (`without_surrogates`, as before), which grows with the
conversation; `SurrogateFree` walks what each step added. The conversation is a loop's:
per step an assistant tool call and a 2 KB observation, with eight tool schemas.

    python benchmarks/request_surrogates.py [--steps 200]

Times are milliseconds (median of 3 rounds). The last line is one JSON object with the figures.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from agent.surrogates import SurrogateFree, without_surrogates  # noqa: E402

ROUNDS = 3
TOOLS = [{"type": "function", "function": {"name": f"tool_{n}", "description": "does one thing " * 10,
                                           "parameters": {"type": "object", "properties": {
                                               "path": {"type": "string", "description": "a file"},
                                               "command": {"type": "string", "description": "a command"}}}}}
         for n in range(8)]


def requests(steps: int) -> list[dict[str, Any]]:
    """The request body of every step of a `steps`-step run; each shares the history's message objects."""
    messages: list[dict[str, Any]] = [{"role": "system", "content": "You fix bugs. " * 300},
                                      {"role": "user", "content": "Parsing an empty config crashes with KeyError"}]
    bodies = []
    for step in range(steps):
        bodies.append({"model": "qwen", "messages": list(messages), "tools": TOOLS, "max_tokens": 4096,
                       "temperature": 0.7, "chat_template_kwargs": {"enable_thinking": False}})
        call = {"id": f"call_{step}", "type": "function",
                "function": {"name": "tool_0", "arguments": json.dumps({"command": f"pytest -k case_{step}"})}}
        messages += [{"role": "assistant", "content": "Let me check.", "tool_calls": [call]},
                     {"role": "tool", "tool_call_id": f"call_{step}",
                      "content": "".join(f"tests/test_parser.py::test_case_{n} PASSED\n" for n in range(50))}]
    return bodies


def median_ms(walker: Callable[[], Callable[[dict[str, Any]], Any]], bodies: list[dict[str, Any]],
              timed_from: int = 0) -> float:
    """Median over `ROUNDS` of the milliseconds a fresh `walker()` took over `bodies[timed_from:]`,
    after being given the bodies before those untimed."""
    rounds = []
    for _ in range(ROUNDS):
        walk = walker()
        for body in bodies[:timed_from]:
            walk(body)
        started = time.perf_counter()
        for body in bodies[timed_from:]:
            walk(body)
        rounds.append((time.perf_counter() - started) * 1000)
    return statistics.median(rounds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=200)
    args = parser.parse_args()
    bodies = requests(args.steps)
    free = SurrogateFree()
    assert all(free(body) == without_surrogates(body) for body in bodies)
    whole, incremental = median_ms(lambda: without_surrogates, bodies), median_ms(SurrogateFree, bodies)
    figures = {
        "steps": args.steps,
        "run_ms": round(incremental, 2),
        "run_ms_whole_walk": round(whole, 2),
        "last_step_ms": round(median_ms(SurrogateFree, bodies, len(bodies) - 1), 3),
        "last_step_ms_whole_walk": round(median_ms(lambda: without_surrogates, bodies[-1:]), 3),
        "speedup": round(whole / incremental, 1),
    }
    print(f"{args.steps} steps: {figures['run_ms']} ms in all, {figures['last_step_ms']} ms for the last step "
          f"(whole walk as before: {figures['run_ms_whole_walk']} ms, {figures['last_step_ms_whole_walk']} ms; "
          f"{figures['speedup']}x)")
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
