"""The real SWE-bench data that the `swebench_data` test tier reads (official logs, real rows).

One place says where it is: $SWEBENCH_DATA, else $MOE_AGENT_SHARED/data/swebench, else
`../shared/data/swebench` beside the clone (this machine and CI). It is third-party data and
is never copied into the repository. Nothing here reads it at import: the readers return
nothing when it is absent, so a bare clone collects cleanly and the tier is skipped.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from functools import cache
from pathlib import Path

from evals.datasets import TaskInstance, load_instances

ENV = "SWEBENCH_DATA"
# The official evaluation logs of one public submission, with an index of its instances.
OFFICIAL_RUN = Path("eval_logs") / "composio_swekit_langgraph_verified_2024-09"
# What the tier reads; all must be there for it to run.
EXPECTED = (Path("tasks") / "swe-bench_verified.jsonl", Path("tasks") / "swe-bench_lite_test.jsonl",
            OFFICIAL_RUN / "index.jsonl")


def swebench_data(env: Mapping[str, str] = os.environ) -> Path:
    """The data folder: $SWEBENCH_DATA, else $MOE_AGENT_SHARED/data/swebench, else ../shared beside the clone."""
    if env.get(ENV):
        return Path(env[ENV]).expanduser()
    shared = Path(env["MOE_AGENT_SHARED"]) if env.get("MOE_AGENT_SHARED") else Path(__file__).resolve().parents[2] / "shared"
    return shared / "data" / "swebench"


SWEBENCH = swebench_data()
LOGS = SWEBENCH / OFFICIAL_RUN


def missing() -> str | None:
    """None when the data is there; else one line saying where to put it."""
    absent = [str(path) for path in EXPECTED if not (SWEBENCH / path).is_file()]
    if not absent:
        return None
    what = f"no SWE-bench data at {SWEBENCH}" if not SWEBENCH.is_dir() else f"{SWEBENCH} lacks {', '.join(absent)}"
    return f"{what}: put the data (tasks/, eval_logs/) there, or set ${ENV} to where it is"


def official_index() -> list[dict]:
    """The official run's index (instance_id, dir, run_id, resolved per line); [] without the data."""
    path = LOGS / "index.jsonl"
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


@cache
def instances(name: str) -> dict[str, TaskInstance]:
    """The rows of tasks/`name` by instance id, read once; only called from tests of the tier."""
    return {i.instance_id: i for i in load_instances(SWEBENCH / "tasks" / name)}


def verified() -> dict[str, TaskInstance]:
    """SWE-bench Verified's rows by instance id."""
    return instances("swe-bench_verified.jsonl")


def lite() -> dict[str, TaskInstance]:
    """SWE-bench Lite's test rows (a 2024 revision) by instance id."""
    return instances("swe-bench_lite_test.jsonl")
