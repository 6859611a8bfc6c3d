"""Owners of sandbox containers: who started one, and whether that process still runs."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

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
