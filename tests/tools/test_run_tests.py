"""run_tests against a real container: detection, pytest summaries read by swebench's parser, fallbacks."""

from __future__ import annotations

import importlib.metadata
import io
import json
import tarfile
from pathlib import Path

import pytest

from tools.base import ToolError
from tools.tests import Runner, choose_runner

pytestmark = pytest.mark.docker

CALC_TESTS = b"""\
import pytest


def test_add():
    assert 1 + 1 == 2


def test_sub():
    assert 2 - 1 == 0


def test_raises():
    raise ValueError("bad input")


@pytest.mark.skip(reason="not today")
def test_skipped():
    pass
"""

UNITTEST_TESTS = b"""\
import unittest


class CalcTest(unittest.TestCase):
    def test_ok(self):
        self.assertEqual(1, 1)

    def test_wrong(self):
        self.assertEqual(1, 2)
"""


@pytest.fixture(scope="session")
def pytest_archive() -> bytes:
    """The host's pure-Python pytest and its dependencies as a tar, since the sandbox image has no pytest."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name in ("pytest", "pluggy", "iniconfig", "packaging", "pygments"):
            dist = importlib.metadata.distribution(name)
            for file in dist.files or []:
                if "__pycache__" in file.parts or file.parts[0] == "..":
                    continue
                tar.add(str(Path(dist.locate_file(file))), arcname=str(file))
    return buffer.getvalue()


@pytest.fixture
def with_pytest(repo, pytest_archive: bytes):
    site = repo.run("python3 -c 'import site; print(site.getsitepackages()[0])'").output.strip()
    repo.run(f"mkdir -p {site}")
    assert repo.container.put_archive(site, pytest_archive)
    assert repo.run("python3 -m pytest --version").ok
    return repo


@pytest.fixture
def calc_project(with_pytest):
    with_pytest.write_file("pytest.ini", b"[pytest]\n")
    with_pytest.write_file("tests/test_calc.py", CALC_TESTS)
    return with_pytest


def test_pytest_project_is_summarised_with_failing_tests_and_first_error_lines(call, calc_project) -> None:
    obs = call("run_tests")
    assert not obs.is_error
    lines = obs.text.splitlines()
    assert lines[0] == "$ python3 -m pytest"
    assert lines[1] == "2 failed, 1 passed, 0 errors, 1 skipped (exit code 1)"
    assert "  tests/test_calc.py::test_raises: ValueError: bad input" in lines
    assert any(line.startswith("  tests/test_calc.py::test_sub: assert") for line in lines)
    assert obs.data == {
        "kind": "tests", "runner": "pytest", "command": "python3 -m pytest", "exit_code": 1, "timed_out": False,
        "passed": 1, "failed": ["tests/test_calc.py::test_raises", "tests/test_calc.py::test_sub"], "errors": [],
        "skipped": 1, "xfailed": 0,
    }


def test_paths_and_args_narrow_the_run(call, calc_project) -> None:
    by_id = call("run_tests", paths=["tests/test_calc.py::test_add"])
    assert by_id.data["command"] == "python3 -m pytest tests/test_calc.py::test_add"
    assert by_id.data["passed"] == 1 and by_id.data["failed"] == [] and by_id.data["exit_code"] == 0
    by_keyword = call("run_tests", args="-k 'sub or add'")
    assert by_keyword.data["passed"] == 1 and by_keyword.data["failed"] == ["tests/test_calc.py::test_sub"]


def test_collection_error_is_listed_as_an_error(call, calc_project) -> None:
    calc_project.write_file("tests/test_broken.py", b"import not_a_module_anywhere\n")
    obs = call("run_tests", paths=["tests/test_broken.py"])
    assert obs.data["errors"] == ["tests/test_broken.py"] and obs.data["exit_code"] == 2
    assert "Errors:" in obs.text and "not_a_module_anywhere" in obs.text


def test_configured_pytest_command_is_parsed_too(call, ctx, calc_project) -> None:
    ctx.test_cmd = "python3 -m pytest -q tests"
    obs = call("run_tests")
    assert obs.data["runner"] == "configured" and obs.data["passed"] == 1 and len(obs.data["failed"]) == 2


def test_unittest_results_are_read_per_test(call, repo) -> None:
    repo.write_file("setup.py", b"from setuptools import setup\nsetup(name='calc')\n")
    repo.write_file("test_calc.py", UNITTEST_TESTS)
    obs = call("run_tests")
    assert obs.data["runner"] == "unittest" and obs.data["exit_code"] == 1
    assert obs.data["passed"] >= 1 and len(obs.data["failed"]) == 1
    assert obs.text.startswith("$ python3 -m unittest -v\n1 failed")


def test_pytest_configured_but_missing_says_how_to_install(call, repo) -> None:
    repo.write_file("pyproject.toml", b"[tool.pytest.ini_options]\naddopts = '-q'\n")
    obs = call("run_tests")
    assert obs.is_error and "pytest" in obs.text and "pip install pytest" in obs.text


def test_javascript_project_is_detected_by_lockfile(call, repo) -> None:
    repo.write_file("package.json", json.dumps({"scripts": {"test": "jest"}}).encode())
    repo.write_file("yarn.lock", b"")
    obs = call("run_tests", args="--ci")
    assert obs.data["command"] == "yarn test --ci" and obs.data["exit_code"] == 127
    assert "yarn: command not found" in obs.text


def test_go_project_narrowing_replaces_the_package_pattern(call, repo) -> None:
    repo.write_file("go.mod", b"module example.com/demo\n")
    assert call("run_tests").data["command"] == "go test -v ./..."
    assert call("run_tests", paths=["./pkg/..."]).data["command"] == "go test -v ./pkg/..."


def test_nothing_detectable_says_so(call) -> None:
    obs = call("run_tests")
    assert obs.is_error and "could not tell how to run" in obs.text and "bash" in obs.text


def test_plain_python_test_scripts_named_as_paths_run_one_by_one(call, repo) -> None:
    """A repository with no runner whose tests are scripts (`python3 test_calc.py`), as the real-model
    benchmark's tasks are: Qwen2.5-Coder-1.5B called run_tests with paths=["test_calc.py"] and was refused."""
    repo.write_file("test_ok.py", b"assert 1 + 1 == 2\nprint('fine')\n")
    repo.write_file("test_bad.py", b"def add(a, b):\n    return a - b\n\nassert add(2, 3) == 5, add(2, 3)\n")
    obs = call("run_tests", paths=["test_ok.py", "test_bad.py"])

    assert not obs.is_error and obs.data["runner"] == "scripts"
    assert obs.data["passed"] == 1 and obs.data["failed"] == ["test_bad.py"] and obs.data["exit_code"] == 1
    assert "1 failed, 1 passed" in obs.text and "AssertionError: -1" in obs.text
    assert call("run_tests", paths=["test_ok.py"]).data | {"command": ""} == {
        "kind": "tests", "runner": "scripts", "command": "", "exit_code": 0, "timed_out": False, "passed": 1,
        "failed": [], "errors": [], "skipped": 0, "xfailed": 0}


