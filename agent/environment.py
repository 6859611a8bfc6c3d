"""Which image a repository's sandbox starts from, with its setup commands cached.

Order: `[sandbox] image` from config, else a Dockerfile the user names, else the default
sandbox image. Setup commands (`pip install -e .[test]`, `npm ci`) run once; their result
is committed as an image keyed by the base image, the commands and the content they can
read (every file of the snapshot, and its commit), so the next run on the same files starts
in seconds and any change (a lock file, a build hook, a clone of another repository at the
same path) runs them again.
"""

from __future__ import annotations

import hashlib
import os
import stat
from collections.abc import Callable
from pathlib import Path, PurePosixPath
from typing import IO, Any

from agent.config import SandboxSettings
from agent.errors import EnvironmentProblem
from agent.repo_files import ListingFailed, in_git, refusal, snapshot_listing
from sandbox.base import ImageMissing, SandboxError
from sandbox.certs import CONTAINER_BUNDLE, ca_environment, combined_bundle
from sandbox.images import BuildLog, ImageRecipe, build_image, image_exists, run_and_commit

Echo = Callable[[str], None]
# Part of the setup image's cache key: images set up before the setup container was confined are not reused.
SETUP_CONFINEMENT = "confined-v2-root"
# Part of a Dockerfile image's tag: what `build_context` leaves out (images built before it are not reused).
CONTEXT_RULE = b"context-v3-snapshot-files"


def base_image(settings: SandboxSettings, client: Any, echo: Echo) -> str:
    if settings.image:
        if not image_exists(client, settings.image):
            raise ImageMissing(f"image {settings.image} (from [sandbox] image) is not present: pull or build it first")
        return settings.image
    if settings.dockerfile:
        return _build_dockerfile(settings.dockerfile, client, echo, settings.memory)
    recipe = ImageRecipe(ca_bundle=settings.ca_bundle)
    if image_exists(client, recipe.tag):  # the usual case: one lookup, not build_image's two more
        return recipe.tag
    echo(f"building the default sandbox image {recipe.tag} (once)")
    return build_image(recipe, client, echo=echo)


def prepare_image(settings: SandboxSettings, content: Callable[[], str], client: Any, echo: Echo,
                  checkout: Callable[[], Path], history: list[Path] | None = None) -> tuple[str, bool]:
    """The image to start from, and whether a cached setup image was reused.

    `content()`: the digest of the snapshot the setup commands would see (`setup_tag`), asked for
    only when there are setup commands. They run, when they must, in `checkout()`: a copy of the
    snapshot made only then (never the user's work tree: its git-ignored files stay out). `history`:
    the object directories the copy's `.git` borrows, mounted read-only at their own paths,
    so that git there sees the whole history (`git describe` for setuptools-scm, `git log`).
    """
    base = base_image(settings, client, echo)
    if not settings.setup:
        return base, False
    tag = setup_tag(settings, content(), client.images.get(base).id)
    if image_exists(client, tag):
        return tag, True
    echo(f"running {len(settings.setup)} setup command(s), cached as {tag}")
    source = checkout()
    if os.getuid():
        _open_to_all(source)  # the confined root has no CAP_DAC_OVERRIDE to write into our files
    env, volumes = {}, {str(source): {"bind": "/testbed", "mode": "rw"}}
    for directory in history or []:
        volumes.setdefault(str(directory), {"bind": str(directory), "mode": "ro"})
    bundle = combined_bundle(settings.ca_bundle)
    if bundle is not None:
        volumes[str(bundle)] = {"bind": CONTAINER_BUNDLE, "mode": "ro"}
        env.update(ca_environment(CONTAINER_BUNDLE))
    # Files the setup creates in the copy are opened to us, so that it can be removed (chmod of
    # one's own files needs no capability; chown to our uid would need CAP_CHOWN).
    owner = "trap 'chmod -R a+rwX /testbed 2>/dev/null' EXIT\n" if os.getuid() else ""
    script = f"set -e\n{owner}cd /testbed\n" + "\n".join(settings.setup) + "\n"
    try:
        # The commands come from the repository: confined like the model's sandbox (no capabilities
        # but the user's, no-new-privileges, the user's limits); the network stays on for installs.
        # They run as root, to install system-wide as a Dockerfile's RUN would; the image keeps
        # its own user, so the model's commands do not.
        run_and_commit(client, base, script, tag, log=BuildLog(tag), step="setup", network=True,
                       environment=env, volumes=volumes, timeout=3600, cpus=settings.cpus, memory=settings.memory,
                       pids_limit=settings.pids_limit, capabilities=list(settings.capabilities), user="root")
    except SandboxError as exc:
        raise EnvironmentProblem(f"setup commands failed: {exc}") from None
    return tag, False


def setup_tag(settings: SandboxSettings, content: str, base_id: str) -> str:
    """The setup image's tag: the base image, the commands, the confinement and `content`, the digest of
    everything the commands can read (`Snapshot.content_digest`: every file and its mode, and the commit
    whose history they see). Setup commands run as root and may leave anything outside /testbed (`pip
    install .` copies the project, an `npm ci` postinstall script may plant a file): reused only for the
    same bytes, a repository never starts from an image another one's files made, whatever the paths (a
    different clone at the same path, a fork pull request in CI's same checkout folder, a look-alike)."""
    parts = [base_id, *settings.setup, content, SETUP_CONFINEMENT, *sorted(settings.capabilities)]
    return f"moe-agent-setup:{hashlib.sha256(chr(0).join(parts).encode()).hexdigest()[:16]}"


