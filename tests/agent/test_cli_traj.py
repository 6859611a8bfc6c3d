"""`agent traj stats` on finished and killed runs: the totals come from what was recorded."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def write_events(path: Path, events: list[dict]) -> Path:
    path.write_text("".join(json.dumps(e) + "\n" for e in events))
    return path


def stats(*files: Path) -> list[dict]:
    done = subprocess.run([sys.executable, "-m", "agent", "traj", "stats", "--json", *map(str, files)],
                          capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


STEPS = [
    {"type": "start", "t": 0.0, "task": "add() subtracts", "config": {}},
    {"type": "request", "t": 0.1, "step": 1},
    {"type": "response", "t": 13.5, "step": 1, "usage": {"prompt_tokens": 1200, "completion_tokens": 40}},
    {"type": "tool", "t": 13.6, "step": 1, "name": "bash", "arguments": {"command": "ls"}, "observation": "calc.py"},
    {"type": "compaction", "t": 20.0, "step": 2, "summary": "s", "usage": {"prompt_tokens": 900, "completion_tokens": 100}},
    {"type": "request", "t": 20.1, "step": 2},
    {"type": "response", "t": 31.25, "step": 2, "usage": {"prompt_tokens": 1300, "completion_tokens": 60}},
]


def test_a_killed_run_still_shows_its_tokens_and_time(tmp_path) -> None:
    killed = write_events(tmp_path / "killed.jsonl", STEPS + [{"type": "tool", "t": 32.0, "step": 2, "name": "bash"}])
    [row] = stats(killed)
    assert row["status"] == "incomplete" and row["steps"] == 2
    assert (row["prompt_tokens"], row["completion_tokens"]) == (1200 + 900 + 1300, 40 + 100 + 60)
    assert row["elapsed"] == 32.0


def test_an_interrupted_run_uses_its_end_event(tmp_path) -> None:
    end = {"type": "end", "t": 40.0, "status": "interrupted", "prompt_tokens": 3400, "completion_tokens": 200,
           "elapsed": 39.5, "steps": 2, "patch": ""}
    [row] = stats(write_events(tmp_path / "interrupted.jsonl", STEPS + [end]))
    assert (row["status"], row["prompt_tokens"], row["completion_tokens"], row["elapsed"]) == (
        "interrupted", 3400, 200, 39.5)


def test_a_hostile_trajectory_cannot_drive_the_terminal(tmp_path) -> None:
    """Trajectories come back as CI artifacts of runs on untrusted issues: every field is untrusted."""
    clip = "\x1b]52;c;cHduZWQ=\x07"
    events = [{**STEPS[0], "task": f"t{clip}"}, STEPS[1],
              {**STEPS[2], "usage": {"prompt_tokens": f"[red]{clip}", "completion_tokens": 1}},
              {"type": "tool", "t": 13.6, "step": 1, "name": f"bash{clip}", "arguments": {"command": clip},
               "observation": clip},
              {"type": "end", "t": 40.0, "status": f"submitted{clip}", "steps": 1, "patch": f"+{clip}\n"}]
    hostile = write_events(tmp_path / f"run{clip[:3]}.jsonl", events)
    for command in (["show"], ["stats"]):
        done = subprocess.run([sys.executable, "-m", "agent", "traj", *command, str(hostile)],
                              capture_output=True, text=True, timeout=60, cwd=ROOT, env={"PATH": "/usr/bin:/bin",
                              "COLUMNS": "400", "PYTHONPATH": str(ROOT)})
        assert done.returncode == 0, done.stderr
        assert "\x1b]" not in done.stdout + done.stderr and "\x07" not in done.stdout + done.stderr
        assert "\\x1b]52" in done.stdout


def test_show_notes_a_torn_last_line_after_the_end(tmp_path) -> None:
    """A killed process can tear the delivery record it writes after `end`: the line is dropped, and said."""
    end = {"type": "end", "t": 40.0, "status": "submitted", "steps": 2, "patch": ""}
    path = write_events(tmp_path / "run.jsonl", STEPS + [end])
    path.write_text(path.read_text() + '{"type": "delivery", "bra')
    done = subprocess.run([sys.executable, "-m", "agent", "traj", "show", str(path)], capture_output=True, text=True,
                          timeout=60, cwd=ROOT, env={"PATH": "/usr/bin:/bin", "COLUMNS": "200", "PYTHONPATH": str(ROOT)})
    assert done.returncode == 0, done.stderr
    assert "the last line is torn and was left out" in done.stdout and "submitted" in done.stdout


def test_show_prints_the_patch_unwrapped_so_it_applies(tmp_path) -> None:
    """Piped to a file, the printed patch is the patch: a 300-character line stays one line (it was cut at 80)."""
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "calc.py").write_text("def add(a, b):\n\treturn a - b\n")
    long_line = "\treturn a + b  # " + "why " * 75
    patch = ("diff --git a/calc.py b/calc.py\n--- a/calc.py\n+++ b/calc.py\n@@ -1,2 +1,2 @@\n def add(a, b):\n"
             f"-\treturn a - b\n+{long_line}\n")
    end = {"type": "end", "t": 40.0, "status": "submitted", "steps": 2, "patch": patch}
    path = write_events(tmp_path / "run.jsonl", STEPS + [end])
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)}  # no COLUMNS: a pipe is 80 columns to rich
    done = subprocess.run([sys.executable, "-m", "agent", "traj", "show", str(path)], capture_output=True, text=True,
                          timeout=60, cwd=ROOT, env=env)
    assert done.returncode == 0, done.stderr
    assert patch in done.stdout and f"+{long_line}" in done.stdout.splitlines()
    printed = done.stdout[done.stdout.index("diff --git"):][:len(patch)]
    subprocess.run(["git", "apply", "-"], input=printed, text=True, cwd=repo, check=True)
    assert (repo / "calc.py").read_text() == f"def add(a, b):\n{long_line}\n"


def test_show_and_stats_read_a_task_holding_unicode_line_separators(tmp_path) -> None:
    """`agent fix "fix add\u2028please"`: the line separator is inside a string, not between two lines."""
    odd = "\u2028\u2029\x85\x0b\x0c\x1c\x1d\x1e"
    end = {"type": "end", "t": 40.0, "status": "submitted", "steps": 2, "patch": f"+{odd}\n"}
    events = [{**STEPS[0], "task": f"fix add{odd}please"}, *STEPS[1:3],
              {**STEPS[3], "observation": f"calc{odd}.py"}, *STEPS[4:], end]
    path = tmp_path / "run.jsonl"
    path.write_text("".join(json.dumps(e, ensure_ascii=False) + "\n" for e in events), encoding="utf-8")
    done = subprocess.run([sys.executable, "-m", "agent", "traj", "show", str(path)], capture_output=True, text=True,
                          timeout=60, cwd=ROOT, env={"PATH": "/usr/bin:/bin", "COLUMNS": "200", "PYTHONPATH": str(ROOT)})
    assert done.returncode == 0, done.stderr
    assert "fix add\\u2028" in done.stdout and "submitted" in done.stdout
    [row] = stats(path)
    assert row["status"] == "submitted" and row["steps"] == 2


# Invisible format characters (Unicode Cf) a model or a repository can plant: a reader cannot see them, a
# terminal may act on them (issue 16 item 6, fourth tester: `traj show` printed these raw, `agent fix` did not).
FORMAT_CHARACTERS = "\ufeff\u00ad\u180e\u200b\u200d\u2060\u206a\ufff9\U0001d173"


def output_on_a_terminal(command: list[str]) -> str:
    """What `command` writes to a pseudo-terminal (rich then colours and pads, as a user sees it)."""
    import os
    import pty

    controller, terminal = pty.openpty()
    process = subprocess.Popen(command, stdout=terminal, stderr=terminal, cwd=ROOT, env={
        "PATH": "/usr/bin:/bin", "COLUMNS": "200", "PYTHONPATH": str(ROOT), "TERM": "xterm-256color"})
    os.close(terminal)
    chunks = []
    while True:
        try:
            chunk = os.read(controller, 65536)
        except OSError:  # EIO: the child closed its end
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(controller)
    assert process.wait(timeout=60) == 0, b"".join(chunks)
    return b"".join(chunks).decode("utf-8", errors="replace")


def test_show_prints_no_invisible_format_character_raw_piped_or_on_a_terminal(tmp_path) -> None:
    cf = FORMAT_CHARACTERS
    events = [{**STEPS[0], "task": f"fix{cf}"}, STEPS[1],
              {**STEPS[2], "content": f"I will{cf}", "reasoning": f"think{cf}"},
              {"type": "tool", "t": 13.6, "step": 1, "name": "bash", "arguments": {"command": f"ls{cf}"},
               "observation": f"calc.py{cf}"},
              {"type": "tool", "t": 13.7, "step": 1, "name": "str_replace_editor",
               "arguments": {"command": "str_replace", "path": f"calc{cf}.py", "old_str": "a", "new_str": f"b{cf}"},
               "observation": f"The file calc.py has been edited. Snippet:\n     1\treturn a + b{cf}\n"},
              {"type": "end", "t": 40.0, "status": "submitted", "steps": 1, "message": f"done{cf}",
               "patch": f"diff --git a/calc.py b/calc.py\n--- a/calc.py\n+++ b/calc.py\n@@ -1 +1 @@\n-a\n+b{cf}\n"}]
    path = write_events(tmp_path / "run.jsonl", events)
    command = [sys.executable, "-m", "agent", "traj", "show", str(path)]
    piped = subprocess.run(command, capture_output=True, text=True, timeout=60, cwd=ROOT,
                           env={"PATH": "/usr/bin:/bin", "COLUMNS": "400", "PYTHONPATH": str(ROOT)})
    assert piped.returncode == 0, piped.stderr
    for shown in (piped.stdout, output_on_a_terminal(command)):
        assert [hex(ord(char)) for char in shown if char in cf] == []
        for where in ("fix", "I will", "think", "ls", "calc.py", "return a + b", "done", "+b"):
            assert f"{where}\\ufeff\\xad\\u180e\\u200b" in shown, where
