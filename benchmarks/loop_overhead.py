"""What the loop itself costs per step, outside the model call and the sandbox.

A 50-step scripted session (each step a `bash true` in a real container) against a
zero-latency OpenAI-compatible server in another process, so this process's peak RSS is
the agent's alone. Baseline in the same run: a bare `openai` SDK loop over the same
server with the same growing history, in its own process.

    python benchmarks/loop_overhead.py [--steps 50]

The last line is one JSON object with the figures.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SERVER = textwrap.dedent("""
    import sys, time
    from tests.fakes.openai_server import FakeOpenAIServer, Reply, tool_call
    steps = int(sys.argv[1])
    server = FakeOpenAIServer(max_model_len=1_000_000)
    def script(body):
        done = sum(1 for m in body["messages"] if m["role"] == "assistant")
        if done >= steps - 1:
            return Reply(tool_calls=[tool_call("submit", {})])
        return Reply(tool_calls=[tool_call("bash", {"command": "true"})])
    server.script = script
    server.start()
    print(server.base_url, flush=True)
    sys.stdin.read()
""")

BARE_SDK = textwrap.dedent("""
    import json, resource, sys, time
    import openai
    client = openai.OpenAI(base_url=sys.argv[1], api_key="x", max_retries=0)
    messages = [{"role": "system", "content": "s" * 4000}, {"role": "user", "content": "task"}]
    times = []
    for i in range(int(sys.argv[2])):
        t = time.perf_counter()
        r = client.chat.completions.create(model="fake-model", messages=messages)
        times.append(time.perf_counter() - t)
        messages.append({"role": "assistant", "content": None,
                         "tool_calls": [c.to_dict() for c in r.choices[0].message.tool_calls or []]})
        for c in r.choices[0].message.tool_calls or []:
            messages.append({"role": "tool", "tool_call_id": c.id, "content": ""})
    times.sort()
    print(json.dumps({"median_ms": times[len(times) // 2] * 1000,
                      "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
""")


class Timed:
    """Wraps an object and adds up the seconds spent in one of its methods."""

    def __init__(self, inner: object, method: str) -> None:
        self._inner, self._method, self.seconds, self.calls = inner, method, 0.0, 0

    def __getattr__(self, name: str):
        value = getattr(self._inner, name)
        if name != self._method:
            return value

        def timed(*args, **kwargs):
            start = time.perf_counter()
            try:
                return value(*args, **kwargs)
            finally:
                self.seconds += time.perf_counter() - start
                self.calls += 1

        return timed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=50)
    args = parser.parse_args()

    server = subprocess.Popen([sys.executable, "-c", SERVER, str(args.steps)], cwd=ROOT, stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    base_url = server.stdout.readline().strip()
    try:
        bare = json.loads(subprocess.run([sys.executable, "-c", BARE_SDK, base_url, str(args.steps)], cwd=ROOT,
                                         capture_output=True, text=True, check=True).stdout)
        figures = run_agent(base_url, args.steps)
    finally:
        server.stdin.close()
        server.wait(timeout=10)
    figures["bare_sdk_call_median_ms"] = round(bare["median_ms"], 3)
    figures["bare_sdk_peak_rss_mb"] = round(bare["peak_rss_mb"], 1)
    figures["rss_ratio_vs_bare_sdk"] = round(figures["peak_rss_mb"] / bare["peak_rss_mb"], 2)
    print(f"{figures['steps']} steps, {figures['per_step_ms']:.2f} ms per step in all: "
          f"model {figures['model_ms_per_step']:.2f} ms, sandbox {figures['sandbox_ms_per_step']:.2f} ms, "
          f"loop overhead {figures['per_step_overhead_ms']:.2f} ms (target <= 5 ms)")
    print(f"peak RSS {figures['peak_rss_mb']:.0f} MB (target <= 150 MB; bare openai SDK loop: "
          f"{figures['bare_sdk_peak_rss_mb']:.0f} MB, ratio {figures['rss_ratio_vs_bare_sdk']})")
    print(f"prefix reuse {figures['prefix_reuse']:.4f} (target >= 0.97)")
    print(json.dumps(figures))


def run_agent(base_url: str, steps: int) -> dict[str, float]:
    from agent.config import LoopSettings, ModelSettings
    from agent.loop import Agent
    from agent.model import OpenAIModel
    from agent.trajectory import TrajectoryWriter
    from sandbox.docker import SandboxSpec, connect, start_sandbox
    from sandbox.images import ImageRecipe, build_image
    from tools.base import ToolContext
    from tools.toolset import build_toolset

    client = connect()
    image = build_image(ImageRecipe(), client, offline=True)
    with start_sandbox(SandboxSpec(image=image, run_id="bench-loop"), client) as box:
        box.run("git init -q . && git commit -q --allow-empty -m init")
        model = Timed(OpenAIModel(ModelSettings(base_url=base_url, name="fake-model")), "query")
        sandbox = Timed(box, "run")
        trajectory = TrajectoryWriter(Path(tempfile.mkdtemp()) / "trajectory.jsonl")
        agent = Agent(model, build_toolset(), ToolContext(sandbox=sandbox), settings=LoopSettings(step_limit=steps + 5),
                      trajectory=trajectory)
        start = time.perf_counter()
        result = agent.run("benchmark task")
        total = time.perf_counter() - start
    assert result.status == "submitted", result.message
    n = result.steps
    per_step = total / n * 1000
    model_ms, sandbox_ms = model.seconds / n * 1000, sandbox.seconds / n * 1000
    return {
        "steps": n,
        "per_step_ms": round(per_step, 3),
        "model_ms_per_step": round(model_ms, 3),
        "sandbox_ms_per_step": round(sandbox_ms, 3),
        "per_step_overhead_ms": round(per_step - model_ms - sandbox_ms, 3),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "prefix_reuse": result.prefix_reuse,
    }


if __name__ == "__main__":
    main()
