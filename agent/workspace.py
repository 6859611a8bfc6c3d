"""The user's repository, seen from the agent: a private snapshot in, a branch or patch out.

The user's working tree, index, stash and current branch are never touched while the agent
works, and nothing the run writes into the user's `.git` outlives it except the branch it
delivers. The snapshot costs about as much as `git status`, whatever the size of the history:

- A copy of the user's index, in a temporary folder, takes the working tree with `git add -A`
  (uncommitted changes to tracked files, untracked files git does not ignore). A submodule
  stays the gitlink it is; its checked-out files are copied for the model to read, never
  committed or patched as files. The index's stat data spares rehashing unchanged files.
- New objects (changed and untracked files, trees, the snapshot commit) go to a temporary
  object directory (`GIT_OBJECT_DIRECTORY`) that borrows the user's objects as an alternate,
  the way git quarantines a push.
- The sandbox gets the working-tree files and a small `.git` (that index, those new objects,
  HEAD at the snapshot commit) as one tar stream, never a copy on the host's disk. Its
  repository borrows the user's object directories, mounted read-only: the whole history
  is there for `git log` and `git blame`, and none of it is copied.
- The sandbox's git behaves as the user's: their settings that change what `git add` stores
  or `git diff` prints (core.fileMode, core.autocrlf, core.eol..., the object format) and
  their ignore rules outside the tree (`info/exclude`, `core.excludesFile`) go with it. The
  shipped index is whole (never split) and hides nothing (no skip-worktree or
  assume-unchanged bits on files that are in the working tree).

Results go back through plumbing: a temporary index, `commit-tree` and `update-ref`, so
nothing is checked out. Host-side git runs as plain subprocesses.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import posixpath
import re
import shutil
import stat
import subprocess
import tarfile
import tempfile
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agent.errors import UsageError
from agent.redaction import MIN_SECRET_CHARS, held_secrets, reveals_secret

IDENTITY = ["-c", "user.name=moe-agent", "-c", "user.email=agent@moe-agent.invalid", "-c", "commit.gpgsign=false"]
# The snapshot's index keeps the user's stat data (device, inode, ctime differ in the sandbox):
# comparing only mtime and size keeps `git status` there from rehashing every file.
SANDBOX_CORE = {"filemode": "true", "bare": "false", "logallrefupdates": "true", "checkstat": "minimal",
                "trustctime": "false", "untrackedcache": "false"}
# The user's settings that change what `git add` stores or `git diff` prints: the sandbox's git
# must use them, or a patch gains mode changes or CRLF rewrites the agent never made. Not carried:
# those describing the host's file system (ignoreCase, precomposeUnicode, symlinks), and
# safecrlf, which stores nothing differently but can make the sandbox's `git add` refuse.
USER_CORE = ("filemode", "autocrlf", "eol", "quotepath")
# Keeps git from writing a split index or asking a file-system monitor while it takes the snapshot.
SNAPSHOT_CONFIG = ["-c", "core.splitIndex=false", "-c", "core.fsmonitor=false", "-c", "core.untrackedCache=false"]
# Every host git call: English messages (matched below, as GitPython does), never a prompt, and in a
# partial clone never a fetch of a missing object from the promisor remote (git 2.44+): the
# snapshot needs only what the working tree and the index hold.
QUIET_GIT = {"LANGUAGE": "C", "LC_ALL": "C", "GIT_TERMINAL_PROMPT": "0", "GIT_NO_LAZY_FETCH": "1"}
ARCHIVE_CHUNK = 256 * 1024  # bytes handed to the sandbox per write
READ_WHOLE = 1 << 20  # files up to this size are read before their tar header is written


class GitFailed(UsageError):
    """A git command failed; the message is git's own complaint (`complaint`), `stderr` all it said."""

    def __init__(self, message: str, stderr: str = "") -> None:
        super().__init__(message)
        self.stderr = stderr


def _subcommand(args: tuple[str, ...]) -> str:
    """The git subcommand in ARGS, past global options (`-c KEY=VALUE`, `-C DIR`, `--no-pager`...)."""
    rest = list(args)
    while rest and rest[0].startswith("-"):
        rest = rest[2:] if rest[0] in ("-c", "-C") else rest[1:]
    return rest[0] if rest else "git"


def _run(cwd: Path, args: tuple[str, ...], env: Mapping[str, str] | None, input: bytes | None,
         binary: bool) -> Any:
    """Run `git ARGS` in CWD, in the C locale (git's messages are matched in English, as
    GitPython does); its exit status and stderr become `GitFailed`. A subprocess, not
    GitPython: its import and its `git version` probe cost more than the snapshot's git."""
    done = subprocess.run(["git", *args], cwd=cwd, env={**os.environ, **QUIET_GIT, **(env or {})},
                          input=input, stdin=subprocess.DEVNULL if input is None else None, capture_output=True)
    if done.returncode != 0:
        err = done.stderr.decode("utf-8", "replace")
        raise GitFailed(f"git {_subcommand(args)} failed: {complaint(err) or f'exit {done.returncode}'}", err)
    return done.stdout if binary else done.stdout.decode("utf-8", "surrogateescape")


def complaint(stderr: str) -> str:
    """The line of git's STDERR that says what went wrong: its last `fatal:`/`error:` line, prefix
    dropped, else its last line ("" when it said nothing).

    Advice follows the complaint: a held ref lock ends in "remove the file manually to
    continue.", and only the `fatal:` line names the lock file.
    """
    lines = [line.strip() for line in stderr.strip().splitlines() if line.strip()]
    for line in reversed(lines):
        for prefix in ("fatal: ", "error: "):
            if line.startswith(prefix):
                return line.removeprefix(prefix)
    return lines[-1] if lines else ""


def git(repo: Path, *args: str, env: Mapping[str, str] | None = None, input: bytes | None = None) -> str:
    """`git -C repo ARGS`: its output, or `GitFailed`."""
    return _run(repo, args, env, input, binary=False)


