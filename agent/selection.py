"""Choosing one patch among several attempts, by evidence checked in fresh sandboxes.

Patches are normalised (no `index` lines or hunk-header context, trailing spaces dropped,
files in path order) and grouped: attempts whose changes outside test files are the same
make one candidate. Each distinct candidate is checked in a sandbox of its own, started
fresh from the same snapshot and image the attempts had, and another sandbox measures the
base once for all of them; these start together. A single distinct candidate gets the same
checks (the record then says whether it applies, reproduces and breaks nothing). The
evidence, in the order it decides (after Agentless and SWE-agent's reviewer):

1. `applies`: `git apply` takes the candidate at the base.
2. `reproduction`: the tests the attempts wrote (test files in their patches) or ran
   (`run_tests` paths in their trajectories), one suite per attempt, that fail at the base;
   a candidate scores one for each such suite that passes with its changes. Suites that are
   the same tests (several attempts ran the same file) run once; a candidate runs only the
   suites that fail at the base.
3. `regressions`: the repository's tests (the configured `test_cmd`, else the detected
   runner) that passed at the base and fail with the candidate; fewer is better. The whole
   suite is the costly check, so it runs only for the candidates still level after 1 and 2
   (the winner always among them), in the sandbox their first checks used. Each run is
   bounded by `CheckLimits`.
4. `agreement`: how many attempts wrote the candidate.
5. `size`: the smaller patch (changed lines).

The inputs are the attempts' patches and the tests they ran, and the sandboxes: nothing a
benchmark keeps hidden (SWE-bench's `test_patch`, `FAIL_TO_PASS`, `PASS_TO_PASS`) can reach
them. The record (`Selection.to_json`) says what was checked, what each check found, the
winner and the reason, for the summary, `--json`, the pull request and the trajectory.
"""

from __future__ import annotations

import hashlib
import posixpath
import re
import shlex
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from typing import Any

from agent.parallel import QUERY_POLL, StopSignal, run_parallel
from sandbox.base import Sandbox
from sandbox.cleanup import shielded
from tools.base import ToolContext, ToolError
from tools.tests import SuiteRun, run_suite

CHECK_DIR = "moe-selection"  # in the git dir of the checked repository
DECIDERS = ("applies", "reproduction", "regressions", "agreement", "size", "order")
TEST_DIRS = frozenset({"test", "tests", "testing", "__tests__", "spec", "specs"})
TEST_FILE = re.compile(r"(test_[^/]*\.py|[^/]*_test\.(py|go|rb)|[^/]*\.(test|spec)\.[cm]?[jt]sx?|[^/]*_spec\.rb"
                       r"|Test[^/]*\.java|[^/]*Tests?\.java)$")
HUNK_HEADER = re.compile(r"^(@@ -\d+(?:,\d+)? \+\d+(?:,\d+)? @@).*$")
FAILING = ("FAILED", "ERROR")
CACHES = "':(exclude,glob)**/__pycache__/**' ':(exclude,glob)**/*.py[co]' ':(exclude,glob)**/.pytest_cache/**'"
NO_TESTS_COLLECTED = 5  # pytest's exit code when a run collected nothing


@dataclass(frozen=True)
class CheckLimits:
    """Seconds each test run of the checks may take; what runs past it is stopped and counted as unknown."""

    reproduction: float = 300.0
    repository: float = 600.0


@dataclass(frozen=True)
class AttemptPatch:
    """What selection knows of one attempt: its number (from 1), how it ended, its patch, the tests it ran."""

    number: int
    status: str
    patch: str
    ran_tests: tuple[str, ...] = ()  # `paths` the attempt gave `run_tests`: files or test ids


@dataclass(frozen=True)
class Suite:
    """One attempt's reproduction tests: its test files (a patch of those files only) and what to run."""

    attempt: int
    test_patch: str
    targets: tuple[str, ...]


