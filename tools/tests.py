"""`run_tests`: run the project's tests and answer with counts and the failing tests, not a 5,000-line log.

The command comes from `test_cmd` in `.agent.toml` or is detected from the files at the
repository root. Pytest runs with our own small plugin (tools/pytest_results.py), which records
every test by its full, rerunnable node id (`test_calc.py::test_eval[2 * 3-7]`, spaces and
brackets included) whatever the repository's configuration (`-p no:junitxml` too); when it
could not load (a test command that resets PYTHONPATH, tox's clean environment), pytest's
JUnit XML report is read, and failing that, or for other runners, the output, with the
SWE-bench harness's own log parsers. SWE-bench grading (evals/) always uses those parsers, so
its verdicts stay the official ones.
"""

from __future__ import annotations

import json
import posixpath
import re
import shlex
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from sandbox.base import CommandResult
from sandbox.output import cap_text
from tools.base import Observation, ToolContext, ToolError, ToolSpec
from tools.encoding import name_from_visible, shown_name
from tools.junit import PYTEST_OPTIONS, TestOutcome, read_junit
from tools.paths import is_within
from tools.pytest_results import RESULTS_DIR, RESULTS_NAME, read_results, setup_command

DEFAULT_TIMEOUT = 600.0
JUNIT_REPORT = f"{RESULTS_DIR}/junit.xml"
MAX_REPORT_BYTES = 50_000_000
MAX_LISTED_FAILURES = 30
FAILURE_LINE_CHARS = 240
TAIL_LINES = 60
ROOT_MARKERS = (
    "pytest.ini", "pyproject.toml", "setup.cfg", "setup.py", "tox.ini", "conftest.py", "noxfile.py", "tests", "test",
    "package.json", "yarn.lock", "pnpm-lock.yaml", "go.mod", "Cargo.toml", "pom.xml", "build.gradle",
    "build.gradle.kts", "gradlew",
)
PYTHON_MARKERS = {"pytest.ini", "pyproject.toml", "setup.cfg", "setup.py", "tox.ini", "conftest.py", "noxfile.py"}
NPM_PLACEHOLDER = "no test specified"
SUMMARY_LINE = re.compile(r"^(PASSED|FAILED|ERROR|SKIPPED|XFAIL|XPASS) (.+)$")
SUMMARY_STATUS = {"XPASS": "PASSED"}  # swebench's names; the rest are the same
PARAMETERS_END = re.compile(r"\](?= - |$)")
SCRIPT_MARK = "[run_tests]"
SCRIPT_STATUS = re.compile(r"^\[run_tests\] (.+): exit (\d+)$", re.MULTILINE)
# a test the file defines: pytest calls it, `python3 file.py` does not (unless the file ends in a main block)
TEST_DEFINITION = re.compile(r"^[ \t]*(?:(?:async[ \t]+)?def[ \t]+test|class[ \t]+Test)", re.MULTILINE)
MAIN_BLOCK = re.compile(r"^if[ \t]+__name__[ \t]*==[ \t]*[\"']__main__[\"'][ \t]*:", re.MULTILINE)
UNITTEST_STYLE = re.compile(r"^[ \t]*(?:import[ \t]+unittest|from[ \t]+unittest[ \t.]).*?\bTestCase\b",
                            re.MULTILINE | re.DOTALL)
MAX_NEARBY_DIRS = 40  # directories between the paths and the root probed for a subproject's markers
PYTEST_TOTALS = re.compile(r"^=+ .*\d+ \w+.* in [\d.]+s(?: \([^)]*\))? =+$")

DESCRIPTION = """\
Run the project's tests and get a summary: counts of passed/failed/errors/skipped and, for each failing test, \
its name and first error line. Narrow the run with `paths` (test files, directories or test ids such as \
tests/test_x.py::test_name) and `args` (extra arguments for the test runner, e.g. "-k parse" for pytest). \
For a full traceback, rerun one failing test with the bash tool."""


