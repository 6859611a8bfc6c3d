"""Blobs a partial mirror lacks: found before a build, and supplied from files the user names.

A partial clone (`git clone --filter=blob:limit=...`; the search tool's `fetch` snapshots
are such clones) lacks every blob above a size limit. Building an image from one used to
fail only when git reached such a blob, in the build container's `git fetch` of the
mirror, minutes later (`fatal: unable to read <blob id>` from `git upload-pack`). So
before a layer is built, the history it fetches is checked (`git rev-list --objects
--missing=print`: about 2 s for astropy's) and each missing blob is named by path, id and
commit in one line.

The user can then supply the bytes: `--blobs PATH` (files, or folders searched
recursively, e.g. an unpacked release sdist). A file is taken only for the blob whose git
id (`git hash-object`: SHA-1 of `blob <size>\\0<bytes>`) it has, so only exact bytes are
ever used. Taken blobs are written as loose objects into our cache
(`<cache>/blobs/objects`), never into the user's mirror; the build container sees them
through an overlay git directory whose `objects/info/alternates` names the mirror's
objects and that store (`MirrorOverlay`), so the build script and image tags are the same
as with a complete mirror.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import threading
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import git

from agent.errors import EnvironmentProblem, UsageError
from evals.repos import open_mirror
from sandbox.cache import cache_home

# Where the build container sees the overlay's two object stores (see `MirrorOverlay`).
MIRROR_OBJECTS_MOUNT = "/mirror-objects"
BLOB_STORE_MOUNT = "/mirror-blobs"
NAMED_AT_MOST = 3  # missing blobs named in the error line; the rest are counted


@dataclass(frozen=True)
class MissingBlob:
    """A blob the history of `commit` needs and the mirror lacks; `path` is where that
    commit's tree, or an older commit of its history, holds it ("" when not found)."""

    commit: str
    blob: str
    path: str

    def __str__(self) -> str:
        where = f"{self.path} " if self.path else ""
        return f"{where}(blob {self.blob}, needed at {self.commit[:12]})"


def git_blob_id(data: bytes) -> str:
    """The id `git hash-object` gives `data` (SHA-1 object format)."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def missing_blobs(git_dir: Path, commit: str, alternates: Sequence[Path] = ()) -> list[MissingBlob]:
    """The objects reachable from `commit` that neither `git_dir` nor `alternates` holds.

    That is what `git fetch` of `commit` from the mirror must read (the instance layer
    fetches the commit's whole history). Raises EnvironmentProblem when git cannot walk
    the history for another reason.
    """
    env = {"GIT_ALTERNATE_OBJECT_DIRECTORIES": os.pathsep.join(str(a) for a in alternates)} if alternates else {}
    with open_mirror(git_dir) as repo:
        status, out, err = repo.git.rev_list("--objects", "--missing=print", commit, env=env,
                                             with_extended_output=True, with_exceptions=False,
                                             kill_after_timeout=600)
        if status != 0:
            raise EnvironmentProblem(f"{git_dir}: cannot list the objects of {commit[:12]}: "
                                     f"{(err.strip().splitlines() or ['no output'])[-1]}")
        ids = [line[1:] for line in out.splitlines() if line.startswith("?")]
        if not ids:
            return []
        paths = _paths_in_tree(repo, commit, set(ids))
        for blob in [b for b in ids if b not in paths][:NAMED_AT_MOST]:
            paths[blob] = _path_in_history(repo, commit, blob)
    return [MissingBlob(commit, blob, paths.get(blob, "")) for blob in ids]


def _paths_in_tree(repo: git.Repo, commit: str, ids: set[str]) -> dict[str, str]:
    status, out, _ = repo.git.ls_tree("-r", "--full-tree", commit, with_extended_output=True, with_exceptions=False)
    found: dict[str, str] = {}
    for line in out.splitlines() if status == 0 else []:
        meta, _, path = line.partition("\t")
        blob = meta.split()[-1]
        if blob in ids:
            found.setdefault(blob, path)
    return found


def _path_in_history(repo: git.Repo, commit: str, blob: str) -> str:
    status, out, _ = repo.git.log(f"--find-object={blob}", "--format=", "--name-only", "-1", commit,
                                  with_extended_output=True, with_exceptions=False, kill_after_timeout=300)
    names = [line for line in out.splitlines() if line.strip()] if status == 0 else []
    return names[0] if names else ""


@dataclass
class BlobStore:
    """Loose git objects made from the user's files, each kept under its own blob id.

    `sources` are files or folders (searched recursively, symlinks not followed). They
    are hashed once, on first need; a file is stored only when its id is one a mirror
    lacks. Safe to use from several threads.
    """

    sources: Sequence[Path]
    root: Path = field(default_factory=lambda: cache_home() / "blobs")
    _index: dict[str, Path] | None = field(default=None, init=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    def __post_init__(self) -> None:
        for source in self.sources:
            if not source.exists():
                raise UsageError(f"--blobs {source}: no such file or folder")

    def __reduce__(self) -> tuple[type[BlobStore], tuple[Sequence[Path], Path]]:
        """Pickled as its sources and root (a Ray node makes its own; a lock does not pickle)."""
        return (BlobStore, (self.sources, self.root))

    @property
    def objects(self) -> Path:
        return self.root / "objects"

    def has(self, blob: str) -> bool:
        return (self.objects / blob[:2] / blob[2:]).is_file()

    def supply(self, blobs: Iterable[str]) -> list[str]:
        """Store every blob of `blobs` one of the user's files has; returns the ids stored."""
        wanted = [blob for blob in dict.fromkeys(blobs) if not self.has(blob)]
        if not wanted:
            return []
        with self._lock:
            index = self._index if self._index is not None else self._hash_sources()
            self._index = index
        stored = []
        for blob in wanted:
            if blob in index:
                self._write(blob, index[blob].read_bytes())
                stored.append(blob)
        return stored

    def _hash_sources(self) -> dict[str, Path]:
        index: dict[str, Path] = {}
        for source in self.sources:
            files = [source] if source.is_file() else sorted(p for p in source.rglob("*") if p.is_file()
                                                             and not p.is_symlink())
            for path in files:
                index.setdefault(git_blob_id(path.read_bytes()), path)
        return index

    def _write(self, blob: str, data: bytes) -> None:
        if git_blob_id(data) != blob:  # the file changed since it was hashed: take nothing
            raise UsageError(f"--blobs: a file that had blob id {blob} changed while in use")
        target = self.objects / blob[:2] / blob[2:]
        target.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=target.parent, delete=False) as scratch:
            scratch.write(zlib.compress(b"blob %d\0" % len(data) + data))
        os.chmod(scratch.name, 0o444)
        os.replace(scratch.name, target)