def test_scripts_are_not_guessed_for_other_paths(call, repo) -> None:
    repo.write_file("tests.txt", b"")
    obs = call("run_tests", paths=["tests.txt"])
    assert obs.is_error and "could not tell how to run" in obs.text and "paths" in obs.text


# -- a subproject's tests, and files whose tests only pytest calls (issue 14, third tester) ------------------
PARAMETRIZED = b"""\
import pytest


@pytest.mark.parametrize("expr,want", [("1 + 1", 2), ("2 * 3", 7), ("10 - 4", 6)])
def test_eval(expr, want):
    assert eval(expr) == want
"""
FAILING_ID = "backend/tests/test_calc.py::test_eval[2 * 3-7]"


def test_a_subprojects_tests_run_with_pytest_and_keep_ids_relative_to_the_root(call, with_pytest) -> None:
    """Only backend/pytest.ini, no marker at the root: the scripts runner called none of the tests and reported a
    pass; a test id and the directory were refused."""
    with_pytest.write_file("backend/pytest.ini", b"[pytest]\n")
    with_pytest.write_file("backend/tests/test_calc.py", PARAMETRIZED)

    by_file = call("run_tests", paths=["backend/tests/test_calc.py"])
    by_id = call("run_tests", paths=[FAILING_ID])
    by_directory = call("run_tests", paths=["backend"])

    assert by_file.data["runner"] == "pytest" and by_file.data["command"].startswith("python3 -m pytest ")
    assert (by_file.data["failed"], by_file.data["passed"]) == ([FAILING_ID], 2)
    assert (by_id.data["failed"], by_id.data["passed"], by_id.data["exit_code"]) == ([FAILING_ID], 0, 1)
    assert (by_directory.data["failed"], by_directory.data["passed"]) == ([FAILING_ID], 2)