@dataclass(frozen=True)
class UserRepo:
    """The user's repository: where it is, what HEAD is, and where git keeps its data."""

    root: Path
    head: str
    branch: str | None  # None when HEAD is detached
    objects: Path  # the object directory (`GIT_OBJECT_DIRECTORY` respected)
    index: Path  # this working tree's index (a linked worktree has its own)
    common_dir: Path  # refs, `shallow`, shared by linked worktrees

    @classmethod
    def find(cls, path: Path) -> UserRepo:
        """The repository containing `path`; `UsageError` when there is none or it has no commit."""
        if not path.exists():
            raise UsageError(f"{path}: no such directory")
        try:
            found = git(path, "rev-parse", "--show-toplevel", "--git-common-dir", "--git-path", "objects",
                        "--git-path", "index").splitlines()
            root = Path(found[0])
        except (GitFailed, IndexError):
            raise UsageError(f"{path} is not inside a git repository (run 'git init' first, or pass -C PATH)") from None
        try:
            head = git(root, "rev-parse", "--verify", "HEAD").strip()
        except GitFailed:
            raise UsageError(f"{root} has no commits yet: commit something first") from None
        common, objects, index = ((path / p).resolve() for p in found[1:4])
        try:
            branch: str | None = git(root, "symbolic-ref", "--quiet", "--short", "HEAD").strip()
        except GitFailed:
            branch = None
        return cls(root=root, head=head, branch=branch, objects=objects, index=index, common_dir=common)

    def git(self, *args: str, env: Mapping[str, str] | None = None, input: bytes | None = None,
            binary: bool = False) -> Any:
        """`git ARGS` in the repository: str (or bytes) output, or `GitFailed`."""
        return _run(self.root, args, env, input, binary)

    def status_fingerprint(self) -> str:
        """What must be identical before and after a run: status, HEAD, index tree, stash."""
        return "\n".join([
            self.git("status", "--porcelain=v2", "--branch", "--untracked-files=all"),
            self.git("rev-parse", "HEAD"),
            self.git("write-tree"),
            self.git("stash", "list"),
        ])

    def shared_objects(self) -> list[Path]:
        """The object directory and those it borrows from (its alternates, followed)."""
        found: list[Path] = []
        pending = [self.objects]
        while pending:
            directory = pending.pop(0)
            if directory in found or not directory.is_dir():
                continue
            found.append(directory)
            pending.extend((directory / line).resolve() for line in _alternates(directory))
        return found


def _alternates(directory: Path) -> list[str]:
    """The entries of DIRECTORY/info/alternates as written (absolute or relative to DIRECTORY)."""
    listing = directory / "info" / "alternates"
    if not listing.is_file():
        return []
    return [line.strip() for line in listing.read_text(errors="replace").splitlines()
            if line.strip() and not line.startswith("#")]


def sandbox_object_paths(shared: list[Path]) -> dict[Path, str]:
    """Where the sandbox mounts the user's object directories (read-only), as git there expects.

    The repository's own goes under /run/moe-git; one it borrows through an absolute alternate at
    that path, through a relative one (`../../../repo/.git/objects`) where the relative path
    leads from its borrower's mount point, so that git in the sandbox, which reads the mounted
    `info/alternates` too, finds every one of them. The fixed mount is nested deep enough that
    no relative path climbs out of /run/moe-git.
    """
    climbs = sum(line.split("/").count("..") for directory in shared for line in _alternates(directory)
                 if not line.startswith("/"))
    mounts: dict[Path, str] = {}
    for n, directory in enumerate(shared):
        if n == 0:
            mounts[directory] = "/run/moe-git/" + "up/" * climbs + "objects"
        mounts.setdefault(directory, str(directory))
        for line in _alternates(directory):
            target = (directory / line).resolve()
            if target in mounts or target not in shared:
                continue
            where = posixpath.normpath(line if line.startswith("/") else posixpath.join(mounts[directory], line))
            mounts[target] = where if where not in mounts.values() else str(target)
    return {path: mounts[path] for path in shared}


@dataclass(frozen=True)
class Snapshot:
    """The user's current state as a commit, and what the sandbox needs to hold it.

    `files` maps paths relative to `root` (read from the user's working tree when the
    archive is streamed) to their index entry, "MODE SHA"; `scratch` holds the snapshot's index and new objects and is the
    caller's to remove. The sandbox mounts `shared` (the user's object directories)
    read-only at `mount_points` (container paths, same order).
    """

    root: Path
    base_commit: str
    dirty: bool  # the user had uncommitted or untracked changes
    files: dict[str, str]
    scratch: Path
    shared: tuple[Path, ...]
    shallow: bytes | None = None
    settings: tuple[tuple[str, str], ...] = ()  # ("core.autocrlf", "true"), ...: the sandbox's .git/config
    exclude: bytes = b""  # the user's info/exclude and core.excludesFile, for the sandbox's info/exclude
    attributes: bytes = b""  # the user's info/attributes, for the sandbox's
    git_dir: Path | None = None  # a commit's snapshot: the user's git dir, its files checked out into root on demand
    submodules: tuple[str, ...] = ()  # paths of the submodules, gitlinks in the snapshot
    submodule_files: dict[str, str] = field(default_factory=dict)  # their checked-out files, as `files`
    # The symlinks of the snapshot's tree, {path: blob id}, skip-worktree ones too (sparse checkout
    # leaves them out of `files`), read from the same index listing; None: unknown, read the tree.
    link_blobs: dict[str, str] | None = None

    @property
    def objects(self) -> Path:
        return self.scratch / "objects"

    @property
    def index(self) -> Path:
        return self.scratch / "index"

    @property
    def mount_points(self) -> tuple[str, ...]:
        return tuple(sandbox_object_paths(list(self.shared)).values())

    def _check_out(self, paths: tuple[str, ...]) -> None:
        """Write `paths` from the snapshot's index into `root`, their stat data into the index (`commit_snapshot`)."""
        env = {"GIT_DIR": str(self.git_dir), "GIT_WORK_TREE": str(self.root), "GIT_INDEX_FILE": str(self.index),
               "GIT_OBJECT_DIRECTORY": str(self.objects),  # an inlined submodule's blobs are there
               "GIT_ALTERNATE_OBJECT_DIRECTORIES": os.pathsep.join(map(str, self.shared))}
        _run(self.root, (*SNAPSHOT_CONFIG, "checkout-index", "-u", "-f", "-z", "--stdin"), env,
             b"\0".join(map(os.fsencode, paths)) + b"\0", binary=True)

    def archive(self, object_paths: tuple[str, ...] | None = None,
                files: list[str] | None = None, prefix: str = "",
                owner: tuple[int, int] | None = None) -> Iterator[bytes]:
        """The snapshot as a tar stream to unpack at the sandbox's workdir: files, then `.git`.

        With `prefix` (e.g. `testbed`) every entry is named under it, so the stream can be
        unpacked at `/`: Docker refuses a symlink that leaves the directory it unpacks into,
        and a repository's relative link to a sibling (`conf.py -> ../shared/conf.py`) must
        arrive as the link it is. Link targets are never rewritten.

        `object_paths` are where the sandbox's repository finds the user's objects (default:
        `mount_points`). Files are stored with the user's owner, mode and mtime, so that the
        shipped index finds them unchanged. A file that vanished since the snapshot is left out.
        `owner` (uid, gid) replaces the owner of every entry: the sandbox's user, who could not
        write files it does not own (the sandbox's git ignores owners: `core.checkStat`).
        `files` narrows the working-tree files sent (default: all). GNU tar reads the files
        when there is one (in C, in its own process: about 5x less CPU than Python's tarfile
        here); the `.git` entries are ours.
        """
        writer = _TarWriter(prefix, owner)
        chosen = tuple(self.files) if files is None else tuple(files)
        if self.git_dir is not None and chosen:
            self._check_out(chosen)
        if chosen and _gnu_tar() is not None:
            yield from _gnu_tar_stream(self.root, _with_parents(chosen), prefix, owner)
        else:
            for rel in chosen:
                yield from writer.path(self.root, rel)
        yield from writer.metadata(self, object_paths or self.mount_points)
        yield writer.close()