@dataclass
class Candidate:
    """One distinct patch and what the checks found; `number` counts from 1 in the order attempts wrote them."""

    number: int
    patch: str  # the first of its attempts' whole patch: what is delivered when it wins
    source_patch: str  # the part outside test files, which candidates are told apart by
    attempts: list[int]
    changed_lines: int
    applies: bool | None = None
    reproduction: list[dict[str, Any]] = field(default_factory=list)  # one entry per reproducing suite
    broken: list[str] = field(default_factory=list)  # tests passing at the base that fail with it
    repository_tests: dict[str, Any] = field(default_factory=dict)
    error: str = ""  # the check itself failed (sandbox)

    @property
    def reproduced(self) -> int:
        return sum(1 for suite in self.reproduction if suite["after"] == "pass")

    def key(self) -> tuple[int, ...]:
        """Bigger is better, component by component, in the order of `DECIDERS`."""
        return (int(bool(self.applies)), self.reproduced, -len(self.broken), len(self.attempts),
                -self.changed_lines, -self.number)

    def to_json(self) -> dict[str, Any]:
        return {"candidate": self.number, "attempts": self.attempts, "changed_lines": self.changed_lines,
                "applies": self.applies, "reproduced": self.reproduced, "reproduction": self.reproduction,
                "broken": self.broken, "repository_tests": tests_summary(self.repository_tests), "error": self.error}


@dataclass
class Selection:
    """The record of a choice: candidates, the checks run and their results, the winner and why."""

    candidates: list[Candidate]
    suites: list[dict[str, Any]] = field(default_factory=list)  # each suite and how it went at the base
    base_tests: dict[str, Any] = field(default_factory=dict)  # the repository's tests at the base
    winner: Candidate | None = None
    decided_by: str = ""  # one of DECIDERS, "only_candidate" or "no_candidate"
    reason: str = ""

    def to_json(self) -> dict[str, Any]:
        return {"winner": self.winner.number if self.winner else None,
                "winner_attempts": self.winner.attempts if self.winner else [],
                "decided_by": self.decided_by, "reason": self.reason,
                "candidates": [candidate.to_json() for candidate in self.candidates],
                "suites": self.suites, "base_tests": tests_summary(self.base_tests)}


def tests_summary(run: dict[str, Any]) -> dict[str, Any]:
    """A run of the repository's tests for the record: counts, not the (possibly thousands of) ids."""
    return {key: len(value) if key in ("passed", "failed") else value for key, value in run.items()}


# -- patches ----------------------------------------------------------------------------------
def file_sections(patch: str) -> list[tuple[str, str]]:
    """(path, text) for each file of a `git diff` patch, the path as its `b/` side names it."""
    sections: list[tuple[str, str]] = []
    for chunk in re.split(r"(?m)^(?=diff --git )", patch):
        if not chunk.startswith("diff --git "):
            continue
        header = chunk.split("\n", 1)[0]
        path = header.rsplit(" b/", 1)[-1].strip().strip('"') if " b/" in header else header[11:]
        sections.append((path, chunk if chunk.endswith("\n") else chunk + "\n"))
    return sections


def is_test_path(path: str) -> bool:
    """A test file by its place or name (tests/..., test_x.py, x_test.go, x.spec.ts, XTest.java)."""
    parts = path.split("/")
    return bool(TEST_DIRS & set(parts[:-1])) or bool(TEST_FILE.search(parts[-1])) or parts[-1] == "conftest.py"


def split_tests(patch: str) -> tuple[str, str]:
    """The patch's changes outside test files, and to test files."""
    sections = file_sections(patch)
    return ("".join(text for path, text in sections if not is_test_path(path)),
            "".join(text for path, text in sections if is_test_path(path)))


def normalize(patch: str) -> str:
    """The patch as candidates are compared: no `index` lines or hunk context, no trailing spaces, files sorted."""
    files = []
    for path, text in file_sections(patch):
        lines = [HUNK_HEADER.sub(r"\1", line).rstrip() for line in text.split("\n") if not line.startswith("index ")]
        files.append((path, "\n".join(line for line in lines if line)))
    return "\n".join(text for _, text in sorted(files))


def changed_lines(patch: str) -> int:
    """Lines added or removed, file headers not counted."""
    return sum(1 for line in patch.split("\n")
               if line[:1] in "+-" and not line.startswith(("+++ ", "--- ")))


