"""Follow-ups: `agent fix --continue [RUN_ID] "feedback"` carries a finished run on.

The user read the patch and says what is still wrong. The continuation is a run of its own
(its own run id and trajectory, which names its parent under `config.continues`) that:

- resumes the parent's conversation from its trajectory, every message as it was sent, so
  the server's prefix cache still holds it; the parent's unanswered tool calls (`submit`)
  get their results, then the feedback comes as a user message (`prompts/follow_up.md`);
- works in a sandbox started from the branch the parent delivered, never from the user's
  working tree, so its patch is what changes from that branch's tip;
- lands that patch as a further commit on the same branch, which moves only if it is still
  where the parent left it.

A run that cannot be continued is refused before anything starts, in one line (`UsageError`,
exit 2): no such run, its trajectory missing or unreadable (a torn last line is repaired
when the branch's commit still names the run), made in another repository, no branch
delivered, the branch's commit not in this repository, the branch gone or moved since.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agent.errors import UsageError
from agent.history import Message
from agent.prompts import Prompts
from agent.trajectory import Trajectory, read_trajectory
from agent.workspace import GitFailed, Snapshot, UserRepo, commit_snapshot, extend_branch

if TYPE_CHECKING:
    from agent.config import Settings

TRAJECTORY = "trajectory.jsonl"


@dataclass(frozen=True)
class FollowUp:
    """A run to continue and the user's feedback: what the fix workflow needs to carry it on.

    `messages` is the parent's whole conversation, its closing tool results and the
    feedback message; `commit` is the tip of `branch` the parent left, the continuation's
    base; `tool_format` the format the conversation used (`auto` when it stayed native).
    """

    run_id: str
    trajectory: Path
    branch: str
    commit: str
    messages: list[Message]
    tool_format: str
    feedback: str

    @property
    def title(self) -> str:
        """The commit's subject: the feedback's first line."""
        return "Follow-up: " + self.feedback.strip().splitlines()[0][:60]

    def record(self) -> dict[str, Any]:
        """What the continuation's `start` event says of its parent (`agent traj show` follows it)."""
        return {"continues": {"run_id": self.run_id, "trajectory": str(self.trajectory), "branch": self.branch,
                              "commit": self.commit}}

    def settings(self, settings: Settings) -> Settings:
        """`settings` with the conversation's tool-call format: another one would change the prompt's start."""
        model = settings.model.model_copy(update={"tool_format": self.tool_format})
        return settings.model_copy(update={"model": model})

    def snapshot(self, repo: UserRepo, scratch: Path) -> Snapshot:
        """The sandbox's starting point: the branch's tip, checked out in `scratch`."""
        return commit_snapshot(repo, self.commit, scratch)

    def deliver(self, repo: UserRepo, patch: str, message: str) -> str:
        """The patch as a commit on top of the branch (`BranchMoved` if it moved meanwhile); the new commit."""
        return extend_branch(repo, self.branch, self.commit, patch, message)


def split_arguments(follow: bool, first: str | None, second: str | None,
                    more_sources: bool) -> tuple[str | None, str | None]:
    """(RUN_ID, feedback text) from `agent fix`'s positional arguments.

    With `--continue`, two arguments are RUN_ID and the feedback; one is the feedback, or
    RUN_ID when the feedback comes another way (`-f FILE`, `-`). Without it, a second
    argument is a usage error.
    """
    if not follow:
        if second is not None:
            raise UsageError("one issue text only (a RUN_ID goes with --continue)")
        return None, first
    if second is not None:
        return first, second
    if more_sources and first is not None and first != "-":
        return first, None
    return None, first


