"""`agent fix`'s task text from every source is valid UTF-8 with undecodable bytes shown (issue 14, third
tester): read as bytes, shown by tools/encoding.py's rule for text that is no file (`\\xNN`)."""

from __future__ import annotations

import io
import sys
from pathlib import Path

import pytest

from agent.cli.fix import read_task
from agent.github import Issue, IssueRef

RAW = b"Caf\xe9 crash \xff\xfe\n"
SHOWN = "Caf\\xe9 crash \\xff\\xfe\n"


def test_a_file_that_is_not_utf8_is_read_with_its_bytes_shown(tmp_path: Path) -> None:
    (tmp_path / "issue.md").write_bytes(RAW)
    assert read_task(None, tmp_path / "issue.md", None) == (SHOWN, None)


def test_stdin_bytes_are_shown_the_same_way(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(RAW), encoding="utf-8"))
    assert read_task("-", None, None) == (SHOWN, None)


def test_argv_as_python_decodes_it_is_shown_the_same_way() -> None:
    argv = RAW.decode("utf-8", "surrogateescape")  # what sys.argv holds for those bytes
    assert read_task(argv, None, None) == (SHOWN, None)
    assert read_task("a \\xe9 typed by hand", None, None)[0] == "a \\xe9 typed by hand"  # UTF-8: as it is


def test_a_github_issue_with_lone_surrogate_escapes_is_shown(monkeypatch: pytest.MonkeyPatch) -> None:
    ref = IssueRef("o", "r", 1)
    issue = Issue(ref=ref, title="Caf\udce9", body="bad \ud800 here", state="open", url="u")
    monkeypatch.setattr("agent.github.fetch_issue", lambda text: issue)
    assert read_task(None, None, "o/r#1") == ("Caf\\xe9\n\nbad \\ud800 here", "Caf\\xe9")


def test_a_utf8_task_is_unchanged_and_an_undecodable_one_is_valid_utf8(tmp_path: Path) -> None:
    (tmp_path / "ok.md").write_text("café \\xe9 ✓\n", encoding="utf-8")
    assert read_task(None, tmp_path / "ok.md", None)[0] == "café \\xe9 ✓\n"
    (tmp_path / "mixed.md").write_bytes(b"\\xe9 then \xe9\n")
    text = read_task(None, tmp_path / "mixed.md", None)[0]
    assert text == "\\\\xe9 then \\xe9\n" and text.encode("utf-8")  # the typed text and the byte stay apart


def test_the_ci_bots_task_from_event_json_with_lone_surrogates_is_valid_utf8(tmp_path: Path) -> None:
    from agent.ci import IssueJob, task_text

    ref = IssueRef("o", "r", 7)
    issue = Issue(ref=ref, title="Caf\udce9", body="body", state="open", url="u")  # json.loads of "Caf\\udce9"
    text = task_text(issue, IssueJob(ref, tmp_path, instructions="try \ud83d only", requested_by="me"))
    assert text == "Caf\\xe9\n\nbody\n\nAdditional instructions from @me:\ntry \\ud83d only"
    assert text.encode("utf-8")