def group(attempts: Sequence[AttemptPatch]) -> list[Candidate]:
    """One candidate per distinct submitted change (outside test files, normalised), in attempt order."""
    found: dict[str, Candidate] = {}
    for attempt in attempts:
        if attempt.status != "submitted" or not attempt.patch.strip():
            continue
        source, _ = split_tests(attempt.patch)
        key = hashlib.sha256(normalize(source).encode()).hexdigest()
        if key in found:
            found[key].attempts.append(attempt.number)
        else:
            found[key] = Candidate(number=len(found) + 1, patch=attempt.patch, source_patch=source,
                                   attempts=[attempt.number], changed_lines=changed_lines(attempt.patch))
    return list(found.values())


def suites(attempts: Sequence[AttemptPatch]) -> list[Suite]:
    """Each attempt's reproduction tests: the test files its patch adds or changes, and the paths it ran."""
    found = []
    for attempt in attempts:
        _, tests = split_tests(attempt.patch) if attempt.patch.strip() else ("", "")
        written = [path for path, _ in file_sections(tests) if TEST_FILE.search(path.rsplit("/", 1)[-1])]
        targets = tuple(dict.fromkeys([*written, *attempt.ran_tests]))
        if targets:
            found.append(Suite(attempt.number, tests, targets))
    return found


# -- checks -----------------------------------------------------------------------------------
def distinct_suites(tests: Sequence[Suite]) -> list[list[Suite]]:
    """The suites grouped where they are the same tests (same test files, normalised, and same targets),
    in attempt order: each group runs once, its first suite standing for the others."""
    groups: dict[tuple[str, tuple[str, ...]], list[Suite]] = {}
    for suite in tests:
        groups.setdefault((normalize(suite.test_patch), suite.targets), []).append(suite)
    return list(groups.values())


class _BaseSuites:
    """How each distinct suite goes at the base, published once by the base's check for the candidates'
    checks, which wait for it (the base's check is submitted first, so it never waits for a free worker)."""

    def __init__(self, tests: Sequence[Suite]) -> None:
        self.groups = distinct_suites(tests)
        self.outcomes: dict[int, tuple[str, str]] = {}  # group index -> (outcome, note)
        self.error = ""  # the base's check failed before every suite ran
        self._ready = threading.Event()

    def publish(self, outcomes: dict[int, tuple[str, str]], error: str = "") -> None:
        if not self._ready.is_set():
            self.outcomes, self.error = outcomes, error
            self._ready.set()

    def reproducing(self, stop: StopSignal) -> list[int]:
        """The groups that fail at the base, once the base's check has said (checking `stop` meanwhile)."""
        while not self._ready.wait(QUERY_POLL):
            stop.check()
        return [index for index, (outcome, _) in self.outcomes.items() if outcome == "fail"]

    def record(self) -> list[dict[str, Any]]:
        """One entry per attempt's suite, in attempt order; a suite the same as an earlier one's names it."""
        entries = []
        for index, group in enumerate(self.groups):
            outcome, note = self.outcomes.get(index, ("error", self.error or "not run"))
            for suite in group:
                entries.append({"attempt": suite.attempt, "targets": list(suite.targets), "before": outcome,
                                "reproduces": outcome == "fail", **({"note": note} if note else {}),
                                **({"same_tests_as": group[0].attempt} if suite is not group[0] else {})})
        return sorted(entries, key=lambda entry: entry["attempt"])


class _Leaders:
    """The candidates level at the top so far after the first checks, their sandboxes kept (at most `room`)
    for the repository's tests; a candidate falling below gives its sandbox up at once."""

    def __init__(self, room: int) -> None:
        self.room = room
        self.best: tuple[int, ...] | None = None
        self.kept: dict[int, ToolContext] = {}
        self._lock = threading.Lock()

    def offer(self, candidate: Candidate, ctx: ToolContext) -> bool:
        """Whether `ctx` was kept for `candidate` (then it is closed here, later); the ones it displaces are closed."""
        key = candidate.key()[:2]
        with self._lock:
            displaced = []
            if self.best is None or key > self.best:
                self.best, displaced, self.kept = key, list(self.kept.values()), {}
            kept = key == self.best and len(self.kept) < self.room
            if kept:
                self.kept[candidate.number] = ctx
        for other in displaced:
            other.sandbox.close()
        return kept

    def take(self, number: int) -> ToolContext | None:
        with self._lock:
            return self.kept.pop(number, None)

    def close(self) -> None:
        with self._lock:
            left, self.kept = list(self.kept.values()), {}
        for ctx in left:
            ctx.sandbox.close()


