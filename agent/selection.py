"""Choosing one patch among several attempts, by evidence checked in fresh sandboxes.

Patches are normalised (no `index` lines or hunk-header context, trailing spaces dropped,
files in path order) and grouped: attempts whose changes outside test files are the same
make one candidate. Each distinct candidate is checked in a sandbox of its own, started
fresh from the same snapshot and image the attempts had, and another sandbox measures the
base. The evidence, in the order it decides (after Agentless and SWE-agent's reviewer):

1. `applies`: `git apply` takes the candidate at the base.
2. `reproduction`: the tests the attempts wrote (test files in their patches) or ran
   (`run_tests` paths in their trajectories), one suite per attempt, that fail at the base;
   a candidate scores one for each such suite that passes with its changes.
3. `regressions`: the repository's tests (the configured `test_cmd`, else the detected
   runner) that passed at the base and fail with the candidate; fewer is better. The whole
   suite is the costly check, so it runs only for the candidates still level after 1 and 2
   (the winner always among them). Each run is bounded by `CheckLimits`.
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
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from agent.parallel import StopSignal, run_parallel
from sandbox.base import Sandbox
from tools.base import ToolContext, ToolError
from tools.tests import SuiteRun, run_suite

CHECK_DIR = "moe-selection"  # in the git dir of the checked repository
DECIDERS = ("applies", "reproduction", "regressions", "agreement", "size", "order")
TEST_DIRS = frozenset({"test", "tests", "testing", "__tests__", "spec", "specs"})
TEST_FILE = re.compile(r"(test_[^/]*\.py|[^/]*_test\.(py|go|rb)|[^/]*\.(test|spec)\.[cm]?[jt]sx?|[^/]*_spec\.rb"
                       r"|Test[^/]*\.java|[^/]*Tests?\.java)$")
HUNK_HEADER = re.compile(r"^(@@ -\d+(?:,\d+)? \+\d+(?:,\d+)? @@).*$")
FAILING = ("FAILED", "ERROR")
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
class Checker:
    """Runs the checks in sandboxes from `open_sandbox` (fresh each time, closed after), `parallel` at once."""

    def __init__(self, open_sandbox: Callable[[], Sandbox], *, test_cmd: str | None, parallel: int,
                 limits: CheckLimits | None = None, stop: StopSignal | None = None) -> None:
        self.open_sandbox = open_sandbox
        self.stop = stop
        self.test_cmd = test_cmd
        self.parallel = max(1, parallel)
        self.limits = limits or CheckLimits()

    def choose(self, attempts: Sequence[AttemptPatch]) -> Selection:
        """Group, check, rank; raises `KeyboardInterrupt` (after closing the sandboxes) when interrupted.

        Two rounds, each check in a fresh sandbox: first whether each candidate applies and how the
        reproduction suites go (at the base and with each candidate); then the repository's tests,
        at the base and for the candidates still level at the top (the whole suite is the costly
        check, and cannot reorder candidates the first round already told apart).
        """
        candidates = group(attempts)
        selection = Selection(candidates=candidates)
        if not candidates:
            selection.decided_by, selection.reason = "no_candidate", "no attempt submitted a patch"
            return selection
        tests = suites(attempts)
        base, *checked = self._round([lambda ctx: self._base(ctx, tests),
                                      *(lambda ctx, c=c: self._candidate(ctx, c, tests) for c in candidates)])
        if isinstance(base, Exception):
            base = [{"attempt": s.attempt, "targets": list(s.targets), "before": "error", "reproduces": False,
                     "note": _message(base)} for s in tests]
        selection.suites = base
        reproducing = {entry["attempt"] for entry in selection.suites if entry["reproduces"]}
        for candidate, outcome in zip(candidates, checked):
            if isinstance(outcome, Exception):
                candidate.error = _message(outcome)
            else:
                candidate.reproduction = [entry for entry in outcome if entry["attempt"] in reproducing]
        self._regressions(selection)
        rank(selection)
        return selection

    def _regressions(self, selection: Selection) -> None:
        """The repository's tests at the base and with each candidate level at the top after the first round."""
        best = max(candidate.key()[:2] for candidate in selection.candidates)
        top = [c for c in selection.candidates if c.key()[:2] == best and c.applies]
        for candidate in selection.candidates:
            if candidate not in top:
                candidate.repository_tests = {"ran": False, "note": "not needed: ranked below by the checks before"}
        if not top:
            selection.base_tests = {"ran": False, "note": "no candidate applies"}
            return
        base, *after = self._round([self._repository,
                                    *(lambda ctx, c=c: self._repository(ctx, c.patch) for c in top)])
        selection.base_tests = {"ran": False, "note": _message(base)} if isinstance(base, Exception) else base
        for candidate, outcome in zip(top, after):
            if isinstance(outcome, Exception):
                candidate.error = _message(outcome)
                continue
            candidate.repository_tests = outcome
            candidate.broken = _broken(selection.base_tests, outcome)

    def _round(self, checks: list[Callable[[ToolContext], Any]]) -> list[Any]:
        """Each check in a fresh sandbox of its own, `parallel` at once; a check's failure is its result."""
        return run_parallel([lambda stop, check=check: self._in_sandbox(check, stop) for check in checks],
                            self.parallel, name="moe-check", stop=self.stop)

    def _in_sandbox(self, check: Callable[[ToolContext], Any], stop: StopSignal) -> Any:
        with _CheckSandbox(self, stop) as ctx:
            return check(ctx)

    def _base(self, ctx: ToolContext, tests: list[Suite]) -> list[dict[str, Any]]:
        results = []
        for suite in tests:
            outcome, note = self._suite(ctx, suite)
            results.append({"attempt": suite.attempt, "targets": list(suite.targets), "before": outcome,
                            "reproduces": outcome == "fail", **({"note": note} if note else {})})
        return results

    def _candidate(self, ctx: ToolContext, candidate: Candidate, tests: list[Suite]) -> list[dict[str, Any]]:
        candidate.applies = not candidate.source_patch or _apply(ctx, candidate.source_patch, "source")
        if not candidate.applies:
            return []
        results = []
        for suite in tests:
            outcome, note = self._suite(ctx, suite)
            results.append({"attempt": suite.attempt, "after": outcome, **({"note": note} if note else {})})
        return results

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