def dockerfile_tag(dockerfile: Path, files: list[str]) -> str:
    """A repository Dockerfile's image tag: the digest of what its build reads, the Dockerfile's bytes and
    name and every file of its context (`context_files`: names, kinds, executable bits, link targets and
    bytes), with `CONTEXT_RULE`. Keyed by content, not place: another repository at the same path with the
    same Dockerfile never reuses an image holding this one's `COPY`-ed files, and no image built from a
    context that still held `.git` or git-ignored files is reused."""
    directory = dockerfile.parent
    digest = hashlib.sha256(CONTEXT_RULE + b"\0" + os.fsencode(dockerfile.name) + b"\0" + dockerfile.read_bytes())
    for name in sorted(files):
        path = directory / name
        mode = path.lstat().st_mode
        if stat.S_ISLNK(mode):
            entry = b"l" + os.fsencode(os.readlink(path))
        elif stat.S_ISREG(mode):
            entry = (b"x" if mode & 0o111 else b"f") + hashlib.sha256(path.read_bytes()).digest()
        else:  # a folder; a FIFO or device outside a git work tree goes in as its kind, never read
            entry = b"t%o" % stat.S_IFMT(mode)
        digest.update(b"\0" + os.fsencode(name) + b"\0" + entry)
    return f"moe-agent-user:{digest.hexdigest()[:16]}"


def _open_to_all(tree: Path) -> None:
    """Make a throwaway copy readable and writable by every user (never followed symlinks)."""
    for directory, dirs, files in os.walk(tree):
        for name in [*dirs, *files]:
            path = Path(directory, name)
            if not path.is_symlink():
                mode = path.stat().st_mode
                path.chmod(mode | 0o666 | (0o111 if path.is_dir() or mode & 0o100 else 0))
    tree.chmod(tree.stat().st_mode | 0o777)


def _build_dockerfile(dockerfile: Path, client: Any, echo: Echo, memory: str) -> str:
    """Build a repository's Dockerfile. Its RUN steps are held to the user's memory limit, but
    Docker's build API cannot drop their capabilities: they get Docker's default set, with
    the network on (see 'Security model' in the README), so its context holds only what the
    repository's snapshot would (`context_files`)."""
    from docker.utils import parse_bytes
    from docker.utils.build import create_archive

    try:
        files = context_files(dockerfile.parent, dockerfile.name)
    except ListingFailed as exc:
        raise EnvironmentProblem(str(exc)) from None
    tag = dockerfile_tag(dockerfile, files)
    if image_exists(client, tag):
        return tag
    echo(f"building {dockerfile} as {tag}")
    log = BuildLog(tag)
    try:
        limits = {"memory": parse_bytes(memory), "memswap": -1}
        with create_archive(str(dockerfile.parent), files=files) as context:
            for chunk in client.api.build(fileobj=context, custom_context=True, dockerfile=dockerfile.name, tag=tag,
                                          rm=True, decode=True, container_limits=limits, forcerm=True):
                log.write(chunk.get("stream", ""))
                if "error" in chunk:
                    raise log.fail("docker build", _explained(chunk["error"].strip(), dockerfile.parent))
    except SandboxError as exc:
        raise EnvironmentProblem(str(exc)) from None
    return tag


def context_files(directory: Path, dockerfile: str) -> list[str]:
    """What Docker builds `dockerfile` from: the files of `directory` that the repository's snapshot would hold
    (`agent.repo_files.snapshot_listing`: tracked, or untracked and not git-ignored, so never the developer's
    local `.env`, `*.pem` or `.npmrc`), less what its `.dockerignore` excludes, and never a `.git` (the
    repository's, a submodule's or a worktree's, any case) or anything below one; plus the Dockerfile itself.

    The build's RUN steps have the network: a context file is a file the repository's author could send
    anywhere. `.git/config` holds the user's credential URL or actions/checkout's auth header. Symlinks go in
    as links, not followed (Docker resolves them inside the context), so nothing outside `directory` or left
    out of it is read. Outside a git work tree nothing is git-ignored. Shape: sorted POSIX paths relative to
    `directory`, files, links and the folders that lead to them. Raises `ListingFailed` when git cannot list.
    """
    from docker.utils.build import exclude_paths

    ignore = directory / ".dockerignore"
    patterns: list[str] = []
    if ignore.is_file() and refusal(ignore, directory) is None:
        lines = (line.strip() for line in ignore.read_text(encoding="utf-8", errors="replace").splitlines())
        patterns = [line for line in lines if line and not line.startswith("#")]
    snapshot = snapshot_listing(directory)
    kept = None if snapshot is None else snapshot | {dockerfile} | {
        parent.as_posix() for name in snapshot for parent in PurePosixPath(name).parents if parent.parts}
    return sorted(name for name in exclude_paths(str(directory), patterns, dockerfile=dockerfile)
                  if not in_git(Path(name).parts) and (kept is None or Path(name).as_posix() in kept))


def build_context(directory: Path, dockerfile: str) -> IO[bytes]:
    """The tar of `context_files`: uncompressed, in a temporary file positioned at 0; the caller closes it."""
    from docker.utils.build import create_archive

    return create_archive(str(directory), files=context_files(directory, dockerfile))


def _explained(error: str, directory: Path) -> str:
    """Docker's error, plus what the context held when a COPY/ADD found nothing (`.git` is never there)."""
    if "not found" in error or "no such file" in error.lower():
        return (f"{error} (the build context is {directory} without .git, git-ignored files"
                " and what .dockerignore excludes)")
    return error
