"""Sandboxes started ahead: order, the limit, failures, and that none outlives the batch."""

from __future__ import annotations

import threading
import time

import pytest

from agent.config import load_settings
from evals.datasets import TaskInstance
from evals.prefetch import OpenedSandbox, SandboxPrefetch
from evals.run import open_sandbox
from evals.sample_tasks import make_sample_project, sample_image_builder
from sandbox.base import SandboxError


def instance(name: str) -> TaskInstance:
    return TaskInstance.model_validate({"repo": "o/r", "instance_id": name, "base_commit": "0" * 40, "version": "1.0",
                                        "problem_statement": f"task {name}", "FAIL_TO_PASS": [], "PASS_TO_PASS": []})


class Box:
    def __init__(self, name: str) -> None:
        self.name, self.closed = name, False

    def close(self) -> None:
        self.closed = True


class Opener:
    """Records who opened what, on which thread; can hold one start back or fail it."""

    def __init__(self, hold: str | None = None, fail: str | None = None) -> None:
        self.calls: list[tuple[str, str]] = []
        self.boxes: dict[str, Box] = {}
        self.hold, self.fail = hold, fail
        self.release = threading.Event()
        self.holding = threading.Event()
        self._lock = threading.Lock()

    def __call__(self, item: TaskInstance) -> OpenedSandbox:
        with self._lock:
            self.calls.append((item.instance_id, threading.current_thread().name))
        if item.instance_id == self.hold:
            self.holding.set()
            assert self.release.wait(10)
        if item.instance_id == self.fail:
            raise SandboxError(f"cannot start a container for {item.instance_id}")
        box = self.boxes[item.instance_id] = Box(item.instance_id)
        return OpenedSandbox(image=item.instance_id, box=box)  # type: ignore[arg-type]


def test_each_instance_taken_in_order_finds_its_sandbox_started_ahead() -> None:
    order = [instance(n) for n in "abcd"]
    opener = Opener()
    prefetch = SandboxPrefetch(order, opener, ahead=2)
    try:
        taken = [prefetch.take(i) for i in order]
    finally:
        prefetch.close()
    assert [t.box.name for t in taken] == list("abcd")
    assert sorted(name for name, _ in opener.calls) == list("abcd")  # each opened once
    threads = dict(opener.calls)
    assert not threads["a"].startswith("prefetch")  # the first had nobody to start it ahead
    assert all(threads[n].startswith("prefetch") for n in "bcd")
    assert not any(box.closed for box in opener.boxes.values())  # taken ones belong to their instances


def test_at_most_ahead_wait_and_those_never_taken_are_closed() -> None:
    order = [instance(n) for n in "abcde"]
    opener = Opener()
    prefetch = SandboxPrefetch(order, opener, ahead=2)
    prefetch.take(order[0])  # starts b
    prefetch.take(order[2])  # c was not started ahead: opened now; starts d
    prefetch.take(order[4])  # e likewise; nothing left to start
    assert prefetch.waiting == 2
    deadline = time.monotonic() + 10
    while len(opener.boxes) < 5 and time.monotonic() < deadline:  # b and d start in the background
        time.sleep(0.01)
    prefetch.close()
    assert sorted(name for name, _ in opener.calls) == list("abcde")
    assert {name for name, box in opener.boxes.items() if box.closed} == {"b", "d"}


def test_a_start_that_failed_ahead_is_raised_to_its_instance_only() -> None:
    order = [instance(n) for n in "abc"]
    prefetch = SandboxPrefetch(order, Opener(fail="b"), ahead=1)
    try:
        assert prefetch.take(order[0]).box.name == "a"
        with pytest.raises(SandboxError, match="cannot start a container for b"):
            prefetch.take(order[1])
        assert prefetch.take(order[2]).box.name == "c"
    finally:
        prefetch.close()


def test_close_waits_for_a_start_in_flight_then_closes_it_and_starts_no_more() -> None:
    order = [instance(n) for n in "abc"]
    opener = Opener(hold="b")
    prefetch = SandboxPrefetch(order, opener, ahead=1)
    prefetch.take(order[0])
    assert opener.holding.wait(10)
    closing = threading.Thread(target=prefetch.close)
    closing.start()
    opener.release.set()
    closing.join(10)
    assert not closing.is_alive() and opener.boxes["b"].closed
    assert prefetch.take(order[2]).box.name == "c"  # after close an instance still gets its sandbox...
    assert [name for name, _ in opener.calls] == ["a", "b", "c"]  # ...and nothing more is started


@pytest.mark.docker
def test_a_real_sandbox_started_ahead_and_never_taken_is_removed(docker_client, tmp_path) -> None:
    from docker.errors import NotFound

    project = make_sample_project(tmp_path / "sample", bugs=2, salt="run")
    first, second = project.instance("1"), project.instance("2")
    started: dict[str, str] = {}

    def opener(item: TaskInstance) -> OpenedSandbox:
        opened = open_sandbox(item, images=sample_image_builder(docker_client, project),
                              settings=load_settings(None, env={}))
        started[item.instance_id] = opened.box.id
        return opened

    prefetch = SandboxPrefetch([first, second], opener, ahead=1)
    with prefetch.take(first).box as box:
        assert box.run("git status --short && echo ready").output.endswith("ready\n")
        assert box.disk is not None and box.disk.limit == 4 * 2**30  # eval sandboxes have the disk limit too
        assert box.run("ulimit -H -f").output == f"{4 * 2**20}\n"  # KiB: no one file past it
        prefetch.close()  # as at the end of a batch cut short: the second was started, never taken
    assert set(started) == {first.instance_id, second.instance_id}
    for container_id in started.values():
        with pytest.raises(NotFound):
            docker_client.containers.get(container_id)
