"""Test ids read from pytest's own JUnit XML report: full, one per test, rerunnable."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.hostile import TEST_IDS, write_corpus
from tools.junit import PYTEST_OPTIONS, node_id, read_junit


def run_pytest(root: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args], cwd=root,
                          capture_output=True, text=True, env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(root)},
                          check=False)


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = write_corpus(tmp_path_factory.mktemp("corpus"))
    (root / "pytest.ini").unlink()  # the corpus turns JUnit XML off; these tests read that report
    return root


def test_parametrized_ids_with_spaces_and_brackets_come_back_whole_and_rerunnable(project: Path) -> None:
    report = project / "report.xml"
    run_pytest(project, *PYTEST_OPTIONS.format(path=report).split(), "tests/test_calc.py")
    outcomes = read_junit(report.read_bytes())
    assert {o.test_id: o.status for o in outcomes} == TEST_IDS  # one entry each: no id cut at a space
    failed = next(o for o in outcomes if o.status == "FAILED")
    assert failed.test_id == "tests/test_calc.py::test_eval[2 * 3-7]" and failed.message == (
        "AssertionError: assert 6 == 7")
    rerun = run_pytest(project, failed.test_id, "tests/test_calc.py::test_odd_ids[x::y]")
    assert rerun.returncode == 1 and "1 failed, 1 passed" in rerun.stdout  # both found, not "not found"


@pytest.mark.parametrize("classname, name, files, expected", [
    ("tests.test_calc", "test_eval[1.5 - 2-x]", ["tests/test_calc.py"], "tests/test_calc.py::test_eval[1.5 - 2-x]"),
    ("tests.test_box.TestBox.Inner", "test_a", ["tests/test_box.py"], "tests/test_box.py::TestBox::Inner::test_a"),
    ("pkg.mod", "pkg.mod.func", ["pkg/mod.py"], "pkg/mod.py::pkg.mod.func"),  # a doctest
    ("", "tests.test_broken", ["tests/test_broken.py"], "tests/test_broken.py"),  # a collection error
    ("docs.guide.txt", "guide.txt", ["docs/guide.txt"], "docs/guide.txt::guide.txt"),
    ("tests.test_sub.TestSub", "test_inherited", ["tests/base.py"], "tests/test_sub.py::TestSub::test_inherited"),
])
def test_node_ids_are_rebuilt_from_pytests_mangled_names(classname: str, name: str, files: list[str],
                                                        expected: str) -> None:
    assert node_id(classname, name, files) == expected


def test_a_report_that_is_not_xml_is_an_error_not_a_crash() -> None:
    with pytest.raises(ValueError, match="not a JUnit XML report"):
        read_junit(b"<testsuites><testcase")
    with pytest.raises(ValueError):
        read_junit(b'<!DOCTYPE x [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">'
                   b'<!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;"><!ENTITY d "&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;">'
                   b'<!ENTITY e "&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;"><!ENTITY f "&e;&e;&e;&e;&e;&e;&e;&e;&e;&e;">'
                   b'<!ENTITY g "&f;&f;&f;&f;&f;&f;&f;&f;&f;&f;"><!ENTITY h "&g;&g;&g;&g;&g;&g;&g;&g;&g;&g;">]>'
                   b'<testsuites><testcase classname="x" name="&h;"/></testsuites>')


def test_an_inherited_test_gets_the_id_of_the_module_that_collected_it(tmp_path: Path) -> None:
    # issue 14: the report's `file` is where Base lives; the id must name Tests/test_child.py
    (tmp_path / "Tests/helpers").mkdir(parents=True)
    (tmp_path / "Tests/helpers/base.py").write_text("class Base:\n    def test_inh_fail(self):\n        assert 0\n")
    (tmp_path / "Tests/test_child.py").write_text("from Tests.helpers.base import Base\n\n\n"
                                                  "class TestChild(Base):\n    pass\n")
    report = tmp_path / "report.xml"
    run_pytest(tmp_path, "--rootdir", str(tmp_path), *PYTEST_OPTIONS.format(path=report).split(), "Tests")
    [outcome] = read_junit(report.read_bytes())
    assert (outcome.test_id, outcome.status) == ("Tests/test_child.py::TestChild::test_inh_fail", "FAILED")
    assert run_pytest(tmp_path, "--rootdir", str(tmp_path), outcome.test_id).returncode == 1  # found and rerun


@pytest.mark.parametrize("classname, name, files, expected", [
    ("Tests.test_child.TestChild", "test_inh_fail", ["Tests/helpers/base.py"],
     "Tests/test_child.py::TestChild::test_inh_fail"),
    ("Src.Tests.child_test.TestChild.Inner", "test_x", ["Src/Tests/base.py"],
     "Src/Tests/child_test.py::TestChild::Inner::test_x"),
    ("Pkg.Mod.TestA", "test_y", ["Pkg/base.py"], "Pkg/Mod.py::TestA::test_y"),  # no test_* name: first class after the first part
])
def test_inherited_ids_take_the_module_from_the_classname(classname: str, name: str, files: list[str],
                                                          expected: str) -> None:
    assert node_id(classname, name, files) == expected
