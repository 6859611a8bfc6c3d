"""`agent demo`: the whole product on a small buggy project, with no model server.

A bundled recorded session is replayed through the real loop, in a real Docker sandbox,
and the project's tests run before and after, so a new user sees every part work.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import git
from rich.console import Console
from rich.panel import Panel

from agent.config import load_settings
from agent.fix import FixOutcome, FixRequest, run_fix
from agent.progress import LiveProgress, print_diff, print_summary
from agent.replay import ReplayModel
from agent.terminal import escape
from agent.trajectory import read_trajectory
from sandbox.docker import SandboxSpec, connect, start_sandbox
from sandbox.images import ImageRecipe, build_image

HERE = Path(__file__).parent
TEST_COMMAND = "python3 -m unittest -v 2>&1 | tail -n 12"


def make_project(root: Path) -> Path:
    """A committed copy of the bundled project in `root`/inventory, on branch main."""
    path = root / "inventory"
    shutil.copytree(HERE / "project", path)
    demo = git.Actor("demo", "demo@example.invalid")
    with git.Repo.init(path, initial_branch="main") as repo:
        repo.git.add("-A")
        repo.index.commit("Inventory library", author=demo, committer=demo)
    return path


def export_branch(repo: Path, branch: str, target: Path) -> None:
    """The files of `branch` written under `target` (symlinks as plain files), the work tree untouched."""
    with git.Repo(repo) as opened:
        for item in opened.commit(branch).tree.traverse():
            if item.type == "blob":
                (target / item.path).parent.mkdir(parents=True, exist_ok=True)
                (target / item.path).write_bytes(item.data_stream.read())


def project_tests(image: str, tree: Path, client: object) -> tuple[bool, str]:
    with start_sandbox(SandboxSpec(image=image, copy_from=tree, run_id="demo-tests"), client) as box:
        result = box.run(TEST_COMMAND, timeout=120)
        passed = box.run("python3 -m unittest -q >/dev/null 2>&1").exit_code == 0
    return passed, result.output


def run_demo(console: Console, keep: bool = False) -> FixOutcome:
    err = Console(stderr=True, highlight=False)
    client = connect()
    image = build_image(ImageRecipe(), client, echo=lambda step: err.print(f"[dim]{step}[/]"))
    workdir = Path(tempfile.mkdtemp(prefix="moe-agent-demo-"))
    try:
        repo = make_project(workdir)
        issue = (HERE / "issue.md").read_text()
        console.print(Panel(issue.strip(), title=f"the issue · a small project in {repo}", title_align="left"))
        passed, output = project_tests(image, repo, client)
        console.print(f"[bold]tests before:[/] {'[green]pass' if passed else '[red]fail'}[/]")
        console.print(f"[dim]{escape(output.rstrip())}[/]")
        console.print("[cyan]replaying a recorded session (no model server needed): real loop, real tools, "
                      "real Docker sandbox[/]")
        model = ReplayModel.from_trajectory(read_trajectory(HERE / "session.jsonl"))
        settings = load_settings(repo, overrides={"loop.step_limit": 20, "model.tool_format": "native"})
        outcome = run_fix(FixRequest(task=issue, repo=repo), settings, model, listener=LiveProgress(err),
                          echo=lambda m: err.print(f"[dim]{escape(m)}[/]"))
        print_diff(console, outcome.result.patch)
        if outcome.branch:
            after = workdir / "after"
            after.mkdir()
            export_branch(repo, outcome.branch, after)
            passed, output = project_tests(image, after, client)
            console.print(f"[bold]tests after, on branch {outcome.branch}:[/] {'[green]pass' if passed else '[red]fail'}[/]")
            console.print(f"[dim]{escape(output.rstrip())}[/]")
        print_summary(console, outcome.result, {"branch": str(outcome.branch), "repository": str(repo),
                                                "trajectory": str(outcome.trajectory)})
        return outcome
    finally:
        if not keep:
            shutil.rmtree(workdir, ignore_errors=True)
