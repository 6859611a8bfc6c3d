"""Endpoint slots and round-robin against real scripted servers: what each server actually saw."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from agent.config import ModelSettings, load_settings
from agent.endpoints import EndpointPool, Lease, SlotTable, ThreadSlots
from agent.errors import UsageError
from agent.model import ModelError, OutOfTime
from tests.fakes.openai_server import Delay, FakeOpenAIServer, Reply, server_error

DELAY = 0.3


def conversation(n: int) -> list[dict[str, str]]:
    return [{"role": "system", "content": "You fix bugs."}, {"role": "user", "content": f"task {n}"}]


class ArrivalLog:
    """A script answering after DELAY and noting when each request arrived.

    The server holds a request at least DELAY, and a limited client sends the next one on a
    slot only after the previous answer, so requests whose [arrival, arrival + DELAY)
    windows overlap were in flight together: the peak overlap is a floor on the server's
    true peak, and exactly it when the limit holds.
    """

    def __init__(self) -> None:
        self.arrivals: list[float] = []

    def __call__(self, body: dict) -> Delay:
        self.arrivals.append(time.monotonic())
        return Delay(DELAY, Reply("ok"))

    def peak(self) -> int:
        return max(sum(1 for other in self.arrivals if start <= other < start + DELAY) for start in self.arrivals)


def query_all(model: EndpointPool, conversations: list[int], threads: int = 6) -> None:
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(lambda n: model.query(conversation(n), []), conversations))


def test_max_concurrency_caps_requests_in_flight() -> None:
    log = ArrivalLog()
    with FakeOpenAIServer(log) as server:
        query_all(EndpointPool(server.model_settings(max_concurrency=2)), list(range(6)))
    assert len(log.arrivals) == 6
    assert log.peak() == 2


def test_without_a_limit_every_thread_is_in_flight() -> None:
    log = ArrivalLog()
    with FakeOpenAIServer(log) as server:
        query_all(EndpointPool(server.model_settings()), list(range(6)))
    assert log.peak() == 6  # the measure sees overlap when there is some


def test_conversations_are_dealt_round_robin_and_stay_on_their_server() -> None:
    with FakeOpenAIServer([Reply("a")] * 6) as first, FakeOpenAIServer([Reply("b")] * 6) as second:
        settings = first.model_settings(base_urls=[first.base_url, second.base_url])
        pool = EndpointPool(settings)
        replies = [pool.query(conversation(n), []).content for n in range(4)]
        later_turn = conversation(1) + [{"role": "assistant", "content": "b"}, {"role": "user", "content": "go on"}]
        again = pool.query(later_turn, []).content
    assert replies == ["a", "b", "a", "b"]
    assert again == "b"  # the conversation's prefix is cached on the server it started on
    assert (len(first.requests), len(second.requests)) == (2, 3)


def test_a_failed_request_gives_its_slot_back() -> None:
    with FakeOpenAIServer([server_error(), Reply("fine")]) as server:
        pool = EndpointPool(server.model_settings(max_concurrency=1, retries=0))
        with pytest.raises(ModelError):
            pool.query(conversation(1), [])
        assert pool.query(conversation(2), []).content == "fine"  # would block forever with the slot lost


def test_thread_slots_block_until_a_slot_frees() -> None:
    slots = ThreadSlots(["http://a/v1"], limit=1)
    held = slots.acquire("one")
    got: list[Lease] = []
    waiter = threading.Thread(target=lambda: got.append(slots.acquire("two")))
    waiter.start()
    waiter.join(timeout=0.3)
    assert waiter.is_alive() and not got
    slots.release(held)
    waiter.join(timeout=5)
    assert got and got[0].endpoint == "http://a/v1"


def test_a_lease_never_given_back_expires() -> None:
    table = SlotTable(["http://a/v1"], limit=1, lease_seconds=10)
    table.take("http://a/v1", now=0.0)  # its holder died
    assert not table.free("http://a/v1", now=5.0)
    assert table.free("http://a/v1", now=10.5)


def test_config_checks_endpoints_and_limit() -> None:
    settings = load_settings(None, overrides={"model.base_urls": ["http://a:8000/v1", "http://b:8000/v1"],
                                              "model.max_concurrency": 8}, env={})
    assert settings.model.endpoints == ["http://a:8000/v1", "http://b:8000/v1"]
    assert ModelSettings().endpoints == [ModelSettings().base_url]
    with pytest.raises(UsageError, match=r"model\.base_urls: 'gpu-box:8000' should be an http\(s\) URL"):
        load_settings(None, overrides={"model.base_urls": ["gpu-box:8000"]}, env={})
    with pytest.raises(UsageError, match=r"model\.max_concurrency: Input should be greater than 0"):
        load_settings(None, overrides={"model.max_concurrency": 0}, env={})


def test_the_wait_for_a_slot_ends_at_the_run_s_deadline() -> None:
    """A run whose endpoint stays busy ends with `time_limit`, not blocked behind other runs' requests."""
    with FakeOpenAIServer([Reply("later")]) as server:
        pool = EndpointPool(server.model_settings(max_concurrency=1))
        held = pool._slots.acquire("another run")  # its request is in flight on the one slot
        with pytest.raises(OutOfTime, match="waiting for a free slot at http://127.0.0.1"):
            pool.query(conversation(2), [], deadline=time.monotonic() + 0.2)
        assert server.requests == []  # nothing was sent past the deadline
        pool._slots.release(held)
        assert pool.query(conversation(2), [], deadline=time.monotonic() + 30).content == "later"


def test_thread_slots_give_up_at_the_deadline_and_keep_no_lease() -> None:
    slots = ThreadSlots(["http://a/v1"], limit=1)
    held = slots.acquire("one")
    with pytest.raises(OutOfTime):
        slots.acquire("two", deadline=time.monotonic() + 0.05)
    slots.release(held)
    assert slots.acquire("two", deadline=time.monotonic()).endpoint == "http://a/v1"  # free now: no wait needed
