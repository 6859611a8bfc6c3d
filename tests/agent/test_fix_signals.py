"""`agent fix` under SIGINT and SIGTERM at any moment: one way to end, nothing left behind.

The CLI runs in a subprocess against the scripted server; signals go to it as a terminal
or a CI runner would send them. Each test waits for a state of the run (handlers in place,
a request in flight), never for an amount of time.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from agent.trajectory import read_trajectory
from sandbox import cleanup
from tests.fakes.openai_server import Hang
from tests.scripted_run import ROOT, agent_command, agent_env, committed_repo

pytestmark = pytest.mark.docker


def make_repo(root: Path) -> Path:
    return committed_repo(root, {"calc.py": "def add(a, b):\n    return a - b\n"})


def start_fix(repo: Path, server, tmp: Path, *args: str) -> subprocess.Popen:
    """`agent fix --json` with its own TMPDIR, so a temporary copy left behind would show."""
    tmp.mkdir(exist_ok=True)
    return subprocess.Popen(agent_command("fix", "-C", str(repo), "--json", *args, "fix add"),
                            env=agent_env(server.base_url, repo.parent / "home", TMPDIR=str(tmp)),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)


def catches_sigterm(pid: int) -> bool:
    """True once the process has a handler for SIGTERM: the CLI's first lines have run."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    caught = int(next(line for line in status.splitlines() if line.startswith("SigCgt:")).split()[1], 16)
    return bool(caught & (1 << (signal.SIGTERM - 1)))


def wait_for(condition, proc: subprocess.Popen, what: str, limit: float = 120.0, allow_exit: bool = False) -> None:
    deadline = time.monotonic() + limit
    while not condition():
        if proc.poll() is not None and not allow_exit:
            raise AssertionError(f"the run ended before {what}: {proc.communicate()[1]}")
        if time.monotonic() > deadline:
            proc.kill()
            raise AssertionError(f"never saw {what}")
        time.sleep(0.02)


def ended_cleanly(proc: subprocess.Popen, tmp: Path, docker_client, code: int, signals: int = 1) -> dict:
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == code, err
    lines = err.splitlines()
    assert lines[-1].startswith("error: interrupted"), err  # one line, and no traceback
    assert set(lines[:-1]) <= {"interrupted: cleaning up, one moment (a third signal quits at once)"}, err
    assert len(lines) <= signals, err
    result = json.loads(out)
    assert result["status"] == "interrupted" and result["exit_code"] == code
    assert [c for c in cleanup.leftovers(docker_client) if c.pid == proc.pid] == []
    assert list(tmp.iterdir()) == []  # the snapshot copy is gone
    return result


def test_a_signal_while_the_cli_starts_is_one_line_and_json(fake_model_server, tmp_path, docker_client) -> None:
    repo = make_repo(tmp_path / "repo")
    proc = start_fix(repo, fake_model_server, tmp_path / "tmp")
    wait_for(lambda: catches_sigterm(proc.pid), proc, "the CLI's signal handlers")
    proc.send_signal(signal.SIGINT)
    result = ended_cleanly(proc, tmp_path / "tmp", docker_client, 130)
    assert result["patch"] == ""


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_mid_run_ends_it_the_same_way(fake_model_server, tmp_path, docker_client, signum) -> None:
    repo = make_repo(tmp_path / "repo")
    fake_model_server.script = [Hang()]
    proc = start_fix(repo, fake_model_server, tmp_path / "tmp")
    wait_for(lambda: fake_model_server.requests, proc, "a model request")
    proc.send_signal(signum)
    result = ended_cleanly(proc, tmp_path / "tmp", docker_client, 128 + signum)
    trajectory = read_trajectory(Path(result["trajectory"]))
    assert trajectory.status == "interrupted"
    assert trajectory.end["message"] == f"interrupted by {signal.Signals(signum).name}"


def test_a_second_signal_during_cleanup_leaves_nothing_behind(fake_model_server, tmp_path, docker_client) -> None:
    repo = make_repo(tmp_path / "repo")
    fake_model_server.script = [Hang()]
    proc = start_fix(repo, fake_model_server, tmp_path / "tmp")
    wait_for(lambda: fake_model_server.requests, proc, "a model request")
    proc.send_signal(signal.SIGTERM)
    runs = repo / ".agent" / "runs"
    wait_for(lambda: any('"type": "end"' in t.read_text() for t in runs.glob("*/trajectory.jsonl")), proc,
             "the end event", allow_exit=True)
    proc.send_signal(signal.SIGINT)  # while the container and the copy are being removed, or after
    result = ended_cleanly(proc, tmp_path / "tmp", docker_client, 143, signals=2)
    assert read_trajectory(Path(result["trajectory"])).status == "interrupted"


