"""Repository sources: mirror layouts, URL templates cloned into the cache, reading files."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from agent.errors import EnvironmentProblem, UsageError
from evals.repos import DEFAULT_SOURCE, SOURCE_ENV, RepoSource, has_commit, show_file


def git(cwd: Path, *args: str) -> str:
    env = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t",
           "PATH": "/usr/bin:/bin:/usr/local/bin", "HOME": str(cwd)}
    return subprocess.run(["git", *args], cwd=cwd, env=env, capture_output=True, text=True, check=True).stdout.strip()


def make_repo(path: Path, files: dict[str, str]) -> str:
    """A working repository at `path` with one commit holding `files`; returns the commit."""
    path.mkdir(parents=True)
    git(path, "init", "--quiet", "--initial-branch=main")
    for name, text in files.items():
        (path / name).parent.mkdir(parents=True, exist_ok=True)
        (path / name).write_text(text)
    git(path, "add", "-A")
    git(path, "commit", "--quiet", "-m", "one")
    return git(path, "rev-parse", "HEAD")


def bare_copy(source: Path, target: Path) -> Path:
    target.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(["git", "clone", "--quiet", "--mirror", str(source), str(target)], check=True)
    return target


@pytest.mark.parametrize("layout", ["acme__tool.git", "acme__tool", "acme/tool.git", "acme+tool/repo"])
def test_bare_mirror_layouts_are_found(tmp_path: Path, layout: str) -> None:
    commit = make_repo(tmp_path / "work", {"README": "hello\n"})
    mirror = bare_copy(tmp_path / "work", tmp_path / "mirrors" / layout)
    found = RepoSource(str(tmp_path / "mirrors")).mirror("acme/tool")
    assert found == mirror.resolve()
    assert has_commit(found, commit)


def test_working_copy_resolves_to_its_git_dir(tmp_path: Path) -> None:
    commit = make_repo(tmp_path / "mirrors" / "acme" / "tool", {"README": "hello\n"})
    found = RepoSource(str(tmp_path / "mirrors")).mirror("acme/tool")
    assert found == (tmp_path / "mirrors" / "acme" / "tool" / ".git").resolve()
    assert show_file(found, commit, "README") == "hello\n"


def test_search_tool_snapshot_without_config_is_usable(tmp_path: Path) -> None:
    """`fetch` snapshots are bare directories with HEAD, objects and refs but no config file."""
    commit = make_repo(tmp_path / "work", {"a/b.txt": "deep\n"})
    mirror = bare_copy(tmp_path / "work", tmp_path / "mirrors" / "acme+tool" / "repo")
    (mirror / "config").unlink()
    found = RepoSource(str(tmp_path / "mirrors")).mirror("acme/tool")
    assert show_file(found, commit, "a/b.txt") == "deep\n"
    assert show_file(found, commit, "missing.txt") is None
    assert not has_commit(found, "0" * 40)


def test_missing_mirror_names_the_layouts_tried(tmp_path: Path) -> None:
    (tmp_path / "mirrors" / "acme__other.git").mkdir(parents=True)  # not a git directory: ignored
    with pytest.raises(UsageError, match=r"no mirror of acme/other in .*acme__other\.git.*acme\+other/repo"):
        RepoSource(str(tmp_path / "mirrors")).mirror("acme/other")


def test_source_must_be_a_folder_or_a_template(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="not a folder of mirrors, nor a URL template"):
        RepoSource(str(tmp_path / "nowhere"))
    with pytest.raises(UsageError, match="owner/name"):
        RepoSource(str(tmp_path)).mirror("no-slash")


def test_flag_beats_environment_beats_default(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(SOURCE_ENV, raising=False)
    assert RepoSource.configured().spec == DEFAULT_SOURCE
    monkeypatch.setenv(SOURCE_ENV, "https://mirror.example/{repo}.git")
    assert RepoSource.configured().spec == "https://mirror.example/{repo}.git"
    assert RepoSource.configured(str(tmp_path)).folder == tmp_path


def test_template_is_cloned_once_then_refreshed_for_a_missing_commit(tmp_path: Path) -> None:
    work = tmp_path / "work"
    first = make_repo(work, {"README": "v1\n"})
    bare_copy(work, tmp_path / "upstream" / "acme" / "tool.git")
    source = RepoSource(f"file://{tmp_path}/upstream/{{repo}}.git", cache_dir=tmp_path / "cache")

    mirror = source.mirror_with("acme/tool", first)
    assert mirror == tmp_path / "cache" / "acme__tool.git"
    assert source.mirror("acme/tool") == mirror  # reused, not cloned again

    (work / "README").write_text("v2\n")
    git(work, "commit", "--quiet", "-am", "two")
    second = git(work, "rev-parse", "HEAD")
    git(work, "push", "--quiet", str(tmp_path / "upstream" / "acme" / "tool.git"), "main")
    assert not has_commit(mirror, second)
    assert source.mirror_with("acme/tool", second) == mirror
    assert show_file(mirror, second, "README") == "v2\n"


def test_unknown_commit_and_failed_clone_are_one_line_errors(tmp_path: Path) -> None:
    make_repo(tmp_path / "work", {"README": "x\n"})
    bare_copy(tmp_path / "work", tmp_path / "mirrors" / "acme__tool.git")
    with pytest.raises(UsageError, match="commit 000000000000 of acme/tool is not in the mirror"):
        RepoSource(str(tmp_path / "mirrors")).mirror_with("acme/tool", "0" * 40)

    source = RepoSource(f"file://{tmp_path}/nowhere/{{repo}}.git", cache_dir=tmp_path / "cache")
    with pytest.raises(EnvironmentProblem, match="cannot clone acme/tool"):
        source.mirror("acme/tool")
    assert not (tmp_path / "cache" / "acme__tool.git").exists()  # no half clone left behind
