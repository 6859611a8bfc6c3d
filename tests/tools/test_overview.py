"""The task prompt's repository overview (tools/overview.py): every file when it fits, directories
collapsed level by level when not, names by the tools' one rule, nothing when nothing can be listed."""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.host_sandbox import HostSandbox
from tools.base import ToolContext
from tools.overview import overview, prompt_section, repository_files


def test_a_small_repository_is_listed_whole() -> None:
    assert overview(["calc.py", "test_calc.py"]) == "calc.py\ntest_calc.py"


def test_directories_collapse_level_by_level_until_the_listing_fits() -> None:
    paths = [f"pkg/sub/deep/m{i:03}.py" for i in range(200)] + ["pkg/sub/x.py", "pkg/y.py", "setup.py"]
    text = overview(paths, max_chars=200)
    assert text.splitlines() == ["pkg/sub/deep/ (200 files)", "pkg/sub/x.py", "pkg/y.py", "setup.py"]
    assert overview(paths, max_chars=40).splitlines() == ["pkg/sub/ (201 files)", "pkg/y.py", "setup.py"]
    assert overview(paths, max_chars=30).splitlines() == ["pkg/ (202 files)", "setup.py"]
    assert all(len(overview(paths, n)) <= n for n in (30, 40, 200, 2_000))


def test_a_top_level_too_wide_for_the_budget_is_cut_with_a_count() -> None:
    paths = [f"file_{i:04}.txt" for i in range(1_000)]
    text = overview(paths, max_chars=300)
    assert len(text) <= 300 and text.startswith("file_0000.txt\n")
    shown = text.splitlines()
    assert shown[-1] == f"... and {1_000 - (len(shown) - 1)} more entries"


def test_names_follow_the_one_name_rule() -> None:
    assert overview(["caf\udce9.py", "new\nline.txt"]) == "caf\\xe9.py\nnew\\x0aline.txt"
    assert overview(["d\udcff/a.py", "d\udcff/b.py"], max_chars=16) == "d\\xff/ (2 files)"


def test_the_prompt_section_lists_git_files_and_leaves_ignored_ones_out(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    (repo / "src").mkdir(parents=True)
    (repo / "src" / "calc.py").write_text("x = 1\n")
    (repo / ".gitignore").write_text("build/\n")
    (repo / "build").mkdir()
    (repo / "build" / "out.o").write_text("")
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    (repo / "notes.txt").write_text("untracked, not ignored\n")
    ctx = ToolContext(sandbox=HostSandbox(repo))
    assert repository_files(ctx) == ([".gitignore", "notes.txt", "src/calc.py"], False)
    assert prompt_section(ctx) == "Files in the repository (3):\n.gitignore\nnotes.txt\nsrc/calc.py\n\n"


def test_no_listing_leaves_no_section(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    assert prompt_section(ToolContext(sandbox=HostSandbox(empty))) == ""


def test_a_huge_tree_is_read_only_up_to_the_cap(tmp_path: Path, monkeypatch) -> None:
    import tools.overview
    repo = tmp_path / "repo"
    repo.mkdir()
    for i in range(50):
        (repo / f"f{i:02}.txt").write_text("")
    subprocess.run(["git", "init", "-q", str(repo)], check=True)  # git lists by name: the cut is predictable
    monkeypatch.setattr(tools.overview, "MAX_LISTING_BYTES", 80)  # 10 names of 8 bytes (7 + NUL)
    ctx = ToolContext(sandbox=HostSandbox(repo))
    paths, cut = repository_files(ctx)
    assert cut and paths == [f"f{i:02}.txt" for i in range(10)]
    assert prompt_section(ctx).startswith("Files in the repository (more than 10; only those are shown):\nf00.txt\n")


class _CountedPaths(list[str]):
    """The paths, counting how many of them the overview reads."""

    reads = 0

    def __getitem__(self, index):  # type: ignore[override]
        self.reads += 1
        return super().__getitem__(index)

    def __iter__(self):  # type: ignore[override]
        for index in range(len(self)):
            yield self[index]


def test_a_large_tree_is_summarised_without_reading_every_path_for_each_depth() -> None:
    paths = _CountedPaths(sorted([*(f"src/pkg{d:02}/mod{m:02}/f{f:03}.py" for d in range(20) for m in range(10)
                                    for f in range(100)), "setup.py"]))
    text = overview(paths)
    assert text.splitlines() == ["setup.py", *(f"src/pkg{d:02}/ (1000 files)" for d in range(20))]
    assert 0 < paths.reads < len(paths)  # before: every one of the 20,001 paths read once per depth tried