@dataclass(frozen=True)
class Runner:
    """How to run one kind of test suite."""

    name: str
    command: str
    parser: str | None = None  # a swebench log parser that reads this runner's output
    default_target: str = ""  # what `paths` replace, e.g. go's ./...
    forward: str = ""  # separates the runner's own options from the test tool's, e.g. npm's --
    each: bool = False  # one run of `command` per path (test scripts), each ending in a SCRIPT_STATUS line

    def narrowed(self, paths: list[str], args: str) -> str:
        if self.each:
            return (f"rc=0; for f in {' '.join(map(shlex.quote, paths))}; do {self.command} \"$f\" {args}; s=$?; "
                    f'echo "{SCRIPT_MARK} $f: exit $s"; [ $s = 0 ] || rc=1; done; [ $rc = 0 ]')
        parts = [self.command]
        if self.forward and (paths or args):
            parts.append(self.forward)
        parts.append(" ".join(map(shlex.quote, paths)) or self.default_target)
        parts.append(args)
        return " ".join(part for part in parts if part)


def guess_parser(command: str) -> str | None:
    if re.search(r"\bpytest\b", command):
        return "parse_log_pytest"
    if re.search(r"\bgo test\b", command):
        return "parse_log_gotest"
    if re.search(r"\bcargo test\b", command):
        return "parse_log_cargo"
    return None


class RunTestsTool:
    spec = ToolSpec(
        name="run_tests",
        description=DESCRIPTION,
        parameters={
            "type": "object",
            "properties": {
                "paths": {"type": "array", "items": {"type": "string"},
                          "description": "Test files, directories or test ids to run; default all tests."},
                "args": {"type": "string", "description": "Extra arguments for the test runner."},
                "timeout": {"type": "number", "exclusiveMinimum": 0,
                            "description": "Seconds before the run is stopped; optional."},
            },
            "additionalProperties": False,
        },
    )

    def __call__(self, args: dict[str, Any], ctx: ToolContext) -> Observation:
        root = posixpath.normpath(ctx.sandbox.workdir)
        paths = [check_test_path(path, root) for path in args.get("paths") or []]
        check_paths_exist(ctx, root, paths)
        timeout = min(args.get("timeout") or max(ctx.command_timeout, DEFAULT_TIMEOUT), ctx.max_command_timeout)
        run = run_suite(ctx, paths, (args.get("args") or "").strip(), timeout)
        text, data = summarize(run.runner, run.command, run.result, timeout, run.outcomes)
        return Observation(cap_text(text, ctx.observation_max_chars)[0], is_error=False, data=data)


@dataclass(frozen=True)
class SuiteRun:
    """One run of the project's tests: how it was run, what the shell said, pytest's report if any."""

    runner: Runner
    command: str
    result: CommandResult
    outcomes: list[TestOutcome] | None

    def statuses(self) -> dict[str, str]:
        """Test id -> PASSED/FAILED/ERROR/SKIPPED/XFAIL, as `summarize` reads them; {} when unreadable."""
        return read_statuses(self.runner, self.result.output, self.outcomes)


def run_suite(ctx: ToolContext, paths: list[str], args: str, timeout: float) -> SuiteRun:
    """Run the configured test command (`test_cmd`), else the detected runner, narrowed to `paths`.

    Used by `run_tests` and by the selection of a patch among attempts (agent/selection.py).
    Raises `ToolError` when no runner can be told; `timeout` is in seconds.
    """
    root = posixpath.normpath(ctx.sandbox.workdir)
    runner = Runner("configured", ctx.test_cmd, guess_parser(ctx.test_cmd)) if ctx.test_cmd else detect(ctx, root, paths)
    command = runner.narrowed(paths, args)
    # -rA makes pytest print one summary line per test, which is what the text parsers read.
    pytest = runner.parser == "parse_log_pytest"
    options = "-rA" + (" " + PYTEST_OPTIONS.format(path=JUNIT_REPORT) if pytest else "")
    plugin = setup_command() + " && " if pytest else ""
    result = ctx.sandbox.run(f"(cd {shlex.quote(root)} && rm -f {JUNIT_REPORT} && {plugin}"
                             f'export PYTEST_ADDOPTS="{options} ${{PYTEST_ADDOPTS:-}}" && {command})',
                             timeout=timeout)
    outcomes = (report_outcomes(ctx, f"{RESULTS_DIR}/{RESULTS_NAME}", read_results)
                or report_outcomes(ctx, JUNIT_REPORT, read_junit)) if pytest else None
    return SuiteRun(runner, command, result, outcomes)


