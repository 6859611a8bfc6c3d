"""Partial mirrors: missing blobs named before a build, supplied by their git id, seen through an overlay."""

from __future__ import annotations

import pickle
import subprocess
import sys
import uuid
import zlib
from pathlib import Path
from typing import Any

import pytest

from agent.cli import main
from agent.errors import EnvironmentProblem
from evals.blobs import BlobStore, MirrorOverlay, git_blob_id, missing_blobs
from evals.images import ImageBuilder, ImageSource
from evals.repos import RepoSource
from evals.sample_tasks import make_sample_project, sample_image_builder
from tests.evals.test_images import made_tags  # noqa: F401 (a fixture: the images a test builds, removed after)
from tests.evals.test_repos import git

OLD_TABLE = b"1962 1 1  0.0326338\n" * 40
NEW_TABLE = OLD_TABLE + b"2023 2 14 -0.0117\n"


def drop_blobs(git_dir: Path, *blobs: str) -> None:
    """Make `git_dir` partial, as a `--filter=blob:limit` clone is: the same objects but `blobs`."""
    listed = git(git_dir, "rev-list", "--objects", "--all")
    keep = "".join(line.split()[0] + "\n" for line in listed.splitlines() if line.split()[0] not in blobs)
    old_packs = list((git_dir / "objects" / "pack").glob("pack-*"))
    subprocess.run(["git", f"--git-dir={git_dir}", "pack-objects", "--quiet", str(git_dir / "objects/pack/pack")],
                   input=keep, text=True, check=True, capture_output=True)
    for path in old_packs:
        path.unlink()
    for loose in (git_dir / "objects").glob("[0-9a-f][0-9a-f]/*"):
        loose.unlink()


@pytest.fixture
def partial(tmp_path: Path) -> tuple[Path, list[str]]:
    """A bare mirror of two commits whose data table (both revisions) is missing; returns it and the commits."""
    work = tmp_path / "work"
    work.mkdir()
    git(work, "init", "--quiet", "--initial-branch=main")
    (work / "data").mkdir()
    (work / "data" / "table.dat").write_bytes(OLD_TABLE)
    (work / "setup.py").write_text("x = 1\n")
    git(work, "add", "-A")
    git(work, "commit", "--quiet", "-m", "one")
    first = git(work, "rev-parse", "HEAD")
    (work / "data" / "table.dat").write_bytes(NEW_TABLE)
    git(work, "commit", "--quiet", "-am", "two")
    git(work, "tag", "v1")
    second = git(work, "rev-parse", "HEAD")
    mirror = tmp_path / "mirrors" / "acme__tool.git"
    subprocess.run(["git", "clone", "--quiet", "--mirror", str(work), str(mirror)], check=True)
    drop_blobs(mirror, git_blob_id(OLD_TABLE), git_blob_id(NEW_TABLE))
    return mirror, [first, second]


def test_blob_ids_are_git_hash_object(tmp_path: Path) -> None:
    (tmp_path / "f").write_bytes(NEW_TABLE)
    expected = subprocess.run(["git", "hash-object", str(tmp_path / "f")], capture_output=True, text=True).stdout
    assert git_blob_id(NEW_TABLE) == expected.strip()


def test_missing_blobs_are_named_by_path_id_and_commit(partial: tuple[Path, list[str]]) -> None:
    mirror, (first, second) = partial
    old, new = git_blob_id(OLD_TABLE), git_blob_id(NEW_TABLE)
    found = {blob.blob: blob for blob in missing_blobs(mirror, second)}
    assert set(found) == {old, new}  # the fetch reads the whole history, so the older revision counts too
    assert found[new].path == "data/table.dat" and found[new].commit == second
    assert found[old].path == "data/table.dat"  # not in the tip's tree: found in the history
    assert str(found[new]) == f"data/table.dat (blob {new}, needed at {second[:12]})"
    assert [blob.blob for blob in missing_blobs(mirror, first)] == [old]


def test_a_file_is_taken_only_for_its_own_blob_id(partial: tuple[Path, list[str]], tmp_path: Path) -> None:
    mirror, (_, second) = partial
    supplied = tmp_path / "supplied"
    (supplied / "a" / "data").mkdir(parents=True)
    (supplied / "table.dat").write_bytes(NEW_TABLE.replace(b"0.0117", b"0.0118"))  # same name, other bytes
    (supplied / "a" / "data" / "table.dat").write_bytes(NEW_TABLE)
    store = BlobStore([supplied], root=tmp_path / "store")
    new, old = git_blob_id(NEW_TABLE), git_blob_id(OLD_TABLE)
    assert store.supply([new, old]) == [new]
    assert store.has(new) and not store.has(old)
    stored = zlib.decompress((store.objects / new[:2] / new[2:]).read_bytes())
    assert stored == b"blob %d\0" % len(NEW_TABLE) + NEW_TABLE
    assert [blob.blob for blob in missing_blobs(mirror, second, [store.objects])] == [old]
    assert len(list(store.objects.rglob("*"))) == 2  # one folder, one object: the decoy was not stored
    copy = pickle.loads(pickle.dumps(store))  # as Ray ships an image builder's settings to a node
    assert (copy.sources, copy.root) == (store.sources, store.root) and copy.has(new)