class MirrorOverlay:
    """A git directory that reads as the mirror plus the blob store, for a build container.

    It holds the mirror's HEAD and refs (as packed-refs) and an `objects/info/alternates`
    naming the mirror's objects and the store at the paths they are mounted on in the
    container (`alternates`: host paths work as well, for git on the host); the mirror
    itself is never written. A context manager: the directory is removed on exit.
    """

    def __init__(self, mirror: Path, store: BlobStore,
                 alternates: Sequence[str] = (MIRROR_OBJECTS_MOUNT, BLOB_STORE_MOUNT)) -> None:
        self.mirror, self.store, self.alternates = mirror, store, alternates
        self.path: Path | None = None

    def __enter__(self) -> MirrorOverlay:
        self.store.root.mkdir(parents=True, exist_ok=True)
        self.path = Path(tempfile.mkdtemp(dir=self.store.root, prefix="overlay-"))
        with open_mirror(self.mirror) as repo:
            refs = repo.git.for_each_ref("--format=%(objectname) %(refname)", kill_after_timeout=120)
            status, head, _ = repo.git.symbolic_ref("HEAD", with_extended_output=True, with_exceptions=False)
        for sub in ("objects/info", "objects/pack", "refs/heads", "refs/tags"):
            (self.path / sub).mkdir(parents=True, exist_ok=True)
        # A detached or dangling HEAD is written as it is: nothing here fetches HEAD.
        (self.path / "HEAD").write_text(f"ref: {head}\n" if status == 0 else (self.mirror / "HEAD").read_text())
        (self.path / "packed-refs").write_text(refs + "\n" if refs else "")
        (self.path / "objects/info/alternates").write_text("".join(f"{a}\n" for a in self.alternates))
        return self

    def __exit__(self, *exc: object) -> None:
        if self.path is not None:
            shutil.rmtree(self.path, ignore_errors=True)

    def volumes(self, mount: str) -> dict[str, dict[str, str]]:
        """Read-only mounts that show the overlay at `mount`, with the two object stores it names."""
        assert self.path is not None, "volumes() is for inside the with block"
        return {str(self.path): {"bind": mount, "mode": "ro"},
                str(self.mirror / "objects"): {"bind": MIRROR_OBJECTS_MOUNT, "mode": "ro"},
                str(self.store.objects): {"bind": BLOB_STORE_MOUNT, "mode": "ro"}}
