"""Per-test results from the JUnit XML file pytest writes (`--junitxml`, `junit_family=xunit1`).

Pytest's terminal text cannot be read back reliably: a parametrized id such as
`test_calc.py::test_eval[2 * 3-7]` has spaces, and a line-based parser cuts it at the
first one. The XML keeps each test apart. It does not hold the node id itself, only
pytest's `mangle_test_address` of it (src/_pytest/junitxml.py): `classname` is the file
path dotted without `.py` followed by the classes, `name` the function with its
parameters; the xunit1 family adds `file`, the path the test was collected from, which
tells where the dotted path ends.

The file is written by code the repository controls, so it is parsed with the standard
library's expat (2.4.1 and later refuse entity-expansion bombs) and size-capped by the caller.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ElementTree
from dataclasses import dataclass

PYTEST_OPTIONS = "--junitxml={path} -o junit_family=xunit1"
MESSAGE_CHARS = 500


@dataclass(frozen=True)
class TestOutcome:
    """One test as pytest reported it: `status` is PASSED, FAILED, ERROR, SKIPPED or XFAIL (swebench's names)."""

    __test__ = False  # not a pytest test class, whatever its name

    test_id: str
    status: str
    message: str = ""


def mangled(path: str) -> str:
    """`mangle_test_address` of a file path: slashes as dots, `.py` dropped."""
    return re.sub(r"\.py$", "", path.replace("/", "."))


def node_id(classname: str, name: str, files: list[str]) -> str:
    """The pytest node id behind a testcase's classname and name, given the files tests came from."""
    for file in sorted(files, key=len, reverse=True):
        module = mangled(file)
        if classname == module:
            return f"{file}::{name}"
        if classname.startswith(module + "."):
            return "::".join([file, *classname[len(module) + 1:].split("."), name])
        if not classname and name == module:  # a collection error names the file itself
            return file
    parts = classname.split(".") if classname else []
    # No file matches: an inherited test (`TestChild(Base)`) names the file of `Base` in `file`, while
    # `classname` holds the collecting module's dotted path. That module is the last part named like
    # a test file (test_*, *_test); failing that, it ends before the first part after the first named
    # like a test class (Test*), else like any class (capitalised).
    modules = [i for i, part in enumerate(parts) if part.startswith("test_") or part.endswith("_test")]
    split = modules[-1] + 1 if modules else next(
        (i for i, part in enumerate(parts) if i and part.startswith("Test")),
        next((i for i, part in enumerate(parts) if i and part[:1].isupper()), len(parts)))
    if not split:
        return name
    return "::".join(["/".join(parts[:split]) + ".py", *parts[split:], name])


def read_junit(data: bytes) -> list[TestOutcome]:
    """Every testcase in the report, in order; ValueError when the data is not a JUnit XML report."""
    try:
        root = ElementTree.fromstring(data)
    except ElementTree.ParseError as exc:
        raise ValueError(f"not a JUnit XML report: {exc}") from None
    cases = list(root.iter("testcase"))
    files = sorted({case.get("file", "") for case in cases} - {""})
    outcomes = []
    for case in cases:
        status, message = "PASSED", ""
        for child in case:
            found = _status(child)
            if found is not None:
                status, message = found, (child.get("message") or "").strip()
                if message in ("", "collection failure"):  # the reason is in the report's text: its E lines
                    message = next((line[1:].strip() for line in (child.text or "").splitlines()
                                    if line.startswith("E ")), message)
                break
        line = message.split("\n", 1)[0][:MESSAGE_CHARS]
        outcomes.append(TestOutcome(node_id(case.get("classname", ""), case.get("name", ""), files), status, line))
    return outcomes


def _status(child: ElementTree.Element) -> str | None:
    if child.tag == "failure":
        return "FAILED"
    if child.tag == "error":
        return "ERROR"
    if child.tag == "skipped":
        return "XFAIL" if child.get("type") == "pytest.xfail" else "SKIPPED"
    return None
