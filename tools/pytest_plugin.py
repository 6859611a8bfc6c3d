"""moe-agent's pytest plugin, copied into the sandbox: one JSON line per test report, the node id whole.

It runs inside the repository's own Python and pytest (SWE-bench images go back to Python 3.5
and pytest 3), so it uses only the standard library, no f-strings and no `from __future__`;
its annotations are strings. It is loaded as an entry point (`pytest11`) from a directory put
on PYTHONPATH (see `tools.pytest_results`), so a repository's `-p no:junitxml`, a terminal
width that truncates summary lines, or a test command that resets PYTHONPATH (then the plugin
is simply absent, never a start-up error) cannot cost the per-test results.

Records, one JSON object per line, written as they happen (a run stopped at its timeout keeps
what it reported so far), to the file named by $MOE_AGENT_TEST_RESULTS:
- first `{"rootdir": DIR, "invocation_dir": DIR}`, absolute paths, so that ids relative to
  pytest's rootdir can be made relative to where the command ran;
- then `{"nodeid": ID, "when": "setup"|"call"|"teardown"|"collect", "outcome":
  "passed"|"failed"|"skipped", "xfail": bool, "message": first line of the failure}`.
Under pytest-xdist only the controller writes (it receives every worker's reports).
"""

import json
import os

ENVIRONMENT_VARIABLE = "MOE_AGENT_TEST_RESULTS"
MESSAGE_CHARS = 500

_sink = []  # the open results file, once configured (a list: no `global` needed)


def pytest_configure(config: "object") -> None:
    """Open the results file, unless this is an xdist worker or no file was asked for."""
    path = os.environ.get(ENVIRONMENT_VARIABLE)
    if not path or hasattr(config, "workerinput") or hasattr(config, "slaveinput") or _sink:
        return
    _sink.append(open(path, "a", encoding="utf-8"))
    params = getattr(config, "invocation_params", None)
    invocation = getattr(params, "dir", None) or getattr(config, "invocation_dir", None) or os.getcwd()
    rootdir = getattr(config, "rootpath", None) or config.rootdir  # rootdir needs the legacypath plugin in pytest 7+
    _write({"rootdir": str(rootdir), "invocation_dir": str(invocation)})


def pytest_unconfigure(config: "object") -> None:
    while _sink:
        _sink.pop().close()


def pytest_runtest_logreport(report: "object") -> None:
    """Every test's call, and any setup or teardown that did not pass: what decides its status."""
    if report.when == "call" or not report.passed:
        _record(report, report.when)


def pytest_collectreport(report: "object") -> None:
    """A file or class that could not be collected (or was skipped whole) is a result of its own."""
    if not report.passed:
        _record(report, "collect")


def _record(report: "object", when: "str") -> None:
    if not _sink:
        return
    _write({"nodeid": report.nodeid, "when": when, "outcome": report.outcome,
            "xfail": hasattr(report, "wasxfail"), "message": _message(report) if not report.passed else ""})


def _message(report: "object") -> "str":
    """The failure's one-line summary, as pytest's JUnit report gives it (`AssertionError: assert 6 == 7`)."""
    if getattr(report, "wasxfail", None) and report.skipped:  # an expected failure: its reason
        return str(report.wasxfail)[:MESSAGE_CHARS]
    longrepr = getattr(report, "longrepr", None)
    if isinstance(longrepr, tuple) and len(longrepr) == 3:  # a skip: (file, line, reason)
        return str(longrepr[2])[:MESSAGE_CHARS]
    crash = getattr(longrepr, "reprcrash", None)
    message = getattr(crash, "message", "") if crash is not None else ""
    if not message:
        text = getattr(report, "longreprtext", None) or str(longrepr or "")
        lines = [line for line in text.splitlines() if line.strip()]
        errors = [line[1:].strip() for line in lines if line.startswith("E ")]
        message = errors[0] if errors else (lines[-1].strip() if lines else "")
    return message.strip().split("\n", 1)[0][:MESSAGE_CHARS]


def _write(record: "dict") -> None:
    sink = _sink[0]
    sink.write(json.dumps(record) + "\n")  # ASCII: a name that is not UTF-8 travels as \udcXX escapes
    sink.flush()
