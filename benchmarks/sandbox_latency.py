"""Sandbox latency, measured in one run on one image against the alternatives.

Compares a trivial command through our persistent session with `docker exec` via the CLI
(what mini-swe-agent does per command) and the SDK's `exec_run`; file reads and writes of
the sandbox (through its internal shell) with Docker's archive API; container
create+start+remove with the network off, with the sandbox's options against Docker's
plain `--network none` (which still runs libnetwork's prestart hook); a whole sandbox
(shells attached, /etc/hosts written, one command, removed); and placing a 50 MB,
5,000-file repository by copy (`put_archive`) and by bind mount.

    python benchmarks/sandbox_latency.py [--n 200]

The last line is one JSON object with the figures.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import subprocess
import tarfile
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from sandbox.docker import SandboxSpec, connect, container_options, start_sandbox
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


def one_file_tar(name: str, data: bytes) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        info = tarfile.TarInfo(name)
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


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
        files = max(args.n // 4, 20)
        source = os.urandom(10_000).hex().encode()  # a 20 KB source file, what the editor reads and writes
        box.write_file("bench.txt", source)
        results["read_file"] = summary(timed(lambda: box.read_file("bench.txt"), files))
        results["read_file_archive_api"] = summary(timed(lambda: b"".join(box.container.get_archive(
            "/testbed/bench.txt")[0]), files))
        results["write_file"] = summary(timed(lambda: box.write_file("bench.txt", source), files))
        packed = one_file_tar("bench.txt", source)
        results["write_file_archive_api"] = summary(timed(lambda: box.container.put_archive("/testbed", packed), files))

    def create_start_remove(network_disabled: bool) -> Callable[[], None]:
        """One container cycle with the sandbox's own options; `False` is plain `--network none`."""
        def cycle() -> None:
            options = container_options(spec, "benchmark") | {"network_disabled": network_disabled}
            container = client.containers.create(image, **options)
            container.start()
            container.remove(force=True)
        return cycle

    for name, disabled in (("create_start_remove", True), ("create_start_remove_network_none", False)):
        create_start_remove(disabled)()
        results[name] = summary(timed(create_start_remove(disabled), args.starts))

    def ready_and_closed() -> None:
        with start_sandbox(spec, client) as box:
            box.run("true")

    results["sandbox_ready_and_closed"] = summary(timed(ready_and_closed, args.starts))

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
        "read_file_median_ms": results["read_file"]["median_ms"],
        "read_file_archive_api_median_ms": results["read_file_archive_api"]["median_ms"],
        "write_file_median_ms": results["write_file"]["median_ms"],
        "write_file_archive_api_median_ms": results["write_file_archive_api"]["median_ms"],
        "create_start_remove_median_ms": results["create_start_remove"]["median_ms"],
        "create_start_remove_network_none_median_ms": results["create_start_remove_network_none"]["median_ms"],
        "ratio_vs_network_none": round(results["create_start_remove_network_none"]["median_ms"]
                                       / results["create_start_remove"]["median_ms"], 2),
        "sandbox_ready_and_closed_median_ms": results["sandbox_ready_and_closed"]["median_ms"],
        "repo_copy_start_median_ms": results["start_with_copy"]["median_ms"],
        "repo_mount_start_median_ms": results["start_with_mount"]["median_ms"],
    }
    width = max(map(len, results))
    for name, stats in results.items():
        print(f"{name:<{width}}  median {stats['median_ms']:9.3f} ms   p95 {stats['p95_ms']:9.3f} ms")
    print(f"persistent session is {figures['ratio_vs_docker_exec']}x faster than `docker exec` "
          f"and {figures['ratio_vs_sdk_exec_run']}x faster than exec_run (targets: <= 1 ms, >= 50x)")
    print(f"20 KB file read {figures['read_file_median_ms']} ms vs {figures['read_file_archive_api_median_ms']} ms "
          f"by the archive API; written (atomically) {figures['write_file_median_ms']} ms vs "
          f"{figures['write_file_archive_api_median_ms']} ms")
    print(f"create+start+remove {figures['create_start_remove_median_ms']} ms (target <= 300 ms); "
          f"{figures['ratio_vs_network_none']}x faster than Docker's own --network none "
          f"({figures['create_start_remove_network_none_median_ms']} ms); a ready sandbox, used once and "
          f"closed: {figures['sandbox_ready_and_closed_median_ms']} ms")
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
