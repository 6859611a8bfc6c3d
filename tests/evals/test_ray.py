"""A real two-node Ray cluster on this machine: the batch across both, one node killed mid-run.

The head and a second node are `ray start` processes with their own resource labels, on
loopback addresses of their own (127.0.0.2, 127.0.0.3). A node's processes are found by
their session, a marker in their environment and their parents, so the test kills exactly
its own processes by PID, and checks that none survives. Tests run in file order; the second node is killed in the batch test, after
the tests that need both nodes.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import pytest

# The ray extra is not in `all` (about 240 MB); .ci/setup installs it, so CI runs these.
ray = pytest.importorskip("ray", reason="needs the ray extra: pip install 'moe-agent[ray]'")

from agent.config import load_settings
from agent.endpoints import EndpointPool
from evals.executors import RayExecutor
from evals.grade import GradeSettings, grade_predictions, read_predictions
from evals.run import PREDICTIONS, RESULTS, TRAJECTORIES, BatchOptions, run_batch
from evals.sample_tasks import make_sample_project, sample_image_builder
from sandbox import cleanup
from tests.fakes.openai_server import Delay, FakeOpenAIServer, Reply, tool_call

pytestmark = [pytest.mark.docker, pytest.mark.timeout(600)]
ROOT = Path(__file__).resolve().parents[2]
MARKER = "MOE_AGENT_TEST_RAY_NODE"
HEAD_IP, WORKER_IP = "127.0.0.2", "127.0.0.3"
NODE_MEMORY = ["--object-store-memory=100000000"]
STARTUP_SECONDS = 180
FIRST_REPLY_DELAY = 8.0  # long enough that every slot of both nodes is busy at once


@dataclass
class RayNode:
    name: str
    marker: str
    process: subprocess.Popen[bytes]
    log: Path

    def pids(self) -> list[int]:
        """Live processes of the node: its session, its marked environment, and their children.

        The raylet's workers run in sessions of their own, and a renamed process may have lost
        its environment to its new title, so no single test finds them all.
        """
        table: dict[int, tuple[int, int, bool]] = {}  # pid -> (parent, session, marked)
        for entry in Path("/proc").iterdir():
            try:
                if not entry.name.isdigit():
                    continue
                state, parent, _, session = (entry / "stat").read_text().rsplit(") ", 1)[1].split()[:4]
                marked = f"{MARKER}={self.marker}".encode() in (entry / "environ").read_bytes().split(b"\0")
            except (OSError, ValueError):
                continue
            if state != "Z":
                table[int(entry.name)] = (int(parent), int(session), marked)
        found = {pid for pid, (_, session, marked) in table.items() if marked or session == self.process.pid}
        while children := {pid for pid, (parent, _, _) in table.items() if parent in found} - found:
            found |= children
        return sorted(found)

    def kill(self) -> list[int]:
        """SIGKILL every process of the node, as a lost machine would stop; the PIDs it had."""
        pids = self.pids()
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.process.wait(timeout=30)
        return pids


@dataclass
class RayCluster:
    address: str
    head: RayNode
    worker: RayNode


def free_port(host: str) -> int:
    with socket.socket() as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]


def start_node(name: str, args: list[str], temp_dir: Path) -> RayNode:
    marker = f"{name}-{uuid.uuid4().hex[:8]}"
    log = temp_dir / f"{name}.log"
    # Without RAY_AUTH_MODE a node turns token auth on if ~/.ray holds a token; the driver here has none.
    env = {**os.environ, MARKER: marker, "RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "disabled"}
    command = [sys.executable, "-m", "ray.scripts.scripts", "start", "--block", *args, f"--temp-dir={temp_dir}",
               *NODE_MEMORY, "--disable-usage-stats"]
    with log.open("wb") as out:
        process = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    node = RayNode(name, marker, process, log)
    deadline = time.monotonic() + STARTUP_SECONDS
    while "Ray runtime started" not in log.read_text(errors="replace"):
        if process.poll() is not None or time.monotonic() > deadline:
            node.kill()
            pytest.fail(f"ray node {name} did not start:\n{log.read_text(errors='replace')[-3000:]}")
        time.sleep(0.5)
    return node


@pytest.fixture(scope="module")
def cluster() -> Iterator[RayCluster]:
    # Short, not under tmp_path: Ray's unix socket paths must stay under 108 characters.
    temp_dir = Path(tempfile.mkdtemp(prefix="ray-", dir="/tmp"))
    port = free_port(HEAD_IP)
    nodes: list[RayNode] = []
    try:
        nodes.append(start_node("head", ["--head", f"--node-ip-address={HEAD_IP}", f"--port={port}", "--num-cpus=1",
                                         '--resources={"docker": 2, "head": 1}', "--include-dashboard=false"], temp_dir))
        nodes.append(start_node("worker2", [f"--address={HEAD_IP}:{port}", f"--node-ip-address={WORKER_IP}",
                                            "--num-cpus=1", '--resources={"docker": 2, "worker2": 1}'], temp_dir))
        yield RayCluster(f"{HEAD_IP}:{port}", nodes[0], nodes[1])
    finally:
        for node in nodes:
            node.kill()
        survivors = [pid for node in nodes for pid in node.pids()]
        shutil.rmtree(temp_dir, ignore_errors=True)
        assert not survivors, f"Ray processes survived: {survivors}"


@pytest.fixture(scope="module")
def executor(cluster: RayCluster) -> Iterator[RayExecutor]:
    ray_executor = RayExecutor(cluster.address)
    yield ray_executor
    ray_executor.close()


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    return make_sample_project(tmp_path_factory.mktemp("sample"), bugs=5, salt="ray")


class Solver:
    """Applies each task's gold patch with bash, then submits; counts each instance's first request.

    The first reply of an instance can wait; the second request of an instance means it got
    its first reply, so `waiting` is the set of instances in flight on the model right now.
    """

    def __init__(self, project, first_delay: float = 0.0) -> None:
        self.gold = {i.problem_statement: i for i in project.instances}
        self.first_delay = first_delay
        self.firsts: Counter[str] = Counter()
        self.waiting: set[str] = set()

    def __call__(self, body):
        task = body["messages"][1]["content"]
        instance = next(i for statement, i in self.gold.items() if statement in task)
        if not any(m["role"] == "tool" for m in body["messages"]):
            self.firsts[instance.instance_id] += 1
            self.waiting.add(instance.instance_id)
            command = f"git apply <<'PATCH'\n{instance.patch}\nPATCH"
            return Delay(self.first_delay, Reply(tool_calls=[tool_call("bash", {"command": command})]))
        self.waiting.discard(instance.instance_id)
        return Reply(tool_calls=[tool_call("submit", {})])


def settings_for(server: FakeOpenAIServer, **model):
    overrides = {"model.base_url": server.base_url, "model.name": "fake-model", "model.retries": 0}
    return load_settings(None, overrides=overrides | {f"model.{k}": v for k, v in model.items()}, env={})


def lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def remove_sandboxes(docker_client, pids: list[int]) -> None:
    """A killed node's workers could not remove their sandboxes: the engine still has them."""
    for leftover in cleanup.leftovers(docker_client):
        if leftover.pid in pids:
            docker_client.api.remove_container(leftover.id, force=True, v=True)


