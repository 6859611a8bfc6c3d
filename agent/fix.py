"""The fix workflow: issue text in, a tested patch out, the user's tree untouched.

It owns the sandbox's lifetime and the trajectory file; the loop below it knows neither.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib
import os
import secrets
import shlex
import shutil
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from agent.attempts import AttemptPlan, AttemptsJob, run_attempts
from agent.config import Settings, warn_on_stderr
from agent.errors import UsageError
from agent.instructions import RepositoryInstructions, read_instructions
from agent.patch_policy import PatchReview, enforce, review_patch
from agent.redaction import Redactor, mask_held, scrub
from agent.terminal import visible_line
from agent.trajectory import TrajectoryWriter
from agent.workspace import (
    Snapshot,
    UserRepo,
    apply_to_worktree,
    commit_to_branch,
    materialize,
    sandbox_object_paths,
    snapshot_links,
    submodule_edits,
    submodule_state_command,
    take_snapshot,
    task_branch,
)
from sandbox import cleanup
from sandbox.base import SandboxError
from sandbox.cache import cache_home
from sandbox.cleanup import shielded
from sandbox.pending import PendingSandbox

if TYPE_CHECKING:  # at run time the loop and the model client are imported while the snapshot is taken, and
    # Docker's side (the client, images, the sandbox's set-up) once the first request has left
    from agent.files_image import FilesImage
    from agent.followup import FollowUp
    from agent.loop import Listener, RunResult
    from agent.model import Model
    from sandbox.docker import DockerSandbox, SandboxSpec

T = TypeVar("T")
EXIT_CODES = {"patch": 0, "no_patch": 1, "model_error": 3, "sandbox_error": 3, "interrupted": 130}


@dataclass
class FixRequest:
    task: str
    repo: Path
    branch: str | None = None
    apply: bool = False
    commit: bool = True
    patch_out: Path | None = None
    title: str | None = None  # the commit's subject, untrusted (issue or model text): shown one line, controls visible
    # A subject the caller already made safe that way (`agent.ci.pull_title`, whose invisible word
    # joiners after `#` would be escaped to a literal `\u2060` by a second pass); wins over `title`.
    subject: str | None = None
    partial: bool = False  # also branch/apply a patch the agent did not submit (it stays exit 1)
    # None: sensitive changes are only listed (`agent fix`); a list: the kinds that may be
    # delivered, anything else refused (`agent ci`/`agent pr`, from the user's patch_policy).
    allow_sensitive: list[str] | None = None
    secrets: tuple[str, ...] = ()  # more values to keep out of the trajectory (a GitHub token)
    cwd: Path | None = None  # where in the repository the user ran: AGENTS.md files are read down to here
    repo_instructions: bool = True  # False: --no-instructions
    follow_up: FollowUp | None = None  # `--continue`: resume that run's conversation on its branch (agent/followup.py)
    attempts: AttemptPlan = field(default_factory=AttemptPlan)  # --attempts N: N loops, one patch chosen


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
    timings: dict[str, float] = field(default_factory=dict)  # seconds per phase, see `Timings`
    review: PatchReview = field(default_factory=PatchReview)  # what the patch touches (agent/patch_policy.py)
    instructions: RepositoryInstructions | None = None  # None: turned off
    delivery_error: str | None = None  # why the patch could not be delivered (it is still in `result.patch`)

    @property
    def exit_code(self) -> int:
        """0 only for a patch the agent submitted: one salvaged at a limit was never tested or meant."""
        status = self.result.status
        if self.delivery_error is not None:
            return 2  # the user's repository or path refused it: their input, as for every usage error
        if status == "interrupted" and self.result.extra.get("signal"):
            return 128 + int(self.result.extra["signal"])  # 130 for SIGINT, 143 for SIGTERM
        if status in EXIT_CODES:
            return EXIT_CODES[status]
        return EXIT_CODES["patch"] if status == "submitted" and self.result.has_patch else EXIT_CODES["no_patch"]

    def to_json(self) -> dict[str, Any]:
        r = self.result
        return {
            "status": r.status, "message": r.message, "patch": r.patch, "branch": self.branch, "commit": self.commit,
            "applied": self.applied, "delivery_error": self.delivery_error, "trajectory": str(self.trajectory), "run_id": self.run_id, "exit_code": self.exit_code,
            "stats": {"steps": r.steps, "prompt_tokens": r.prompt_tokens, "completion_tokens": r.completion_tokens,
                      "cost": r.cost, "elapsed": r.elapsed, "prefix_reuse": r.prefix_reuse,
                      "compactions": r.compactions, "model_time": r.model_time},
            "tests": r.last_tests, "notes": self.notes,
            "timings": self.timings,
            "patch_review": self.review.to_json(),
            "instructions": self.instructions.to_json() if self.instructions else None,
            "selection": r.extra.get("selection"),  # --attempts: agent/selection.py's record
        }


def new_run_id() -> str:
    return time.strftime("%Y%m%d-%H%M%S") + "-" + secrets.token_hex(3)


def runs_dir(settings: Settings, repo: UserRepo, warn: Callable[[str], None] | None = None) -> Path:
    """Where this repository's runs go: the user's `paths.runs_dir`, else `.agent/runs` in the repository.

    A cloned repository may commit `.agent`, `.agent/runs` or `.agent/.gitignore` as symlinks
    to make us write elsewhere on the host: none of them is followed. It may also commit a
    regular file (or anything else not of the kind we write) at one of them, or make one we
    cannot write. In each case the runs go to the user's cache folder (`runs/<repository name>-<hash
    of its path>`), and `warn` (default: a `warning:` line on stderr, shown with `--json` too) says
    why; never a traceback.
    """
    if settings.paths.runs_dir:
        return settings.paths.runs_dir
    folder = repo.root / ".agent"
    ignore, runs = folder / ".gitignore", folder / "runs"
    why = _unusable(repo.root, folder, ignore, runs)
    if why is None:
        try:
            folder.mkdir(exist_ok=True)
            if not ignore.exists():
                ignore.write_text("# moe-agent's runs and caches; never committed\n*\n")
        except OSError as exc:  # read-only checkout, a name the file system refuses...
            why = f"cannot be written ({exc.strerror or exc})"
    if why is None:
        return runs
    name = hashlib.sha256(str(repo.root).encode()).hexdigest()[:12]
    fallback = cache_home() / "runs" / f"{repo.root.name}-{name}"
    (warn or warn_on_stderr)(f"the repository's .agent {why}: runs go to {fallback}")
    return fallback


def _unusable(root: Path, folder: Path, ignore: Path, runs: Path) -> str | None:
    """Why the repository's `.agent` may not hold our runs (a committed symlink or wrong kind of file), None if it may."""
    if not all(_inside_without_links(root, path) for path in (folder, ignore, runs)):
        return "is or holds a symlink, not followed"
    for path, why, fits in ((folder, "is not a directory", Path.is_dir),
                            (runs, "holds runs, which is not a directory", Path.is_dir),
                            (ignore, "holds .gitignore, which is not a regular file", Path.is_file)):
        if path.exists() and not fits(path):
            return why
    return None


def _inside_without_links(root: Path, path: Path) -> bool:
    """Whether `path` (below `root`) resolves inside `root` with no component from `root` down a symlink."""
    current = root
    for part in path.relative_to(root).parts:
        current = current / part
        if current.is_symlink():
            return False
    return path.resolve().is_relative_to(root.resolve())


def run_fix(
    request: FixRequest,
    settings: Settings,
    model: Model | None = None,
    *,
    listener: Listener | None = None,
    echo: Callable[[str], None] = lambda message: None,
    found: UserRepo | None = None,
) -> FixOutcome:
    """Snapshot, sandbox, loop, delivery. `model` defaults to the client `settings.model` names.

    The snapshot is taken in the background while this thread imports the loop and the
    model client (the `openai` SDK's import is most of the CPU before the first request).
    The first request waits for the snapshot (its file list goes into the prompt) and for
    nothing of Docker's: Docker's Python work (its client's import, the image check, the
    container, the copy of the snapshot: about 0.3 s of CPU) would hold the interpreter lock
    the request's own set-up needs, so it begins when the first request leaves
    (`sandbox.pending`) and runs while the model reads the task; the first tool call, or
    else the second request, waits for it. A start that fails then ends the run there
    with status `sandbox_error`, its reason in the message and the trajectory closed, as a
    sandbox that dies mid-run does: a container Docker refuses, a missing image, Docker
    unreachable (exit 3); a failed setup raises its own error after that clean-up, as
    before the loop (exit 3, one line), also when the model server failed meanwhile. Such a
    run has cost one model request. The image is recorded in the trajectory's `sandbox`
    event once a tool has run in it. Nothing of the run stays in the user's repository
    (but the trajectory under `.agent/` and the delivered branch) or in the temporary folder.

    A signal at any point still ends with an outcome: SIGINT and SIGTERM
    (`KeyboardInterrupt`) end the run with status `interrupted`, the container and the
    temporary copy are removed, the trajectory gets its `end` event, nothing is delivered.
    Errors before the loop (`UsageError`, `EnvironmentProblem`, `SandboxError`) propagate
    after the same cleanup. `found`: `request.repo` already looked up (the CLI did, for its config).
    """
    clock = Timings()
    repo = found if found is not None and found.root == request.repo else UserRepo.find(request.repo)
    run_id = new_run_id()
    run_dir = runs_dir(settings, repo) / run_id
    instructions = read_instructions(repo.root, request.cwd) if request.repo_instructions else None
    warn_unused_capabilities(settings.sandbox.user, settings.sandbox.capabilities)
    cleanup.install_handlers()  # from this (main) thread: signals cannot be set up from the others
    with cleanup.shielded(deliver=False):  # a signal meanwhile comes out inside the `try`, which removes these
        scratch = cleanup.scratch_dir("fix")  # named after this process: a run killed by -9 leaves it for the next
        background = ThreadPoolExecutor(max_workers=4, thread_name_prefix="moe-fix")
        trajectory = TrajectoryWriter(run_dir / "trajectory.jsonl",
                                      redact=Redactor([*settings.secrets(), *request.secrets]))
    box: PendingSandbox | None = None
    preparing: Future[_Prepared] | None = None
    stopping: Future[None] | None = None
    result: RunResult | None = None
    image, cached = "", False
    try:
        cleanup.deliver_pending()
        follow = request.follow_up
        taking = background.submit(clock.timed, "snapshot", follow.snapshot if follow else take_snapshot, repo,
                                   scratch / "snapshot")

        def launch() -> Future[DockerSandbox]:
            """Docker's part, once the first request has left (`PendingSandbox.launch`), and what can wait as long."""
            nonlocal preparing
            preparing = background.submit(_prepare_sandbox, settings, repo, run_id, taking, scratch, clock, echo)
            starting = background.submit(lambda: _start_prepared(preparing.result(), taking, clock, echo))  # type: ignore[union-attr]
            background.submit(cleanup.reap_scratch)  # copies left by runs killed with -9
            background.submit(importlib.import_module, "jsonschema")  # what the first tool call imports, for its arguments
            return starting

        box = PendingSandbox(launch, settings.sandbox.workdir)
        from agent.loop import configured_agent, toolset  # the model client's imports overlap the snapshot

        toolset(settings.tools.enabled)  # a bad tool name fails before the loop starts
        if model is None:
            from agent.model import OpenAIModel

            model = OpenAIModel(settings.model)
            background.submit(model.warm)
        snapshot = taking.result()
        # The tag cache stays in the user's cache directory: one inside the repository could have
        # come with the clone.
        image_noted = False

        def noted(kind: str, data: dict[str, Any]) -> None:
            """Once a tool has run in it, the sandbox's image (unknown when the `start` event was written)."""
            nonlocal image_noted
            if kind == "tool" and not image_noted and preparing is not None and preparing.done() \
                    and preparing.exception() is None:
                image_noted = True
                trajectory.event("sandbox", image=preparing.result().image, setup_cached=preparing.result().cached)
            if listener is not None:
                listener(kind, data)

        agent = configured_agent(_Timed(model, clock, box.launch, box.started), box, settings, task=request.task,
                                 base_commit=snapshot.base_commit, trajectory=trajectory,
                                 listener=clock.listener(noted),
                                 instructions=instructions.prompt() if instructions else "",
                                 files=list(snapshot.files))  # the prompt's file list: no wait for the container
        config = {**settings.redacted(), "run_id": run_id, "repo": str(repo.root), "head": repo.head,
                  "instructions": instructions.to_json() if instructions else None}
        try:
            with clock.phase("loop"):
                if request.attempts.count > 1:
                    result = run_attempts(AttemptsJob(
                        request.attempts, request.task, config, model=model, test_cmd=settings.sandbox.test_cmd,
                        make_agent=lambda model_, box_, trajectory_, listener_: configured_agent(
                            _Timed(model_, clock, box.launch), box_, settings, task=request.task, base_commit=snapshot.base_commit,
                            trajectory=trajectory_, listener=clock.listener(listener_),
                            instructions=instructions.prompt() if instructions else ""),
                        start_sandbox=lambda: _start_sandbox(settings, repo, run_id, taking, scratch, clock, echo),
                        trajectory_for=lambda n: run_dir / f"attempt-{n}.jsonl", sandbox_memory=settings.sandbox.memory,
                        redact=Redactor([*settings.secrets(), *request.secrets]), listener=listener, echo=echo),
                        trajectory, first=box)
                else:
                    result = agent.run(request.task, config={**config, **(follow.record() if follow else {})},
                                       resume=follow.messages if follow else None)
            # with attempts, `box` is only the first one's: what they changed in submodules is not checked
            submodule_notes = _submodule_notes(box, snapshot) if request.attempts.count <= 1 and box.launched else []
        finally:  # after a finished run the container ends and goes by itself, while the delivery runs and
            # after we exit; an interrupted one is removed before we exit, as promised (docs/ending-runs.md)
            stopping = background.submit(clock.timed, "sandbox_stop", box.close,
                                         result is None or result.status == "interrupted")
        # A start that failed for a reason of its own (a failed setup, a bug, a file we could not read) is
        # what the user must fix first, also when the model server failed meanwhile: its own error and exit code.
        failed = box.start_error(wait=True) if result.status in ("sandbox_error", "model_error") else None
        if failed is not None and not isinstance(failed, SandboxError):
            raise failed
        if preparing is not None and preparing.done() and preparing.exception() is None:
            image, cached = preparing.result().image, preparing.result().cached
        outcome = FixOutcome(result=result, run_id=run_id, trajectory=trajectory.path, image=image,
                             setup_cached=cached, timings=clock.phases, review=_review(result.patch, repo, snapshot),
                             instructions=instructions, notes=submodule_notes)
        if result.has_patch and result.status == "submitted":
            if request.allow_sensitive is not None:
                enforce(outcome.review, request.allow_sensitive, kept_in=trajectory.path)
            try:
                with shielded(), clock.phase("delivery"):  # the branch is made whole or not at all
                    deliver(outcome, request, repo, snapshot)
            except KeyboardInterrupt:  # it came during delivery, which finished: report what was made
                outcome.notes.append("interrupted after the patch was delivered")
        elif result.has_patch and result.status != "interrupted":
            _keep_unsubmitted(outcome, request, repo, snapshot)
        if outcome.branch:  # what a follow-up (`--continue`) starts from
            trajectory.event("delivery", branch=outcome.branch, commit=outcome.commit, base_commit=snapshot.base_commit)
        with shielded():
            stopping.result()  # type: ignore[union-attr]
        clock.phases["total"] = clock.since_start()
        return outcome
    except KeyboardInterrupt as exc:
        result = _interrupted(result, exc, clock.started)
        if not trajectory.written:
            trajectory.event("start", task=request.task, config={
                "run_id": run_id, "repo": str(repo.root), **(request.follow_up.record() if request.follow_up else {})})
        trajectory.event("end", **{k: v for k, v in result.__dict__.items() if k != "extra"})
        return FixOutcome(result=result, run_id=run_id, trajectory=trajectory.path, image=image,
                          setup_cached=cached, timings=clock.phases, instructions=instructions)
    finally:
        with shielded():
            if box is not None and stopping is None:
                box.close()  # ended before the loop did: what started is removed, and nothing starts any more
            background.shutdown(wait=True)
            trajectory.close()
            shutil.rmtree(scratch, ignore_errors=True)


def _review(patch: str, repo: UserRepo, snapshot: Snapshot) -> PatchReview:
    """The patch policy's review, its links resolved in the tree the patch applies to, whose files say
    where its local actions are (every delivery goes through here: fix, ci, pr, --attempts, --continue)."""
    if not patch.strip():
        return review_patch(patch)
    return review_patch(patch, snapshot_links(repo, snapshot), snapshot.files)


def _interrupted(result: RunResult | None, exc: KeyboardInterrupt, started: float) -> RunResult:
    """The run's result marked interrupted (its patch kept for the record, never delivered)."""
    from agent.run_result import RunResult  # not agent.loop: the signal may have cut its imports short

    signum = getattr(exc, "signum", None)
    message = str(exc) if signum else "interrupted by the user"
    if result is None:
        result = RunResult(status="interrupted", message=message, patch="", steps=0, prompt_tokens=0,
                           completion_tokens=0, cost=None, elapsed=round(time.perf_counter() - started, 3),
                           prefix_reuse=None, compactions=0)
    result = dataclasses.replace(result, status="interrupted", message=message)
    if signum:
        result.extra["signal"] = signum
    return result


@dataclass
class _Prepared:
    """Docker's side of a start that needs no container yet: the client, the image, the files image, the spec."""

    client: Any
    image: str
    cached: bool
    files: FilesImage
    spec: SandboxSpec


def _prepare_sandbox(settings: Settings, repo: UserRepo, run_id: str, taking: Future[Snapshot], scratch: Path,
                     clock: Timings, echo: Callable[[str], None]) -> _Prepared:
    """The client, the image (built when the setup commands changed) and what a container will be started with."""
    from agent.environment import prepare_image, setup_inputs
    from agent.files_image import FilesImage
    from sandbox.docker import SandboxSpec, connect

    with clock.phase("image"):
        client = connect()
        image, cached = prepare_image(settings.sandbox,
                                      lambda: setup_inputs(settings.sandbox.setup, taking.result().files, repo.root),
                                      client, echo,
                                      checkout=lambda: materialize(taking.result(), scratch / "setup"),
                                      history=repo.shared_objects())
        files = FilesImage.find(client, image, repo.root, cache_home() / "files-images",
                                variant=f"{settings.sandbox.workdir}\0{settings.sandbox.ca_bundle or ''}\0{settings.sandbox.user}")
    spec = SandboxSpec(
        image=files.tag if files.usable else image, workdir=settings.sandbox.workdir, cpus=settings.sandbox.cpus,
        memory=settings.sandbox.memory, pids_limit=settings.sandbox.pids_limit, network=settings.sandbox.network,
        tmp_size=settings.sandbox.tmp_size or None, disk_size=settings.sandbox.disk_size or None,
        ca_bundle=settings.sandbox.ca_bundle, run_id=run_id, command_timeout=settings.loop.command_timeout_max,
        readonly_mounts=sandbox_object_paths(repo.shared_objects()),
        **_identity(settings.sandbox.user, settings.sandbox.capabilities),
    )
    echo(f"sandbox from {image}" + (" (cached setup)" if cached else ""))
    return _Prepared(client, image, cached, files, spec)


def _start_prepared(prepared: _Prepared, taking: Future[Snapshot], clock: Timings,
                    echo: Callable[[str], None]) -> DockerSandbox:
    """The container started, then the snapshot copied in (only what changed since the files image)."""
    from sandbox.docker import start_sandbox

    files = prepared.files
    with clock.phase("sandbox_start"):
        box = start_sandbox(prepared.spec, prepared.client)
    try:
        snapshot = taking.result()
        with clock.phase("copy_in"):
            copy, delete = files.changes(snapshot.files)
            box.unpack(snapshot.archive(files=copy, prefix=box.workdir.strip("/"), owner=box.owner), dest="/")
            _delete(box, delete)
        if not files.usable and files.worth_keeping(len(snapshot.files)):
            echo("keeping the repository's files as an image, so that later runs copy only what changed")
            with clock.phase("files_image"):
                files.save(box.container, snapshot.files)
        elif files.stale(copy, delete, len(snapshot.files)):
            files.drop(prepared.client)
    except BaseException:
        box.close()
        raise
    return box


def _start_sandbox(settings: Settings, repo: UserRepo, run_id: str, taking: Future[Snapshot], scratch: Path,
                   clock: Timings, echo: Callable[[str], None]) -> DockerSandbox:
    """A sandbox prepared and started in one go (each attempt of `--attempts` after the first)."""
    return _start_prepared(_prepare_sandbox(settings, repo, run_id, taking, scratch, clock, echo), taking, clock, echo)


def _submodule_notes(box: Any, snapshot: Snapshot) -> list[str]:
    """What the agent changed inside submodules, which no patch delivers: one note, or none."""
    command = submodule_state_command(snapshot)
    if command is None:
        return []
    try:
        done = box.run(f"(cd {shlex.quote(box.workdir)} && {command})", timeout=300)
    except SandboxError:  # the sandbox died with the run, which says so: nothing more to tell here
        return []
    edited = submodule_edits(snapshot, done.output) if done.ok and not done.truncated_bytes else []
    if not edited:
        return []
    shown = ", ".join(edited[:5]) + (f" and {len(edited) - 5} more" if len(edited) > 5 else "")
    return [f"the agent changed {len(edited)} file(s) inside submodules ({shown}): not delivered, since a patch "
            "never turns a submodule into files; make such a change in the submodule's own repository"]


def _delete(box: Any, paths: list[str]) -> None:
    """Remove files the user deleted since the files image was made."""
    if not paths:
        return
    box.write_file("/tmp/.moe-gone", b"\0".join(map(os.fsencode, paths)) + b"\0")
    done = box.run("xargs -0 rm -f -- < /tmp/.moe-gone; rm -f /tmp/.moe-gone", timeout=120)
    if not done.ok:
        raise SandboxError(f"could not remove deleted files in the sandbox: {done.output.strip()[:200]}")


class Timings:
    """Seconds spent in each phase of a run, for `agent fix --json` (`timings`).

    Phases: `snapshot` (host git), `first_request` (from the run's start to the first model
    request leaving: it waits for `snapshot` only), then, from that moment, `image` (Docker
    client and image lookup or build), `sandbox_start`, `copy_in` (the snapshot into the
    sandbox: the files changed since the files image, or all), `files_image` (the first run
    in a large repository: keeping its files as an image), while the model answers; `loop`, `patch` (the `submit` tool computing it), `sandbox_stop` (while
    `delivery` runs), `delivery`, `total`;
    `startup` is the process's age when the run began (imports, config), where known.
    """

    def __init__(self) -> None:
        self.started = time.perf_counter()
        self.phases: dict[str, float] = {}
        age = _process_age()
        if age is not None:
            self.phases["startup"] = round(age, 3)

    def since_start(self) -> float:
        return round(time.perf_counter() - self.started, 3)

    @contextmanager
    def phase(self, name: str) -> Iterator[None]:
        began = time.perf_counter()
        try:
            yield
        finally:
            self.phases[name] = round(time.perf_counter() - began, 3)

    def timed(self, name: str, fn: Callable[..., T], *args: Any) -> T:
        with self.phase(name):
            return fn(*args)

    def listener(self, inner: Listener | None) -> Listener:
        """`inner`, and the `submit` tool's duration noted as `patch`."""

        def listen(kind: str, data: dict[str, Any]) -> None:
            if kind == "tool" and data.get("name") == "submit" and "duration" in data:
                self.phases["patch"] = round(data["duration"], 3)
            if inner is not None:
                inner(kind, data)

        return listen


class _Timed:
    """The model, noting when the first request leaves; everything else passes through.

    `first` is called as this model's first request leaves (the workflow launches the
    sandbox then), `later` before each request after it (the workflow waits there for the
    sandbox: a start that failed, a setup that failed, ends the run at the second request
    at the latest, even when the model never calls a tool).
    """

    def __init__(self, model: Model, clock: Timings, first: Callable[[], object] = lambda: None,
                 later: Callable[[], object] = lambda: None) -> None:
        self._model, self._clock, self._first, self._later = model, clock, first, later
        self._asked = False

    def query(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]], **options: Any) -> Any:
        if self._asked:
            self._later()
        else:
            self._asked = True
            self._clock.phases.setdefault("first_request", self._clock.since_start())
            self._first()
        return self._model.query(messages, tools, **options)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._model, name)


def _process_age() -> float | None:
    """Seconds since this process started (Linux: /proc), or None."""
    try:
        fields = Path("/proc/self/stat").read_text().rpartition(")")[2].split()
        started = int(fields[19]) / os.sysconf("SC_CLK_TCK")
        return max(0.0, time.clock_gettime(time.CLOCK_BOOTTIME) - started)
    except (OSError, ValueError, IndexError, AttributeError):
        return None


def deliver(outcome: FixOutcome, request: FixRequest, repo: UserRepo, snapshot: Snapshot) -> None:
    """Write the patch where the user asked: a file, the working tree, or a new branch.

    A delivery that fails (git refuses, the `--patch-out` file cannot be written) never loses
    the patch: the outcome keeps it and the trajectory, says why in `delivery_error` and a note,
    and exits 2 (`FixOutcome.exit_code`).
    """
    try:
        _deliver(outcome, request, repo, snapshot)
    except (UsageError, OSError) as exc:
        reason = str(exc) if isinstance(exc, UsageError) else f"{exc.strerror or exc}: {exc.filename or ''}".rstrip(": ")
        outcome.delivery_error = reason
        outcome.notes.append(f"not delivered ({reason}); the patch is in this output and the trajectory")


def _deliver(outcome: FixOutcome, request: FixRequest, repo: UserRepo, snapshot: Snapshot) -> None:
    patch = outcome.result.patch
    write_patch_out(request, patch)
    if not request.commit:
        return
    if request.apply:
        apply_to_worktree(repo, patch)
        outcome.applied = True
        return
    title = request.title or request.task.strip().splitlines()[0][:72]  # untrusted: issue or model text
    message = (f"{request.subject or visible_line(title)}\n\n"
               f"Patch written by moe-agent (run {outcome.run_id}, status {outcome.result.status}).")
    if request.follow_up is not None:
        outcome.branch, outcome.commit = request.follow_up.branch, request.follow_up.deliver(repo, patch, message)
        return
    wanted = request.branch or task_branch(scrub(title), outcome.run_id)
    outcome.branch, outcome.commit, outcome.included_local_changes = commit_to_branch(
        repo, snapshot, patch, wanted, message)
    if outcome.branch != wanted and not outcome.branch.startswith(f"{wanted}-"):
        outcome.notes.append(f"the branch is {outcome.branch}, not under {wanted}: a branch named like a folder of "
                             f"{wanted} exists, and git cannot have both")
    if outcome.included_local_changes:
        outcome.notes.append("the fix builds on your uncommitted changes, so the branch has them as a first commit")


def write_patch_out(request: FixRequest, patch: str) -> None:
    """`--patch-out`: the patch as `agent fix` prints it to a file or pipe, byte for byte, so with every secret
    the process holds masked (`mask_held`) like the patch in every other output (`--json`, the trajectory),
    and nothing else changed (URLs in it are code: their userinfo and parameters stay), so that it applies
    as the branch's commit whenever it holds no such secret; only the branch and `--apply` get a held secret
    as the model wrote it, and the patch review lists it. Raises OSError when the file cannot be written."""
    if request.patch_out:
        request.patch_out.write_text(mask_held(patch))


def _keep_unsubmitted(outcome: FixOutcome, request: FixRequest, repo: UserRepo, snapshot: Snapshot) -> None:
    """A patch left when the run stopped without submitting: in the trajectory and --patch-out, delivered only on --partial."""
    if request.partial:
        deliver(outcome, request, repo, snapshot)
        if outcome.delivery_error is None:
            outcome.notes.append(f"the agent did not submit this patch ({outcome.result.status}); delivered because "
                                 "of --partial")
        return
    write_patch_out(request, outcome.result.patch)
    outcome.notes.append(f"the agent did not submit this patch ({outcome.result.status}), so no branch was made; it is "
                         "in the trajectory" + (" and --patch-out" if request.patch_out else "")
                         + " (--partial delivers it anyway)")

def _identity(user: str, capabilities: list[str]) -> dict[str, Any]:
    """Who the sandbox runs as ("auto": the image's own user, or root when capabilities are added:
    `SandboxSpec`), and the capabilities it gets back."""
    return {"user": None if user == "auto" else user, "extra_capabilities": list(capabilities)}


def warn_unused_capabilities(user: str, capabilities: list[str], warn: Callable[[str], None] = warn_on_stderr) -> None:
    """One warning line when the user's config adds capabilities for a user other than root, who gets
    none of them (Docker gives added capabilities to root only); the run goes on as configured."""
    if capabilities and user.split(":")[0] not in ("auto", "root", "0"):
        warn(f"sandbox.capabilities ({', '.join(capabilities)}) take effect only for root, and sandbox.user "
             f"is {user!r}: the sandbox gets none of them (set user to \"auto\" or \"root\")")