def test_with_pytest_installed_named_files_run_with_it_even_without_any_marker(call, with_pytest) -> None:
    with_pytest.write_file("checks/test_calc.py", PARAMETRIZED)

    obs = call("run_tests", paths=["checks/test_calc.py"])

    assert obs.data["runner"] == "pytest"
    assert (obs.data["failed"], obs.data["passed"]) == (["checks/test_calc.py::test_eval[2 * 3-7]"], 2)


@pytest.mark.parametrize("paths", [["backend/tests/test_calc.py"], [FAILING_ID], ["backend"]])
def test_a_subprojects_pytest_configuration_without_pytest_says_how_to_install_it(call, repo, paths) -> None:
    repo.write_file("backend/pytest.ini", b"[pytest]\n")
    repo.write_file("backend/tests/test_calc.py", PARAMETRIZED)

    obs = call("run_tests", paths=paths)

    assert obs.is_error and "backend/pytest.ini configures pytest" in obs.text
    assert "python3 -m pip install pytest" in obs.text


@pytest.mark.parametrize("paths", [["test_calc.py"], ["test_calc.py::test_eval[2 * 3-7]"]])
def test_pytest_style_tests_are_never_run_as_a_script_that_passes(call, repo, paths) -> None:
    repo.write_file("test_calc.py", PARAMETRIZED)

    obs = call("run_tests", paths=paths)

    assert obs.is_error and "python3 -m pip install pytest" in obs.text and "passed" not in obs.text


def test_unittest_files_run_with_unittest_or_as_scripts_when_they_end_in_main(call, repo) -> None:
    repo.write_file("test_plain.py", UNITTEST_TESTS)
    repo.write_file("test_main.py", UNITTEST_TESTS + b"\n\nif __name__ == '__main__':\n    unittest.main()\n")

    plain = call("run_tests", paths=["test_plain.py"])
    main = call("run_tests", paths=["test_main.py"])
    both = call("run_tests", paths=["test_plain.py", "test_main.py"])

    assert plain.data["runner"] == "unittest" and plain.data["command"] == "python3 -m unittest -v test_plain.py"
    assert plain.data["passed"] == 1 and len(plain.data["failed"]) == 1 and plain.data["exit_code"] == 1
    assert main.data["runner"] == "scripts" and main.data["failed"] == ["test_main.py"] and main.data["passed"] == 0
    assert both.is_error and "separate calls" in both.text


def test_a_python_root_without_pytest_still_refuses_files_only_pytest_runs(call, repo) -> None:
    """A root setup.py gives the unittest fallback, which would run none of a pytest-style file's tests."""
    repo.write_file("setup.py", b"from setuptools import setup\nsetup(name='calc')\n")
    repo.write_file("backend/test_calc.py", PARAMETRIZED)
    repo.write_file("backend/test_ok.py", b"assert 1 + 1 == 2\n")

    refused = call("run_tests", paths=["backend/test_calc.py"])
    script = call("run_tests", paths=["backend/test_ok.py"])

    assert refused.is_error and "python3 -m pip install pytest" in refused.text
    assert script.data["runner"] == "scripts" and script.data["passed"] == 1


