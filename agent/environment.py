"""Which image a repository's sandbox starts from, with its setup commands cached.

Order: `[sandbox] image` from config, else a Dockerfile the user names, else the default
sandbox image. Setup commands (`pip install -e .[test]`, `npm ci`) run once; their result
is committed as an image keyed like Docker layers keyed by the lock files they copy: the
base image, the commands, the dependency files of the snapshot (`DEPENDENCY_NAMES`) and the
repository's place and identity (its path and its remotes' URLs). The next run starts in
seconds after an edit or a commit elsewhere; a changed lock file or build hook, or another
repository cloned to the same path, runs them again (`setup_tag`).
"""

from __future__ import annotations

import hashlib
import os
import re
import shlex
import stat
import subprocess
from collections.abc import Callable, Mapping
from fnmatch import translate
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

# What setup commands read to decide what they install or run, by file name at any depth (a workspace member's
# package.json, a monorepo's pyproject.toml): manifests and lock files; build hooks an install runs (hatchling's
# hatch_build.py, pdm's pdm_build.py, cargo's build.rs, setup.py); what decides what `pip install .` copies
# (MANIFEST.in); the package managers' settings that pick registries or run code at install (.npmrc, .yarnrc*,
# .pnpmfile.cjs); the toolchain pins uv, nvm, volta and rustup read (.python-version, .nvmrc, rust-toolchain).
DEPENDENCY_NAMES = (
    "pyproject.toml", "setup.py", "setup.cfg", "MANIFEST.in", "hatch_build.py", "pdm_build.py", "Pipfile",
    "Pipfile.lock", "poetry.lock", "pdm.lock", "uv.lock", "tox.ini", "environment.yml", ".python-version",
    "package.json", "package-lock.json", "npm-shrinkwrap.json", "yarn.lock", "pnpm-lock.yaml", "pnpm-workspace.yaml",
    ".npmrc", ".yarnrc", ".yarnrc.yml", ".pnpmfile.cjs", ".nvmrc", ".node-version",
    "Cargo.toml", "Cargo.lock", "build.rs", "rust-toolchain", "rust-toolchain.toml", "go.mod", "go.sum", "go.work",
    "go.work.sum", "Gemfile", "Gemfile.lock", "*.gemspec", "pom.xml", "build.gradle", "build.gradle.kts",
    "settings.gradle", "settings.gradle.kts", "gradle.properties", "composer.json", "composer.lock",
)
# The same, by path from the repository's root only: names too common to take anywhere (poetry's build script
# `build.py`; pip's requirement and constraint files, which `pip install -r` names from the root).
DEPENDENCY_AT_ROOT = ("build.py", "requirements*.txt", "requirements/*.txt", "constraints*.txt")
_DEPENDENCY_NAME = re.compile("|".join(map(translate, DEPENDENCY_NAMES)))
_DEPENDENCY_AT_ROOT = re.compile("|".join(map(translate, DEPENDENCY_AT_ROOT)))
# `scheme://user:token@host/...`: the userinfo of a remote's URL (a token rotated is the same repository).
_URL_USERINFO = re.compile(r"(?i)^([a-z][a-z0-9+.-]*://)[^/@]*@")


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


def prepare_image(settings: SandboxSettings, inputs: Callable[[], str], client: Any, echo: Echo,
                  checkout: Callable[[], Path], history: list[Path] | None = None) -> tuple[str, bool]:
    """The image to start from, and whether a cached setup image was reused.

    `inputs()`: the digest of what the setup's result depends on (`setup_inputs`), asked for only
    when there are setup commands. They run, when they must, in `checkout()`: a copy of the
    snapshot made only then (never the user's work tree: its git-ignored files stay out). `history`:
    the object directories the copy's `.git` borrows, mounted read-only at their own paths,
    so that git there sees the whole history (`git describe` for setuptools-scm, `git log`).
    """
    base = base_image(settings, client, echo)
    if not settings.setup:
        return base, False
    tag = setup_tag(settings, inputs(), client.images.get(base).id)
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