def read_statuses(runner: Runner, output: str, outcomes: list[TestOutcome] | None) -> dict[str, str]:
    """Per-test statuses: pytest's own report when there is one, else its -rA lines, else swebench's parser."""
    if outcomes:
        return {outcome.test_id: outcome.status for outcome in outcomes}
    if runner.each:
        return {name: "PASSED" if code == "0" else "FAILED" for name, code in SCRIPT_STATUS.findall(output)}
    if runner.parser == "parse_log_pytest":  # no JUnit report (a repo's `-p no:junitxml`): its -rA lines
        return summary_statuses(output) or parse_statuses(runner.parser, output)
    return parse_statuses(runner.parser, output)


def report_outcomes(ctx: ToolContext, path: str,
                    read: Callable[[bytes], list[TestOutcome]]) -> list[TestOutcome] | None:
    """The tests in a report pytest wrote at `path` (our plugin's results, or its JUnit XML), read by `read`;
    None when there is none that can be read, or it lists no test."""
    stat = ctx.sandbox.stat(path)
    if not stat.exists or stat.size > MAX_REPORT_BYTES:
        return None
    try:
        return read(ctx.sandbox.read_file(path)) or None
    except (OSError, ValueError):
        return None


def check_test_path(path: str, root: str) -> str:
    """`path` (a test file, directory or id) as the runner gets it: its file part read back from the form
    names are shown in (tools/encoding.py `shown_name`: `a\\xe9.py` is the byte 0xE9, `a\\\\xe9.py` the text
    `\\xe9`, `\\x0a` a newline);
    raises ToolError for an empty path, an option or a path outside the repository."""
    if not path.strip():
        raise ToolError("paths contains an empty string; give test files, directories or test ids")
    if path.startswith("-"):
        raise ToolError(f"{path!r} in paths looks like an option; put runner options in `args`")
    file_part, separator, test = path.partition("::")
    file_part = name_from_visible(file_part)
    if not is_within(posixpath.normpath(posixpath.join(root, file_part)), root):
        raise ToolError(f"{path} is outside the repository {root}; give paths inside it")
    return file_part + separator + test


def check_paths_exist(ctx: ToolContext, root: str, paths: list[str]) -> None:
    """Raise ToolError naming each path whose file part is not in the repository, with the files of that
    name that are (a runner given a missing file reports a failure, which reads as a failing test: seen with
    Qwen2.5-Coder-1.5B, which then searched the code for "can't open file"). Patterns are left to the runner:
    a part with glob characters or go's `/...`."""
    files = [path.partition("::")[0] for path in paths]
    literal = [f for f in files if f and not any(c in f for c in "*?[") and not f.endswith("...")]
    if not literal:
        return
    quoted = " ".join(shlex.quote(f) for f in literal)
    probe = ctx.sandbox.run(f"cd {shlex.quote(root)} && for p in {quoted}; do [ -e \"$p\" ] || printf '%s\\0' \"$p\"; done",
                            timeout=30)
    missing = [name for name in probe.output.split("\0") if name] if probe.exit_code == 0 else []
    if not missing:
        return
    lines = []
    for name in missing:
        base = posixpath.basename(name.rstrip("/")) or name
        found = ctx.sandbox.run(f"cd {shlex.quote(root)} && find . -name {shlex.quote(base)} -not -path './.git/*' "
                                f"-printf '%P\\0' 2>/dev/null | head -c 2000", timeout=30)
        alike = [shown_name(f) for f in found.output.split("\0") if f][:5]
        lines.append(f"{shown_name(name)} does not exist in the repository"
                     + (f"; files of that name: {', '.join(alike)}" if alike else ""))
    raise ToolError("Nothing was run. " + "; ".join(lines) + ". Give paths relative to the repository root "
                    f"{shown_name(root)}.")