class Checker:
    """Runs the checks in fresh sandboxes from `open_sandbox` (closed after), `parallel` at once."""

    def __init__(self, open_sandbox: Callable[[], Sandbox], *, test_cmd: str | None, parallel: int,
                 limits: CheckLimits | None = None, stop: StopSignal | None = None) -> None:
        self.open_sandbox = open_sandbox
        self.stop = stop
        self.test_cmd = test_cmd
        self.parallel = max(1, parallel)
        self.limits = limits or CheckLimits()

    def base_tests(self) -> BaseTests:
        """The repository's tests at the base, started now in a fresh sandbox of their own: they need
        nothing from the attempts, so they can run while the attempts work; hand them to `choose`."""
        return BaseTests(self)

    def choose(self, attempts: Sequence[AttemptPatch], early: BaseTests | None = None) -> Selection:
        """Group, check, rank; raises `KeyboardInterrupt` (after closing the sandboxes) when interrupted.

        The base and every candidate get a fresh sandbox each, all started at once (`parallel` at a
        time). The base's runs each distinct reproduction suite once (the same tests written or run
        by several attempts run once), then the repository's tests (unless `early` runs them, from
        `base_tests`: then the base needs a sandbox only for the suites); each candidate's applies, waits
        for the base's suites and runs only those that fail there (a suite passing at the base can
        reproduce nothing). Then the repository's tests run for the candidates still level at the top
        (the whole suite is the costly check, and cannot reorder candidates the first checks told
        apart), in the sandbox their first checks used, kept for it when git sees the tree there as the
        candidate left it before its suites ran (else in a fresh one), with the whole patch, test files included.
        """
        candidates = group(attempts)
        selection = Selection(candidates=candidates)
        if not candidates:
            selection.decided_by, selection.reason = "no_candidate", "no attempt submitted a patch"
            return selection
        stop = self.stop or StopSignal()  # one for both rounds: the kept sandboxes close on it too
        base = _BaseSuites(suites(attempts))
        leaders = _Leaders(room=self.parallel)
        try:
            base_tests, *checked = run_parallel(
                [lambda stop_: self._base(stop_, base, candidates, early),
                 *(lambda stop_, c=c: self._first(stop_, c, base, leaders) for c in candidates)],
                self.parallel, name="moe-check", stop=stop)
            selection.suites = base.record()
            selection.base_tests = ({"ran": False, "note": _message(base_tests)} if isinstance(base_tests, Exception)
                                    else base_tests)
            for candidate, outcome in zip(candidates, checked):
                if isinstance(outcome, Exception):
                    candidate.error = _message(outcome)
            self._regressions(selection, leaders, stop)
        finally:
            leaders.close()
        rank(selection)
        return selection

    def _base(self, stop: StopSignal, base: _BaseSuites, candidates: Sequence[Candidate],
              early: BaseTests | None) -> dict[str, Any]:
        """The suites at the base (published as soon as they have run), then the repository's tests: `early`'s,
        else run there (in a fresh sandbox if the suites left the tree changed: `_tree_id`)."""
        if early is not None:
            try:
                if base.groups:
                    with _CheckSandbox(self, stop) as ctx:
                        base.publish({index: self._suite(ctx, same[0]) for index, same in enumerate(base.groups)})
            except Exception as exc:  # the candidates' checks go on without reproduction suites
                base.publish({}, _message(exc))
            finally:
                base.publish({})  # no suites (or stopped): nothing for the candidates to wait for
            return early.result(stop)
        try:
            with _CheckSandbox(self, stop) as ctx:
                before = _tree_id(ctx) if base.groups else ""
                base.publish({index: self._suite(ctx, same[0]) for index, same in enumerate(base.groups)})
                if all(candidate.applies is False for candidate in candidates):
                    return {"ran": False, "note": "no candidate applies"}
                if before is not None and (not base.groups or _tree_id(ctx) == before):
                    return self._repository(ctx)
            with _CheckSandbox(self, stop) as fresh:  # the suites left something behind in the first one
                return self._repository(fresh)
        except BaseException as exc:
            base.publish({}, _message(exc))  # the candidates' checks go on without reproduction suites
            raise

    def _first(self, stop: StopSignal, candidate: Candidate, base: _BaseSuites, leaders: _Leaders) -> None:
        """Whether the candidate applies and how the suites failing at the base go with it; its sandbox is
        then kept for the repository's tests while it is level at the top, if the suites left the tree
        as they found it (`_tree_id`)."""
        with _CheckSandbox(self, stop) as ctx:
            candidate.applies = not candidate.source_patch or _apply(ctx, candidate.source_patch, "source")
            if not candidate.applies:
                return
            reproducing = base.reproducing(stop)
            before = _tree_id(ctx) if reproducing else ""
            for index in reproducing:
                outcome, note = self._suite(ctx, base.groups[index][0])
                candidate.reproduction += [{"attempt": suite.attempt, "after": outcome,
                                            **({"note": note} if note else {})} for suite in base.groups[index]]
            candidate.reproduction.sort(key=lambda entry: entry["attempt"])
            same = before is not None and (not reproducing or _tree_id(ctx) == before)
            ctx.state["kept"] = same and leaders.offer(candidate, ctx)

    def _regressions(self, selection: Selection, leaders: _Leaders, stop: StopSignal) -> None:
        """The repository's tests with each candidate level at the top after the first checks."""
        best = max(candidate.key()[:2] for candidate in selection.candidates)
        top = [c for c in selection.candidates if c.key()[:2] == best and c.applies]
        for candidate in selection.candidates:
            if candidate not in top:
                candidate.repository_tests = {"ran": False, "note": "not needed: ranked below by the checks before"}
        if not top:
            return
        after = run_parallel([lambda stop_, c=c: self._candidate_tests(stop_, c, leaders.take(c.number)) for c in top],
                             self.parallel, name="moe-check", stop=stop)
        for candidate, outcome in zip(top, after):
            if isinstance(outcome, Exception):
                candidate.error = _message(outcome)
                continue
            candidate.repository_tests = outcome
            candidate.broken = _broken(selection.base_tests, outcome)

    def _candidate_tests(self, stop: StopSignal, candidate: Candidate, kept: ToolContext | None) -> dict[str, Any]:
        """The repository's tests with the whole patch: in the kept sandbox (its changes are in, its test
        files go in now), else in a fresh one."""
        if kept is None:
            with _CheckSandbox(self, stop) as ctx:
                return self._repository(ctx, candidate.patch)
        try:
            stop.check()
            _, test_files = split_tests(candidate.patch)
            if test_files and not _apply(kept, test_files, "candidate"):
                return {"ran": False, "note": "its test files do not apply with its changes"}
            return self._repository(kept)
        finally:
            kept.sandbox.close()

    def _suite(self, ctx: ToolContext, suite: Suite) -> tuple[str, str]:
        """Apply the suite's test files, run its targets, take the files back out: pass, fail, none or timeout."""
        if suite.test_patch and not _apply(ctx, suite.test_patch, "suite"):
            return "not_applicable", "its test files do not apply here"
        try:
            run = run_suite(ctx, list(suite.targets), "", self.limits.reproduction)
        except ToolError as exc:
            return "none", str(exc)
        finally:
            if suite.test_patch:
                _apply(ctx, suite.test_patch, "suite", reverse=True)
        return verdict(run), ""

    def _repository(self, ctx: ToolContext, patch: str = "") -> dict[str, Any]:
        """The repository's tests, all of them, bounded in time, with `patch` applied: the ids that passed and failed."""
        if patch and not _apply(ctx, patch, "candidate"):
            return {"ran": False, "note": "the whole patch (with its test files) does not apply"}
        try:
            run = run_suite(ctx, [], "", self.limits.repository)
        except ToolError as exc:
            return {"ran": False, "note": str(exc)}
        statuses = run.statuses()
        return {"ran": True, "command": run.command, "exit_code": run.result.exit_code,
                "timed_out": run.result.timed_out,
                "passed": sorted(name for name, status in statuses.items() if status == "PASSED"),
                "failed": sorted(name for name, status in statuses.items() if status in FAILING)}