def setup_tag(settings: SandboxSettings, inputs: str, base_id: str) -> str:
    """The setup image's tag: the base image, the commands, the confinement and capabilities, and `inputs`
    (`setup_inputs`: the dependency files, the repository's path and its remotes). Setup commands run as root
    and may leave anything outside /testbed (`pip install .` copies the project, a postinstall hook may plant
    a file), so another repository cloned to the same path never gets this one's image.

    Not covered: a file the commands run or read that is neither a dependency file nor named in a command
    (a `scripts/install.sh` that `make setup` calls, a `src/pkg/version.py` that setup.py executes). Editing
    it reuses the image until a covered file changes; `docker rmi` the tag (printed when it was made) to rebuild.
    """
    parts = [base_id, *settings.setup, inputs, SETUP_CONFINEMENT, *sorted(settings.capabilities)]
    return f"moe-agent-setup:{hashlib.sha256(chr(0).join(parts).encode()).hexdigest()[:16]}"


def setup_inputs(commands: list[str], files: Mapping[str, str], root: Path) -> str:
    """A sha256 hex digest of what a setup image is reused for: the snapshot's dependency files
    (`dependency_files`: their paths, modes and blob ids, from `files`, `Snapshot.files`'s shape
    {path: "MODE SHA"}; nothing is read from disk), `root` resolved, and `remote_urls(root)`.
    An edit or a commit to any other file keeps the digest. Raises `EnvironmentProblem` when git
    cannot read the repository's config."""
    digest = hashlib.sha256(os.fsencode(root.resolve()))
    for url in remote_urls(root):
        digest.update(b"\1" + url.encode())
    for path, entry in sorted(dependency_files(commands, files).items()):
        digest.update(b"\0" + os.fsencode(path) + b"\0" + entry.encode())
    return digest.hexdigest()


def dependency_files(commands: list[str], files: Mapping[str, str]) -> dict[str, str]:
    """The entries of `files` ({path: "MODE SHA"}) the setup's result depends on: `DEPENDENCY_NAMES` at any
    depth, `DEPENDENCY_AT_ROOT` at the root, and any path a command names as one word (`bash scripts/setup.sh`,
    `pip install -r ci/reqs.txt`, `--requirement=ci/reqs.txt`). A link is keyed by its target path, not the
    bytes it leads to."""
    named: set[str] = set()
    for command in commands:
        try:
            words = shlex.split(command)
        except ValueError:  # an unbalanced quote: the shell will say so; words are still words
            words = command.split()
        for word in words:
            named.update(os.path.normpath(part) for part in (word, word.partition("=")[2]) if part)
    return {path: entry for path, entry in files.items()
            if path in named or _DEPENDENCY_AT_ROOT.match(path) or _DEPENDENCY_NAME.match(path.rpartition("/")[2])}


def remote_urls(root: Path) -> list[str]:
    """The URLs of the repository's remotes, as the user cloned it: "NAME URL" lines from its own git config
    (`git config --local`, one process, no history read), userinfo dropped, sorted; [] without remotes.
    Raises `EnvironmentProblem` when git cannot read the config."""
    try:
        proc = subprocess.run(["git", "-C", str(root), "config", "--local", "--null", "--get-regexp", r"^remote\..*\.url$"],
                              capture_output=True, timeout=60, check=False)
    except (OSError, subprocess.SubprocessError) as exc:
        raise EnvironmentProblem(f"cannot read the remotes of {root}: {exc}") from None
    if proc.returncode == 1 and not proc.stdout:  # no remote
        return []
    if proc.returncode:
        lines = proc.stderr.decode(errors="replace").strip().splitlines()
        raise EnvironmentProblem(f"cannot read the remotes of {root}: {lines[-1] if lines else proc.returncode}")
    urls = []
    for record in os.fsdecode(proc.stdout).split("\0"):
        key, _, url = record.partition("\n")
        if key:
            name = key[len("remote."):-len(".url")]
            urls.append(f"{name} {_URL_USERINFO.sub(lambda match: match.group(1), url)}")
    return sorted(urls)


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
