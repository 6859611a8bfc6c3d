"""The local executor, the batch's single writer on top of any executor, and the executor flags' errors."""

from __future__ import annotations

import json
import os
import pickle
import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Iterable, Iterator
from functools import partial
from pathlib import Path

import pytest

from agent.config import load_settings
from agent.errors import EnvironmentProblem, UsageError
from evals.datasets import TaskInstance
from evals.executors import LocalExecutor, NodeLocal, make_executor
from evals.run import PREDICTIONS, RESULTS, BatchOptions, InstanceOutcome, finished_ids, run_batch

ROOT = Path(__file__).resolve().parents[2]


def instance(name: str) -> TaskInstance:
    return TaskInstance.model_validate({"repo": "o/r", "instance_id": f"o__r-{name}", "base_commit": "0" * 40,
                                        "version": "1.0", "problem_statement": f"task {name}",
                                        "FAIL_TO_PASS": [], "PASS_TO_PASS": []})


def test_local_executor_runs_each_item_once_within_its_workers(tmp_path) -> None:
    lock, running, peak, started = threading.Lock(), [0], [0], []
    barrier = threading.Barrier(3, timeout=10)

    def work(item: int, output: Path, stop: threading.Event) -> int:
        with lock:
            running[0] += 1
            peak[0] = max(peak[0], running[0])
        if item < 3:
            barrier.wait()  # the first three overlap for sure
        with lock:
            running[0] -= 1
        return item * 10

    results = dict(LocalExecutor(3).map_unordered(work, range(8), output=tmp_path, failed=lambda i, why: -1,
                                                  on_start=started.append))
    assert results == {i: i * 10 for i in range(8)}
    assert sorted(started) == list(range(8))
    assert peak[0] == 3


def test_local_executor_turns_an_exception_into_the_items_failure(tmp_path) -> None:
    def work(item: str, output: Path, stop: threading.Event) -> str:
        if item == "bad":
            raise RuntimeError("the engine went away\nand more detail")
        (output / f"{item}.txt").write_text(item)
        return "ok"

    results = dict(LocalExecutor(2).map_unordered(work, ["good", "bad"], output=tmp_path,
                                                  failed=lambda item, why: f"failed: {why}"))
    assert results == {"good": "ok", "bad": "failed: the engine went away"}
    assert (tmp_path / "good.txt").read_text() == "good"


def test_closing_the_stream_stops_the_work_in_flight_and_starts_no_more(tmp_path) -> None:
    started, ended = [], []
    second_started = threading.Event()

    def work(item: int, output: Path, stop: threading.Event) -> str:
        started.append(item)
        if item == 0:
            second_started.wait(10)
            return "quick"
        second_started.set()
        ended.append("stopped" if stop.wait(30) else "ran out")
        return "slow"

    stream = LocalExecutor(2).map_unordered(work, range(6), output=tmp_path, failed=lambda i, why: why)
    assert next(stream) == (0, "quick")
    stream.close()  # what Ctrl-C in the caller does
    assert sorted(started) == [0, 1]
    assert ended == ["stopped"]


class ScriptedExecutor:
    """An executor that answers from a list, as a cluster with retries might (twice, or not at all)."""

    def __init__(self, answers: Callable[[TaskInstance, Callable[[TaskInstance, str], InstanceOutcome]],
                                          list[InstanceOutcome]]) -> None:
        self.answers = answers

    def map_unordered(self, work, items: Iterable[TaskInstance], *, output, failed, on_start=None,
                      ) -> Iterator[tuple[TaskInstance, InstanceOutcome]]:
        for item in items:
            if on_start:
                on_start(item)
            for outcome in self.answers(item, failed):
                yield item, outcome

    def images_for_workers(self, builder):
        return builder

    def model_for_workers(self, model):
        return model

    def sandboxes_for_workers(self, order, opener):
        return None

    def close(self) -> None:
        pass


def batch(executor, tmp_path: Path, instances: list[TaskInstance]):
    settings = load_settings(None, env={})
    options = BatchOptions(output=tmp_path / "out", model_name="m")
    return run_batch(instances, images=None, model=None, settings=settings, options=options, executor=executor)


def test_a_result_sent_twice_is_written_once(tmp_path) -> None:
    def twice(item, failed):
        outcome = InstanceOutcome(item.instance_id, "submitted", patch=f"diff for {item.instance_id}\n")
        return [outcome, outcome]

    chosen = [instance("a"), instance("b")]
    summary = batch(ScriptedExecutor(twice), tmp_path, chosen)
    predictions = (tmp_path / "out" / PREDICTIONS).read_text().splitlines()
    results = (tmp_path / "out" / RESULTS).read_text().splitlines()
    assert sorted(json.loads(line)["instance_id"] for line in predictions) == ["o__r-a", "o__r-b"]
    assert len(results) == 2 and len(summary.outcomes) == 2