@pytest.mark.parametrize(("source", "kind"), [
    ("assert 1 + 1 == 2\n", "script"),
    ("def add(a, b):\n    return a + b\n\nassert add(1, 2) == 3\n", "script"),
    (PARAMETRIZED.decode(), "pytest"),
    ("class TestCalc:\n    def test_add(self):\n        assert 1\n", "pytest"),
    ("async def test_fetch():\n    pass\n", "pytest"),
    (UNITTEST_TESTS.decode(), "unittest"),
    ("from unittest import TestCase\n\nclass TestA(TestCase):\n    def test_a(self):\n        pass\n", "unittest"),
    ("def test_a():\n    assert 1\n\nif __name__ == \"__main__\":\n    test_a()\n", "script"),
])
def test_file_kind_tells_who_calls_the_tests(source: str, kind: str) -> None:
    from tools.tests import file_kind

    assert file_kind(source) == kind


def test_nearby_dirs_run_from_each_path_up_to_the_root() -> None:
    from tools.tests import nearby_dirs

    assert nearby_dirs("/testbed", ["backend/tests/test_calc.py::test_eval[2 * 3-7]", "/testbed/web/x.py", "."]) == [
        "backend/tests/test_calc.py", "backend/tests", "backend", "web/x.py", "web"]


def test_timeout_stops_the_run(call, ctx) -> None:
    ctx.test_cmd = "echo started; sleep 30"
    obs = call("run_tests", timeout=1)
    assert "timed out after 1 s" in obs.text and obs.data["timed_out"] is True and "started" in obs.text
    assert call("bash", command="echo alive").text.startswith("alive")


def test_the_model_shell_is_left_where_it_was(call, ctx) -> None:
    ctx.test_cmd = "pwd"
    call("bash", command="cd /tmp && export PYTEST_ADDOPTS=-x")
    obs = call("run_tests")
    assert "/testbed" in obs.text
    assert call("bash", command='pwd; echo "$PYTEST_ADDOPTS"').text.startswith("/tmp\n-x\n")


@pytest.mark.parametrize(("paths", "says"), [(["../outside.py"], "outside the repository"),
                                             (["/etc/passwd"], "outside the repository"),
                                             (["-x"], "looks like an option"), ([""], "empty string")])
def test_bad_paths_are_refused(call, ctx, paths, says) -> None:
    ctx.test_cmd = "true"
    obs = call("run_tests", paths=paths)
    assert obs.is_error and says in obs.text


@pytest.mark.parametrize("args", [{"paths": "tests"}, {"args": ["-x"]}, {"timeout": "long"}, {"path": "x"}])
def test_missing_or_wrongly_typed_arguments(call, args) -> None:
    obs = call("run_tests", **args)
    assert obs.is_error and obs.text.startswith("Invalid arguments")


# -- choosing a runner (pure; the files are given) ----------------------------------
def runner_for(files: dict[str, str], tools: set[str] = frozenset(), python: str | None = "python") -> Runner | None:
    return choose_runner(set(files), lambda name: files[name], python, set(tools))


@pytest.mark.parametrize(("files", "command"), [
    ({"package.json": '{"scripts": {"test": "vitest"}}'}, "npm test"),
    ({"package.json": '{"scripts": {"test": "vitest"}}', "pnpm-lock.yaml": ""}, "pnpm test"),
    ({"Cargo.toml": ""}, "cargo test"),
    ({"pom.xml": ""}, "mvn -q test"),
    ({"build.gradle.kts": "", "gradlew": ""}, "./gradlew test"),
    ({"build.gradle": ""}, "gradle test"),
])
def test_choose_runner_by_marker_file(files, command) -> None:
    runner = runner_for(files)
    assert runner is not None and runner.command == command


def test_choose_runner_prefers_pytest_then_tox_then_unittest() -> None:
    assert runner_for({"setup.py": ""}, {"pytest", "tox"}).name == "pytest"
    assert runner_for({"tox.ini": "[tox]\n"}, {"tox"}).name == "tox"
    assert runner_for({"noxfile.py": ""}, {"nox"}).name == "nox"
    assert runner_for({"setup.py": ""}).name == "unittest"
    assert runner_for({"tests": ""}, {"pytest"}).name == "pytest"


