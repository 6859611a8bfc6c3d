"""What the sandbox's own disk limit (sandbox/disk.py) costs per command, measured in one run.

The same trivial command in two sandboxes of one image, one without `disk_size` (the
baseline) and one with it (a Docker API call measuring the writable layer after each
command), first with an empty layer, then with 2,000 small files written to /testbed (the
engine walks the layer to measure it).

    python benchmarks/disk_limit.py [--n 100]

The last line is one JSON object with the figures (milliseconds, medians).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

from sandbox.docker import SandboxSpec, connect, start_sandbox
from sandbox.images import default_image


def median_ms(box: object, n: int) -> float:
    samples = []
    for _ in range(n):
        start = time.perf_counter()
        box.run("true")  # type: ignore[attr-defined]
        samples.append((time.perf_counter() - start) * 1000)
    return round(statistics.median(samples), 2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100, help="commands per figure")
    n = parser.parse_args().n
    client = connect()
    image = default_image()
    figures: dict[str, float] = {}
    for files in (0, 2000):
        for name, disk in (("none", None), ("limit", "4g")):
            spec = SandboxSpec(image=image, run_id="bench-disk-limit", disk_size=disk)
            with start_sandbox(spec, client) as box:
                if files:
                    box.run(f"mkdir -p /testbed/many && for i in $(seq {files}); do echo $i > /testbed/many/$i; done")
                figures[f"{name}_{files}_files_ms"] = median_ms(box, n)
    for files in (0, 2000):
        figures[f"ratio_{files}_files"] = round(figures[f"limit_{files}_files_ms"] / figures[f"none_{files}_files_ms"], 2)
    print(f"a command with the disk limit: {figures['ratio_0_files']}x the baseline with an empty layer, "
          f"{figures['ratio_2000_files']}x with 2,000 files written")
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