class BaseTests:
    """The repository's tests at the base, running in their own thread and fresh sandbox from the moment
    this is made; `result` waits for them, `cancel` (idempotent) stops them and removes their sandbox.

    They stop with the checker's stop signal too (Ctrl-C during the attempts).
    """

    def __init__(self, checker: Checker) -> None:
        self.stop = StopSignal()
        if checker.stop is not None:
            checker.stop.on_stop(self.stop.set)
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="moe-check-base")
        self._future = self._pool.submit(self._run, checker)

    def _run(self, checker: Checker) -> dict[str, Any]:
        with _CheckSandbox(checker, self.stop) as ctx:
            return {**checker._repository(ctx), "during_attempts": True}

    def result(self, stop: StopSignal) -> dict[str, Any]:
        """What they found (shape of `Checker._repository`), once they end; `Stopped` when `stop` is set meanwhile."""
        while True:
            try:
                return self._future.result(timeout=QUERY_POLL)
            except FutureTimeout:
                stop.check()
            except Exception as exc:
                return {"ran": False, "note": _message(exc)}

    def cancel(self) -> None:
        self.stop.set()
        with shielded():
            self._pool.shutdown(wait=True)


class _CheckSandbox:
    """A fresh sandbox as a tool context, closed on exit (unless a check ended well and marked it `kept`)
    or as soon as the run is stopped."""

    def __init__(self, checker: Checker, stop: StopSignal) -> None:
        self.checker, self.stop = checker, stop
        self.ctx: ToolContext | None = None

    def __enter__(self) -> ToolContext:
        self.stop.check()
        box = self.checker.open_sandbox()
        self.stop.on_stop(box.close)
        limit = max(self.checker.limits.reproduction, self.checker.limits.repository)
        self.ctx = ToolContext(sandbox=box, task="", command_timeout=limit, max_command_timeout=limit,
                               test_cmd=self.checker.test_cmd)
        try:
            self.stop.check()
        except BaseException:
            box.close()
            raise
        return self.ctx

    def __exit__(self, kind: type[BaseException] | None, *exc: object) -> None:
        if self.ctx is not None and (kind is not None or not self.ctx.state.get("kept")):
            self.ctx.sandbox.close()


