"""Jobs at once (agent/parallel.py) and how attempts are planned (agent/attempts.py): in-process, fast."""

from __future__ import annotations

import threading

import pytest

from agent.attempts import AttemptPlan, attempt_models, attempt_seeds, docker_size, parallel_limit
from agent.config import ModelSettings
from agent.endpoints import EndpointPool
from agent.parallel import StopSignal, StoppableModel, StoppableSandbox, Stopped, run_parallel
from tests.fakes.openai_server import FakeOpenAIServer, Hang, Reply


def test_a_failing_job_is_its_result_and_the_others_finish() -> None:
    def boom(stop: StopSignal) -> int:
        raise RuntimeError("sandbox gone")

    results = run_parallel([lambda stop: 1, boom, lambda stop: 3], parallel=2)
    assert results[0] == 1 and results[2] == 3
    assert isinstance(results[1], RuntimeError) and str(results[1]) == "sandbox gone"


def test_the_stop_signal_ends_every_job_and_closes_what_they_hold() -> None:
    closed, ended = [], []

    def job(stop: StopSignal) -> str:
        stop.on_stop(lambda: closed.append(1))
        while not stop.wait(0.05):
            pass
        ended.append(1)
        return "stopped"

    stop = StopSignal()
    timer = threading.Timer(0.3, lambda: stop.set())  # what the main thread's handler does on a signal
    timer.start()
    assert run_parallel([job, job], parallel=2, stop=stop) == ["stopped", "stopped"]
    assert closed == [1, 1] and ended == [1, 1]
    with pytest.raises(Stopped):
        stop.check()


def test_attempts_at_once_are_bounded_by_the_model_slots_and_the_memory() -> None:
    settings = ModelSettings(base_urls=["http://a:1/v1", "http://b:1/v1"], max_concurrency=1)
    assert parallel_limit(5, settings, "1m") == 2  # two endpoints, one request each
    assert parallel_limit(5, ModelSettings(), "1m") == 5
    assert parallel_limit(5, ModelSettings(), "100000g") == 1  # no room for even two sandboxes
    assert (docker_size("4g"), docker_size("512m"), docker_size("2gb"), docker_size("10")) == (
        4 * 2**30, 512 * 2**20, 2 * 2**30, 10)
    with pytest.raises(ValueError):
        AttemptPlan(0)


def test_each_attempt_samples_with_its_own_seed_and_the_shared_slots() -> None:
    assert attempt_seeds(ModelSettings(extra_body={"seed": 40, "top_k": 5}), 3) == [40, 41, 42]
    random_base = attempt_seeds(ModelSettings(), 3)
    assert random_base == [random_base[0], random_base[0] + 1, random_base[0] + 2]
    with FakeOpenAIServer(lambda body: Reply("ok")) as server:
        pool = EndpointPool(server.model_settings(extra_body={"top_k": 5}))
        models = attempt_models(pool, [7, 8], temperature=1.1)
        for model in models:
            model.query([{"role": "user", "content": "hi"}], [])
        assert [(r["seed"], r["temperature"], r["top_k"]) for r in server.requests] == [(7, 1.1, 5), (8, 1.1, 5)]
        assert all(model._slots is pool._slots for model in models)


def test_a_stopped_attempt_abandons_its_request_and_its_sandbox_calls() -> None:
    with FakeOpenAIServer([Hang()]) as server:  # a server that never answers
        stop = StopSignal()
        model = StoppableModel(EndpointPool(server.model_settings(request_timeout=600)), stop)
        threading.Timer(0.3, stop.set).start()
        with pytest.raises(Stopped):
            model.query([{"role": "user", "content": "hi"}], [])
        in_flight = [t for t in threading.enumerate() if t.name == "moe-request" and t.is_alive()]
        assert in_flight and len(server.requests) == 1  # the request was abandoned, not waited for

    class Box:
        workdir = "/testbed"

        def run(self, command: str, timeout: float | None = None) -> str:
            stop.set()  # as if the sandbox were removed under the command
            raise OSError("connection closed")

    box = StoppableSandbox(Box(), StopSignal())
    stop = box._stop
    assert box.workdir == "/testbed"
    with pytest.raises(Stopped):
        box.run("sleep 100")


def test_a_request_failing_because_of_the_stop_is_the_interruption_not_a_model_error() -> None:
    from agent.model import ModelError

    stop = StopSignal()

    class ClosedUnderIt:
        def query(self, messages, tools, **options):
            stop.set()  # the batch stopped; its connection closed, and the request fails at once
            raise ModelError("connection closed")

    with pytest.raises(Stopped):
        StoppableModel(ClosedUnderIt(), stop).query([{"role": "user", "content": "hi"}], [])

    class Refused:
        def query(self, messages, tools, **options):
            raise ModelError("HTTP 400")

    with pytest.raises(ModelError):  # without a stop an error stays the model's
        StoppableModel(Refused(), StopSignal()).query([{"role": "user", "content": "hi"}], [])