def detect(ctx: ToolContext, root: str, paths: list[str] = []) -> Runner:  # noqa: B006 (read only)
    """Pick the test command from the files at the repository root and the tools installed in the sandbox.

    Without a runner at the root (or with only the unittest fallback of a Python root), `paths`
    decide: pytest runs them when it is installed (it finds a subproject's `backend/pytest.ini`
    upward from them itself, and our plugin keeps the ids relative to the root, as the model wrote
    them); a pytest configuration in a directory between them and the root
    without pytest installed is refused with how to install it. Files whose tests only pytest calls
    (`def test_...` and no main block) are never run as scripts, which would call none of them and
    pass; unittest-style ones run with `python -m unittest`; plain Python test scripts (`python3
    test_calc.py` exits non-zero on failure, or ends in `unittest.main()`) run one by one.
    Raises ToolError when none of these fits.
    """
    nearby = [posixpath.join(directory, marker) for directory in nearby_dirs(root, paths)
              for marker in sorted(PYTHON_MARKERS)]
    probe = " ".join(map(shlex.quote, (*ROOT_MARKERS, *nearby)))
    result = ctx.sandbox.run(
        f"(cd {shlex.quote(root)} && for f in {probe}; do [ -e \"$f\" ] && echo \"file $f\"; done; "
        "for py in python python3; do if command -v $py >/dev/null; then echo \"python $py\"; "
        "$py -c 'import pytest' 2>/dev/null && echo 'tool pytest'; break; fi; done; "
        "for t in tox nox; do command -v $t >/dev/null && echo \"tool $t\"; done; true)"
    )
    facts = result.output.split("\n")
    found = [line[5:] for line in facts if line.startswith("file ")]
    files = {name for name in found if "/" not in name}
    tools = {line[5:] for line in facts if line.startswith("tool ")}
    python = next((line[7:] for line in facts if line.startswith("python ")), None)
    runner = choose_runner(files, lambda name: read_text(ctx, posixpath.join(root, name)), python, tools)
    if python and paths and (runner is None or runner.name == "unittest"):  # unittest: the root's fallback
        if "pytest" in tools:  # (only without a root marker: with one, pytest was chosen above)
            return Runner("pytest", f"{python} -m pytest", "parse_log_pytest")
        for marker in (name for name in found if "/" in name):  # nearest first
            if pytest_configured({posixpath.basename(marker)},
                                 lambda _, path=marker: read_text(ctx, posixpath.join(root, path))):
                raise pytest_missing(python, f"{marker} configures pytest")
        if all(path.endswith(".py") and "::" not in path for path in paths):
            return file_runner(python, {path: read_text(ctx, posixpath.join(root, path)) for path in paths})
        if any("::" in path for path in paths):
            raise pytest_missing(python, "test ids (file.py::test_name) are pytest's")
    if runner is None:
        raise ToolError("could not tell how to run this project's tests (no pytest/unittest, package.json, go.mod, "
                        "Cargo.toml, pom.xml or build.gradle at the repository root); give the test scripts as "
                        "`paths` (e.g. [\"test_x.py\"]) to run each with python, or run them with the bash tool")
    return runner


def nearby_dirs(root: str, paths: list[str]) -> list[str]:
    """Each path's directory (or the path itself, for a directory) and those above it, up to the root
    (not included), nearest first, relative to the root: where a subproject keeps its pytest.ini."""
    dirs: list[str] = []
    for path in paths:
        current = posixpath.normpath(path.split("::", 1)[0])
        if posixpath.isabs(current):
            current = posixpath.relpath(current, root)
        while current not in ("", ".") and not current.startswith(".."):
            if current not in dirs:
                dirs.append(current)
            current = posixpath.dirname(current)
    return dirs[:MAX_NEARBY_DIRS]


