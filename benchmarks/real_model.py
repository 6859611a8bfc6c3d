"""Ten small bug fixes against a real model: `agent fix` versus mini-swe-agent, same server, same model.

Each task is made in the run: a tiny git repository with a one-to-three-line bug of its own
kind (operator, off-by-one, comparison, string method, missing return, index, boolean,
dict key, integer division, whitespace) and a test file that fails until it is fixed. The
test file runs with plain `python3` (the default sandbox image has no pytest).

`agent fix` runs with default settings except the run budget below (applied to both
agents alike), against llama.cpp's llama-server serving Qwen2.5-Coder-1.5B-Instruct
(`.ci/llm-server`). mini-swe-agent runs in its own virtualenv from PyPI, once with its
tool-calling config (`mini.yaml`) and once with its text config (`mini_textbased.yaml`);
its better score is kept. Resolved: the task's own test passes on the delivered patch,
checked in a fresh copy of the task. Our delivered patch is the one `agent fix` delivers
(submitted: exit 0 and a branch); mini-swe-agent edits the task's tree in place, and
whatever it leaves there counts, submitted or not.

    python3 benchmarks/real_model.py [--tasks N] [--agents ours,mini-tool,mini-text]
    python3 benchmarks/real_model.py --agents ours,ours-a3     # one attempt against `--attempts 3`

`ours-aN` is `agent fix --attempts N`. The server then serves N requests at once (llama.cpp
slots, each with the same context as a single run), and each attempt's time limit is N times
the run budget: on this CPU the N attempts share the compute one run has alone, where a GPU
server would batch them at little cost. The step limit is the same.

The machine is busy while this runs: the server takes both cores. Last line: JSON with
n, resolved_ours, resolved_mini, median_steps_ours, model_time_share (seconds waiting for
the model over the wall time of our whole `agent fix` runs), and per-agent details.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SERVER = ROOT / ".ci" / "llm-server"
MINI_VERSION = "2.4.6"


@dataclass(frozen=True)
class Task:
    """One bug: `module` holds `source` (with the bug); `test` fails on it and passes once it is fixed."""

    name: str
    module: str
    source: str
    test: str
    issue: str


def _test(module: str, body: str) -> str:
    return f"from {module} import *\n\n\n{body.strip()}\n\n\nif __name__ == \"__main__\":\n" \
           "    for name, fn in list(globals().items()):\n" \
           "        if name.startswith(\"test_\"):\n" \
           "            fn()\n" \
           "    print(\"all tests passed\")\n"


TASKS = [
    Task("operator", "calc", "def add(a, b):\n    return a - b\n\n\ndef mul(a, b):\n    return a * b\n",
         _test("calc", "def test_add():\n    assert add(2, 3) == 5\n\n\ndef test_mul():\n    assert mul(2, 3) == 6"),
         "add(2, 3) returns -1 instead of 5."),
    Task("off_by_one", "series", "def sum_to(n):\n    \"\"\"1 + 2 + ... + n\"\"\"\n    total = 0\n"
         "    for i in range(1, n):\n        total += i\n    return total\n",
         _test("series", "def test_sum_to():\n    assert sum_to(4) == 10\n    assert sum_to(1) == 1"),
         "sum_to(4) should be 1+2+3+4 = 10 but returns 6."),
    Task("comparison", "stats", "def largest(values):\n    best = values[0]\n    for v in values[1:]:\n"
         "        if v < best:\n            best = v\n    return best\n",
         _test("stats", "def test_largest():\n    assert largest([3, 9, 4]) == 9"),
         "largest([3, 9, 4]) returns 3; it should return the largest value, 9."),
    Task("string_method", "slug", "def slugify(title):\n    return \"-\".join(title.upper().split())\n",
         _test("slug", "def test_slugify():\n    assert slugify(\"Hello Big World\") == \"hello-big-world\""),
         "slugify(\"Hello Big World\") gives \"HELLO-BIG-WORLD\"; slugs must be lower case: \"hello-big-world\"."),
    Task("missing_return", "prices", "def with_tax(price, rate=0.2):\n    total = price * (1 + rate)\n"
         "    round(total, 2)\n",
         _test("prices", "def test_with_tax():\n    assert with_tax(10) == 12.0"),
         "with_tax(10) returns None instead of 12.0."),
    Task("index", "queue", "def last(items):\n    \"\"\"The most recently added item.\"\"\"\n    return items[0]\n",
         _test("queue", "def test_last():\n    assert last([1, 2, 3]) == 3"),
         "last([1, 2, 3]) returns 1; it should return the last item, 3."),
    Task("boolean", "parity", "def is_even(n):\n    return n % 2 == 1\n",
         _test("parity", "def test_is_even():\n    assert is_even(4)\n    assert not is_even(7)"),
         "is_even(4) is False and is_even(7) is True: the answers are swapped."),
    Task("dict_key", "books", "def title_of(book):\n    return book[\"name\"]\n",
         _test("books", "def test_title_of():\n    assert title_of({\"title\": \"Dune\", \"year\": 1965}) == \"Dune\""),
         "title_of({'title': 'Dune', 'year': 1965}) raises KeyError: 'name'. Books store their title under 'title'."),
    Task("integer_division", "mean", "def average(values):\n    return sum(values) // len(values)\n",
         _test("mean", "def test_average():\n    assert average([1, 2]) == 1.5"),
         "average([1, 2]) returns 1 instead of 1.5."),
    Task("whitespace", "csvline", "def fields(line):\n    return line.split(\",\")\n",
         _test("csvline", "def test_fields():\n    assert fields(\"a, b ,c\") == [\"a\", \"b\", \"c\"]"),
         "fields(\"a, b ,c\") returns ['a', ' b ', 'c']; the spaces around each field should be removed."),
]


def issue_text(task: Task) -> str:
    return f"{task.issue}\n\nThe test `python3 test_{task.module}.py` fails. Fix the bug in {task.module}.py."


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), "-c", "user.name=bench", "-c", "user.email=bench@example.com",
                           *args], check=True, capture_output=True, text=True).stdout


def make_repo(task: Task, root: Path) -> Path:
    root.mkdir(parents=True)
    (root / f"{task.module}.py").write_text(task.source)
    (root / f"test_{task.module}.py").write_text(task.test)
    git(root, "init", "-q", "-b", "main")
    git(root, "add", "-A")
    git(root, "commit", "-qm", "init")
    return root


def passes(task: Task, repo: Path) -> bool:
    """The task's own test, run with the host's python3 in `repo`."""
    try:
        done = subprocess.run([sys.executable, f"test_{task.module}.py"], cwd=repo, capture_output=True, timeout=60)
    except subprocess.TimeoutExpired:
        return False
    return done.returncode == 0


def check_patch(task: Task, patch: str, where: Path) -> bool:
    """Apply `patch` to a fresh copy of the task and run its test; the test file itself is restored first."""
    repo = make_repo(task, where)
    applied = subprocess.run(["git", "-C", str(repo), "apply", "--whitespace=nowarn", "-"], input=patch, text=True,
                             capture_output=True)
    if applied.returncode != 0:
        return False
    (repo / f"test_{task.module}.py").write_text(task.test)  # a fix that edits the test does not count
    return passes(task, repo)


def attempts_of(agent: str) -> int:
    """`ours` -> 1, `ours-a3` -> 3 (see the module docstring)."""
    return int(agent.removeprefix("ours-a")) if agent.startswith("ours-a") else 1


def run_ours(task: Task, work: Path, env: dict[str, str], budget: Budget, attempts: int = 1) -> dict[str, Any]:
    label = "ours" if attempts == 1 else f"ours-a{attempts}"
    repo = make_repo(task, work / label / task.name)
    config = work / f"{label}-config.toml"
    seconds = budget.seconds * attempts  # each attempt's limit; the attempts share the server's compute
    config.write_text(f"[loop]\nstep_limit = {budget.steps}\ntime_limit = {seconds}\n")
    started = time.monotonic()
    command = [sys.executable, "-m", "agent", "fix", "-C", str(repo), "--json", "--quiet", issue_text(task)]
    if attempts > 1:
        command[4:4] = ["--attempts", str(attempts)]
    try:
        done = run_child(command, env=env | {"AGENT_CONFIG": str(config)}, timeout=seconds * 2 + 300, cwd=ROOT)
    except subprocess.TimeoutExpired:
        return {"task": task.name, "status": "killed", "resolved": False, "steps": None, "model_time": 0.0,
                "elapsed": time.monotonic() - started}
    try:
        result = json.loads(done.stdout.strip().splitlines()[-1])
    except (IndexError, json.JSONDecodeError):
        return {"task": task.name, "status": "crashed", "stderr": done.stderr[-500:], "resolved": False,
                "steps": None, "model_time": 0.0, "elapsed": time.monotonic() - started}
    delivered = done.returncode == 0 and bool(result.get("branch"))
    stats = result.get("stats") or {}
    return {
        "task": task.name, "status": result["status"], "exit_code": done.returncode, "delivered": delivered,
        "resolved": delivered and check_patch(task, result["patch"], work / f"check-{label}" / task.name),
        "undelivered_patch_passes": (not delivered and bool(result.get("patch"))
                                     and check_patch(task, result["patch"], work / f"check-salvaged-{label}" / task.name)),
        "steps": stats.get("steps"), "model_time": stats.get("model_time") or 0.0,
        "elapsed": round(time.monotonic() - started, 1),  # the whole `agent fix`: snapshot, sandbox, loop
        "tokens": (stats.get("prompt_tokens") or 0) + (stats.get("completion_tokens") or 0),
        **({"selection": selection_summary(result["selection"])} if result.get("selection") else {}),
    }


def selection_summary(record: dict[str, Any]) -> str:
    """One line of `agent fix --attempts`'s selection record (agent/selection.py's `to_json`): winner, candidates, why."""
    return (f"candidate {record.get('winner')} of {len(record.get('candidates') or [])} "
            f"by {record.get('decided_by')}: {record.get('reason')}")


def run_mini(task: Task, work: Path, mini: Path, config: str, base_url: str, model: str,
             budget: Budget) -> dict[str, Any]:
    repo = make_repo(task, work / f"mini-{config}" / task.name)
    trajectory = work / f"mini-{config}" / f"{task.name}.traj.json"
    files = {"tool": ["-c", "mini.yaml"], "text": ["-c", "mini_textbased.yaml", "--model-class", "litellm_textbased"]}
    command = [str(mini), "-y", "--exit-immediately", "-m", f"openai/{model}", *files[config],
               "-c", f"model.model_kwargs.api_base={base_url}", "-c", "model.model_kwargs.api_key=none",
               "-c", "model.cost_tracking=ignore_errors", "-c", f"agent.step_limit={budget.steps}",
               "-c", f"agent.wall_time_limit_seconds={budget.seconds}", "-c", "agent.cost_limit=0",
               "-t", issue_text(task), "-o", str(trajectory)]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "AGENT_"))}
    env |= {"MSWEA_COST_TRACKING": "ignore_errors", "MSWEA_CONFIGURED": "true", "LITELLM_LOG": "ERROR",
            "LITELLM_LOCAL_MODEL_COST_MAP": "True",
            "HOME": str(work / "mini-home")}
    started = time.monotonic()
    status = "finished"
    try:
        # mini-swe-agent checks its wall-time limit between steps only, so one long generation can run on
        # for minutes: 60 s past the budget it is stopped, and what it left in the tree still counts
        done = run_child(command, cwd=repo, env=env, timeout=budget.seconds + 60)
        status = _mini_exit_status(trajectory) or f"exit {done.returncode}"
    except subprocess.TimeoutExpired:
        status = "killed"
    (repo / f"test_{task.module}.py").write_text(task.test)  # a fix that edits the test does not count
    return {"task": task.name, "status": status, "resolved": passes(task, repo), "steps": _mini_steps(trajectory),
            "elapsed": round(time.monotonic() - started, 1)}


def run_child(command: list[str], *, cwd: Path, env: dict[str, str], timeout: float) -> subprocess.CompletedProcess:
    """Run an agent; on a timeout or Ctrl-C it gets SIGINT first, so it can stop its sandbox and write its trajectory."""
    child = subprocess.Popen(command, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    try:
        out, err = child.communicate(timeout=timeout)
    except (subprocess.TimeoutExpired, KeyboardInterrupt):
        child.send_signal(signal.SIGINT)
        try:
            child.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            child.kill()
            child.communicate()
        raise
    return subprocess.CompletedProcess(command, child.returncode, out, err)


def _mini_record(trajectory: Path) -> dict[str, Any]:
    try:
        return json.loads(trajectory.read_text())
    except (OSError, json.JSONDecodeError):
        return {}


def _mini_exit_status(trajectory: Path) -> str | None:
    return (_mini_record(trajectory).get("info") or {}).get("exit_status")


def _mini_steps(trajectory: Path) -> int | None:
    stats = (_mini_record(trajectory).get("info") or {}).get("model_stats") or {}
    return stats.get("api_calls")


@dataclass(frozen=True)
class Budget:
    """What each run may spend, the same for both agents: model calls and wall-clock seconds."""

    steps: int
    seconds: int


def mini_executable(work: Path) -> Path:
    """mini-swe-agent in a virtualenv of its own (cached beside the model cache), so its dependencies stay apart."""
    venv = Path(os.environ.get("MINI_VENV") or Path.home() / ".cache" / "moe-agent-llm" / f"mini-{MINI_VERSION}")
    mini = venv / "bin" / "mini"
    if not mini.exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(venv / "bin" / "pip"), "install", "-q", f"mini-swe-agent=={MINI_VERSION}"], check=True)
    return mini


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(model: str, context: str, port: str, parallel: str) -> None:
    """`.ci/llm-server start`, with `parallel` slots of `context` tokens each, then `prioritize_server`."""
    started = subprocess.run(["bash", str(SERVER), "start", model, context, port], capture_output=True, text=True,
                             timeout=600, env={**os.environ, "LLM_PARALLEL": parallel})
    if started.returncode != 0:
        sys.exit(f"the model server did not start: {started.stderr.strip().splitlines()[-1:]}")
    prioritize_server(int(port))


def server_idle(port: int, wait: float = 15.0) -> bool:
    """Whether every llama-server slot is idle within `wait` seconds (its `/slots` endpoint).

    llama.cpp keeps generating for a client that went away: mini-swe-agent sends no max_tokens, and one
    of its runs, stopped at the budget, left the server generating for minutes, so the next agent's
    first request waited out its whole time limit. Unknown (no endpoint) counts as idle."""
    deadline = time.monotonic() + wait
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/slots", timeout=5) as response:
                slots = json.load(response)
        except (OSError, ValueError):
            return True
        if not any(slot.get("is_processing") for slot in slots):
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(1)


def prioritize_server(port: int) -> None:
    """Run the server at nice -10 where permitted (root), for both agents alike.

    llama-server's threads wait on each other at every layer, so on a busy machine its speed
    collapses (measured on 2 cores: 1.5B prefill ~160 tok/s quiet, ~17 tok/s beside a test run)
    and every run ends at its time limit, which compares nothing.

    With the kernel's autogroup scheduling on (/proc/sys/kernel/sched_autogroup_enabled), a nice
    value counts only inside its session's group, and every other session's group gets an equal
    share: measured here, the server at nice -10 still got ~100% of 200% beside niced test runs,
    generating at 0.5 tok/s. So the server's group gets nice -10 too (/proc/PID/autogroup, sched(7)).
    """
    cache = os.environ.get("LLM_CACHE") or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "moe-agent-llm"
    pid_file = Path(cache) / "run" / f"server-{port}.pid"  # where .ci/llm-server keeps it
    try:
        pid = int(pid_file.read_text())
        os.setpriority(os.PRIO_PROCESS, pid, -10)
    except (OSError, ValueError):
        print("note: the model server runs at normal priority (renicing needs root)", flush=True)
        return
    try:
        Path(f"/proc/{pid}/autogroup").write_text("-10")
    except OSError:
        pass  # no autogroup scheduling here: the nice value above is all there is


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=len(TASKS), help="how many of the ten tasks")
    parser.add_argument("--only", default="", help="comma-separated task names")
    parser.add_argument("--agents", default="ours,mini-tool,mini-text")
    parser.add_argument("--model", default="1.5b", choices=["0.5b", "1.5b"])
    parser.add_argument("--context", type=int, default=16384)
    parser.add_argument("--step-limit", type=int, default=12)
    parser.add_argument("--time-limit", type=int, default=150, help="seconds per run")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    args = parser.parse_args()
    tasks = [t for t in TASKS if t.name in args.only.split(",")] if args.only else TASKS[:args.tasks]
    agents = args.agents.split(",")
    budget = Budget(args.step_limit, args.time_limit)
    work = Path(tempfile.mkdtemp(prefix="moe-bench-real-"))
    for task in tasks:  # every task starts broken, or a "resolved" would mean nothing
        if passes(task, make_repo(task, work / "unfixed" / task.name)):
            sys.exit(f"task {task.name}: its test passes before any fix")
    port = free_port()
    parallel = max((attempts_of(a) for a in agents if a.startswith("ours")), default=1)
    server = [args.model, str(args.context), str(port), str(parallel)]
    start_server(*server)
    base_url, model = f"http://127.0.0.1:{port}/v1", f"qwen2.5-coder-{args.model}"
    env = {**os.environ, "OPENAI_BASE_URL": base_url, "AGENT_MODEL": model, "OPENAI_API_KEY": "none",
           "HOME": str(work / "home")}
    env.pop("AGENT_CONFIG", None)
    results: dict[str, list[dict[str, Any]]] = {agent: [] for agent in agents}
    try:
        mini = mini_executable(work) if any(a.startswith("mini") for a in agents) else None
        for done, task in enumerate(tasks, 1):  # task by task, so a stopped run still compares like with like
            for agent in agents:
                if agent.startswith("ours"):
                    row = run_ours(task, work, env, budget, attempts_of(agent))
                else:
                    row = run_mini(task, work, mini, agent.removeprefix("mini-"), base_url, model, budget)
                results[agent].append(row)
                if not server_idle(port):  # a stopped client's generation would delay the next run
                    print("    the server was still generating for a stopped run: restarted", flush=True)
                    subprocess.run(["bash", str(SERVER), "stop", str(port)], capture_output=True, timeout=60)
                    start_server(*server)
                print(f"{agent:10} {task.name:17} {'RESOLVED' if row['resolved'] else 'no':8} "
                      f"{row['status']:16} steps {row.get('steps')}  {float(row.get('elapsed') or 0):.0f}s", flush=True)
                if row.get("selection"):
                    print("    selection:", row["selection"], flush=True)
                if row["status"] == "crashed":  # what it said last, so a crash is understood while the rest runs
                    print("   ", (row.get("stderr") or "").strip().splitlines()[-1:], flush=True)
            if done < len(tasks):
                print("after", done, "tasks:", json.dumps(summary(results, done, budget, model)), flush=True)
    finally:
        subprocess.run(["bash", str(SERVER), "stop", str(port)], capture_output=True, timeout=60)
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(summary(results, len(tasks), budget, model)))


def summary(results: dict[str, list[dict[str, Any]]], n: int, budget: Budget, model: str) -> dict[str, Any]:
    ours = results.get("ours", [])
    minis = {agent: sum(r["resolved"] for r in rows) for agent, rows in results.items() if agent.startswith("mini")}
    steps = [r["steps"] for r in ours if r.get("steps") is not None]
    elapsed = sum(float(r.get("elapsed") or 0) for r in ours)
    more = {f"resolved_{agent.replace('-', '_')}": sum(r["resolved"] for r in rows)
            for agent, rows in results.items() if agent.startswith("ours-a")}
    return {
        "n": n,
        "resolved_ours": sum(r["resolved"] for r in ours) if ours else None,
        **more,
        "resolved_mini": max(minis.values()) if minis else None,
        "median_steps_ours": statistics.median(steps) if steps else None,
        "model_time_share": round(sum(r.get("model_time") or 0 for r in ours) / elapsed, 3) if elapsed else None,
        "resolved_mini_by_config": minis,
        "ours_statuses": [r["status"] for r in ours],
        "ours_undelivered_passing": sum(bool(r.get("undelivered_patch_passes")) for r in ours),
        "model": model, "step_limit": budget.steps, "time_limit": budget.seconds,
    }


if __name__ == "__main__":
    main()
