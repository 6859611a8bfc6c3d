"""Owners of sandbox containers: who started one, and whether that process still runs."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from sandbox import cleanup

ROOT = Path(__file__).resolve().parents[2]


def test_this_process_is_an_alive_owner_and_an_ended_one_is_gone() -> None:
    mine = cleanup.owner_labels()
    assert mine["moe-agent.pid"] == str(os.getpid()) and mine["moe-agent.host"] == socket.gethostname()
    assert mine["moe-agent.pid_start"].isdigit()
    assert cleanup.owner_state(mine) == "alive"
    ended = subprocess.Popen(["true"])
    ended.wait()
    assert cleanup.process_start(ended.pid) is None
    assert cleanup.owner_state(mine | {"moe-agent.pid": str(ended.pid)}) == "gone"


def test_a_reused_pid_or_a_reboot_is_not_the_owner() -> None:
    mine = cleanup.owner_labels()
    assert cleanup.owner_state(mine | {"moe-agent.pid_start": "1"}) == "gone"  # same PID, another process
    assert cleanup.owner_state(mine | {"moe-agent.boot": "another-boot"}) == "gone"


def test_an_owner_on_another_host_or_without_labels_is_unknown() -> None:
    mine = cleanup.owner_labels()
    assert cleanup.owner_state(mine | {"moe-agent.host": "elsewhere"}) == "unknown"
    assert cleanup.owner_state({}) == "unknown"
    old_style = {"moe-agent.host": socket.gethostname(), "moe-agent.pid": str(os.getpid())}
    assert cleanup.owner_state(old_style) == "unknown"  # a live PID without a start time may be reused


def test_process_start_reads_past_a_command_name_with_spaces_and_parentheses(tmp_path) -> None:
    script = tmp_path / "a b) c"
    script.write_text("#!/bin/sh\nsleep 30\n")
    script.chmod(0o755)
    proc = subprocess.Popen([str(script)])
    try:
        stat = open(f"/proc/{proc.pid}/stat").read()
        assert cleanup.process_start(proc.pid) == stat.rsplit(")", 1)[1].split()[19]
    finally:
        proc.kill()
        proc.wait()


def killed_run_scratch(tmp_path) -> str:
    """A temporary directory made by a process that was then killed with -9, as `agent fix` makes it."""
    made = subprocess.Popen([sys.executable, "-c", "import sys, time; from sandbox import cleanup; "
                             "path = cleanup.scratch_dir('fix'); (path / 'snapshot').mkdir(); "
                             "print(path, flush=True); time.sleep(60)"],
                            env={**os.environ, "TMPDIR": str(tmp_path)}, stdout=subprocess.PIPE, text=True,
                            cwd=ROOT)
    path = made.stdout.readline().strip()
    made.kill()
    made.wait()
    return path


def test_a_killed_run_s_temporary_copy_is_reaped_and_a_live_one_is_kept(tmp_path) -> None:
    dead = killed_run_scratch(tmp_path)
    mine = cleanup.scratch_dir("fix", tmp_path)
    other = tmp_path / "moe-fix-notes"  # not ours: no owner in its name
    other.mkdir()
    assert mine.parent == tmp_path and mine.name.startswith(f"moe-fix-{os.getpid()}-")
    assert cleanup.stale_scratch(tmp_path) == [Path(dead)]
    assert cleanup.reap_scratch(tmp_path) == [Path(dead)]
    assert sorted(tmp_path.iterdir()) == sorted([mine, other])


SWALLOWED = """
import os, signal, time
from sandbox import cleanup

cleanup.install_handlers()

class Swallows:
    def __del__(self):  # like the import system's weakref callbacks: an exception here is only printed
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(0.5)

try:
    Swallows()
    time.sleep(30)
    print("the signal was lost")
except cleanup.Interrupted as exc:
    print("raised again:", exc.signum)
"""


def test_an_interruption_swallowed_where_it_cannot_propagate_is_raised_again() -> None:
    """A SIGINT at start-up once hung a run 240 s: its exception landed in an import-lock callback."""
    done = subprocess.run([sys.executable, "-c", SWALLOWED], capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert done.stdout == "raised again: 15\n", done.stdout + done.stderr
    assert "Exception ignored" not in done.stderr and "Traceback" not in done.stderr, done.stderr


WAITING_FOR_A_LOCK = """
import builtins, logging, os, signal, sys, threading, time
from sandbox import cleanup

cleanup.install_handlers()
sys.path.insert(0, sys.argv[1])
builtins.started, builtins.go = threading.Event(), threading.Event()

def hold_logging_lock():
    logging._acquireLock()
    started.set()
    go.wait()
    logging._releaseLock()

threading.Thread(target={holder}).start()  # takes the lock, says so, and waits for `go`
started.wait()
main = threading.main_thread().ident

def signal_then_finish():  # once the main thread waits for that lock
    while sys._current_frames()[main].f_code.co_name != {waits_in!r}:
        time.sleep(0.005)
    os.kill(os.getpid(), signal.SIGINT)
    time.sleep(0.2)
    go.set()

