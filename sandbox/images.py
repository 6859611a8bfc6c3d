"""Building sandbox images, with or without a registry.

Offline (no registry answers) the root filesystem comes from `debootstrap` and is
`docker import`-ed; with a registry it comes from a Dockerfile. Either way the final
layers are added with `docker run` + `docker commit`, so a CA file never has to go into
a build context. Tags carry a hash of everything that went in: an unchanged recipe is
reused, a changed one rebuilds.
"""

from __future__ import annotations

import fcntl
import hashlib
import io
import json
import os
import shutil
import socket
import subprocess
import tarfile
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from sandbox import cleanup
from sandbox.base import SandboxError
from sandbox.cache import cache_home
from sandbox.certs import ca_environment, read_bundle

BUILDER_VERSION = "1"
DEFAULT_MIRROR = "http://deb.debian.org/debian"
EXTRA_CA_PATH = "/usr/local/share/ca-certificates/moe-agent-extra.crt"
SYSTEM_CA_PATH = "/etc/ssl/certs/ca-certificates.crt"
DOCKER_SOCKET = Path("/var/run/docker.sock").resolve()
# Debian release -> the Python 3 it ships; used to pick a base for a wanted Python version.
RELEASE_PYTHON = {"bullseye": "3.9", "bookworm": "3.11", "trixie": "3.13"}
DEFAULT_PACKAGES = ["python3", "python3-venv", "git", "ripgrep", "patch", "ca-certificates"]
FINISH_SCRIPT = """set -e
mkdir -p /testbed
git config --system safe.directory '*'
git config --system user.name moe-agent
git config --system user.email agent@moe-agent.invalid
git config --system init.defaultBranch main
"""
# The default sandbox image's unprivileged user: the model's commands run as it, /testbed is its.
SANDBOX_USER = "agent"
SANDBOX_UID = 1000
# What `useradd` and `chown` need in the finish step that makes the user (files owned by someone else).
USER_STEP_CAPABILITIES = ["CHOWN", "DAC_OVERRIDE", "FOWNER"]
# Limits of every build container, whatever script it runs: a runaway build cannot take the host.
BUILD_MEMORY = "8g"
BUILD_PIDS = 4096

Log = Callable[[str], None]


class ImageRecipe(BaseModel):
    """What goes into a Debian-based image; its hash is the image's tag.

    By default the sandbox image: Debian with Python and git, run as the unprivileged
    `SANDBOX_USER`, who owns /testbed.
    """

    model_config = ConfigDict(extra="forbid")

    name: str = "moe-agent-sandbox"
    release: str = "bookworm"
    packages: list[str] = Field(default_factory=lambda: list(DEFAULT_PACKAGES))
    mirror: str = DEFAULT_MIRROR
    ca_bundle: Path | None = None
    finish_script: str = FINISH_SCRIPT
    # The unprivileged user the image runs as (its USER, owning /testbed); None: root.
    user: str | None = SANDBOX_USER

    def content_hash(self) -> str:
        parts: dict[str, Any] = {
            "builder": BUILDER_VERSION,
            "release": self.release,
            "packages": sorted(self.packages),
            "finish": self.finish_script,
            "ca": hashlib.sha256(read_bundle(self.ca_bundle)).hexdigest() if self.ca_bundle else None,
        }
        if self.user:  # only then: the tags of images without a user stay what they were
            parts["user"] = user_script(self.user)
        return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:12]

    @property
    def tag(self) -> str:
        return f"{self.name}:{self.release}-{self.content_hash()}"


def default_image(ca_bundle: Path | None = None) -> str:
    return ImageRecipe(ca_bundle=ca_bundle).tag


def log_dir() -> Path:
    path = cache_home() / "build-logs"
    path.mkdir(parents=True, exist_ok=True)
    return path


def image_exists(client: Any, tag: str) -> bool:
    from docker.errors import ImageNotFound

    try:
        client.images.get(tag)
        return True
    except ImageNotFound:
        return False


def remove_image(client: Any, tag: str) -> None:
    """Remove an intermediate image; one still in use or already gone is left to its user."""
    from docker.errors import APIError

    try:
        client.images.remove(tag, noprune=False)
    except APIError:
        pass


def registry_reachable(host: str = "registry-1.docker.io", timeout: float = 3.0) -> bool:
    try:
        with socket.create_connection((host, 443), timeout=timeout):
            return True
    except OSError:
        return False


class BuildLog:
    """One log file per image; a failure names the step and shows the log's tail."""

    def __init__(self, tag: str, echo: Log | None = None) -> None:
        self.path = log_dir() / (tag.replace("/", "_").replace(":", "_") + ".log")
        self.path.write_text("")
        self.echo = echo

    def step(self, name: str) -> None:
        self.write(f"==> {name}\n")
        if self.echo:
            self.echo(name)

    def write(self, text: str) -> None:
        with self.path.open("a", encoding="utf-8", errors="replace") as fh:
            fh.write(text)

    def fail(self, step: str, detail: str = "") -> SandboxError:
        lines = self.path.read_text(errors="replace").splitlines()[-15:]
        tail = " | ".join(line.strip() for line in lines if line.strip())[-600:]
        return SandboxError(f"image build failed at step '{step}'{': ' + detail if detail else ''} "
                            f"(log: {self.path}; tail: {tail})")