def find_follow_up(repo: UserRepo, runs: Path, run_id: str | None, feedback: str, workdir: str,
                   prompts: Prompts | None = None) -> FollowUp:
    """The run to continue (RUN_ID, else the latest that delivered a branch) with the feedback added.

    Raises `UsageError` naming why when it cannot be continued.
    """
    tips = _named_tips(repo)
    folder = _run_folder(runs, run_id) if run_id else _latest_delivered(repo, runs, tips)
    path = folder / TRAJECTORY
    name = folder.name
    if not path.is_file():
        raise UsageError(f"run {name} cannot be continued: its trajectory {path} is missing")
    try:
        trajectory = read_trajectory(path)
    except ValueError as exc:
        raise UsageError(f"run {name} cannot be continued: {exc}") from None
    if trajectory.end is None:
        raise UsageError(f"run {name} cannot be continued: its trajectory stops before the run ended "
                         f"(killed mid-run{', last line torn' if trajectory.torn else ''})")
    made_in = trajectory.start.get("config", {}).get("repo")
    if not made_in or not _same_path(Path(made_in), repo.root):
        raise UsageError(f"run {name} was made in {made_in or 'an unknown repository'}, not in {repo.root}")
    branch, commit = _delivered(trajectory, tips.get(name))
    if branch is None or commit is None:
        raise UsageError(f"run {name} delivered no branch (status {trajectory.status}; --apply, --no-commit or no "
                         "patch): there is nothing to continue from")
    _check_branch(repo, runs, name, branch, commit, tips)
    conversation = trajectory.conversation()
    if conversation is None:
        raise UsageError(f"run {name} cannot be continued: its trajectory does not hold the whole conversation "
                         "(recorded by an older moe-agent)")
    prompts = prompts or Prompts.load()
    ask = {"role": "user", "content": Prompts.render(prompts.follow_up, feedback=feedback.strip(), workdir=workdir)}
    return FollowUp(run_id=name, trajectory=path, branch=branch, commit=commit,
                    messages=[*conversation, *_closing(conversation, trajectory), ask],
                    tool_format=_tool_format(trajectory), feedback=feedback)


def recorded_follow_up(trajectory: Trajectory) -> FollowUp | None:
    """The follow-up a continuation's trajectory records, to run it again (`agent traj replay`); None for others.

    Its first request holds the whole conversation it resumed; `UsageError` when it has none.
    """
    parent = trajectory.start.get("config", {}).get("continues")
    if not parent:
        return None
    first = next((e for e in trajectory.events if e["type"] == "request"), None)
    if first is None or not first.get("new_messages"):
        raise UsageError(f"{trajectory.path}: the follow-up made no request, so there is nothing to replay")
    return FollowUp(run_id=parent.get("run_id", ""), trajectory=Path(parent.get("trajectory", "")),
                    branch=parent.get("branch", ""), commit=parent.get("commit", ""), messages=first["new_messages"],
                    tool_format=trajectory.start.get("tool_format") or "auto", feedback=trajectory.start.get("task", ""))


def _run_folder(runs: Path, run_id: str) -> Path:
    """The run's folder: RUN_ID under `runs`, or a path to a run folder or its trajectory."""
    given = Path(run_id).expanduser()
    if given.name == TRAJECTORY and given.is_file():
        return given.parent
    if "/" in run_id and given.is_dir():
        return given
    if "/" not in run_id and (runs / run_id).is_dir():
        return runs / run_id
    raise UsageError(f"no run {run_id} in {runs}")


def _latest_delivered(repo: UserRepo, runs: Path, tips: dict[str, tuple[str, str]]) -> Path:
    """The newest run of this repository that delivered a branch (run ids sort by their start time)."""
    folders = sorted((p for p in runs.iterdir() if p.is_dir()), reverse=True) if runs.is_dir() else []
    for folder in folders:
        if folder.name in tips:
            return folder  # its branch's commit names it: read (and refused) even if the trajectory is broken
        try:
            trajectory = read_trajectory(folder / TRAJECTORY)
        except ValueError:
            continue
        made_in = trajectory.start.get("config", {}).get("repo")
        if trajectory.delivery is not None and made_in and _same_path(Path(made_in), repo.root):
            return folder
    raise UsageError(f"no run in {runs} delivered a branch to continue: run 'agent fix' first, or name a RUN_ID")


def _named_tips(repo: UserRepo) -> dict[str, tuple[str, str]]:
    """{run id: (branch, commit)} for every branch whose tip commit a run wrote (its message names the run)."""
    listing = repo.git("for-each-ref", "--format=%(refname:short)%00%(objectname)%00%(contents)%00%00",
                       "refs/heads/")
    found: dict[str, tuple[str, str]] = {}
    for record in listing.split("\0\0"):
        branch, _, rest = record.lstrip("\n").partition("\0")
        commit, _, message = rest.partition("\0")
        marker = message.rfind("Patch written by moe-agent (run ")
        if branch and marker >= 0:
            run_id = message[marker:].split("(run ", 1)[1].split(",", 1)[0].strip()
            found.setdefault(run_id, (branch, commit))
    return found


