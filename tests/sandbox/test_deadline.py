"""TimeBoxed: every command in the sandbox ends by the run's deadline, whatever timeout its tool asked for."""

from __future__ import annotations

import time

import pytest

from sandbox.deadline import TimeBoxed

pytestmark = pytest.mark.docker


def test_a_command_is_stopped_at_the_deadline_and_says_so(box) -> None:
    boxed = TimeBoxed(box, time.monotonic() + 1.0)
    result = boxed.run("sleep 100; echo done", timeout=1800)
    assert result.timed_out and result.out_of_time
    assert any("stopped by the run's time limit" in note for note in result.notes)
    assert box.run("echo alive").output == "alive\n"  # the shell was interrupted, not lost


def test_a_command_without_its_own_timeout_is_capped_too(box) -> None:
    result = TimeBoxed(box, time.monotonic() + 1.0).run("sleep 100; echo done")
    assert result.out_of_time and result.timed_out


def test_no_command_starts_once_the_deadline_has_come(box) -> None:
    result = TimeBoxed(box, time.monotonic() - 1.0).run("touch /tmp/ran")
    assert result.out_of_time and result.exit_code is None
    assert "not run" in result.notes[0]
    assert box.run("test -e /tmp/ran").exit_code == 1


def test_a_command_that_times_out_on_its_own_before_the_deadline_is_not_out_of_time(box) -> None:
    result = TimeBoxed(box, time.monotonic() + 600).run("sleep 100", timeout=0.5)
    assert result.timed_out and not result.out_of_time
    assert TimeBoxed(box, time.monotonic() + 600).run("echo ok", timeout=5).output == "ok\n"


def test_everything_else_goes_to_the_sandbox(box) -> None:
    boxed = TimeBoxed(box, time.monotonic() + 600)
    boxed.write_file("/tmp/x.txt", b"hi")
    assert boxed.read_file("/tmp/x.txt") == b"hi" and boxed.workdir == box.workdir
