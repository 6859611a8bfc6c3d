"""Choosing among attempts (agent/selection.py): patches compared, grouped, checked and ranked.

The checks run against `HostSandbox`, a copy of a repository on this machine whose commands
run in a host shell: real git and a real test runner, no Docker, so this file stays fast.
The containers are exercised by tests/agent/test_attempts.py.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest

from agent.parallel import StopSignal, Stopped
from agent.selection import (
    AttemptPatch, Candidate, Checker, Selection, group, normalize, rank, split_tests, suites,
)
from sandbox.base import CommandResult, FileStat
from tests.agent.test_fix import git

PYTEST = f"{sys.executable} -m pytest -q -p no:cacheprovider"


class HostSandbox:
    """A throwaway copy of `source`; commands run in bash on the host (enough of `sandbox.base.Sandbox`)."""

    def __init__(self, source: Path) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="moe-select-"))
        shutil.copytree(source, self.root / "repo", symlinks=True)
        self.workdir = str(self.root / "repo")

    def run(self, command: str, timeout: float | None = None) -> CommandResult:
        try:
            done = subprocess.run(["bash", "-c", command], cwd=self.workdir, capture_output=True, timeout=timeout)
        except subprocess.TimeoutExpired as exc:
            return CommandResult((exc.stdout or b"").decode(errors="replace"), None, timeout or 0, timed_out=True)
        return CommandResult((done.stdout + done.stderr).decode(errors="replace"), done.returncode, 0.0)

    def read_file(self, path: str) -> bytes:
        return Path(path).read_bytes()

    def write_file(self, path: str, data: bytes) -> None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_bytes(data)

    def stat(self, path: str) -> FileStat:
        found = Path(path)
        return FileStat(path, found.exists(), size=found.stat().st_size if found.exists() else 0)

    def close(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    root.mkdir()
    (root / "calc.py").write_text("def add(a, b):\n    return a - b\n\n\ndef sub(a, b):\n    return a - b\n")
    (root / "test_calc.py").write_text("import calc\n\n\ndef test_sub():\n    assert calc.sub(5, 3) == 2\n")
    git(root, "init", "-q", "-b", "main")
    git(root, "add", "-A")
    git(root, "commit", "-qm", "init")
    return root


def patch_of(repo: Path, files: dict[str, str]) -> str:
    """The `git diff` (new files included) of writing `files`, then the repository put back."""
    for name, text in files.items():
        (repo / name).write_text(text)
    git(repo, "add", "-A")
    diff = git(repo, "diff", "--cached", "--binary", "HEAD")
    git(repo, "reset", "-q", "--hard", "HEAD")
    git(repo, "clean", "-qfd")
    return diff


CALC = "def add(a, b):\n    return {add}\n\n\ndef sub(a, b):\n    return {sub}\n"
REPRO = "import calc\n\n\ndef test_add():\n    assert calc.add(2, 3) == 5\n"


def checker(repo: Path) -> Checker:
    return Checker(lambda: HostSandbox(repo), test_cmd=PYTEST, parallel=1)  # one at a time: pytest's report path


def test_patches_that_differ_only_in_index_lines_and_hunk_context_are_one_candidate(repo: Path) -> None:
    right = patch_of(repo, {"calc.py": CALC.format(add="a + b", sub="a - b")})
    noisy = "\n".join(line if not line.startswith("@@") else line + " def add(a, b):" for line in right.split("\n"))
    noisy = noisy.replace("\nindex ", "\nindex 0123456..", 1)
    assert normalize(noisy) == normalize(right)
    with_test = patch_of(repo, {"calc.py": CALC.format(add="a + b", sub="a - b"), "test_repro.py": REPRO})
    assert split_tests(with_test)[0] == right and "test_repro.py" in split_tests(with_test)[1]
    candidates = group([AttemptPatch(1, "submitted", right), AttemptPatch(2, "model_error", ""),
                        AttemptPatch(3, "submitted", with_test), AttemptPatch(4, "step_limit", with_test)])
    assert [(c.number, c.attempts) for c in candidates] == [(1, [1, 3])]  # unsubmitted patches are no candidates


def test_suites_are_the_test_files_attempts_wrote_and_the_tests_they_ran(repo: Path) -> None:
    wrote = patch_of(repo, {"calc.py": CALC.format(add="a + b", sub="a - b"), "test_repro.py": REPRO})
    found = suites([AttemptPatch(1, "submitted", wrote, ("test_calc.py::test_sub",)),
                    AttemptPatch(2, "submitted", patch_of(repo, {"calc.py": CALC.format(add="b + a", sub="a - b")})),
                    AttemptPatch(3, "format_error", "", ("test_calc.py",))])
    assert [(s.attempt, s.targets) for s in found] == [(1, ("test_repro.py", "test_calc.py::test_sub")),
                                                       (3, ("test_calc.py",))]
    assert "test_repro.py" in found[0].test_patch and "calc.py" not in found[0].test_patch.replace("test_", "")


def test_reproduction_beats_agreement_and_breaking_a_passing_test_is_seen(repo: Path) -> None:
    right = patch_of(repo, {"calc.py": CALC.format(add="a + b", sub="a - b"), "test_repro.py": REPRO})
    wrong = patch_of(repo, {"calc.py": CALC.format(add="b - a", sub="a - b")})
    breaks = patch_of(repo, {"calc.py": CALC.format(add="a + b", sub="a + b")})
    stale = "diff --git a/gone.py b/gone.py\n--- a/gone.py\n+++ b/gone.py\n@@ -1 +1 @@\n-x = 1\n+x = 2\n"
    only_a_test = patch_of(repo, {"test_repro.py": REPRO})
    selection = checker(repo).choose([
        AttemptPatch(1, "submitted", wrong), AttemptPatch(2, "submitted", wrong),
        AttemptPatch(3, "submitted", right, ("test_repro.py",)), AttemptPatch(4, "submitted", breaks),
        AttemptPatch(5, "submitted", stale), AttemptPatch(6, "submitted", only_a_test)])
    by_attempts = {tuple(c.attempts): c for c in selection.candidates}
    assert selection.winner is by_attempts[(3,)]
    # The next best also passes the reproduction test, but breaks test_sub: the regressions told them apart.
    assert selection.decided_by == "regressions" and selection.reason.endswith("(attempt 3)")
    # The two attempts wrote the same test file: it ran once at the base, and the record says so.
    assert selection.suites == [{"attempt": 3, "targets": ["test_repro.py"], "before": "fail", "reproduces": True},
                                {"attempt": 6, "targets": ["test_repro.py"], "before": "fail", "reproduces": True,
                                 "same_tests_as": 3}]
    assert by_attempts[(4,)].broken == ["test_calc.py::test_sub"]  # it also fixes add: only the regression tells
    assert by_attempts[(3,)].reproduced == by_attempts[(4,)].reproduced == 2 and by_attempts[(1, 2)].reproduced == 0
    assert by_attempts[(5,)].applies is False
    assert by_attempts[(6,)].applies is True and by_attempts[(6,)].reproduced == 0  # its test still fails
    assert selection.base_tests["passed"] == ["test_calc.py::test_sub"]
    record = selection.to_json()
    assert record["winner"] == by_attempts[(3,)].number and record["base_tests"]["passed"] == 1


def test_when_no_suite_reproduces_regressions_then_agreement_then_size_decide(repo: Path) -> None:
    fix = patch_of(repo, {"calc.py": CALC.format(add="a + b", sub="a - b")})
    longer = patch_of(repo, {"calc.py": CALC.format(add="(a) + (b)", sub="a - b") + "\n\n# the fix\n"})
    breaks = patch_of(repo, {"calc.py": CALC.format(add="a + b", sub="0")})
    selection = checker(repo).choose([AttemptPatch(1, "submitted", breaks), AttemptPatch(2, "submitted", longer),
                                      AttemptPatch(3, "submitted", fix)])
    assert (selection.decided_by, selection.winner.attempts) == ("size", [3])
    assert [c.broken for c in selection.candidates] == [["test_calc.py::test_sub"], [], []]
    assert selection.suites == [] and all(c.reproduction == [] for c in selection.candidates)


def test_a_check_that_cannot_start_is_that_candidates_error_not_the_end(repo: Path) -> None:
    fix = patch_of(repo, {"calc.py": CALC.format(add="a + b", sub="a - b")})
    other = patch_of(repo, {"calc.py": CALC.format(add="b + a", sub="a - b")})
    opened = []

    def flaky() -> HostSandbox:
        opened.append(1)
        if len(opened) == 2:  # the first candidate's sandbox
            raise RuntimeError("the engine went away")
        return HostSandbox(repo)

    selection = Checker(flaky, test_cmd=PYTEST, parallel=1).choose([AttemptPatch(1, "submitted", fix),
                                                                    AttemptPatch(2, "submitted", other)])
    assert selection.candidates[0].error == "the engine went away" and selection.candidates[0].applies is None
    assert selection.winner.attempts == [2] and selection.decided_by == "applies"
    assert selection.reason == ("candidate 2 applies at the base; candidate 1 could not be checked (the engine went "
                                "away) (attempt 2)")


def test_ranking_names_the_first_check_that_told_the_winner_apart() -> None:
    def candidate(number: int, **fields) -> Candidate:
        return Candidate(number=number, patch="", source_patch="", attempts=fields.pop("attempts", [number]),
                         changed_lines=fields.pop("lines", 2), applies=fields.pop("applies", True), **fields)

    selection = Selection([candidate(1), candidate(2, attempts=[2, 3])])
    rank(selection)
    assert selection.decided_by == "agreement" and selection.winner.number == 2
    assert selection.reason == "candidate 2 was written by 2 attempts, candidate 1 by 1 (attempts 2, 3)"
    selection = Selection([candidate(1), candidate(2)])
    rank(selection)
    assert selection.decided_by == "order" and selection.winner.number == 1
    selection = Selection([candidate(1, attempts=[1, 2], broken=["t::a"]), candidate(3)])
    rank(selection)
    assert selection.decided_by == "regressions" and selection.winner.number == 3
    reproduced = [{"attempt": 1, "after": "pass"}]
    selection = Selection([candidate(1, broken=["t::a"]), candidate(2, reproduction=reproduced, broken=["t::a"])])
    rank(selection)
    assert selection.decided_by == "reproduction" and selection.winner.number == 2
    selection = Selection([candidate(1, applies=False, lines=1)])
    rank(selection)
    assert selection.decided_by == "only_candidate"


class Boxes:
    """Opens `HostSandbox`es of `repo` and notes each one, the test commands it ran and whether it was closed;
    with `together`, each start waits until that many are starting (a start made alone never gets through)."""

    def __init__(self, repo: Path, together: int = 0) -> None:
        self.repo = repo
        self.opened: list[CountingSandbox] = []
        self.barrier = threading.Barrier(together, timeout=60) if together else None

    def __call__(self) -> HostSandbox:
        if self.barrier is not None:
            self.barrier.wait()
        box = CountingSandbox(self.repo)
        self.opened.append(box)
        return box

    def runs(self) -> list[str]:
        """Each test run, as the targets it named ('' for the whole suite), in all the sandboxes."""
        return [command.rsplit("no:cacheprovider", 1)[1].strip(" )") for box in self.opened for command in box.commands
                if "-m pytest" in command]


class CountingSandbox(HostSandbox):
    def __init__(self, source: Path) -> None:
        super().__init__(source)
        self.commands: list[str] = []
        self.closed = False

    def run(self, command: str, timeout: float | None = None) -> CommandResult:
        self.commands.append(command)
        return super().run(command, timeout)

    def close(self) -> None:
        self.closed = True
        super().close()


def test_the_same_suite_runs_once_and_candidates_run_only_suites_failing_at_the_base(repo: Path) -> None:
    right = patch_of(repo, {"calc.py": CALC.format(add="a + b", sub="a - b"), "test_repro.py": REPRO})
    wrong = patch_of(repo, {"calc.py": CALC.format(add="b - a", sub="a - b")})
    other = patch_of(repo, {"calc.py": CALC.format(add="a - b if a < b else b - a", sub="a - b")})
    boxes = Boxes(repo)
    selection = Checker(boxes, test_cmd=PYTEST, parallel=1).choose([
        AttemptPatch(1, "submitted", right, ("test_repro.py",)),
        AttemptPatch(2, "submitted", wrong, ("test_calc.py",)), AttemptPatch(3, "submitted", other, ("test_calc.py",))])
    assert (selection.winner.attempts, selection.decided_by) == ([1], "reproduction")
    assert selection.suites == [
        {"attempt": 1, "targets": ["test_repro.py"], "before": "fail", "reproduces": True},
        {"attempt": 2, "targets": ["test_calc.py"], "before": "pass", "reproduces": False},
        {"attempt": 3, "targets": ["test_calc.py"], "before": "pass", "reproduces": False, "same_tests_as": 2}]
    # test_calc.py passes at the base, so it can tell no candidate apart: it ran once there and nowhere else.
    # test_repro.py ran at the base and with each candidate; the whole suite at the base and with the winner.
    assert sorted(boxes.runs()) == sorted(["test_repro.py", "test_calc.py", "", *["test_repro.py"] * 3, ""])
    assert [c.reproduction for c in selection.candidates] == [[{"attempt": 1, "after": after}] for after in
                                                              ("pass", "fail", "fail")]
    # One sandbox for the base and one per candidate; the winner's repository tests ran in its own.
    assert len(boxes.opened) == 4 and all(box.closed for box in boxes.opened)
    winner = selection.candidates[0]
    assert winner.repository_tests["ran"] and winner.broken == [] and selection.base_tests["ran"]
    assert sorted(winner.repository_tests["passed"]) == ["test_calc.py::test_sub", "test_repro.py::test_add"]
    assert [c.repository_tests["note"] for c in selection.candidates[1:]] == [
        "not needed: ranked below by the checks before"] * 2


def test_the_base_and_every_candidate_start_at_once_and_the_leaders_keep_their_sandboxes(repo: Path) -> None:
    patches = [patch_of(repo, {"calc.py": CALC.format(add=add, sub="a - b")}) for add in ("a + b", "b + a", "a+b+0")]
    boxes = Boxes(repo, together=4)  # a start waiting for another to end would break the barrier
    selection = Checker(boxes, test_cmd="true", parallel=4).choose(
        [AttemptPatch(n, "submitted", patch) for n, patch in enumerate(patches, 1)])
    assert [c.error for c in selection.candidates] == ["", "", ""]
    # Nothing told the three apart before the repository's tests, which ran in the sandboxes the first checks
    # had: four sandboxes in all, every one closed.
    assert all(c.repository_tests["ran"] for c in selection.candidates) and selection.base_tests["ran"]
    assert len(boxes.opened) == 4 and all(box.closed for box in boxes.opened)
    assert selection.decided_by == "order" and selection.winner.attempts == [1]


@pytest.mark.parametrize("leaves", ["open(__file__, 'a').write('# ran\\n')", "open('left.txt', 'w').write('x')"],
                         ids=["its-own-file-changed", "a-new-file"])
def test_a_sandbox_whose_suite_left_something_behind_is_not_reused(repo: Path, leaves: str) -> None:
    touching = REPRO.replace("def test_add():\n", f"def test_add():\n    {leaves}\n")
    only = patch_of(repo, {"calc.py": CALC.format(add="a + b", sub="a - b"), "test_repro.py": touching})
    boxes = Boxes(repo)
    selection = Checker(boxes, test_cmd=PYTEST, parallel=1).choose([AttemptPatch(1, "submitted", only)])
    # A single distinct candidate gets every check all the same, and the record says how each went.
    [candidate] = selection.candidates
    assert selection.decided_by == "only_candidate" and candidate.applies and candidate.reproduced == 1
    assert selection.suites[0]["before"] == "fail"
    # The suite's run left the tree changed: the repository's tests ran in fresh sandboxes, at the base
    # and with the candidate, where test_repro.py is as written and nothing is left over.
    assert len(boxes.opened) == 4 and all(box.closed for box in boxes.opened)
    assert selection.base_tests["failed"] == [] and selection.base_tests["passed"] == ["test_calc.py::test_sub"]
    assert sorted(candidate.repository_tests["passed"]) == ["test_calc.py::test_sub", "test_repro.py::test_add"]
    assert candidate.broken == []


def test_the_repository_tests_at_the_base_can_run_while_the_attempts_work(repo: Path) -> None:
    fix = patch_of(repo, {"calc.py": CALC.format(add="a + b", sub="a - b")})
    breaks = patch_of(repo, {"calc.py": CALC.format(add="b + a", sub="0")})
    boxes = Boxes(repo)
    checker = Checker(boxes, test_cmd=PYTEST, parallel=1)
    early = checker.base_tests()  # before any attempt has a patch
    assert early.result(StopSignal())["passed"] == ["test_calc.py::test_sub"]  # (one pytest at a time on a host)
    selection = checker.choose([AttemptPatch(1, "submitted", breaks), AttemptPatch(2, "submitted", fix)], early)
    assert (selection.winner.attempts, selection.decided_by) == ([2], "regressions")
    assert selection.base_tests["during_attempts"] and selection.candidates[0].broken == ["test_calc.py::test_sub"]
    # No suite to run at the base, so no sandbox for one: the base tests' own, one per candidate, and a fresh
    # one for the second leader's repository tests (one at a time keeps one leader's sandbox).
    assert len(boxes.opened) == 4 and all(box.closed for box in boxes.opened)
    assert boxes.runs() == ["", "", ""] and [len(box.commands) > 0 for box in boxes.opened] == [True] * 4
    early.cancel()  # ended already: nothing to stop


def test_the_base_tests_run_early_stop_with_the_run(repo: Path) -> None:
    stop = StopSignal()
    boxes = Boxes(repo)
    early = Checker(boxes, test_cmd="sleep 2", parallel=1, stop=stop).base_tests()
    while not any("sleep 2" in command for box in boxes.opened for command in box.commands):
        time.sleep(0.05)
    stop.set()  # Ctrl-C while the attempts work
    assert boxes.opened[0].closed  # at once, under the running command
    with pytest.raises(Stopped):
        early.result(stop)
    early.cancel()
    assert len(boxes.opened) == 1