def file_runner(python: str, sources: dict[str, str]) -> Runner:
    """How to run the named `.py` files (path -> source) when pytest is not installed.

    A file runs as a script only when running it calls its tests: it defines none (its checks are
    top-level asserts) or it ends in a main block (`unittest.main()`). Unittest-style files without one
    run with `python -m unittest`. Raises ToolError for files whose tests only pytest would call.
    """
    kinds = {path: file_kind(source) for path, source in sources.items()}
    if pytest_only := [path for path, kind in kinds.items() if kind == "pytest"]:
        raise pytest_missing(python, f"{', '.join(pytest_only)} defines tests (def test_...) that only pytest calls: "
                                     "running the file with python would call none of them")
    if all(kind == "script" for kind in kinds.values()):
        return Runner("scripts", python, each=True)
    if all(kind == "unittest" for kind in kinds.values()):
        return Runner("unittest", f"{python} -m unittest -v", "parse_log_django")
    raise ToolError(f"{', '.join(path for path, kind in kinds.items() if kind == 'unittest')} are unittest test "
                    f"files and {', '.join(path for path, kind in kinds.items() if kind == 'script')} are plain "
                    "scripts; run_tests runs one kind at a time: give them in separate calls")


def file_kind(source: str) -> str:
    """'script' (running it runs its checks), 'unittest' (tests in TestCase classes, no main block), or 'pytest'."""
    if not TEST_DEFINITION.search(source) or MAIN_BLOCK.search(source):
        return "script"
    return "unittest" if UNITTEST_STYLE.search(source) else "pytest"


def pytest_missing(python: str, why: str) -> ToolError:
    """The refusal for tests that need pytest in a sandbox without it, with the command that installs it."""
    return ToolError(f"{why}, and pytest is not installed for {python} in the sandbox; install it with the bash "
                     f"tool (`{python} -m pip install pytest`) and run tests again")


def read_text(ctx: ToolContext, path: str) -> str:
    try:
        return ctx.sandbox.read_file(path).decode("utf-8", errors="replace")
    except OSError:
        return ""


def choose_runner(files: set[str], read: Callable[[str], str], python: str | None, tools: set[str]) -> Runner | None:
    """The first runner whose marker files are at the root; `tools` are the installed ones (pytest, tox, nox)."""
    if python and files & PYTHON_MARKERS:
        return python_runner(files, read, python, tools)
    if "package.json" in files:
        try:
            scripts = json.loads(read("package.json")).get("scripts") or {}
        except (ValueError, AttributeError):
            scripts = {}
        if scripts.get("test") and NPM_PLACEHOLDER not in scripts["test"]:
            tool = "pnpm" if "pnpm-lock.yaml" in files else "yarn" if "yarn.lock" in files else "npm"
            return Runner(tool, f"{tool} test", forward="--" if tool == "npm" else "")
    if "go.mod" in files:
        return Runner("go", "go test -v", "parse_log_gotest", default_target="./...")
    if "Cargo.toml" in files:
        return Runner("cargo", "cargo test", "parse_log_cargo")
    if "pom.xml" in files:
        return Runner("maven", "mvn -q test")
    if files & {"build.gradle", "build.gradle.kts"}:
        return Runner("gradle", "./gradlew test" if "gradlew" in files else "gradle test")
    if python and files & {"tests", "test"}:
        return python_runner(files, read, python, tools)
    return None


