"""Our pytest plugin's results: every test by its whole node id, whatever the repository's configuration.

These run the host's pytest on generated projects (no sandbox needed: the plugin is plain pytest);
`tests/tools/test_run_tests.py` and the hostile corpus run it through `run_tests` in a real one.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.hostile import TEST_IDS, write_corpus
from tools.pytest_results import RESULTS_NAME, read_results, setup_command


def run_pytest(root: Path, work: Path, *args: str, before: str = "", env: dict[str, str] | None = None,
               ) -> tuple[subprocess.CompletedProcess, Path]:
    """pytest in `root`, set up as run_tests does it; the plugin and its results live under `work`."""
    command = f"{setup_command(str(work))} && {before}{sys.executable} -m pytest -q -p no:cacheprovider " + " ".join(
        f"'{arg}'" for arg in args)
    done = subprocess.run(["bash", "-c", command], cwd=root, capture_output=True, text=True, check=False,
                          env={"PATH": "/usr/bin:/bin", **(env or {})})
    return done, work / RESULTS_NAME


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """The hostile corpus: its pytest.ini turns JUnit XML off."""
    root = write_corpus(tmp_path / "repo")
    assert "-p no:junitxml" in (root / "pytest.ini").read_text()
    return root


def test_a_repository_without_junitxml_gets_every_id_whole_and_rerunnable(project: Path, tmp_path: Path) -> None:
    done, results = run_pytest(project, tmp_path / "work", "tests/test_calc.py")
    assert done.returncode == 1, done.stdout + done.stderr
    outcomes = read_results(results.read_bytes())
    assert {o.test_id: o.status for o in outcomes} == TEST_IDS  # one entry each: no id cut at a space
    assert [o.test_id for o in outcomes] == list(TEST_IDS)  # in the order pytest ran them
    failed = next(o for o in outcomes if o.status == "FAILED")
    assert failed.message == "AssertionError: assert 6 == 7"
    rerun, again = run_pytest(project, tmp_path / "work", failed.test_id, "tests/test_calc.py::test_odd_ids[x::y]")
    assert rerun.returncode == 1 and "1 failed, 1 passed" in rerun.stdout  # both found, not "not found"
    assert {o.test_id: o.status for o in read_results(again.read_bytes())} == {
        failed.test_id: "FAILED", "tests/test_calc.py::test_odd_ids[x::y]": "PASSED"}


def test_setup_teardown_skip_xfail_and_collection_errors_get_swebenchs_statuses(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    (root / "tests").mkdir(parents=True)
    (root / "tests/test_kinds.py").write_text(
        "import pytest\n\n\n@pytest.fixture\ndef broken_setup():\n    raise RuntimeError('no db')\n\n\n"
        "@pytest.fixture\ndef broken_teardown():\n    yield\n    raise RuntimeError('left over')\n\n\n"
        "def test_setup(broken_setup):\n    pass\n\n\ndef test_teardown(broken_teardown):\n    pass\n\n\n"
        "@pytest.mark.skip(reason='later')\ndef test_skip():\n    pass\n\n\n"
        "@pytest.mark.xfail(reason='known')\ndef test_xfail():\n    assert 0\n\n\n"
        "@pytest.mark.xfail(reason='fixed')\ndef test_xpass():\n    pass\n\n\n"
        "class TestBox:\n    def test_in_class(self):\n        assert [1] == [2]\n")
    (root / "tests/test_broken.py").write_text("import no_such_module\n")
    done, results = run_pytest(root, tmp_path / "work", "tests")
    assert done.returncode == 2, done.stdout  # a collection error stops the run: pytest's own "Interrupted"
    (root / "tests/test_broken.py").unlink()
    statuses = {o.test_id: (o.status, o.message) for o in read_results(results.read_bytes())}
    assert statuses == {"tests/test_broken.py": ("ERROR", statuses["tests/test_broken.py"][1])}
    assert "no_such_module" in statuses["tests/test_broken.py"][1]
    run_pytest(root, tmp_path / "work", "tests")
    statuses = {o.test_id: (o.status, o.message) for o in read_results(results.read_bytes())}
    assert statuses == {
        "tests/test_kinds.py::test_setup": ("ERROR", "RuntimeError: no db"),
        "tests/test_kinds.py::test_teardown": ("ERROR", "RuntimeError: left over"),  # passed, then its teardown failed
        "tests/test_kinds.py::test_skip": ("SKIPPED", "Skipped: later"),
        "tests/test_kinds.py::test_xfail": ("XFAIL", "known"),
        "tests/test_kinds.py::test_xpass": ("PASSED", ""),
        "tests/test_kinds.py::TestBox::test_in_class": ("FAILED", "assert [1] == [2]"),
    }


def test_ids_are_relative_to_where_the_command_ran_when_the_rootdir_is_below_it(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    (root / "sub").mkdir(parents=True)
    (root / "sub/pytest.ini").write_text("[pytest]\n")  # pytest's rootdir becomes sub/
    (root / "sub/test_deep.py").write_text("def test_deep():\n    assert 1 == 2\n")
    done, results = run_pytest(root, tmp_path / "work", "sub/test_deep.py")
    [outcome] = read_results(results.read_bytes())
    assert (outcome.test_id, outcome.status) == ("sub/test_deep.py::test_deep", "FAILED")
    assert '"nodeid": "test_deep.py::test_deep"' in results.read_text()  # pytest's id, relative to its rootdir
    assert run_pytest(root, tmp_path / "work", outcome.test_id)[0].returncode == 1  # found, not "not found"


def test_autoload_disabled_still_loads_it_and_a_reset_pythonpath_only_leaves_it_out(project: Path,
                                                                                    tmp_path: Path) -> None:
    _, results = run_pytest(project, tmp_path / "work", "tests/test_calc.py",
                            env={"PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"})
    assert {o.test_id: o.status for o in read_results(results.read_bytes())} == TEST_IDS
    done, results = run_pytest(project, tmp_path / "work", "tests/test_calc.py", before="PYTHONPATH=. ")
    assert done.returncode == 1 and "1 failed, 5 passed" in done.stdout  # the run itself is unharmed
    assert not results.exists()


def test_a_torn_last_line_is_dropped_and_other_files_are_refused() -> None:
    header = b'{"rootdir": "/r", "invocation_dir": "/r"}\n'
    record = b'{"nodeid": "t.py::test_a", "when": "call", "outcome": "passed", "xfail": false, "message": ""}\n'
    assert [o.test_id for o in read_results(header + record + b'{"nodeid": "t.py::te')] == ["t.py::test_a"]
    for data in (b"", b"<testsuites/>", record):
        with pytest.raises(ValueError):
            read_results(data)


def test_each_pytest_session_of_one_command_keeps_its_own_rootdir() -> None:
    data = (b'{"rootdir": "/r/sub", "invocation_dir": "/r"}\n'
            b'{"nodeid": "t.py::a", "when": "call", "outcome": "failed", "xfail": false, "message": "m"}\n'
            b'{"rootdir": "/r", "invocation_dir": "/r"}\n'
            b'{"nodeid": "u.py::b", "when": "call", "outcome": "passed", "xfail": false, "message": ""}\n')
    assert [(o.test_id, o.status) for o in read_results(data)] == [("sub/t.py::a", "FAILED"), ("u.py::b", "PASSED")]