def _with_parents(files: tuple[str, ...]) -> list[str]:
    """The files with each parent directory listed once, before what it holds."""
    listed, seen = [], set()
    for rel in files:
        parts = rel.split("/")[:-1]
        for n in range(1, len(parts) + 1):
            parent = "/".join(parts[:n])
            if parent not in seen:
                seen.add(parent)
                listed.append(parent)
        listed.append(rel)
    return listed


def _gnu_tar() -> str | None:
    found = shutil.which("tar")
    if found is None:
        return None
    if found not in _GNU_TAR:
        probe = subprocess.run([found, "--version"], capture_output=True, text=True)
        _GNU_TAR[found] = probe.returncode == 0 and "GNU tar" in probe.stdout
    return found if _GNU_TAR[found] else None


_GNU_TAR: dict[str, bool] = {}


def _gnu_tar_stream(root: Path, paths: list[str], prefix: str = "",
                    owner: tuple[int, int] | None = None) -> Iterator[bytes]:
    """GNU tar's archive of `paths` (under `root`, not recursing), without its end-of-archive blocks.

    With one 512-byte block per record (`-b 1`) the archive ends in exactly two zero blocks,
    held back here so that more entries can follow.
    """
    listing = tempfile.TemporaryFile()
    listing.write(b"\0".join(map(os.fsencode, paths)) + b"\0")
    listing.seek(0)
    # Names (and hard-link targets) under `prefix`; symlink targets as they are (flag S).
    transform = ["--transform", f"flags=rSh;s,^,{prefix}/,"] if prefix else []
    if owner is not None:
        transform += [f"--owner=sandbox:{owner[0]}", f"--group=sandbox:{owner[1]}"]  # NAME:ID, never looked up
    proc = subprocess.Popen([_gnu_tar() or "tar", "-c", "-f", "-", "-b", "1", "--format=gnu", "--numeric-owner",
                             "--ignore-failed-read", *transform, "-C", str(root), "--no-recursion", "--null",
                             "-T", "-"],
                            stdin=listing, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    listing.close()
    assert proc.stdout is not None and proc.stderr is not None
    tail = b""
    try:
        while chunk := proc.stdout.read(ARCHIVE_CHUNK):
            data = tail + chunk
            tail = data[-2 * tarfile.BLOCKSIZE:]
            if len(data) > len(tail):
                yield data[:-2 * tarfile.BLOCKSIZE]
        errors = proc.stderr.read().decode(errors="replace").strip()
    finally:
        proc.stdout.close()
        proc.stderr.close()
        code = proc.wait()
    if code not in (0, 1) or tail != b"\0" * (2 * tarfile.BLOCKSIZE):  # 1: a file changed while read
        raise GitFailed(f"could not read the working tree: {errors.splitlines()[-1] if errors else f'tar exit {code}'}")


class _TarWriter:
    """Builds a tar stream entry by entry, in chunks of about `ARCHIVE_CHUNK` bytes."""

    def __init__(self, prefix: str = "", owner: tuple[int, int] | None = None) -> None:
        self.owner = owner or (os.getuid(), os.getgid())  # of the entries we make; read files keep theirs unless given
        self.keep_owner = owner is None
        self.buffer: list[bytes] = []
        self.size = 0
        self.dirs: set[str] = set()
        self.prefix = f"{prefix}/" if prefix else ""  # before every entry's name, never a link's target

    def _add(self, data: bytes) -> Iterator[bytes]:
        self.buffer.append(data)
        self.size += len(data)
        if self.size >= ARCHIVE_CHUNK:
            yield self._flush()

    def _flush(self) -> bytes:
        out = b"".join(self.buffer)
        self.buffer, self.size = [], 0
        return out

    def _header(self, info: tarfile.TarInfo) -> bytes:
        info.name = self.prefix + info.name
        return info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")

    def _info(self, name: str, st: os.stat_result, kind: bytes, size: int = 0) -> tarfile.TarInfo:
        info = tarfile.TarInfo(name)
        info.type, info.size, info.mode = kind, size, stat.S_IMODE(st.st_mode)
        info.mtime, info.uid, info.gid = int(st.st_mtime), st.st_uid, st.st_gid
        if not self.keep_owner:
            info.uid, info.gid = self.owner
        return info

    def _parents(self, root: Path, rel: str) -> Iterator[bytes]:
        parent = os.path.dirname(rel)
        if not parent or parent in self.dirs:
            return
        yield from self._parents(root, parent)
        self.dirs.add(parent)
        try:
            st = os.lstat(root / parent)
        except OSError:
            return
        yield from self._add(self._header(self._info(parent, st, tarfile.DIRTYPE)))

    def path(self, root: Path, rel: str) -> Iterator[bytes]:
        full = root / rel
        try:
            st = os.lstat(full)
            if stat.S_ISLNK(st.st_mode):
                info = self._info(rel, st, tarfile.SYMTYPE)
                info.linkname = os.readlink(full)
                yield from self._parents(root, rel)
                yield from self._add(self._header(info))
                return
            if not stat.S_ISREG(st.st_mode):
                return
            with open(full, "rb") as handle:
                if st.st_size <= READ_WHOLE:
                    data = handle.read()
                    yield from self._parents(root, rel)
                    yield from self._add(self._header(self._info(rel, st, tarfile.REGTYPE, len(data))) + data
                                         + _padding(len(data)))
                    return
                yield from self._parents(root, rel)
                yield from self._add(self._header(self._info(rel, st, tarfile.REGTYPE, st.st_size)))
                left = st.st_size
                while left > 0:  # a file growing meanwhile is cut at its size when listed; shrinking, padded
                    chunk = handle.read(min(left, ARCHIVE_CHUNK)) or b"\0" * min(left, ARCHIVE_CHUNK)
                    left -= len(chunk)
                    yield from self._add(chunk)
                yield from self._add(_padding(st.st_size))
        except (FileNotFoundError, NotADirectoryError):
            return

    def metadata(self, snapshot: Snapshot, object_paths: tuple[str, ...]) -> Iterator[bytes]:
        """The sandbox's `.git`: HEAD at the snapshot commit, its index and new objects, alternates."""
        now = time.time()
        dirs = [".git", ".git/info", ".git/objects", ".git/objects/info", ".git/refs", ".git/refs/heads",
                ".git/refs/tags"]
        for name in dirs:
            yield from self._add(self._entry(name, b"", now, directory=True))
        files = {
            ".git/HEAD": f"{snapshot.base_commit}\n".encode(),
            ".git/config": sandbox_git_config(snapshot.settings).encode(),
            ".git/info/exclude": snapshot.exclude,
            ".git/info/attributes": snapshot.attributes,
            ".git/objects/info/alternates": "".join(f"{p}\n" for p in object_paths).encode(),
            ".git/index": snapshot.index.read_bytes(),
        }
        if snapshot.shallow is not None:
            files[".git/shallow"] = snapshot.shallow
        for name, data in files.items():
            yield from self._add(self._entry(name, data, now))
        for folder in sorted(snapshot.objects.iterdir()):
            if len(folder.name) != 2 or not folder.is_dir():
                continue
            yield from self._add(self._entry(f".git/objects/{folder.name}", b"", now, directory=True))
            for obj in sorted(folder.iterdir()):
                yield from self._add(self._entry(f".git/objects/{folder.name}/{obj.name}", obj.read_bytes(), now,
                                                 mode=0o444))

    def _entry(self, name: str, data: bytes, mtime: float, *, directory: bool = False, mode: int = 0o644) -> bytes:
        info = tarfile.TarInfo(name)
        info.mtime, (info.uid, info.gid) = int(mtime), self.owner
        if directory:
            info.type, info.mode = tarfile.DIRTYPE, 0o755
            return self._header(info)
        info.size, info.mode = len(data), mode
        return self._header(info) + data + _padding(len(data))

    def close(self) -> bytes:
        return self._flush() + b"\0" * (2 * tarfile.BLOCKSIZE)


def _padding(size: int) -> bytes:
    return b"\0" * (-size % tarfile.BLOCKSIZE)


def sandbox_git_config(settings: tuple[tuple[str, str], ...]) -> str:
    """The sandbox's `.git/config`: ours (`SANDBOX_CORE`), then the user's SETTINGS ("section.key", value)."""
    sections: dict[str, dict[str, str]] = {"core": {"repositoryformatversion": "0", **SANDBOX_CORE}}
    for name, value in settings:
        section, _, key = name.partition(".")
        sections.setdefault(section, {})[key] = value
    if "objectformat" in sections.get("extensions", {}):
        sections["core"]["repositoryformatversion"] = "1"
    return "".join(f"[{section}]\n" + "".join(f"\t{key} = {value}\n" for key, value in keys.items())
                   for section, keys in sections.items())


def _user_settings(repo: UserRepo) -> tuple[tuple[str, str], ...]:
    """The user's `USER_CORE` settings (any scope) and a non-default object format, for the sandbox."""
    pattern = r"^core\.(" + "|".join(USER_CORE) + r")$"
    try:
        listed = repo.git("config", "--null", "--get-regexp", pattern)
    except GitFailed:  # none set
        listed = ""
    found: dict[str, str] = {}
    for record in listed.split("\0"):
        name, newline, value = record.partition("\n")
        value = value if newline else "true"  # a key without `= value` is a true boolean
        if name and re.fullmatch(r"[A-Za-z0-9_.-]+", value):  # a value that needs quoting is not one git takes here
            found[name.lower()] = value
    object_format = repo.git("rev-parse", "--show-object-format").strip()
    if object_format != "sha1":
        found["extensions.objectformat"] = object_format
    return tuple(found.items())


def _user_excludes(repo: UserRepo) -> bytes:
    """The user's ignore rules outside the tree: `info/exclude`, then `core.excludesFile` (default
    `$XDG_CONFIG_HOME/git/ignore`), which the sandbox's git would not otherwise see."""
    try:
        configured = repo.git("config", "--path", "--get", "core.excludesFile").strip()
    except GitFailed:
        configured = ""
    config_home = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    sources = [repo.common_dir / "info" / "exclude", Path(configured or os.path.join(config_home, "git", "ignore"))]
    return b"".join(_read(source) for source in sources)


def _read(path: Path) -> bytes:
    """The rules file at PATH ending in a newline, or nothing when it cannot be read."""
    try:
        data = path.read_bytes()
    except OSError:
        return b""
    return data.rstrip(b"\n") + b"\n" if data.strip() else b""


# `ls-files -z -v` records (after a NUL: the listing gets one in front) with a skip-worktree (S, s) or
# assume-unchanged (lower case) tag: (tag, path).
_HIDDEN_ENTRY = re.compile(rb"\0([Sa-z]) ([^\0]*)")


def _unhide_entries(repo: UserRepo, env: Mapping[str, str], every: bool = False) -> None:
    """Clear the skip-worktree and assume-unchanged bits in the snapshot's index (never the user's).

    A file with either bit is what the user has in the working tree, not what the index says:
    `git add` would skip it and git in the sandbox would never see the agent's edit to it. An
    entry skipped because sparse checkout left it out of the working tree keeps its bit, unless
    `every` (a commit's snapshot, which has every file).
    """
    listing = repo.git(*SNAPSHOT_CONFIG, "ls-files", "-z", "-v", env=env, binary=True)
    skipped, assumed = [], []
    for tag, path in _HIDDEN_ENTRY.findall(b"\0" + listing):  # the common `H` entries are skipped in C
        if tag in (b"S", b"s") and (every or os.path.lexists(repo.root / os.fsdecode(path))):
            skipped.append(path)
        if tag.islower():
            assumed.append(path)
    for flag, paths in (("--no-skip-worktree", skipped), ("--no-assume-unchanged", assumed)):
        if paths:
            repo.git(*SNAPSHOT_CONFIG, "update-index", flag, "-z", "--stdin", env=env, input=b"\0".join(paths) + b"\0")


def _add_all(repo: UserRepo, env: Mapping[str, str]) -> None:
    """`git add -A` into the snapshot's index, leaving out what `git status` leaves out: an
    untracked nested repository without a commit (git add refuses it, naming one at a time)."""
    left_out: list[str] = []
    while True:
        try:
            repo.git(*SNAPSHOT_CONFIG, "add", "-A", "--ignore-errors", "--", ".",
                     *(f":(exclude,literal){path}" for path in left_out), env=env)
            return
        except GitFailed as exc:
            found = [path.rstrip("/") for path in re.findall(r"^error: '(.+)' does not have a commit checked out$",
                                                             exc.stderr, re.MULTILINE)]
            fresh = [path for path in found if path not in left_out]
            if not fresh:
                raise
            left_out.extend(fresh)


def _copy_index(repo: UserRepo, env: Mapping[str, str]) -> bool:
    """The user's index copied to env's `GIT_INDEX_FILE`, made whole; False when the user has none.

    A split index's shared part stays in the user's .git, so the sandbox must get one whole
    index; that rewrite (a git process and 2 MB written for 20,000 files) runs only when a
    `sharedindex.*` file exists, without which no index is split.
    """
    if not repo.index.is_file():
        return False
    shutil.copyfile(repo.index, env["GIT_INDEX_FILE"])
    if any(repo.index.parent.glob("sharedindex.*")) or any(repo.common_dir.glob("sharedindex.*")):
        repo.git(*SNAPSHOT_CONFIG, "update-index", "--no-split-index", env=env)
    return True


def take_snapshot(repo: UserRepo, scratch: Path) -> Snapshot:
    """Commit the user's current state without touching their index or working tree.

    `scratch` (created, must be new or empty) receives the snapshot's index and its new
    objects; nothing is copied from the working tree until `Snapshot.archive` streams it.
    Raises `GitFailed` when git cannot read the working tree.
    """
    objects = scratch / "objects"
    objects.mkdir(parents=True, exist_ok=True)
    index = scratch / "index"
    env = {"GIT_INDEX_FILE": str(index), "GIT_OBJECT_DIRECTORY": str(objects),
           "GIT_ALTERNATE_OBJECT_DIRECTORIES": str(repo.objects), "GIT_OPTIONAL_LOCKS": "0"}
    if _copy_index(repo, env):
        _unhide_entries(repo, env)
    _add_all(repo, env)
    return _snapshot_of_index(repo, scratch, env, repo.root, repo.head)


def commit_snapshot(repo: UserRepo, commit: str, scratch: Path) -> Snapshot:
    """A snapshot of `commit` (a branch a run delivered), never of the user's working tree.

    Costs about what `take_snapshot` does, whatever the size of the tree: its index is a copy
    of the user's with `commit`'s tree read over it (`read-tree -m` keeps the stat data of
    entries whose contents are the same, so the sandbox's git need not rehash them), and a
    file is checked out of git into `scratch/tree` only when the archive sends it (with a
    files image, only those that differ from it). Nothing is written to the user's
    repository. Raises `GitFailed` when `commit` is not there.
    """
    commit = repo.git("rev-parse", "--verify", f"{commit}^{{commit}}").strip()
    tree = scratch / "tree"
    tree.mkdir(parents=True, exist_ok=True)
    (scratch / "objects").mkdir(exist_ok=True)
    index = scratch / "index"
    env = {"GIT_INDEX_FILE": str(index), "GIT_OBJECT_DIRECTORY": str(scratch / "objects"),
           "GIT_ALTERNATE_OBJECT_DIRECTORIES": str(repo.objects), "GIT_OPTIONAL_LOCKS": "0"}
    _copy_index(repo, env)
    repo.git(*SNAPSHOT_CONFIG, "read-tree", "-i", "-m", commit, env=env)  # -i: the working tree is not looked at
    _unhide_entries(repo, env, every=True)  # every file of the commit is in the sandbox
    snapshot = _snapshot_of_index(repo, scratch, env, tree, commit)
    # A submodule's files come from the user's working tree, which this snapshot never reads: its gitlink stays.
    files = {path: entry for path, entry in snapshot.files.items() if path not in snapshot.submodule_files}
    return dataclasses.replace(snapshot, git_dir=repo.common_dir, files=files, submodule_files={})


# `ls-files -z -t --stage` records, "TAG MODE SHA STAGE\tPATH": (tag, "MODE SHA", path).
_STAGED_ENTRY = re.compile(r"(?:^|(?<=\0))([^\0]) ([0-7]{6} [0-9a-f]+) [0-3]\t([^\0]*)\0")


def _snapshot_of_index(repo: UserRepo, scratch: Path, env: Mapping[str, str], root: Path, parent: str) -> Snapshot:
    """The snapshot of env's index, whose files are in `root`: a commit on `parent` when the trees differ.

    Checked-out submodules stay gitlinks; their files (from the user's working tree) are listed too.
    """
    listing = os.fsdecode(repo.git(*SNAPSHOT_CONFIG, "ls-files", "-z", "-t", "--stage", env=env, binary=True))
    entries = _STAGED_ENTRY.findall(listing)  # one decode and one scan in C: 20,000 entries cost no Python loop
    submodules = [name for _, entry, name in entries if entry.startswith("160000 ")]
    link_blobs = {name: entry[7:] for _, entry, name in entries if entry.startswith("120000 ")}
    # skip-worktree entries (S) are not in the working tree
    files = {name: entry for tag, entry, name in entries if tag != "S" and not entry.startswith("160000 ")}
    inside_submodules: dict[str, str] = {}
    for sub in submodules:
        inside_submodules.update(_submodule_files(repo, sub))
    files.update(inside_submodules)
    tree = repo.git(*SNAPSHOT_CONFIG, "write-tree", env=env).strip()
    dirty = tree != repo.git("rev-parse", f"{parent}^{{tree}}").strip()
    base = parent
    if dirty:
        base = repo.git(*IDENTITY, "commit-tree", tree, "-p", parent, "-m", "moe-agent: snapshot of the working tree",
                        env=env).strip()
    shallow = repo.common_dir / "shallow"
    return Snapshot(root=root, base_commit=base, dirty=dirty, files=dict(sorted(files.items())), scratch=scratch,
                    shared=tuple(repo.shared_objects()), shallow=shallow.read_bytes() if shallow.is_file() else None,
                    settings=_user_settings(repo), exclude=_user_excludes(repo),
                    attributes=_read(repo.common_dir / "info" / "attributes"),
                    submodules=tuple(submodules), submodule_files=dict(sorted(inside_submodules.items())),
                    link_blobs=link_blobs)


def _submodule_files(repo: UserRepo, sub: str) -> dict[str, str]:
    """A checked-out submodule's files ("MODE SHA" by path, hashed as the superproject's git
    would, nothing written), copied into the sandbox for the model to read. The snapshot keeps
    the submodule as the gitlink it is: its files are in no index or tree of ours, so the patch
    never turns it into files (`submodule_edits` reports what the agent changed there)."""
    folder = repo.root / sub
    if not (folder / ".git").exists():
        return {}  # not checked out: nothing to show
    listed = git(folder, "ls-files", "-z", "--cached", "--others", "--exclude-standard")
    paths = [f"{sub}/{p}" for p in dict.fromkeys(listed.split("\0")) if p and "\n" not in p]
    return _hashed(repo, [p for p in paths if os.path.lexists(repo.root / p)])


def _hashed(repo: UserRepo, paths: list[str]) -> dict[str, str]:
    """"MODE SHA" of each file or symlink at PATHS (relative to the root), as `git add` would store it."""
    regular = [p for p in paths if (repo.root / p).is_file() and not (repo.root / p).is_symlink()]
    links = [p for p in paths if (repo.root / p).is_symlink()]
    found: dict[str, str] = {}
    if regular:
        hashes = repo.git("hash-object", "--stdin-paths", input="\n".join(regular).encode()).split()
        for path, sha in zip(regular, hashes):
            found[path] = f"{'100755' if os.access(repo.root / path, os.X_OK) else '100644'} {sha}"
    for path in links:
        sha = repo.git("hash-object", "--stdin", input=os.fsencode(os.readlink(repo.root / path))).strip()
        found[path] = f"120000 {sha}"
    return found


SUBMODULE_SECTIONS = "__moe_submodule_hashes__"


def submodule_state_command(snapshot: Snapshot) -> str | None:
    """A shell command, run at the sandbox's workdir, listing the files inside the snapshot's
    submodules for `submodule_edits`: "f PERMS PATH" and "l PATH" lines, then, after
    `SUBMODULE_SECTIONS`, the regular files' blob ids from one `git hash-object`, then the
    links' targets. None when there are no submodules."""
    if not snapshot.submodules:
        return None
    import shlex

    find = "find " + " ".join(shlex.quote(sub) for sub in snapshot.submodules) + " -not -path '*/.git/*'"
    return (f"{find} \\( -type f -printf 'f %m %p\\n' -o -type l -printf 'l %p\\n' \\) 2>/dev/null; "
            f"echo {SUBMODULE_SECTIONS}; {find} -type f 2>/dev/null | git hash-object --stdin-paths; "
            f"echo {SUBMODULE_SECTIONS}; {find} -type l -printf '%l\\n' 2>/dev/null")


def submodule_edits(snapshot: Snapshot, listing: str) -> list[str]:
    """The files inside submodules the agent changed, added or deleted, from LISTING (what
    `submodule_state_command` printed). Sorted; empty when none."""
    entries, _, rest = listing.partition(SUBMODULE_SECTIONS + "\n")
    hashes, _, targets = rest.partition(SUBMODULE_SECTIONS + "\n")
    shas, links = iter(hashes.split()), iter(targets.splitlines())
    now: dict[str, str] = {}
    for line in entries.splitlines():
        kind, _, rest = line.partition(" ")
        if kind == "f":
            perms, _, path = rest.partition(" ")
            now[path] = f"{'100755' if int(perms, 8) & 0o100 else '100644'} {next(shas, '')}"
        elif kind == "l":
            target = next(links, "").encode()
            digest = hashlib.sha256 if len(snapshot.base_commit) == 64 else hashlib.sha1
            now[rest] = f"120000 {digest(b'blob %d' % len(target) + bytes(1) + target).hexdigest()}"
    return sorted(path for path in {*snapshot.submodule_files, *now} if snapshot.submodule_files.get(path) != now.get(path))


def materialize(snapshot: Snapshot, dest: Path) -> Path:
    """Unpack the snapshot into a host directory (for setup commands, tests): a working repository.

    Its `.git` borrows the user's objects at their host paths.
    """
    dest.mkdir(parents=True, exist_ok=True)
    stream = _ChunkReader(snapshot.archive(tuple(map(str, snapshot.shared))))
    with tarfile.open(fileobj=stream, mode="r|") as tar:
        tar.extractall(dest, filter="tar")
    return dest


class _ChunkReader:
    """A file-like `read()` over an iterator of byte chunks."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self.chunks, self.pending = chunks, b""

    def read(self, size: int = -1) -> bytes:
        while size < 0 or len(self.pending) < size:
            chunk = next(self.chunks, None)
            if chunk is None:
                break
            self.pending += chunk
        if size < 0:
            out, self.pending = self.pending, b""
        else:
            out, self.pending = self.pending[:size], self.pending[size:]
        return out


def slugify(text: str, limit: int = 40) -> str:
    """`text` as a branch name's last part: lower case, runs of anything but a-z and 0-9 made one `-`, at most
    `limit` characters; `fix` when nothing is left. Says nothing about secrets: `task_branch` does."""
    words = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
    return (words[:limit].rstrip("-") or "fix")


def task_branch(title: str, run_id: str, limit: int = 40) -> str:
    """The branch `agent fix` makes for a task titled `title` (untrusted: the user's task, an issue's title):
    `agent/<slug>`, checked against every secret this process holds after the slug is made, since slugging can
    spell one out (`OPENAI_API_KEY=lm-studio`, task `Support LM Studio` -> `support-lm-studio`). A held secret
    is compared in the slug's own form too (`slugify`'s lower case and `-`); the words spelling one are dropped
    before the name is cut to `limit` characters, and a name that still reveals one (or has no word left)
    becomes `agent/fix-<last 6 characters of run_id>`. The created and the reported branch are this string."""
    words = slugify(title, limit=len(title))
    forms = {slugify(secret, limit=len(secret)) for secret in held_secrets()}
    forms = sorted((form for form in forms if len(form) >= MIN_SECRET_CHARS), key=len, reverse=True)
    for form in forms:
        words = _without_words(words, form)
    slug = words[:limit].rstrip("-")
    name = f"agent/{slug}"
    if not slug or reveals_secret(name) or any(form in slug for form in forms):
        return f"agent/fix-{slugify(run_id)[-6:]}"
    return name


def _without_words(slug: str, form: str) -> str:
    """`slug` (words joined by `-`) without every word that any occurrence of `form` overlaps."""
    while (start := slug.find(form)) >= 0:
        first = slug.rfind("-", 0, start) + 1
        last = slug.find("-", start + len(form))
        slug = (slug[:first] + (slug[last + 1:] if last >= 0 else "")).strip("-")
    return slug


def unique_branch(repo: UserRepo, name: str) -> str:
    """The first of `name`, `name-2`, `name-3`... that no branch has yet (a hint: `claim_branch` decides)."""
    taken = set(repo.git("for-each-ref", "--format=%(refname)", "refs/heads/").splitlines())
    candidate, n = name, 2
    while f"refs/heads/{candidate}" in taken:
        candidate, n = f"{name}-{n}", n + 1
    return candidate


def unblocked_name(repo: UserRepo, name: str) -> str:
    """`name`, or `name` with its slashes made dashes when a branch named like one of its folders exists.

    git keeps `refs/heads/agent` as a file, so while a branch `agent` exists no `agent/...`
    can be made, whatever its suffix (a directory/file ref conflict): `agent/fix-add` becomes
    `agent-fix-add`, which has no folder to be blocked by.
    """
    parts = name.split("/")
    folders = {f"refs/heads/{'/'.join(parts[:i])}" for i in range(1, len(parts))}
    # a pattern also matches the refs under it: only a ref that IS a folder blocks
    if folders and folders & set(repo.git("for-each-ref", "--format=%(refname)", *sorted(folders)).splitlines()):
        return name.replace("/", "-")
    return name


# update-ref refusing a name another writer holds: "reference already exists", or "cannot lock
# ref ...: Unable to create '.../<ref>.lock': File exists" while another git process writes it.
_BUSY_REF = re.compile(r"exists|cannot lock ref")


def claim_branch(repo: UserRepo, name: str, commit: str, attempts: int = 100) -> str:
    """Create the first free branch of `name`, `name-2`, ... at `commit`; return its name.

    Each try is one `update-ref` that only creates (expected old value: none), so two runs
    in one repository can never take the same name: the loser moves on to the next one. A
    name whose ref is locked (`<ref>.lock` exists: another git process is writing it, or
    died while it did) is busy the same way. A branch named like a folder of `name` moves it
    out of that folder (`unblocked_name`). Raises `GitFailed` for any other refusal, or after
    `attempts` names were all taken or locked, naming the ref or lock file git last complained of.
    """
    name = unblocked_name(repo, name)
    candidate = unique_branch(repo, name)
    n = int(candidate.rsplit("-", 1)[1]) if candidate != name else 1
    last = ""
    for _ in range(attempts):
        try:
            repo.git("update-ref", f"refs/heads/{candidate}", commit, "")
            return candidate
        except GitFailed as exc:
            if not _BUSY_REF.search(str(exc)):
                raise
            last = str(exc)
        if (moved := unblocked_name(repo, name)) != name:  # a branch named like a folder of it came meanwhile
            name, n, candidate = moved, 1, moved
            continue
        n += 1
        candidate = f"{name}-{n}"
    raise GitFailed(f"no free branch name after {attempts} tries from {name} (last: {last})")


def commit_to_branch(
    repo: UserRepo, snapshot: Snapshot, patch: str, branch: str, message: str
) -> tuple[str, str, bool]:
    """Commit `patch` on a new branch from HEAD without checking anything out.

    `branch` is the wanted name; the first free one of `branch`, `branch-2`... is taken
    (`claim_branch`). Returns (branch, commit, included_local_changes). When the patch needs
    the user's uncommitted changes to apply, they go in a first commit of their own, so the
    branch says so; only then do the snapshot's objects move into the user's repository.
    """
    with tempfile.TemporaryDirectory(prefix="moe-index-") as tmp:
        env = {"GIT_INDEX_FILE": str(Path(tmp) / "index")}
        repo.git(*SNAPSHOT_CONFIG, "read-tree", repo.head, env=env)
        parent, included = repo.head, False
        try:
            repo.git(*SNAPSHOT_CONFIG, "apply", "--cached", "--whitespace=nowarn", "-", env=env, input=patch.encode())
        except GitFailed:
            if not snapshot.dirty:
                raise
            tree = repo.git("rev-parse", f"{snapshot.base_commit}^{{tree}}", env=_borrowing(snapshot, repo)).strip()
            _migrate_objects(snapshot.objects, repo.objects, _reachable(repo, snapshot, tree))
            parent = _commit(repo, env, tree, repo.head, "moe-agent: your uncommitted changes, which the fix builds on")
            repo.git(*SNAPSHOT_CONFIG, "read-tree", parent, env=env)
            repo.git(*SNAPSHOT_CONFIG, "apply", "--cached", "--whitespace=nowarn", "-", env=env, input=patch.encode())
            included = True
        tree = repo.git(*SNAPSHOT_CONFIG, "write-tree", env=env).strip()
        commit = _commit(repo, env, tree, parent, message)
    return claim_branch(repo, branch, commit), commit, included


class BranchMoved(UsageError):
    """The branch is no longer where the run expected it: someone else moved or deleted it."""


def extend_branch(repo: UserRepo, branch: str, tip: str, patch: str, message: str) -> str:
    """Commit `patch` on top of `branch` at `tip`, nothing checked out; return the new commit.

    The branch moves only if it still points at `tip` (one `update-ref` with the old value),
    so a branch moved or deleted meanwhile is never overwritten: `BranchMoved`. A patch
    that does not apply to `tip`'s tree raises `GitFailed`.
    """
    with tempfile.TemporaryDirectory(prefix="moe-index-") as tmp:
        env = {"GIT_INDEX_FILE": str(Path(tmp) / "index")}
        repo.git(*SNAPSHOT_CONFIG, "read-tree", tip, env=env)
        repo.git(*SNAPSHOT_CONFIG, "apply", "--cached", "--whitespace=nowarn", "-", env=env, input=patch.encode())
        commit = _commit(repo, env, repo.git(*SNAPSHOT_CONFIG, "write-tree", env=env).strip(), tip, message)
    try:
        repo.git("update-ref", f"refs/heads/{branch}", commit, tip)
    except GitFailed:
        raise BranchMoved(f"{branch} moved while the follow-up ran (it was at {tip[:12]}); not overwriting it: "
                          f"the new commit is {commit[:12]}") from None
    return commit


def snapshot_links(repo: UserRepo, snapshot: Snapshot) -> dict[str, str]:
    """The symlinks of the snapshot's tree, {path: target}: what the patch policy resolves a patch's links in.

    The links' blob ids come from the snapshot (`Snapshot.link_blobs`, listed with its index: no
    walk of a 20,000-file tree after `submit`), else from its commit (`ls-tree`); their targets
    from one `cat-file --batch`, decoded as paths are (surrogateescape).
    """
    env = _borrowing(snapshot, repo) if snapshot.objects.is_dir() else None
    links = list(snapshot.link_blobs.items()) if snapshot.link_blobs is not None else _tree_links(repo, snapshot, env)
    if not links:
        return {}
    out = repo.git("cat-file", "--batch", env=env, input="".join(f"{sha}\n" for _, sha in links).encode(), binary=True)
    targets, at = {}, 0
    for path, _ in links:  # each answer: "<sha> blob <size>\n<content>\n"
        header_end = out.index(b"\n", at)
        size = int(out[at:header_end].split()[2])
        targets[path] = os.fsdecode(out[header_end + 1:header_end + 1 + size])
        at = header_end + 1 + size + 1
    return targets


def _tree_links(repo: UserRepo, snapshot: Snapshot, env: Mapping[str, str] | None) -> list[tuple[str, str]]:
    """(path, blob id) of each symlink in the snapshot commit's tree."""
    listed = repo.git("ls-tree", "-r", "-z", "--full-tree", snapshot.base_commit, env=env, binary=True)
    links: list[tuple[str, str]] = []
    for entry in listed.split(b"\0"):
        info, _, name = entry.partition(b"\t")
        fields = info.split()
        if len(fields) == 3 and fields[0] == b"120000":
            links.append((os.fsdecode(name), fields[2].decode()))
    return links