def _delivered(trajectory: Trajectory, named: tuple[str, str] | None) -> tuple[str | None, str | None]:
    """(branch, commit) the run delivered: its `delivery` event, else (a torn last line) the branch naming it."""
    delivery = trajectory.delivery
    if delivery is not None:
        return delivery.get("branch"), delivery.get("commit")
    return named if named is not None else (None, None)


def _check_branch(repo: UserRepo, runs: Path, name: str, branch: str, commit: str,
                  tips: dict[str, tuple[str, str]]) -> None:
    """The commit must be here and the branch still at it; a later run that moved it is named."""
    try:
        repo.git("cat-file", "-e", f"{commit}^{{commit}}")
    except GitFailed:
        raise UsageError(f"run {name} cannot be continued: its commit {commit[:12]} is not in this repository "
                         "(base commit unknown)") from None
    try:
        tip = repo.git("rev-parse", "--verify", "--quiet", f"refs/heads/{branch}").strip()
    except GitFailed:
        raise UsageError(f"run {name} cannot be continued: its branch {branch} no longer exists") from None
    worktrees = repo.git("worktree", "list", "--porcelain").splitlines()
    if f"branch refs/heads/{branch}" in worktrees:  # moving it would change a checked-out tree under its user
        raise UsageError(f"{branch} is checked out (git worktree list): switch to another branch to continue run "
                         f"{name}")
    if tip == commit:
        return
    later = next((run for run, (_, at) in tips.items() if at == tip and (runs / run).is_dir()), None)
    hint = f"; run {later} put it there: continue that one" if later else ""
    raise UsageError(f"run {name} cannot be continued: its branch {branch} moved since (now {tip[:12]}, the run "
                     f"left {commit[:12]}){hint}")


def _closing(conversation: list[Message], trajectory: Trajectory) -> list[Message]:
    """Results for the tool calls the conversation left unanswered (the `submit` that ended it).

    Chat templates expect every native call answered by a `tool` message with its id; in
    text format an unanswered last reply gets one `<tool_response>`.
    """
    last = next((n for n in range(len(conversation) - 1, -1, -1) if conversation[n].get("role") == "assistant"), None)
    if last is None:
        return []
    ended = str((trajectory.end or {}).get("message") or trajectory.status)
    calls = conversation[last].get("tool_calls") or []
    if calls:
        answered = {m.get("tool_call_id") for m in conversation[last + 1:] if m.get("role") == "tool"}
        return [{"role": "tool", "tool_call_id": call.get("id"),
                 "content": ended if call.get("function", {}).get("name") == "submit" else f"not run: {ended}"}
                for call in calls if call.get("id") not in answered]
    if last == len(conversation) - 1:
        return [{"role": "user", "content": f"<tool_response>\n{ended}\n</tool_response>"}]
    return []


def _tool_format(trajectory: Trajectory) -> str:
    """The format the conversation ended in: the recorded setting, or the text format it fell back to."""
    fell_back = next((e for e in reversed(trajectory.events) if e["type"] == "tool_format" and not e.get("native")),
                     None)
    if fell_back is not None and fell_back.get("format") in ("xml", "hermes"):
        return fell_back["format"]
    return trajectory.start.get("tool_format") or "auto"


def _same_path(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve()
    except OSError:
        return False


def chain(trajectory: Trajectory, limit: int = 50) -> list[dict[str, Any]]:
    """The runs this one continues, oldest first, then itself: {run_id, trajectory, task, status, delivery}.

    Followed through each start event's `config.continues`; a parent whose trajectory is
    gone ends the chain there, with `missing: True`.
    """
    links: list[dict[str, Any]] = []
    current: Trajectory | None = trajectory
    parent: dict[str, Any] = {}
    while current is not None and len(links) < limit:
        config = current.start.get("config", {})
        links.append({"run_id": config.get("run_id"), "trajectory": str(current.path), "status": current.status,
                      "task": current.start.get("task", ""), "delivery": current.delivery})
        parent = config.get("continues") or {}
        current = None
        if parent.get("trajectory"):
            try:
                current = read_trajectory(Path(parent["trajectory"]))
            except ValueError:
                links.append({"run_id": parent.get("run_id"), "trajectory": parent["trajectory"], "missing": True})
    return links[::-1]
