"""What a run copies into a sandbox started from the repository's files image (no Docker here)."""

from __future__ import annotations

from pathlib import Path

from agent.files_image import MIN_FILES, FilesImage


def image(known: dict[str, str] | None, tmp_path: Path) -> FilesImage:
    return FilesImage(tag="moe-agent-files:0123456789abcdef", root=tmp_path, cache_dir=tmp_path, known=known)


def test_changes_are_what_differs_by_mode_or_blob(tmp_path: Path) -> None:
    cached = image({"a.py": "100644 aaa", "b.py": "100644 bbb", "gone.py": "100644 ggg", "run.sh": "100644 rrr"},
                   tmp_path)
    now = {"a.py": "100644 aaa", "b.py": "100644 b2", "new.py": "100644 nnn", "run.sh": "100755 rrr"}
    copy, delete = cached.changes(now)
    assert sorted(copy) == ["b.py", "new.py", "run.sh"] and delete == ["gone.py"]


def test_no_image_means_copy_everything(tmp_path: Path) -> None:
    fresh = image(None, tmp_path)
    assert not fresh.usable
    assert fresh.changes({"a": "100644 x", "b": "100644 y"}) == (["a", "b"], [])


def test_stale_when_over_a_quarter_changed(tmp_path: Path) -> None:
    cached = image({}, tmp_path)
    assert not cached.stale(["x"] * 200, [], 400)  # small repositories: up to 200 changes are fine
    assert not cached.stale(["x"] * 2000, ["y"] * 500, 10_000)
    assert cached.stale(["x"] * 2000, ["y"] * 501, 10_000)


def test_only_large_trees_are_kept(tmp_path: Path) -> None:
    fresh = image(None, tmp_path)
    assert not fresh.worth_keeping(MIN_FILES - 1) and fresh.worth_keeping(MIN_FILES)