def test_choose_runner_ignores_npm_placeholder_and_missing_python() -> None:
    placeholder = '{"scripts": {"test": "echo \\"Error: no test specified\\" && exit 1"}}'
    assert runner_for({"package.json": placeholder}) is None
    assert runner_for({"package.json": "not json"}) is None
    assert runner_for({"setup.py": ""}, python=None) is None
    with pytest.raises(ToolError, match="pip install pytest"):
        runner_for({"setup.cfg": "[tool:pytest]\n"})


def test_npm_forwards_arguments_after_double_dash() -> None:
    runner = runner_for({"package.json": '{"scripts": {"test": "jest"}}'})
    assert runner is not None and runner.narrowed(["src/a.test.js"], "--ci") == "npm test -- src/a.test.js --ci"


def test_without_swebench_the_model_is_told_which_extra_reads_results(monkeypatch: pytest.MonkeyPatch) -> None:
    """A plain `pip install moe-agent` has no swebench: unittest/go/cargo output then has no per-test
    reading, and the observation says which extra gives it instead of reporting 0 passed."""
    import builtins
    import importlib.util

    from sandbox.base import CommandResult
    from tools import tests

    real_import, real_find = builtins.__import__, importlib.util.find_spec

    def no_swebench(name: str, *args, **kwargs):
        if name.startswith("swebench"):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_swebench)
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name.startswith("swebench") else real_find(name, *a))
    output = "test_add (test_calc.T.test_add) ... ok\n\nRan 1 test in 0.001s\n\nOK\n"
    runner = Runner("unittest", "python3 -m unittest -v", "parse_log_django")
    result = CommandResult(output=output, exit_code=0, duration=0.1)
    text, data = tests.summarize(runner, "python3 -m unittest -v", result, 60)
    assert "pip install 'moe-agent[eval]'" in text and data["note"] == tests.PARSERS_MISSING
    monkeypatch.undo()
    text, data = tests.summarize(runner, "python3 -m unittest -v", result, 60)
    assert data["passed"] == 1 and "note" not in data


def test_a_repo_that_turns_junitxml_off_still_gets_whole_rerunnable_ids(call, with_pytest) -> None:
    repo = with_pytest
    # issue 14: `addopts = -p no:junitxml` leaves no report; our plugin records each node id whole, also
    # `test_s[p] - [q]`, which a reader of the -rA summary line cannot tell from `test_s[p]` plus a message
    repo.write_file("pytest.ini", b"[pytest]\naddopts = -p no:junitxml\n")
    repo.write_file("test_a.py", b'import pytest\n\n\n@pytest.mark.parametrize("s", ["a b", "a c", "x - y", "p] - [q"])'
                                 b'\ndef test_s(s):\n    assert s == "a b"\n')
    obs = call("run_tests")
    failing = ["test_a.py::test_s[a c]", "test_a.py::test_s[p] - [q]", "test_a.py::test_s[x - y]"]
    assert obs.data["failed"] == failing and obs.data["passed"] == 1
    assert "  test_a.py::test_s[a c]: AssertionError: assert 'a c' == 'a b'" in obs.text.splitlines()
    again = call("run_tests", paths=["test_a.py::test_s[p] - [q]"])
    assert again.data["failed"] == ["test_a.py::test_s[p] - [q]"] and again.data["passed"] == 0  # found by its id


@pytest.mark.parametrize(("line", "parsed"), [
    ("PASSED test_a.py::test_s[a b]", ("PASSED", "test_a.py::test_s[a b]", "")),
    ("FAILED test_a.py::test_s[a - b] - AssertionError: x - y", ("FAILED", "test_a.py::test_s[a - b]",
                                                                 "AssertionError: x - y")),
    ("ERROR tests/t.py::TestA::test_b - fixture 'db' not found", ("ERROR", "tests/t.py::TestA::test_b",
                                                                 "fixture 'db' not found")),
    ("XPASS t.py::test_y", ("PASSED", "t.py::test_y", "")),
    ("SKIPPED [1] t.py:3: no network", None),
    ("collected 3 items", None),
])
def test_summary_lines_keep_the_whole_id(line: str, parsed: tuple[str, str, str] | None) -> None:
    from tools.tests import summary_line

    assert summary_line(line) == parsed