def build_image(
    recipe: ImageRecipe,
    client: Any,
    *,
    offline: bool | None = None,
    force: bool = False,
    echo: Log | None = None,
    timeout: float = 1800.0,
) -> str:
    """Return the recipe's tag, building it unless an image with that tag exists.

    Builds of one tag are serialised across processes on this host (a lock file per tag):
    two `agent` commands that need the same missing image build it once, the second
    waits and reuses it, instead of removing the intermediate image under the first.
    """
    tag = recipe.tag
    if not force and image_exists(client, tag):
        return tag
    with build_lock(tag):
        if not force and image_exists(client, tag):
            return tag
        return _build(recipe, client, tag, offline=offline, echo=echo, timeout=timeout)


@contextmanager
def build_lock(tag: str) -> Iterator[None]:
    """Hold an exclusive lock (flock) for building `tag` on this host; blocks until free."""
    name = "".join(c if c.isalnum() or c in "-_." else "_" for c in tag)
    path = Path(tempfile.gettempdir()) / f"moe-agent-build-{name}.lock"
    with open(path, "a+b") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _build(recipe: ImageRecipe, client: Any, tag: str, *, offline: bool | None, echo: Log | None,
           timeout: float) -> str:
    log = BuildLog(tag, echo)
    if offline is None:
        offline = not registry_reachable()
    base = f"{recipe.name}-rootfs:{recipe.release}-{recipe.content_hash()}"
    if offline:
        debootstrap_import(recipe, client, base, log, timeout)
    else:
        dockerfile_build(recipe, client, base, log, timeout)
    files = {}
    changes = ["ENV LANG=C.UTF-8", "WORKDIR /testbed", 'CMD ["sleep", "infinity"]']
    script, capabilities = recipe.finish_script, []
    if recipe.ca_bundle:
        files[EXTRA_CA_PATH] = read_bundle(recipe.ca_bundle)
        script += f"cat {EXTRA_CA_PATH} >> {SYSTEM_CA_PATH}\n"
        changes += [f"ENV {key}={value}" for key, value in ca_environment(SYSTEM_CA_PATH).items()]
    if recipe.user:
        script += user_script(recipe.user)
        changes.append(f"USER {recipe.user}")
        capabilities = USER_STEP_CAPABILITIES
    run_and_commit(client, base, script, tag, log=log, step="finish", files=files, changes=changes, timeout=600,
                   capabilities=capabilities)
    remove_image(client, base)
    log.step(f"built {tag}")
    return tag


def user_script(user: str) -> str:
    """Shell lines making `user` (uid `SANDBOX_UID`, own group, home) and giving it /testbed.

    /testbed is open to every user too: a sandbox run as root (`sandbox.user = "root"`) has no
    CAP_DAC_OVERRIDE to write into a directory another user owns."""
    return (f"useradd --uid {SANDBOX_UID} --user-group --create-home --shell /bin/bash {user}\n"
            f"chown {user}:{user} /testbed && chmod 0777 /testbed\n")


def debootstrap_import(recipe: ImageRecipe, client: Any, tag: str, log: BuildLog, timeout: float) -> None:
    if shutil.which("debootstrap") is None:
        raise SandboxError("debootstrap is not installed: install it (Debian: apt-get install debootstrap)")
    if os.geteuid() != 0:
        raise SandboxError("building the offline base image needs root (debootstrap): run 'sudo agent sandbox build'")
    with tempfile.TemporaryDirectory(prefix="moe-rootfs-", dir=os.environ.get("AGENT_BUILD_DIR", "/var/tmp")) as root:
        step = f"debootstrap {recipe.release}"
        log.step(step)
        cmd = ["debootstrap", "--variant=minbase", f"--include={','.join(recipe.packages)}",
               recipe.release, root, recipe.mirror]
        _run_logged(cmd, log, step, timeout)
        step = "docker import"
        log.step(step)
        tar = subprocess.Popen(["tar", "-C", root, "-c", "."], stdout=subprocess.PIPE)
        try:
            repo, _, version = tag.rpartition(":")
            client.api.import_image(src=tar.stdout, repository=repo, tag=version, stream_src=True)
        except Exception as exc:
            raise log.fail(step, str(exc).splitlines()[0]) from None
        finally:
            tar.kill() if tar.poll() is None else None
            tar.wait()