def flaky(item: str, output: Path, stop: threading.Event, attempts: Path) -> str:
    """Fails its first attempt at `once`, every attempt at `never`; writes a file for the rest."""
    (attempts / f"{item}-{uuid.uuid4().hex}").touch()
    tries = len(list(attempts.glob(f"{item}-*")))
    if item == "never" or (item == "once" and tries == 1):
        raise RuntimeError(f"{item}: attempt {tries} failed")
    (output / "files" / item).mkdir(parents=True)
    (output / "files" / item / "result.txt").write_text(f"{item} after {tries}")
    return f"{item} ok"


def linger(item: str, output: Path, stop: threading.Event, marks: Path) -> str:
    """Returns at once for `quick`; otherwise waits for `stop`, as the agent loop between steps."""
    if item == "quick":
        return "quick"
    (marks / "started").touch()
    if stop.wait(120):
        (marks / "stopped").touch()
        (output / "trajectories").mkdir()
        (output / "trajectories" / f"{item}.jsonl").write_text('{"type": "end", "status": "interrupted"}\n')
    return "lingered"


def ask(number: int, output: Path, stop: threading.Event, model) -> str:
    messages = [{"role": "system", "content": "s"}, {"role": "user", "content": f"conversation {number}"}]
    return model.query(messages, []).content