def python_runner(files: set[str], read: Callable[[str], str], python: str, tools: set[str]) -> Runner:
    if "pytest" in tools:
        return Runner("pytest", f"{python} -m pytest", "parse_log_pytest")
    if "tox.ini" in files and "tox" in tools:
        return Runner("tox", "tox", "parse_log_pytest", forward="--")
    if "noxfile.py" in files and "nox" in tools:
        return Runner("nox", "nox", "parse_log_pytest", forward="--")
    if pytest_configured(files, read):
        raise pytest_missing(python, "this project's tests use pytest")
    return Runner("unittest", f"{python} -m unittest -v", "parse_log_django")


def pytest_configured(files: set[str], read: Callable[[str], str]) -> bool:
    """Whether the marker files (`read` gives one's text by name) configure pytest."""
    return (
        bool(files & {"pytest.ini", "conftest.py"})
        or ("pyproject.toml" in files and "[tool.pytest" in read("pyproject.toml"))
        or ("setup.cfg" in files and "[tool:pytest]" in read("setup.cfg"))
        or ("tox.ini" in files and "[pytest]" in read("tox.ini"))
    )


def parse_statuses(parser: str | None, output: str) -> dict[str, str]:
    """Test name -> PASSED/FAILED/ERROR/SKIPPED/XFAIL, or {} when the output cannot be read per test."""
    if parser is None:
        return {}
    try:
        from swebench.harness.log_parsers import PARSER_REGISTRY
    except ImportError:  # swebench is an optional dependency (the `eval` extra): see `parsers_missing`
        return {}
    return PARSER_REGISTRY[parser](output, None)


PARSERS_MISSING = ("per-test results for this runner are read with swebench's log parsers, which are not "
                   "installed: pip install 'moe-agent[eval]'")


def parsers_missing(parser: str | None) -> bool:
    """True when `parser` names one of swebench's log parsers and swebench (the `eval` extra) is absent."""
    if parser is None:
        return False
    import importlib.util

    try:
        return importlib.util.find_spec("swebench.harness.log_parsers") is None
    except ImportError:  # the `swebench` package itself is missing
        return True


