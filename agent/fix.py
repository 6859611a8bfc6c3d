"""The fix workflow: issue text in, a tested patch out, the user's tree untouched.

It owns the sandbox's lifetime and the trajectory file; the loop below it knows neither.
"""

from __future__ import annotations

import os
import secrets
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agent.config import Settings
from agent.environment import prepare_image
from agent.errors import EnvironmentProblem
from agent.loop import Listener, RunResult, configured_agent, toolset
from agent.model import Model
from agent.trajectory import TrajectoryWriter
from agent.workspace import Snapshot, UserRepo, apply_to_worktree, commit_to_branch, slugify, take_snapshot, unique_branch
from sandbox.docker import SandboxSpec, connect, start_sandbox

EXIT_CODES = {"patch": 0, "no_patch": 1, "model_error": 3, "sandbox_error": 3, "interrupted": 130}


@dataclass
class FixRequest:
    task: str
    repo: Path
    branch: str | None = None
    apply: bool = False
    commit: bool = True
    patch_out: Path | None = None
    title: str | None = None
    partial: bool = False  # also branch/apply a patch the agent did not submit (it stays exit 1)


@dataclass
class FixOutcome:
    result: RunResult
    run_id: str
    trajectory: Path
    branch: str | None = None
    commit: str | None = None
    applied: bool = False
    included_local_changes: bool = False
    image: str = ""
    setup_cached: bool = False
    notes: list[str] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        """0 only for a patch the agent submitted: one salvaged at a limit was never tested or meant."""
        status = self.result.status
        if status in EXIT_CODES:
            return EXIT_CODES[status]
        return EXIT_CODES["patch"] if status == "submitted" and self.result.has_patch else EXIT_CODES["no_patch"]

    def to_json(self) -> dict[str, Any]:
        r = self.result
        return {
            "status": r.status, "message": r.message, "patch": r.patch, "branch": self.branch, "commit": self.commit,
            "applied": self.applied, "trajectory": str(self.trajectory), "run_id": self.run_id, "exit_code": self.exit_code,
            "stats": {"steps": r.steps, "prompt_tokens": r.prompt_tokens, "completion_tokens": r.completion_tokens,
                      "cost": r.cost, "elapsed": r.elapsed, "prefix_reuse": r.prefix_reuse,
                      "compactions": r.compactions, "model_time": r.model_time},
            "tests": r.last_tests, "notes": self.notes,
        }


def new_run_id() -> str:
    return time.strftime("%Y%m%d-%H%M%S") + "-" + secrets.token_hex(3)


def runs_dir(settings: Settings, repo: UserRepo) -> Path:
    if settings.paths.runs_dir:
        return settings.paths.runs_dir
    folder = repo.root / ".agent"
    folder.mkdir(exist_ok=True)
    ignore = folder / ".gitignore"
    if not ignore.exists():
        ignore.write_text("# moe-agent's runs and caches; never committed\n*\n")
    return folder / "runs"


def run_fix(
    request: FixRequest,
    settings: Settings,
    model: Model,
    *,
    listener: Listener | None = None,
    echo: Callable[[str], None] = lambda message: None,
) -> FixOutcome:
    repo = UserRepo.find(request.repo)
    toolset(settings.tools.enabled)  # a bad tool name fails before any work
    run_id = new_run_id()
    run_dir = runs_dir(settings, repo) / run_id
    trajectory = TrajectoryWriter(run_dir / "trajectory.jsonl")
    try:
        with tempfile.TemporaryDirectory(prefix="moe-fix-") as tmp:
            snapshot = take_snapshot(repo, Path(tmp) / "repo")
            client = connect()
            image, cached = prepare_image(settings.sandbox, snapshot.path, client, echo)
            spec = SandboxSpec(
                image=image, workdir=settings.sandbox.workdir, mount=snapshot.path, cpus=settings.sandbox.cpus,
                memory=settings.sandbox.memory, pids_limit=settings.sandbox.pids_limit, network=settings.sandbox.network,
                ca_bundle=settings.sandbox.ca_bundle, run_id=run_id, command_timeout=settings.loop.command_timeout_max,
            )
            echo(f"sandbox from {image}" + (" (cached setup)" if cached else ""))
            box = start_sandbox(spec, client)
            try:
                agent = configured_agent(model, box, settings, task=request.task, base_commit=snapshot.base_commit,
                                         cache_dir=str(repo.root / ".agent" / "cache"), trajectory=trajectory,
                                         listener=listener)
                result = agent.run(request.task, config={**settings.redacted(), "run_id": run_id, "image": image,
                                                          "repo": str(repo.root), "head": repo.head})
            finally:
                _hand_back(box)
                box.close()
            outcome = FixOutcome(result=result, run_id=run_id, trajectory=trajectory.path, image=image,
                                 setup_cached=cached)
            if result.has_patch and result.status == "submitted":
                deliver(outcome, request, repo, snapshot)
            elif result.has_patch and result.status != "interrupted":
                _keep_unsubmitted(outcome, request, repo, snapshot)
            return outcome
    finally:
        trajectory.close()


def deliver(outcome: FixOutcome, request: FixRequest, repo: UserRepo, snapshot: Snapshot) -> None:
    """Write the patch where the user asked: a file, the working tree, or a new branch."""
    patch = outcome.result.patch
    if request.patch_out:
        request.patch_out.write_text(patch)
    if not request.commit:
        return
    if request.apply:
        apply_to_worktree(repo, patch)
        outcome.applied = True
        return
    title = request.title or request.task.strip().splitlines()[0][:72]
    branch = unique_branch(repo, request.branch or f"agent/{slugify(title)}")
    message = f"{title}\n\nPatch written by moe-agent (run {outcome.run_id}, status {outcome.result.status})."
    outcome.commit, outcome.included_local_changes = commit_to_branch(repo, snapshot, patch, branch, message)
    outcome.branch = branch
    if outcome.included_local_changes:
        outcome.notes.append("the fix builds on your uncommitted changes, so the branch has them as a first commit")


def _keep_unsubmitted(outcome: FixOutcome, request: FixRequest, repo: UserRepo, snapshot: Snapshot) -> None:
    """A patch left when the run stopped without submitting: in the trajectory and --patch-out, delivered only on --partial."""
    if request.partial:
        deliver(outcome, request, repo, snapshot)
        outcome.notes.append(f"the agent did not submit this patch ({outcome.result.status}); delivered because of "
                             "--partial")
        return
    if request.patch_out:
        request.patch_out.write_text(outcome.result.patch)
    outcome.notes.append(f"the agent did not submit this patch ({outcome.result.status}), so no branch was made; it is "
                         "in the trajectory" + (" and --patch-out" if request.patch_out else "")
                         + " (--partial delivers it anyway)")


def _hand_back(box: Any) -> None:
    """Files the container created are root's; give the snapshot back to us so it can be deleted."""
    if os.getuid() != 0:
        try:
            box.run(f"chown -R {os.getuid()}:{os.getgid()} {box.workdir}", timeout=60)
        except Exception as exc:  # the temporary directory may then need manual removal
            raise EnvironmentProblem(f"could not hand the sandbox files back: {exc}") from None