class _CheckSandbox:
    """A fresh sandbox as a tool context, closed on exit or as soon as the run is stopped."""

    def __init__(self, checker: Checker, stop: StopSignal) -> None:
        self.checker, self.stop = checker, stop
        self.box: Sandbox | None = None

    def __enter__(self) -> ToolContext:
        self.stop.check()
        self.box = self.checker.open_sandbox()
        self.stop.on_stop(self.box.close)
        self.stop.check()
        limit = max(self.checker.limits.reproduction, self.checker.limits.repository)
        return ToolContext(sandbox=self.box, task="", command_timeout=limit, max_command_timeout=limit,
                           test_cmd=self.checker.test_cmd)

    def __exit__(self, *exc: object) -> None:
        if self.box is not None:
            self.box.close()


def _apply(ctx: ToolContext, patch: str, name: str, reverse: bool = False) -> bool:
    """`git apply` (or its reverse) at the repository root; whether it went through.

    The patch file goes in the repository's git dir (never seen by tests or `git status`).
    """
    root = shlex.quote(posixpath.normpath(ctx.sandbox.workdir))
    if "selection_dir" not in ctx.state:
        found = ctx.sandbox.run(f"cd {root} && git rev-parse --absolute-git-dir", timeout=60)
        if not found.ok:
            raise ToolError(f"{ctx.sandbox.workdir} is not a git repository: {found.output.strip()[:200]}")
        ctx.state["selection_dir"] = posixpath.join(found.output.strip().splitlines()[-1], CHECK_DIR)
    path = posixpath.join(ctx.state["selection_dir"], f"{name}.patch")
    ctx.sandbox.write_file(path, patch.encode("utf-8", "surrogateescape"))
    done = ctx.sandbox.run(f"cd {root} && git apply {'-R ' if reverse else ''}--whitespace=nowarn "
                           f"{shlex.quote(path)}", timeout=120)
    return done.ok


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
        "applies": f"candidate {n} applies at the base; candidate {r} does not",
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