def test_a_time_limit_ends_a_run_whose_model_never_answers(fake_model_server, tmp_path, docker_client) -> None:
    """The issue's example: `[loop] time_limit` with a server that accepts and never answers."""
    repo = make_repo(tmp_path / "repo")
    (repo / ".agent.toml").write_text("[loop]\ntime_limit = 3\n")
    fake_model_server.script = [Hang()] * 5
    proc = start_fix(repo, fake_model_server, tmp_path / "tmp")
    out, err = proc.communicate(timeout=300)  # a guard against hanging, not a speed target
    result = json.loads(out)
    assert result["status"] == "time_limit", err
    assert "while waiting for the model server" in result["message"]
    assert len(fake_model_server.requests) == 1
    assert read_trajectory(Path(result["trajectory"])).status == "time_limit"


# (seconds after the process was spawned, signal): start-up imports, the snapshot and the
# container start in background threads, the first request. SIGHUP is what a closed terminal sends.
OFFSETS = [(0.05, signal.SIGINT), (0.1, signal.SIGTERM), (0.2, signal.SIGHUP), (0.35, signal.SIGINT),
           (0.5, signal.SIGTERM), (0.8, signal.SIGHUP), (1.2, signal.SIGINT), (2.0, signal.SIGTERM)]


@pytest.mark.parametrize(("offset", "signum"), OFFSETS, ids=[f"{o}s-{s.name}" for o, s in OFFSETS])
def test_a_signal_at_any_moment_of_start_up_ends_the_run_one_way(fake_model_server, tmp_path, docker_client,
                                                                 offset, signum) -> None:
    """Not before the CLI's first lines have run (Python's own start-up is not ours to handle)."""
    repo = make_repo(tmp_path / "repo")
    fake_model_server.script = [Hang()]  # a run that gets this far waits for the model
    spawned = time.monotonic()
    proc = start_fix(repo, fake_model_server, tmp_path / "tmp")
    wait_for(lambda: catches_sigterm(proc.pid), proc, "the CLI's signal handlers")
    time.sleep(max(0.0, spawned + offset - time.monotonic()))
    proc.send_signal(signum)
    result = ended_cleanly(proc, tmp_path / "tmp", docker_client, 128 + signum)
    runs = list((repo / ".agent" / "runs").glob("*/trajectory.jsonl")) if (repo / ".agent").is_dir() else []
    if result["trajectory"] is None:  # it came before the run existed: nothing of it was made
        assert runs == []
    else:
        assert runs == [Path(result["trajectory"])]
        trajectory = read_trajectory(runs[0])
        assert trajectory.status == "interrupted"
        assert trajectory.end["message"] == f"interrupted by {signal.Signals(signum).name}"


def reading_stdin(pid: int) -> bool:
    """True while the process's main thread is blocked reading its stdin (syscall 0 on fd 0, x86-64)."""
    try:
        call = Path(f"/proc/{pid}/syscall").read_text().split()
    except OSError:
        return False
    return call[:2] == ["0", "0x0"]


@pytest.mark.skipif(os.uname().machine != "x86_64", reason="reads x86-64 syscall numbers from /proc")
def test_a_signal_before_the_run_exists_still_gets_its_line_json_and_code(fake_model_server, tmp_path) -> None:
    """Between the CLI's start and the run (here: reading the issue from stdin) typer once made it a silent 130."""
    repo = make_repo(tmp_path / "repo")
    env = agent_env(fake_model_server.base_url, tmp_path / "home", TMPDIR=str(tmp_path))
    proc = subprocess.Popen(agent_command("fix", "-C", str(repo), "--json", "-"), env=env,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
    wait_for(lambda: reading_stdin(proc.pid), proc, "the issue being read from stdin")
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 143 and err == "error: interrupted\n", err
    assert json.loads(out) | {"message": ""} == {"status": "interrupted", "message": "", "patch": "", "branch": None,
                                                 "commit": None, "applied": False, "trajectory": None,
                                                 "run_id": None, "exit_code": 143}
    assert fake_model_server.requests == [] and not (repo / ".agent").exists()


def test_a_closed_terminal_ends_the_run_like_sigterm(fake_model_server, tmp_path, docker_client) -> None:
    """SIGHUP after the terminal went away: nothing can be printed, the run still ends whole, exit 129."""
    import pty

    repo = make_repo(tmp_path / "repo")
    fake_model_server.script = [Hang()]
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    leader, follower = pty.openpty()
    env = agent_env(fake_model_server.base_url, tmp_path / "home", TMPDIR=str(tmp))
    proc = subprocess.Popen(agent_command("fix", "-C", str(repo), "fix add"), env=env,
                            stdin=follower, stdout=follower, stderr=follower, cwd=ROOT)
    os.close(follower)
    wait_for(lambda: fake_model_server.requests, proc, "a model request")
    os.close(leader)  # the terminal is gone: every write to it now fails
    proc.send_signal(signal.SIGHUP)
    assert proc.wait(timeout=120) == 129
    assert [c for c in cleanup.leftovers(docker_client) if c.pid == proc.pid] == []
    assert list(tmp.iterdir()) == []
    [trajectory] = (repo / ".agent" / "runs").glob("*/trajectory.jsonl")
    assert read_trajectory(trajectory).end["message"] == "interrupted by SIGHUP"
