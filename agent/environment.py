"""Which image a repository's sandbox starts from, with its setup commands cached.

Order: `[sandbox] image` from config, else a Dockerfile the user names, else the default
sandbox image. Setup commands (`pip install -e .[test]`, `npm ci`) run once; their result
is committed as an image keyed by the base image, the commands and the dependency files,
so the next run starts in seconds and a changed lock file rebuilds.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from agent.config import SandboxSettings
from agent.errors import EnvironmentProblem
from agent.repo_files import in_git, refusal
from sandbox.base import ImageMissing, SandboxError
from sandbox.certs import CONTAINER_BUNDLE, ca_environment, combined_bundle
from sandbox.images import BuildLog, ImageRecipe, build_image, image_exists, run_and_commit

DEPENDENCY_FILES = (
    "pyproject.toml", "setup.py", "setup.cfg", "requirements*.txt", "requirements/*.txt", "Pipfile", "Pipfile.lock",
    "poetry.lock", "uv.lock", "tox.ini", "package.json", "package-lock.json", "yarn.lock", "pnpm-lock.yaml",
    "Cargo.toml", "Cargo.lock", "go.mod", "go.sum", "Gemfile", "Gemfile.lock", "pom.xml", "build.gradle",
    "build.gradle.kts", "composer.lock",
)

Echo = Callable[[str], None]
# Part of the setup image's cache key: images set up before the setup container was confined are not reused.
SETUP_CONFINEMENT = "confined-v2-root"
# Part of a Dockerfile image's tag: what `build_context` leaves out (images built before it are not reused).
CONTEXT_RULE = b"context-v2-without-git"


def dependency_digest(repo: Path) -> str:
    digest = hashlib.sha256()
    for pattern in DEPENDENCY_FILES:
        for path in sorted(repo.glob(pattern)):
            if path.is_file():
                digest.update(str(path.relative_to(repo)).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


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


def prepare_image(settings: SandboxSettings, repo: Path, client: Any, echo: Echo,
                  checkout: Callable[[], Path] | None = None, history: list[Path] | None = None) -> tuple[str, bool]:
    """The image to start from, and whether a cached setup image was reused.

    The cache key reads the dependency files in `repo`; setup commands, when they must run,
    run in `checkout()` (a copy of the snapshot made only then), else in `repo`. `history`:
    the object directories the copy's `.git` borrows, mounted read-only at their own paths,
    so that git there sees the whole history (`git describe` for setuptools-scm, `git log`).
    """
    base = base_image(settings, client, echo)
    if not settings.setup:
        return base, False
    tag = setup_tag(settings, repo, client.images.get(base).id)
    if image_exists(client, tag):
        return tag, True
    echo(f"running {len(settings.setup)} setup command(s), cached as {tag}")
    source = checkout() if checkout is not None else repo
    if checkout is not None and os.getuid():
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


def setup_tag(settings: SandboxSettings, repo: Path, base_id: str) -> str:
    """The setup image's tag: the base image, the commands, the dependency files, the confinement,
    and the repository's own path. Without the path, another repository copying this one's
    commands and dependency files (a fork, a look-alike) would make the image this one reuses,
    with whatever its commands left outside /testbed."""
    parts = [base_id, *settings.setup, dependency_digest(repo), SETUP_CONFINEMENT, *sorted(settings.capabilities),
             str(repo.resolve())]
    return f"moe-agent-setup:{hashlib.sha256(chr(0).join(parts).encode()).hexdigest()[:16]}"


def dockerfile_tag(dockerfile: Path) -> str:
    """A repository Dockerfile's image tag: its bytes, where it is (see `setup_tag` on why the place) and
    `CONTEXT_RULE`, so an image built from a context that still held `.git` is never reused."""
    digest = hashlib.sha256(dockerfile.read_bytes() + b"\0" + os.fsencode(dockerfile.resolve())
                            + b"\0" + CONTEXT_RULE).hexdigest()[:16]
    return f"moe-agent-user:{digest}"


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
    the network on (see 'Security model' in the README)."""
    from docker.utils import parse_bytes

    tag = dockerfile_tag(dockerfile)
    if image_exists(client, tag):
        return tag
    echo(f"building {dockerfile} as {tag}")
    log = BuildLog(tag)
    try:
        limits = {"memory": parse_bytes(memory), "memswap": -1}
        with build_context(dockerfile.parent, dockerfile.name) as context:
            for chunk in client.api.build(fileobj=context, custom_context=True, dockerfile=dockerfile.name, tag=tag,
                                          rm=True, decode=True, container_limits=limits, forcerm=True):
                log.write(chunk.get("stream", ""))
                if "error" in chunk:
                    raise log.fail("docker build", _explained(chunk["error"].strip(), dockerfile.parent))
    except SandboxError as exc:
        raise EnvironmentProblem(str(exc)) from None
    return tag


def build_context(directory: Path, dockerfile: str) -> IO[bytes]:
    """The tar Docker builds `dockerfile` from: `directory`'s files less what its `.dockerignore` excludes,
    and never a `.git` (the repository's, a submodule's or a worktree's, any case) or anything below one.

    `.git/config` holds the user's credential URL or actions/checkout's auth header, and a repository's
    Dockerfile could `COPY .git/config` into the image the model then reads. Symlinks go in as links, not
    followed (Docker resolves them inside the context), so nothing outside `directory` is read. Shape: an
    uncompressed tar in a temporary file, positioned at 0; the caller closes it.
    """
    from docker.utils.build import create_archive, exclude_paths

    ignore = directory / ".dockerignore"
    patterns: list[str] = []
    if ignore.is_file() and refusal(ignore, directory) is None:
        lines = (line.strip() for line in ignore.read_text(encoding="utf-8", errors="replace").splitlines())
        patterns = [line for line in lines if line and not line.startswith("#")]
    files = [name for name in exclude_paths(str(directory), patterns, dockerfile=dockerfile)
             if not in_git(Path(name).parts)]
    return create_archive(str(directory), files=sorted(files))


def _explained(error: str, directory: Path) -> str:
    """Docker's error, plus what the context held when a COPY/ADD found nothing (`.git` is never there)."""
    if "not found" in error or "no such file" in error.lower():
        return f"{error} (the build context is {directory} without .git and what .dockerignore excludes)"
    return error