def summarize(runner: Runner, command: str, result: CommandResult, timeout: float,
              outcomes: list[TestOutcome] | None = None) -> tuple[str, dict[str, Any]]:
    """The observation and its data: counts and failing tests, from `outcomes` (pytest's own report)
    when there are any, else from the output read by swebench's parser for the runner."""
    reasons = {outcome.test_id: outcome.message for outcome in outcomes or ()}
    statuses = read_statuses(runner, result.output, outcomes)
    counts = Counter(statuses.values())
    # swebench's parser drops pytest's `SKIPPED [N] file:line` lines (they name no test); the totals line has them.
    skipped = max(counts["SKIPPED"], pytest_totals(result.output).get("skipped", 0))
    failed = _without_short_duplicates(name for name, status in statuses.items() if status == "FAILED")
    errors = _without_short_duplicates(name for name, status in statuses.items() if status == "ERROR")
    data: dict[str, Any] = {
        "kind": "tests", "runner": runner.name, "command": command, "exit_code": result.exit_code,
        "timed_out": result.timed_out, "passed": counts["PASSED"], "failed": failed, "errors": errors,
        "skipped": skipped, "xfailed": counts["XFAIL"],
    }
    lines = [f"$ {command}"]
    if result.out_of_time:
        data["out_of_time"] = True  # stopped by the run's time limit, not by its own timeout
        lines.append(" ".join(result.notes[-1:]) + ". Results so far:")
    elif result.timed_out:
        lines.append(f"The test run timed out after {timeout:g} s and was stopped; run fewer tests (paths, args) "
                     "or pass a larger timeout. Results so far:")
    if not statuses:
        if not outcomes and parsers_missing(runner.parser):
            data["note"] = PARSERS_MISSING
            lines.append(f"Note: {PARSERS_MISSING}.")
        lines.append(f"Exit code {result.exit_code}; no per-test results could be read from the output. "
                     f"Its last lines:")
        lines.append(tail(result.output, TAIL_LINES))
        return "\n".join(lines), data
    tally = [f"{len(failed)} failed", f"{counts['PASSED']} passed", f"{len(errors)} errors", f"{skipped} skipped"]
    tally += [f"{counts['XFAIL']} xfailed"] if counts["XFAIL"] else []
    lines.append(", ".join(tally) + f" (exit code {result.exit_code})")
    for title, names in (("Failed", failed), ("Errors", errors)):
        if names:
            lines.append(f"{title}:")
            for name in names[:MAX_LISTED_FAILURES]:
                reason = (reasons.get(name) or first_error_line(result.output, name))[:FAILURE_LINE_CHARS]
                lines.append(f"  {name}" + (f": {reason}" if reason else ""))
            if len(names) > MAX_LISTED_FAILURES:
                lines.append(f"  ... and {len(names) - MAX_LISTED_FAILURES} more")
    if runner.each and (failed or errors):  # a script's failure is whatever it printed
        lines.append("Output of the scripts (last lines):")
        lines.append(tail(result.output, TAIL_LINES))
    if result.exit_code != 0 and not failed and not errors and not result.timed_out:
        lines.append("The runner failed although no test did; its last lines:")
        lines.append(tail(result.output, TAIL_LINES // 3))
    return "\n".join(lines), data


def _without_short_duplicates(names: Iterable[str]) -> list[str]:
    """unittest names a failure twice (`test_x (mod.Class.test_x) ... FAIL` and `FAIL: test_x`); keep the full one."""
    names = set(names)
    return sorted(n for n in names if not any(other.startswith(n + " (") for other in names))


def pytest_totals(output: str) -> dict[str, int]:
    """pytest's closing line, `== 2 failed, 1 passed, 1 skipped in 0.1s ==`, as {"failed": 2, ...}."""
    for line in reversed(output.rstrip().split("\n")[-5:]):
        if PYTEST_TOTALS.match(line):
            return {kind: int(count) for count, kind in re.findall(r"(\d+) (\w+)", line)}
    return {}


def summary_line(line: str) -> tuple[str, str, str] | None:
    """(status, test id, reason) of one line of pytest's `-rA` short summary, the id whole.

    `FAILED test_a.py::test_s[a b] - AssertionError: ...`: swebench's parser cuts the id at the first
    space (`test_a.py::test_s[a`), which cannot be rerun. A parametrized id ends at the `]` followed
    by ` - ` or the line's end; any other id has no space. None for other lines (`SKIPPED [1] a.py:3`).
    """
    found = SUMMARY_LINE.match(line)
    if found is None or found.group(2).startswith("["):
        return None
    rest = found.group(2)
    base = re.match(r"[^\s\[]+", rest)
    if base is None:
        return None
    end = base.end()
    if rest[end:end + 1] == "[":
        close = PARAMETERS_END.search(rest, end)
        end = close.end() if close else len(rest)
    reason = rest[end:].removeprefix(" - ") if rest[end:].startswith(" - ") else ""
    return SUMMARY_STATUS.get(found.group(1), found.group(1)), rest[:end], reason


def summary_statuses(output: str) -> dict[str, str]:
    """Test id -> status from pytest's `-rA` short summary, ids whole (see `summary_line`)."""
    return {parsed[1]: parsed[0] for parsed in map(summary_line, output.split("\n")) if parsed}


def first_error_line(output: str, name: str) -> str:
    """The reason pytest's `-rA` summary gives, else the first `E ` line of the test's report section."""
    lines = output.split("\n")
    for line in lines:
        parsed = summary_line(line)
        if parsed and parsed[1] == name and parsed[2]:
            return parsed[2]
    short = name.rsplit("::", 1)[-1]
    in_section = False
    for line in lines:
        if line.startswith("___") and line.endswith("___"):  # a report section's header names its test
            in_section = f" {short} " in line or f" {name} " in line
        elif in_section and line.startswith("E "):
            return line[1:].strip()
    return ""


def tail(output: str, count: int) -> str:
    return "\n".join(output.rstrip("\n").split("\n")[-count:])


run_tests = RunTestsTool()