def dockerfile_build(recipe: ImageRecipe, client: Any, tag: str, log: BuildLog, timeout: float) -> None:
    step = "docker build"
    log.step(step)
    dockerfile = (
        f"FROM debian:{recipe.release}-slim\n"
        "RUN apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "
        f"{' '.join(recipe.packages)} && rm -rf /var/lib/apt/lists/*\n"
    )
    try:
        for chunk in client.api.build(fileobj=io.BytesIO(dockerfile.encode()), tag=tag, rm=True,
                                      decode=True, timeout=timeout):
            log.write(chunk.get("stream", "") or json.dumps(chunk) + "\n")
            if "error" in chunk:
                raise log.fail(step, chunk["error"].strip())
    except SandboxError:
        raise
    except Exception as exc:
        raise log.fail(step, str(exc).splitlines()[0]) from None


def run_and_commit(
    client: Any,
    base: str,
    script: str,
    tag: str,
    *,
    log: BuildLog,
    step: str,
    files: dict[str, bytes] | None = None,
    changes: list[str] | None = None,
    network: bool = False,
    environment: dict[str, str] | None = None,
    volumes: dict[str, dict[str, str]] | None = None,
    timeout: float = 1800.0,
    cpus: float | None = None,
    memory: str | None = BUILD_MEMORY,
    pids_limit: int | None = BUILD_PIDS,
    capabilities: Sequence[str] = (),
    user: str | None = None,
) -> None:
    """Run `script` with bash in a container of `base`, then commit the result as `tag`.

    Every build container is confined like the model's sandbox, whoever wrote the script:
    all Linux capabilities dropped but `capabilities` (what the step needs, e.g. apt's
    privilege drop), `no-new-privileges`, memory (a Docker size) and `pids_limit` caps,
    the network only with `network`, no host environment (only `environment`), and no
    host path but `files` (copied in) and `volumes` (never the Docker socket).
    `cpus` caps it too (a CFS quota, in CPUs), so builds leave a shared host usable.
    `user` runs the script as someone else than the image's user (the setup step runs as
    root); the committed image keeps the base image's user unless `changes` name one.

    Host directories are bound with `mounts=`, not `volumes=`: docker-py turns volumes into
    VOLUME entries of the container config, which `docker commit` would bake into the image.
    """
    from docker.types import Mount

    from sandbox.docker import confinement, cpu_quota

    log.step(step)
    mounts = [Mount(target=spec["bind"], source=host, type="bind", read_only=spec.get("mode") == "ro")
              for host, spec in (volumes or {}).items()]
    if any(Path(host).resolve() == DOCKER_SOCKET or Path(host).resolve() in DOCKER_SOCKET.parents
           for host in volumes or {}):
        raise SandboxError(f"step '{step}' of {tag} may not see the Docker socket")
    changes = list(changes or [])
    if user is not None and not any(change.startswith("USER ") for change in changes):
        own = (client.images.get(base).attrs.get("Config") or {}).get("User") or ""
        changes += [f"USER {own}"] if own else []  # else the commit would keep `user`
    container = client.containers.create(
        base, command=["bash", "-c", script], network_mode="bridge" if network else "none",
        environment=environment or {}, mounts=mounts, labels={"moe-agent.build": tag},
        **({"nano_cpus": cpu_quota(cpus)} if cpus else {}), **({"mem_limit": memory} if memory else {}),
        **({"pids_limit": pids_limit} if pids_limit else {}), **({"user": user} if user is not None else {}),
        **confinement(capabilities),
    )
    try:
        for path, data in (files or {}).items():
            _put_file(container, path, data)
        container.start()
        try:
            status = container.wait(timeout=timeout)
        except Exception:
            container.kill()
            log.write(container.logs().decode(errors="replace"))
            raise log.fail(step, f"timed out after {timeout:.0f}s") from None
        log.write(container.logs().decode(errors="replace"))
        if status.get("StatusCode") != 0:
            raise log.fail(step, f"exit code {status.get('StatusCode')}")
        repo, _, version = tag.rpartition(":")
        container.commit(repository=repo, tag=version, changes=changes)
    finally:
        with cleanup.shielded():  # a signal meanwhile waits for it: a build container is never left behind
            cleanup.remove_container(client, container.id)


def _put_file(container: Any, path: str, data: bytes) -> None:
    directory, name = os.path.split(path)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        info = tarfile.TarInfo(name)
        info.size, info.mode, info.mtime = len(data), 0o644, int(time.time())
        tar.addfile(info, io.BytesIO(data))
    container.put_archive(directory or "/", buf.getvalue())


def _run_logged(cmd: list[str], log: BuildLog, step: str, timeout: float) -> None:
    with log.path.open("a") as fh:
        try:
            proc = subprocess.run(cmd, stdout=fh, stderr=subprocess.STDOUT, timeout=timeout)
        except subprocess.TimeoutExpired:
            raise log.fail(step, f"timed out after {timeout:.0f}s") from None
    if proc.returncode != 0:
        raise log.fail(step, f"exit code {proc.returncode}")
