"""Per-test results from moe-agent's own pytest plugin (`tools/pytest_plugin.py`), read on the host.

Why a plugin of our own: pytest's terminal text cuts ids (a summary line is truncated to the
terminal's width, a line parser stops at the first space), and its JUnit XML report, which
keeps ids apart, is gone when a repository turns it off (`addopts = -p no:junitxml`, issue 14)
and holds only a mangled form of each id. The plugin records `report.nodeid` itself from
`pytest_runtest_logreport`, whatever the repository's configuration.

It reaches pytest as an installed distribution would: `setup_command` writes the module and a
`*.dist-info` with a `pytest11` entry point into a directory it puts first on PYTHONPATH, and
pytest loads it at start-up (also pytest 3's pkg_resources). A test command that resets
PYTHONPATH, or tox's clean environment, leaves it out without breaking the run, and the caller
falls back to the JUnit report, then to the text. With PYTEST_DISABLE_PLUGIN_AUTOLOAD set, it is
named with `-p` instead. The directory is on PYTHONPATH for the test run only.

SWE-bench grading (evals/) never uses this: it keeps swebench's log parsers, so verdicts stay
the official ones.
"""

from __future__ import annotations

import json
import posixpath
import shlex
from pathlib import Path

from tools import pytest_plugin
from tools.junit import TestOutcome

MODULE = "moe_agent_pytest_results"
RESULTS_DIR = "/tmp/.moe-tests"
RESULTS_NAME = "results.jsonl"
ENTRY_POINT = f"[pytest11]\nmoe_agent_results = {MODULE}\n"
METADATA = f"Metadata-Version: 2.1\nName: {MODULE.replace('_', '-')}\nVersion: 1.0\n"


def setup_command(directory: str = RESULTS_DIR) -> str:
    """Shell (POSIX sh, no base64 needed) that writes the plugin under `directory`, clears old results
    (`directory`/results.jsonl) and exports what pytest needs to load it; to run in the same subshell as
    the test command, before it."""
    plugin_dir = f"{directory}/plugin"
    dist_info = f"{plugin_dir}/{MODULE}-1.0.dist-info"
    files = {
        f"{plugin_dir}/{MODULE}.py": Path(pytest_plugin.__file__).read_text(encoding="utf-8"),
        f"{dist_info}/METADATA": METADATA,
        f"{dist_info}/entry_points.txt": ENTRY_POINT,
    }
    writes = " && ".join(f"printf '%s' {shlex.quote(text)} > {shlex.quote(path)}" for path, text in files.items())
    results = shlex.quote(f"{directory}/{RESULTS_NAME}")
    return (f"mkdir -p {shlex.quote(dist_info)} && {writes} && rm -f {results} && "
            f"export {pytest_plugin.ENVIRONMENT_VARIABLE}={results} "
            f'PYTHONPATH={shlex.quote(plugin_dir)}"${{PYTHONPATH:+:$PYTHONPATH}}" && '
            f'if [ -n "${{PYTEST_DISABLE_PLUGIN_AUTOLOAD:-}}" ]; then '
            f'export PYTEST_ADDOPTS="-p {MODULE} ${{PYTEST_ADDOPTS:-}}"; fi')


def read_results(data: bytes) -> list[TestOutcome]:
    """One outcome per test, in the order pytest first reported it, from the plugin's JSON lines.

    The status is swebench's name for it: a failed setup or teardown is ERROR (a passed test whose
    teardown fails too, as in pytest's own JUnit report), a failed call FAILED, a skip SKIPPED or,
    for an expected failure, XFAIL; an unexpected pass is PASSED; a file that could not be collected
    is ERROR under its path. Ids are made relative to the directory the command ran in when pytest's
    rootdir lies below it (per session: a command may run pytest more than once). A torn last line (a
    run killed at its timeout) is dropped; ValueError when the first line is not the plugin's header.
    """
    records = []
    for line in data.decode("utf-8", "replace").splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict):
            records.append(record)
    if not records or "rootdir" not in records[0]:
        raise ValueError("not a results file of moe-agent's pytest plugin")
    outcomes: dict[str, TestOutcome] = {}
    prefix = ""
    for record in records:
        if "rootdir" in record:  # each pytest session starts with one (a command may run pytest twice)
            prefix = posixpath.relpath(str(record["rootdir"]), str(record.get("invocation_dir") or "/"))
            prefix = "" if prefix == "." or prefix.startswith("..") else prefix + "/"
            continue
        status = _status(record)
        test_id = prefix + str(record.get("nodeid", "")) if record.get("nodeid") else prefix.rstrip("/")
        if status is None or not test_id:
            continue
        current = outcomes.get(test_id)
        if current is None or (status == "ERROR" and current.status in ("PASSED", "SKIPPED", "XFAIL")):
            outcomes[test_id] = TestOutcome(test_id, status, str(record.get("message") or ""))
    return list(outcomes.values())


def _status(record: dict) -> str | None:
    """The status one phase's report gives its test; None when the phase decides nothing (a setup that passed)."""
    when, outcome, xfail = record.get("when"), record.get("outcome"), bool(record.get("xfail"))
    if outcome == "skipped":
        return "XFAIL" if xfail else "SKIPPED"
    if outcome == "failed":
        return "FAILED" if when == "call" else "ERROR"
    return "PASSED" if outcome == "passed" and when == "call" else None