def test_overlay_makes_the_mirror_complete_without_writing_it(partial: tuple[Path, list[str]],
                                                              tmp_path: Path) -> None:
    mirror, (_, second) = partial
    before = sorted(p.relative_to(mirror) for p in mirror.rglob("*"))
    supplied = tmp_path / "supplied"
    supplied.mkdir()
    (supplied / "old").write_bytes(OLD_TABLE)
    (supplied / "new").write_bytes(NEW_TABLE)
    store = BlobStore([supplied], root=tmp_path / "store")
    store.supply([git_blob_id(OLD_TABLE), git_blob_id(NEW_TABLE)])
    # On the host the alternates name host paths; in a build container, the mount points.
    with MirrorOverlay(mirror, store, alternates=[str(mirror / "objects"), str(store.objects)]) as overlay:
        assert overlay.path is not None
        clone = tmp_path / "clone"
        clone.mkdir()
        git(clone, "init", "--quiet")
        git(clone, "fetch", "--quiet", "--no-tags", str(overlay.path), second, "+refs/tags/v1:refs/tags/v1")
        git(clone, "checkout", "--quiet", "-B", "main", second)
        assert (clone / "data" / "table.dat").read_bytes() == NEW_TABLE
        assert git(clone, "cat-file", "-p", f"{second}~1:data/table.dat").encode() == OLD_TABLE.rstrip(b"\n")
        assert git(clone, "tag") == "v1"
        volumes = overlay.volumes("/mirror")
        assert volumes[str(overlay.path)] == {"bind": "/mirror", "mode": "ro"}
        assert all(spec["mode"] == "ro" for spec in volumes.values())
    assert not overlay.path.exists()
    assert sorted(p.relative_to(mirror) for p in mirror.rglob("*")) == before


def test_a_partial_mirror_stops_the_build_with_one_line(partial: tuple[Path, list[str]], tmp_path: Path) -> None:
    mirror, (_, second) = partial
    builder = ImageBuilder(None, RepoSource(str(mirror.parent)), source=ImageSource.BUILD)
    with pytest.raises(EnvironmentProblem) as stopped:
        builder._complete_history("acme/tool", mirror, second)
    message = str(stopped.value)
    assert "\n" not in message
    assert f"data/table.dat (blob {git_blob_id(NEW_TABLE)}, needed at {second[:12]})" in message
    assert "is partial" in message and "--blobs" in message
    wrong = tmp_path / "wrong"
    wrong.write_bytes(b"not the table\n")
    builder.blobs = BlobStore([wrong], root=tmp_path / "store")
    with pytest.raises(EnvironmentProblem, match="none of the --blobs files has its git blob id"):
        builder._complete_history("acme/tool", mirror, second)


def test_blobs_flag_must_name_files_that_exist(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    project = make_sample_project(tmp_path / "sample", bugs=1)
    monkeypatch.setenv("COLUMNS", "200")
    monkeypatch.setattr(sys, "argv", ["agent", "eval", "images", "--dataset", str(project.dataset),
                                      "--blobs", str(tmp_path / "nowhere")])
    with pytest.raises(SystemExit) as exited:
        main()
    assert exited.value.code == 2
    assert f"--blobs {tmp_path / 'nowhere'}: no such file or folder" in capsys.readouterr().err.replace("\n", "")


@pytest.mark.docker
def test_images_build_from_a_partial_mirror_with_supplied_blobs(docker_client: Any, tmp_path: Path,
                                                                made_tags: list[str]) -> None:
    project = make_sample_project(tmp_path / "sample", bugs=1, salt=uuid.uuid4().hex)
    instance = project.instance("1")
    mirror = next(project.mirrors.iterdir())
    ignore = git(mirror, f"--git-dir={mirror}", "show", f"{instance.base_commit}:.gitignore").encode() + b"\n"
    drop_blobs(mirror, git_blob_id(ignore))

    said: list[str] = []
    bare = sample_image_builder(docker_client, project, echo=said.append)
    with pytest.raises(EnvironmentProblem, match=r"lacks \.gitignore \(blob "):
        bare.ensure(instance)
    assert said == []  # stopped before any container, and said nothing about building

    supplied = tmp_path / "supplied"
    supplied.mkdir()
    (supplied / "gitignore").write_bytes(ignore)
    builder = sample_image_builder(docker_client, project, blobs=BlobStore([supplied], root=tmp_path / "store"))
    image = builder.ensure(instance)
    made_tags += [layer.tag for layer in image.layers[1:]]
    assert [layer.action for layer in image.layers] == ["reused", "built", "built"]
    out = docker_client.containers.run(image.tag, ["bash", "-c", "cat .gitignore; git rev-parse HEAD; git fsck --full "
                                                   "--no-dangling 2>&1 && echo fsck-clean; find /mirror* -mindepth 1 | wc -l"],
                                       network_mode="none", remove=True).decode()
    assert out.startswith(ignore.decode())
    assert instance.base_commit in out and "fsck-clean" in out
    assert out.split()[-1] == "0"  # the build's mounts left nothing in the image (empty mount points at most)