def _apply(ctx: ToolContext, patch: str, name: str, reverse: bool = False) -> bool:
    """`git apply` (or its reverse) at the repository root; whether it went through.

    The patch file goes in the repository's git dir (never seen by tests or `git status`).
    """
    root, checks = _places(ctx)
    path = posixpath.join(checks, f"{name}.patch")
    ctx.sandbox.write_file(path, patch.encode("utf-8", "surrogateescape"))
    done = ctx.sandbox.run(f"cd {root} && git apply {'-R ' if reverse else ''}--whitespace=nowarn "
                           f"{shlex.quote(path)}", timeout=120)
    return done.ok


def _tree_id(ctx: ToolContext) -> str | None:
    """The id of the working tree as git would commit it (tracked and untracked files; ignored ones and bytecode
    caches left out), None if git could not tell: equal ids before and after a test run mean it left nothing a
    later run could meet.

    Hashed through an index of our own in the git dir, copied from the repository's once, so that
    the second look rehashes only what changed.
    """
    root, checks = _places(ctx)
    index = shlex.quote(posixpath.join(checks, "index"))
    copy = f'[ -e {index} ] || cp "$(git rev-parse --git-path index)" {index} 2>/dev/null || true'
    done = ctx.sandbox.run(f"cd {root} && mkdir -p {shlex.quote(checks)} && {{ {copy}; }} && GIT_INDEX_FILE={index} "
                           f"git add -A -- . {CACHES} && GIT_INDEX_FILE={index} git write-tree", timeout=300)
    found = done.output.strip().splitlines()
    return found[-1] if done.ok and found else None


