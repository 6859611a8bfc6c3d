"""Sharing model servers: a cap on requests in flight per endpoint, and conversations dealt round-robin.

A self-hosted vLLM/SGLang server is fastest with a full batch, and slower past it: extra
requests wait in its queue or get preempted and recomputed when the KV cache runs out. So
the client keeps at most `model.max_concurrency` requests in flight per endpoint. With
several servers (`model.base_urls`), each conversation is dealt to the next server in turn
and stays there, so its growing prefix stays in that server's cache.

`SlotTable` is the bookkeeping; `ThreadSlots` shares it between the threads of one
process. Workers on several machines share one table held elsewhere (a Ray actor, in
`evals.executors`) through the same `EndpointSlots` protocol.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import threading
import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from agent.config import ModelSettings
from agent.redaction import public_url
from agent.model import ModelProgress, ModelReply, OpenAIModel, OutOfTime

REMEMBERED_CONVERSATIONS = 4096


@dataclass(frozen=True)
class Lease:
    """One request's slot on one endpoint; handed back with `release`."""

    endpoint: str
    number: int


class EndpointSlots(Protocol):
    def acquire(self, conversation: str, deadline: float | None = None) -> Lease:
        """The conversation's endpoint, once it has a free slot; blocks until then.

        `deadline` (`time.monotonic()` seconds; None: none) caps the wait: `OutOfTime` when
        it comes first, so a run's time limit also covers the queue for a slot.
        """
        ...

    def release(self, lease: Lease) -> None: ...


class SlotTable:
    """Which endpoint each conversation uses and which leases are out; no locking of its own.

    A lease older than `lease_seconds` is taken back, so a holder that died (a lost worker
    node) cannot keep its slot forever.
    """

    def __init__(self, endpoints: Sequence[str], limit: int | None, lease_seconds: float | None = None) -> None:
        if not endpoints:
            raise ValueError("no endpoints")
        self.endpoints = list(endpoints)
        self.limit = limit
        self.lease_seconds = lease_seconds
        self._turn = itertools.count()
        self._numbers = itertools.count()
        self._assigned: OrderedDict[str, str] = OrderedDict()
        self._held: dict[int, tuple[str, float]] = {}

    def endpoint_for(self, conversation: str) -> str:
        endpoint = self._assigned.pop(conversation, None)
        if endpoint is None:
            endpoint = self.endpoints[next(self._turn) % len(self.endpoints)]
        self._assigned[conversation] = endpoint  # most recently used last
        if len(self._assigned) > REMEMBERED_CONVERSATIONS:
            self._assigned.popitem(last=False)
        return endpoint

    def free(self, endpoint: str, now: float) -> bool:
        if self.lease_seconds is not None:
            for number in [n for n, (_, since) in self._held.items() if now - since > self.lease_seconds]:
                del self._held[number]
        in_flight = sum(1 for held, _ in self._held.values() if held == endpoint)
        return self.limit is None or in_flight < self.limit

    def take(self, endpoint: str, now: float) -> Lease:
        lease = Lease(endpoint, next(self._numbers))
        self._held[lease.number] = (endpoint, now)
        return lease

    def give_back(self, lease: Lease) -> None:
        self._held.pop(lease.number, None)  # an expired lease is already back


class ThreadSlots:
    """Endpoint slots shared by the threads of one process."""

    def __init__(self, endpoints: Sequence[str], limit: int | None) -> None:
        self._table = SlotTable(endpoints, limit)
        self._changed = threading.Condition()

    def acquire(self, conversation: str, deadline: float | None = None) -> Lease:
        with self._changed:
            endpoint = self._table.endpoint_for(conversation)
            wait = None if deadline is None else max(0.0, deadline - time.monotonic())
            if not self._changed.wait_for(lambda: self._table.free(endpoint, time.monotonic()), timeout=wait):
                raise OutOfTime(slot_wait_message(endpoint))
            return self._table.take(endpoint, time.monotonic())

    def release(self, lease: Lease) -> None:
        with self._changed:
            self._table.give_back(lease)
            self._changed.notify_all()


class EndpointPool:
    """A Model over one or more servers of the same model, within the endpoints' slots."""

    def __init__(self, settings: ModelSettings, slots: EndpointSlots | None = None) -> None:
        self.settings = settings
        self.endpoints = settings.endpoints
        self._models = {url: OpenAIModel(settings.model_copy(update={"base_url": url, "base_urls": []}))
                        for url in self.endpoints}
        first = self._models[self.endpoints[0]]
        self.text_tool_format = first.text_tool_format
        self._slots = slots or ThreadSlots(self.endpoints, settings.max_concurrency)

    def query(
        self,
        messages: list[dict[str, Any]],
        tools: list[dict[str, Any]],
        *,
        deadline: float | None = None,
        progress: ModelProgress | None = None,
    ) -> ModelReply:
        lease = self._slots.acquire(conversation_key(messages), deadline)
        try:
            return self._models[lease.endpoint].query(messages, tools, deadline=deadline, progress=progress)
        finally:
            self._slots.release(lease)

    def sampled(self, **updates: Any) -> EndpointPool:
        """The same servers and the same slots with other model settings (an attempt's seed, temperature)."""
        return EndpointPool(self.settings.model_copy(update=updates), slots=self._slots)

    @property
    def max_tokens(self) -> int:
        return self._models[self.endpoints[0]].max_tokens

    def context_window(self, deadline: float | None = None) -> int:
        return self._models[self.endpoints[0]].context_window(deadline)

    def close(self) -> None:
        for model in self._models.values():
            model.close()


def slot_wait_message(endpoint: str | None) -> str:
    """Why a query ended before it was sent: every slot of its endpoint stayed busy until the time limit."""
    where = f" at {public_url(endpoint)}" if endpoint else ""
    return (f"the time limit came while waiting for a free slot{where} "
            "(model.max_concurrency requests were already in flight)")


def conversation_key(messages: list[dict[str, Any]]) -> str:
    """The system prompt and the task name a conversation; later turns only append to them."""
    return hashlib.sha256(json.dumps(messages[:2], sort_keys=True, default=str).encode()).hexdigest()[:16]


def lease_seconds(settings: ModelSettings) -> float:
    """How long one query may hold a slot at most: every attempt timing out, plus the backoffs."""
    return (settings.retries + 1) * (settings.request_timeout + settings.retry_backoff_max)