def _borrowing(snapshot: Snapshot, repo: UserRepo) -> dict[str, str]:
    """Environment for git to read the snapshot's objects (in its scratch folder) and the user's."""
    return {"GIT_OBJECT_DIRECTORY": str(snapshot.objects), "GIT_ALTERNATE_OBJECT_DIRECTORIES": str(repo.objects)}


def _reachable(repo: UserRepo, snapshot: Snapshot, tree: str) -> set[str]:
    """Ids of TREE and every tree and blob below it: what a commit of it needs. Not the snapshot
    commit itself, nor anything else the snapshot wrote, which would be left dangling."""
    listing = repo.git("ls-tree", "-r", "-t", "-z", "--full-tree", tree, env=_borrowing(snapshot, repo), binary=True)
    found = {tree}
    for record in listing.split(b"\0"):
        meta = record.partition(b"\t")[0].split()
        if len(meta) == 3 and meta[1] in (b"blob", b"tree"):
            found.add(meta[2].decode())
    return found


def _migrate_objects(source: Path, dest: Path, wanted: set[str]) -> None:
    """Move the WANTED loose objects into the user's object directory, each atomically, the way
    git ends a quarantine; the rest stays in the scratch folder and goes with it."""
    for folder in source.iterdir():
        if len(folder.name) != 2 or not folder.is_dir():
            continue
        for obj in folder.iterdir():
            if folder.name + obj.name not in wanted:
                continue
            target = dest / folder.name / obj.name
            if target.exists():
                continue
            target.parent.mkdir(exist_ok=True)
            temp = target.parent / f"tmp_obj_moe_{obj.name}"
            shutil.copyfile(obj, temp)
            os.chmod(temp, 0o444)
            os.replace(temp, target)


def _commit(repo: UserRepo, env: dict[str, str], tree: str, parent: str, message: str) -> str:
    return repo.git(*IDENTITY, "commit-tree", tree, "-p", parent, "-m", message, env=env).strip()


def apply_to_worktree(repo: UserRepo, patch: str) -> None:
    """Apply to the working tree, or refuse without changing anything."""
    try:
        repo.git("apply", "--check", "-", input=patch.encode())
    except GitFailed as exc:
        raise UsageError(f"the patch does not apply to your working tree, nothing was changed ({exc})") from None
    repo.git("apply", "-", input=patch.encode())