def _places(ctx: ToolContext) -> tuple[str, str]:
    """The repository root (shell-quoted) and the folder in its git dir where the checks keep their files."""
    root = shlex.quote(posixpath.normpath(ctx.sandbox.workdir))
    if "selection_dir" not in ctx.state:
        found = ctx.sandbox.run(f"cd {root} && git rev-parse --absolute-git-dir", timeout=60)
        if not found.ok:
            raise ToolError(f"{ctx.sandbox.workdir} is not a git repository: {found.output.strip()[:200]}")
        ctx.state["selection_dir"] = posixpath.join(found.output.strip().splitlines()[-1], CHECK_DIR)
    return root, ctx.state["selection_dir"]


def verdict(run: SuiteRun) -> str:
    """pass (ran, nothing failed), fail, none (no test ran) or timeout, for one run of a suite."""
    if run.result.timed_out:
        return "timeout"
    statuses = run.statuses()
    if any(status in FAILING for status in statuses.values()):
        return "fail"
    if run.runner.parser == "parse_log_pytest" and run.result.exit_code == NO_TESTS_COLLECTED:
        return "none"
    if run.result.exit_code != 0:
        return "fail"
    return "pass" if not statuses or "PASSED" in statuses.values() else "none"


def _broken(base: dict[str, Any], after: dict[str, Any]) -> list[str]:
    """Tests that passed at the base and fail with the candidate; the whole command when no ids are known."""
    if not base.get("ran") or not after.get("ran"):
        return []
    if base["passed"] or after["passed"] or after["failed"]:
        return sorted(set(base["passed"]) & set(after["failed"]))
    if base["exit_code"] == 0 and after["exit_code"] != 0 and not after["timed_out"]:
        return [after["command"]]
    return []


def rank(selection: Selection) -> None:
    """Pick the best candidate by `Candidate.key` and say which check told it from the next best."""
    ordered = sorted(selection.candidates, key=Candidate.key, reverse=True)
    winner = selection.winner = ordered[0]
    if len(ordered) == 1:
        selection.decided_by = "only_candidate"
        selection.reason = f"the only distinct patch ({_attempts(winner)})"
        return
    runner_up = ordered[1]
    index = next(i for i, (a, b) in enumerate(zip(winner.key(), runner_up.key())) if a != b)
    selection.decided_by = DECIDERS[index]
    n, r = winner.number, runner_up.number
    selection.reason = {
        "applies": f"candidate {n} applies at the base; candidate {r} "
                   + ("does not" if runner_up.applies is False else f"could not be checked ({runner_up.error})"),
        "reproduction": (f"candidate {n} passes {winner.reproduced} of the reproduction suites that fail at the "
                         f"base, candidate {r} {runner_up.reproduced}"),
        "regressions": (f"candidate {n} breaks {len(winner.broken)} of the repository's tests that pass at the "
                        f"base, candidate {r} {len(runner_up.broken)}"),
        "agreement": f"candidate {n} was written by {len(winner.attempts)} attempts, candidate {r} by "
                     f"{len(runner_up.attempts)}",
        "size": f"candidate {n} changes {winner.changed_lines} lines, candidate {r} {runner_up.changed_lines}",
        "order": f"the checks cannot tell candidates {n} and {r} apart; the earlier attempt's is kept",
    }[selection.decided_by] + f" ({_attempts(winner)})"


def _attempts(candidate: Candidate) -> str:
    numbers = ", ".join(map(str, candidate.attempts))
    return f"attempt{'s' if len(candidate.attempts) > 1 else ''} {numbers}"


def _message(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def describe(record: dict[str, Any]) -> str:
    """One line for the summary: how many candidates, the winner and why."""
    if record.get("winner") is None:
        return f"{len(record.get('candidates', []))} candidates; {record.get('reason', '')}"
    count = len(record.get("candidates", []))
    return (f"candidate {record['winner']} of {count} chosen by {record['decided_by']}: {record['reason']}")
