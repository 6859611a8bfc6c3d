"""The disk limit's bookkeeping (sandbox.disk), with the writable layer's size given by the test."""

from __future__ import annotations

import pytest

from sandbox.base import SandboxError
from sandbox.disk import MIN_SLACK, POLL_SECONDS, WRITE_RATE, DiskLimit, human_size

MB = 2**20


def limit_of(sizes: list[int], limit: int = 100 * MB) -> DiskLimit:
    """A limit whose measurements come from `sizes`, one per call."""
    pending = list(sizes)
    return DiskLimit(limit, lambda: pending.pop(0))


def test_past_the_limit_the_model_is_told_the_limit_and_the_use_until_it_deletes() -> None:
    disk = limit_of([10 * MB, 150 * MB, 140 * MB, 60 * MB, 70 * MB])
    assert disk.check() is None and not disk.full
    note = disk.check()
    assert disk.full and note == disk.full_note()
    assert "at most 100 MB" in note and "150 MB is written" in note and "delete at least 50 MB" in note
    assert "`df` shows the host's disk" in note
    assert disk.check() == disk.full_note() and "140 MB is written" in disk.full_note()  # still past it
    assert disk.check() == "disk space is available again: 60 MB of the sandbox's 100 MB are used; writing is allowed again"
    assert disk.check() is None and not disk.full


def test_a_sandbox_that_keeps_growing_after_its_writes_were_stopped_ends_the_run() -> None:
    disk = limit_of([120 * MB, 110 * MB, 110 * MB + MIN_SLACK + MB])
    disk.check()
    disk.check()  # it deleted some: the slack counts from here
    with pytest.raises(SandboxError, match=r"wrote 175 MB to its disk, past its limit of 100 MB \(\[sandbox\] disk_size\)"):
        disk.check()


def test_a_sandbox_filled_exactly_to_its_limit_is_full_and_its_ceiling_counts_from_there() -> None:
    """One file capped at the limit (RLIMIT_FSIZE) fills it exactly: writes stop there, not 2.4x further."""
    disk = limit_of([100 * MB, 100 * MB + MIN_SLACK + MB])
    assert disk.check() == disk.full_note() and disk.full and disk.ceiling == 100 * MB + MIN_SLACK
    with pytest.raises(SandboxError, match="after its writes were stopped"):
        disk.check()


def test_processes_the_watcher_stopped_leave_the_sandbox_full() -> None:
    """What they wrote counts as stopped at once: the restarted shell and the next command may only shrink files."""
    disk = limit_of([150 * MB])
    disk.stopped(140 * MB)
    assert disk.full and disk.ceiling == 140 * MB + MIN_SLACK
    assert disk.check() == disk.full_note() and "150 MB is written" in disk.full_note()


def test_a_size_that_cannot_be_measured_changes_nothing() -> None:
    disk = limit_of([None, 50 * MB])  # type: ignore[list-item]
    assert disk.check() is None and disk.used == 0
    assert disk.check() is None and disk.used == 50 * MB


def test_a_running_command_is_stopped_only_when_it_grows_the_layer_past_the_limit() -> None:
    assert limit_of([90 * MB]).grew_past(50 * MB) is None  # under the limit
    assert limit_of([130 * MB]).grew_past(120 * MB) == 130 * MB
    assert limit_of([110 * MB]).grew_past(120 * MB) is None  # past the limit, but deleting (rm)
    stopped = limit_of([120 * MB, 130 * MB, 120 * MB + MIN_SLACK + MB])
    stopped.check()
    assert stopped.grew_past(120 * MB) is None  # writes were stopped: a submit's index and patch may still go
    assert stopped.grew_past(120 * MB) == 120 * MB + MIN_SLACK + MB


def test_measured_when_it_may_matter_and_polled_at_the_pace_the_space_left_needs() -> None:
    disk = limit_of([0, 0], limit=4 * 2**30)
    assert disk.worth_measuring(0.01)  # never measured: the copy-in and what came since are unknown
    disk.check()
    assert not disk.worth_measuring(0.01)  # a quick command right after a measurement cannot have written 4 GB
    assert disk.worth_measuring(4.0)
    disk.measured_at -= 1.5  # quick commands for 1.5 s since: together they could have
    assert disk.worth_measuring(0.01)
    assert disk.poll_interval(cost=0.005) == min(4 * 2**30 / WRITE_RATE, POLL_SECONDS[1])
    disk.used = disk.limit - MB
    assert disk.poll_interval(cost=0.005) == POLL_SECONDS[0]  # nearly full: as often as allowed
    assert disk.poll_interval(cost=0.5) == 0.5 / 0.02  # a layer that is slow to walk is walked less often
    disk.full = True
    assert disk.worth_measuring(0.0)  # past the limit: every command, until it is free again


def test_sizes_read_as_docker_writes_them() -> None:
    assert (human_size(64 * MB), human_size(4 * 2**30), human_size(int(1.5 * 2**30))) == ("64 MB", "4.0 GB", "1.5 GB")
