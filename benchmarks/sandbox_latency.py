"""Sandbox latency, measured in one run on one image against the alternatives.

Compares a trivial command through our persistent session with `docker exec` via the CLI
(what mini-swe-agent does per command) and the SDK's `exec_run`; times container
create+start+remove with the network off; and times placing a 50 MB, 5,000-file
repository by copy (`put_archive`) and by bind mount.

    python benchmarks/sandbox_latency.py [--n 200]

The last line is one JSON object with the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from sandbox.docker import SandboxSpec, connect, start_sandbox
from sandbox.images import ImageRecipe, build_image


def timed(fn: Callable[[], object], n: int) -> list[float]:
    samples = []
    for _ in range(n):
        start = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - start) * 1000)
    return samples


def summary(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {
        "median_ms": round(statistics.median(ordered), 3),
        "p95_ms": round(ordered[min(len(ordered) - 1, int(len(ordered) * 0.95))], 3),
    }


def make_repo(root: Path, files: int = 5000, total_mb: int = 50) -> Path:
    size = total_mb * 1024 * 1024 // files
    for i in range(files):
        path = root / f"pkg{i // 100:03d}" / f"mod{i:04d}.py"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(os.urandom(size // 2).hex().encode()[:size])
    return root


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=200, help="samples per command method")
    parser.add_argument("--starts", type=int, default=20, help="samples of create+start+remove")
    args = parser.parse_args()

    client = connect()
    image = build_image(ImageRecipe(), client, offline=True)
    spec = SandboxSpec(image=image, run_id="bench-latency")
    results: dict[str, dict[str, float]] = {}

    with start_sandbox(spec, client) as box:
        box.run("true")
        results["session"] = summary(timed(lambda: box.run("true"), args.n))
        cli = ["docker", "exec", box.id, "true"]
        results["docker_exec_cli"] = summary(timed(lambda: subprocess.run(cli, check=True), max(args.n // 4, 20)))
        results["sdk_exec_run"] = summary(timed(lambda: box.container.exec_run("true"), max(args.n // 4, 20)))

    def create_start_remove() -> None:
        api = client.api
        host_config = api.create_host_config(network_mode="none", init=True, log_config={"type": "none"})
        container = api.create_container(image, command=["sleep", "infinity"], host_config=host_config)["Id"]
        api.start(container)
        api.remove_container(container, force=True)

    create_start_remove()
    results["create_start_remove"] = summary(timed(create_start_remove, args.starts))

    with tempfile.TemporaryDirectory() as tmp:
        repo = make_repo(Path(tmp) / "repo")

        def start_with(**placement: object) -> None:
            with start_sandbox(SandboxSpec(image=image, run_id="bench-latency", **placement), client) as box:
                assert box.run("test -f pkg049/mod4999.py").ok

        results["start_with_copy"] = summary(timed(lambda: start_with(copy_from=repo), 3))
        results["start_with_mount"] = summary(timed(lambda: start_with(mount=repo), 3))

    session = results["session"]["median_ms"]
    figures = {
        "session_median_ms": session,
        "session_p95_ms": results["session"]["p95_ms"],
        "docker_exec_median_ms": results["docker_exec_cli"]["median_ms"],
        "sdk_exec_run_median_ms": results["sdk_exec_run"]["median_ms"],
        "ratio_vs_docker_exec": round(results["docker_exec_cli"]["median_ms"] / session, 1),
        "ratio_vs_sdk_exec_run": round(results["sdk_exec_run"]["median_ms"] / session, 1),
        "create_start_remove_median_ms": results["create_start_remove"]["median_ms"],
        "repo_copy_start_median_ms": results["start_with_copy"]["median_ms"],
        "repo_mount_start_median_ms": results["start_with_mount"]["median_ms"],
    }
    width = max(map(len, results))
    for name, stats in results.items():
        print(f"{name:<{width}}  median {stats['median_ms']:9.3f} ms   p95 {stats['p95_ms']:9.3f} ms")
    print(f"persistent session is {figures['ratio_vs_docker_exec']}x faster than `docker exec` "
          f"and {figures['ratio_vs_sdk_exec_run']}x faster than exec_run (targets: <= 1 ms, >= 50x)")
    print(f"create+start+remove {figures['create_start_remove_median_ms']} ms (target <= 300 ms)")
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