threading.Thread(target=signal_then_finish).start()
if {slow_start}:  # a loaded machine: the signal sent again comes while the handler still starts a thread
    start = threading.Thread.start
    threading.Thread.start = lambda thread: (start(thread), time.sleep(0.1))
try:
    {call}
    print("done\\n", end="")  # one write: the signal may come right after it
    time.sleep(30)
    print("the signal was lost")
except cleanup.Interrupted as exc:
    print("interrupted after it:", exc.signum)
"""

# (the thread holding the lock, the main thread's call, the function it waits in, whether the
# signal sent again arrives while the handler is still scheduling it)
LOCKS = {
    "a module's import lock": ('lambda: __import__("slow_module")', "import slow_module", "acquire", False),
    "logging's lock": ("hold_logging_lock", 'logging.getLogger("moe-test")', "_acquireLock", False),
    "an import lock, sent again inside the handler": ('lambda: __import__("slow_module")', "import slow_module",
                                                      "acquire", True),
}


@pytest.mark.parametrize("lock", LOCKS)
def test_a_signal_inside_code_that_holds_a_lock_is_raised_once_it_is_out(tmp_path, lock) -> None:
    """An exception raised inside importlib's or logging's own code can leave their lock held for
    good, and a background thread then waits for it forever.

    The main thread waits there for a lock another thread holds (the run's start-up: the loop's
    imports here, the Docker client's in a background thread) when SIGINT comes.
    """
    holder, call, waits_in, slow_start = LOCKS[lock]
    (tmp_path / "slow_module.py").write_text("started.set()\ngo.wait()\n")
    script = WAITING_FOR_A_LOCK.format(holder=holder, call=call, waits_in=waits_in, slow_start=slow_start)
    done = subprocess.run([sys.executable, "-c", script, str(tmp_path)], capture_output=True, text=True, timeout=60,
                          cwd=ROOT)
    assert done.stdout == "done\ninterrupted after it: 2\n", done.stdout + done.stderr
    assert "Traceback" not in done.stderr, done.stderr


SET_NAME = """
import os, signal, time
from sandbox import cleanup

cleanup.install_handlers()

class Field:
    def __set_name__(self, owner, name):  # Python 3.11 turns an exception here into a RuntimeError
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(0.2)

try:
    class Model:
        field = Field()
    print("created\\n", end="")  # one write: the signal may come right after it
    time.sleep(30)
    print("the signal was lost")
except cleanup.Interrupted as exc:
    print("interrupted after it:", exc.signum)
"""


def test_a_signal_while_a_class_is_created_is_an_interruption_not_an_error() -> None:
    """A SIGINT 1.4 s into `agent fix` came while a dataclass was made: a RuntimeError and a traceback, exit 1."""
    done = subprocess.run([sys.executable, "-c", SET_NAME], capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert done.stdout == "created\ninterrupted after it: 15\n", done.stdout + done.stderr
    assert "Traceback" not in done.stderr, done.stderr


class Engine:
    """Docker's API as `remove_container` meets it: `remove` answers `refusal` (an HTTP status, or
    None for success); the container stays listed for `listed` more inspections."""

    def __init__(self, refusal: int | None, listed: int) -> None:
        self.refusal, self.listed, self.inspected = refusal, listed, 0
        self.api = self

    def remove_container(self, container_id: str, force: bool, v: bool) -> None:
        assert force and v
        if self.refusal is not None:
            raise _docker_error(self.refusal)

    def inspect_container(self, container_id: str) -> dict:
        self.inspected += 1
        if self.inspected > self.listed:
            raise _docker_error(404)
        return {"Id": container_id, "State": {"Status": "removing"}}


def _docker_error(status: int) -> Exception:
    from docker.errors import APIError, NotFound
    from requests import Response

    response = Response()
    response.status_code = status
    return (NotFound if status == 404 else APIError)(f"{status} from the engine", response=response)


def test_a_container_already_being_removed_is_waited_for_until_it_is_gone() -> None:
    """CI: a run's container ended by itself (auto_remove), our remove got 409, and it was still listed."""
    engine = Engine(refusal=409, listed=3)
    assert cleanup.remove_container(engine, "c1") is True
    assert engine.inspected == 4  # listed three times as `removing`, then gone


def test_a_removal_that_succeeds_or_finds_nothing_needs_no_wait_and_another_refusal_no_wait_either() -> None:
    for refusal, removed in ((None, True), (404, True), (500, False)):
        engine = Engine(refusal=refusal, listed=5)
        assert cleanup.remove_container(engine, "c1") is removed
        assert engine.inspected == 0


def test_a_removal_that_never_ends_is_given_up_at_the_limit() -> None:
    engine = Engine(refusal=409, listed=10**9)
    assert cleanup.remove_container(engine, "c1", limit=0.2) is False
    assert engine.inspected >= 2