def test_the_cluster_offers_the_docker_slots_of_both_nodes(cluster, executor) -> None:
    resources = ray.cluster_resources()
    assert resources["docker"] == 4 and resources["head"] == 1 and resources["worker2"] == 1
    assert executor.in_flight == 4


def test_failed_tasks_are_resubmitted_a_bounded_number_of_times(executor, tmp_path) -> None:
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # workers cannot import tests
    attempts = tmp_path / "attempts"
    attempts.mkdir()
    output = tmp_path / "out"
    work = partial(flaky, attempts=attempts)
    results = dict(executor.map_unordered(work, ["once", "never", "fine"], output=output,
                                          failed=lambda item, why: f"failed: {why}"))
    assert results["once"] == "once ok" and results["fine"] == "fine ok"
    assert results["never"] == "failed: gave up after 3 submissions: never: attempt 3 failed"
    assert (output / "files" / "once" / "result.txt").read_text() == "once after 2"
    assert len(list(attempts.glob("never-*"))) == 3


def test_closing_the_stream_cancels_the_tasks_in_flight(executor, tmp_path) -> None:
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    marks = tmp_path / "marks"
    marks.mkdir()
    stream = executor.map_unordered(partial(linger, marks=marks), ["slow", "quick"], output=tmp_path / "out",
                                    failed=lambda item, why: why)
    assert next(stream) == ("quick", "quick")
    deadline = time.monotonic() + 60
    while not (marks / "started").exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert (marks / "started").exists()
    stream.close()  # what Ctrl-C in the caller does: ray.cancel, then a bounded wait for the tasks to end
    assert (marks / "stopped").exists()  # the cancelled task told its work to stop (it would wait 120s)
    # what the stopped work wrote (an interrupted instance's trajectory) came back to the caller's output
    assert (tmp_path / "out" / "trajectories" / "slow.jsonl").read_text() == '{"type": "end", "status": "interrupted"}\n'


def test_endpoint_limit_holds_across_ray_workers(executor) -> None:
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    arrivals: list[float] = []
    delay = 1.0

    def script(body):
        arrivals.append(time.monotonic())
        return Delay(delay, Reply("ok"))

    with FakeOpenAIServer(script) as server:
        model = executor.model_for_workers(EndpointPool(settings_for(server, max_concurrency=2).model))
        results = dict(executor.map_unordered(partial(ask, model=model), range(6), output=Path(tempfile.gettempdir()),
                                              failed=lambda item, why: why))
    assert set(results.values()) == {"ok"}
    # A request holds its slot at least `delay`; overlapping windows were in flight together.
    peak = max(sum(1 for other in arrivals if start <= other < start + delay) for start in arrivals)
    assert peak == 2  # 4 tasks ran at once, on two nodes; the shared limit let 2 ask at a time