def test_an_instance_the_executor_gave_up_on_is_an_error_tried_again_on_resume(tmp_path) -> None:
    def lost(item, failed):
        return [failed(item, "gave up after 3 submissions: the node died")]

    summary = batch(ScriptedExecutor(lost), tmp_path, [instance("a")])
    assert [(o.status, o.error) for o in summary.outcomes] == [("error", "gave up after 3 submissions: the node died")]
    assert finished_ids(tmp_path / "out") == set()
    assert json.loads((tmp_path / "out" / RESULTS).read_text())["error"].startswith("gave up")


def made(counter: list[int]) -> dict[str, int]:
    counter.append(1)
    return {"made": len(counter)}


def test_node_local_travels_as_its_recipe_and_is_made_once_per_process() -> None:
    counter: list[int] = []
    shared = NodeLocal(partial(made, counter))
    copy = pickle.loads(pickle.dumps(shared))  # what a worker receives; nothing made yet
    assert counter == []
    assert shared.get() == {"made": 1} and copy.get() == {"made": 1}
    assert shared.get() is copy.get() and len(counter) == 1
    assert shared.keys() == {"made": 1}.keys()  # attributes are the made object's


def free_port(host: str = "127.0.0.2") -> int:
    with socket.socket() as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]


def test_executor_flags_are_checked(monkeypatch) -> None:
    with pytest.raises(UsageError, match="--executor 'dask': use local or ray"):
        make_executor("dask")
    with pytest.raises(UsageError, match="--ray-address needs --executor ray"):
        make_executor("local", address="127.0.0.2:6379")
    for address in ("no-port-here", "ray://head:10001"):
        with pytest.raises(UsageError, match="use the head's host:port"):
            make_executor("ray", address=address)
    with pytest.raises(EnvironmentProblem, match=r"--ray-address 127\.0\.0\.2:\d+: no Ray cluster answers at"):
        make_executor("ray", address=f"127.0.0.2:{free_port()}")
    monkeypatch.setenv("RAY_ADDRESS", f"127.0.0.2:{free_port()}")  # a cluster that went away
    with pytest.raises(EnvironmentProblem, match=r"\$RAY_ADDRESS or the last 'ray start' here: no Ray cluster"):
        make_executor("ray")
    monkeypatch.delenv("RAY_ADDRESS")
    monkeypatch.setitem(sys.modules, "ray", None)  # as if Ray were not installed
    with pytest.raises(UsageError, match=r"pip install 'moe-agent\[ray\]'"):
        make_executor("ray")


def agent_cli(args: list[str], tmp_path: Path, hide_ray: bool = False) -> subprocess.CompletedProcess[str]:
    prelude = "import sys; sys.modules['ray'] = None; " if hide_ray else "import sys; "
    code = prelude + f"sys.argv = ['agent', *{args!r}]; from agent.cli import main; main()"
    env = {**os.environ, "HOME": str(tmp_path)}
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120, cwd=ROOT)


@pytest.mark.parametrize("command", [["eval", "run"], ["eval", "grade", "--gold", "--run-id", "r"]])
def test_cli_says_in_one_line_when_ray_is_missing_or_unreachable(command, tmp_path) -> None:
    dataset = tmp_path / "tasks.jsonl"
    row = instance("a").model_dump() | {"test_patch": "diff --git a/t.py b/t.py\n"}
    dataset.write_text(json.dumps(row) + "\n")
    args = [*command, "--dataset", str(dataset), "--executor", "ray"]

    missing = agent_cli(args, tmp_path, hide_ray=True)
    assert missing.returncode == 2, missing.stderr
    assert "pip install 'moe-agent[ray]'" in missing.stderr and "Traceback" not in missing.stderr
    assert len(missing.stderr.strip().splitlines()) == 1

    unreachable = agent_cli([*args, "--ray-address", f"127.0.0.2:{free_port()}"], tmp_path)
    assert unreachable.returncode == 3, unreachable.stderr
    assert "no Ray cluster answers at" in unreachable.stderr and "Traceback" not in unreachable.stderr


def test_the_slot_keeper_gives_up_when_the_run_s_time_is_out() -> None:
    """What Ray workers ask for a slot: within the seconds their run has left, else None (-> time_limit)."""
    import asyncio

    from evals.executors import SlotKeeper

    async def scenario() -> tuple[object, object, object]:
        keeper = SlotKeeper(["http://a/v1"], limit=1, lease_seconds=600)
        held = await keeper.acquire("one")
        late = await keeper.acquire("two", within=0.05)
        await keeper.release(held)
        return held, late, await keeper.acquire("two", within=0.05)

    held, late, later = asyncio.run(scenario())
    assert held is not None and late is None and later is not None