def test_batch_survives_a_lost_node_and_matches_a_local_run(cluster, executor, project, docker_client, tmp_path):
    chosen = [project.instance(str(k)) for k in range(1, 6)]
    ids = sorted(i.instance_id for i in chosen)
    builder = sample_image_builder(docker_client, project)

    with FakeOpenAIServer(Solver(project)) as server:
        settings = settings_for(server)
        started = time.monotonic()
        run_batch(chosen, builder, EndpointPool(settings.model), settings,
                  BatchOptions(output=tmp_path / "local", model_name="fake-model", workers=2, instance_timeout=120))
        local_seconds = time.monotonic() - started  # images built here; reused by the Ray run

    solver = Solver(project, first_delay=FIRST_REPLY_DELAY)
    killed: list[int] = []

    def kill_second_node_when_all_slots_wait() -> None:
        deadline = time.monotonic() + 180
        while len(solver.waiting) < 4 and time.monotonic() < deadline:
            time.sleep(0.05)
        if len(solver.waiting) >= 4:  # the head holds 2, so the second node runs the other 2 right now
            killed.extend(cluster.worker.kill())

    with FakeOpenAIServer(solver) as server:
        settings = settings_for(server)
        killer = threading.Thread(target=kill_second_node_when_all_slots_wait)
        killer.start()
        started = time.monotonic()
        summary = run_batch(chosen, builder, EndpointPool(settings.model), settings,
                            BatchOptions(output=tmp_path / "ray", model_name="fake-model", instance_timeout=120),
                            executor=executor)
        ray_seconds = time.monotonic() - started
        killer.join()
    remove_sandboxes(docker_client, killed)
    print(f"\n5 instances: local executor (2 threads, building images) {local_seconds:.1f}s, "
          f"ray executor (4 slots, first reply {FIRST_REPLY_DELAY:.0f}s late, a node lost) {ray_seconds:.1f}s")

    assert killed and not cluster.worker.pids()
    assert any(count > 1 for count in solver.firsts.values())  # work lost with the node ran again on the head
    assert sorted(o.instance_id for o in summary.outcomes) == ids
    assert {o.status for o in summary.outcomes} == {"submitted"}
    local, remote = lines(tmp_path / "local" / PREDICTIONS), lines(tmp_path / "ray" / PREDICTIONS)
    assert sorted(p["instance_id"] for p in remote) == ids  # each exactly once
    assert {p["instance_id"]: p["model_patch"] for p in remote} == {p["instance_id"]: p["model_patch"] for p in local}
    assert sorted(r["instance_id"] for r in lines(tmp_path / "ray" / RESULTS)) == ids
    for outcome in summary.outcomes:
        trajectory = Path(outcome.trajectory)
        assert trajectory == tmp_path / "ray" / TRAJECTORIES / f"{outcome.instance_id}.jsonl"
        assert trajectory.is_file() and trajectory.stat().st_size > 0

    graded_local = grade_predictions(chosen, read_predictions(tmp_path / "local" / PREDICTIONS), builder,
                                     GradeSettings(run_id="local", log_root=tmp_path / "logs", report_dir=tmp_path))
    graded_ray = grade_predictions(chosen, read_predictions(tmp_path / "ray" / PREDICTIONS), builder,
                                   GradeSettings(run_id="ray", log_root=tmp_path / "logs", report_dir=tmp_path),
                                   executor=executor)
    assert sorted(graded_ray.report["resolved_ids"]) == sorted(graded_local.report["resolved_ids"]) == ids
    for instance_id in ids:  # the logs came back from the node into the official layout
        assert (graded_ray.run_dir / instance_id / "report.json").is_file()
        assert (graded_ray.run_dir / instance_id / "test_output.txt").is_file()


def test_cli_runs_and_grades_on_the_cluster(cluster, project, tmp_path) -> None:
    with FakeOpenAIServer(Solver(project)) as server:
        env = {**os.environ, "OPENAI_BASE_URL": server.base_url, "AGENT_MODEL": "fake-model", "HOME": str(tmp_path)}
        common = ["--dataset", str(project.dataset), "--filter", r"-1$", "--repos", str(project.mirrors),
                  "--recipes", str(project.recipes), "--executor", "ray", "--ray-address", cluster.address]
        out = tmp_path / "cli-out"
        run = subprocess.run([sys.executable, "-m", "agent", "eval", "run", *common, "--output", str(out),
                              "--images", "build"], env=env, capture_output=True, text=True, timeout=300, cwd=ROOT)
        assert run.returncode == 0, run.stderr
    assert [p["instance_id"] for p in lines(out / PREDICTIONS)] == [project.instance("1").instance_id]
    graded = subprocess.run([sys.executable, "-m", "agent", "eval", "grade", *common, "--predictions",
                             str(out / PREDICTIONS), "--run-id", "cli", "--build", "--log-dir", str(tmp_path / "logs"),
                             "--report-dir", str(tmp_path)], env=env, capture_output=True, text=True, timeout=300,
                            cwd=ROOT)
    assert graded.returncode == 0, graded.stderr + graded.stdout
    report = json.loads((tmp_path / "fake-model.cli.json").read_text())
    assert report["resolved_ids"] == [project.instance("1").instance_id]
