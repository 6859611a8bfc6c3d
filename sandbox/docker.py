"""Starting Docker sandboxes (deployment) and the `Sandbox` they hand back (runtime).

Containers are created with no host environment, no Docker socket, the network off unless
asked for, resource limits, and labels naming the run, so that leftovers can be found.
"""

from __future__ import annotations

import base64
import io
import os
import posixpath
import secrets
import shlex
import socket
import tarfile
import tempfile
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from sandbox import cleanup
from sandbox.base import CommandResult, FileStat, ImageMissing, SandboxError
from sandbox.certs import CONTAINER_BUNDLE, ca_environment, combined_bundle
from sandbox.shell import MainBash, PersistentShell, ShellLink, attachable_command

LABEL = "moe-agent"
# With the network off, Docker is told the container has none at all (`NetworkDisabled`):
# that skips libnetwork's prestart hook, which costs ~170 ms of a ~290 ms start here, and
# the container still gets its own namespace with loopback up. Docker then writes no
# /etc/hosts, so the sandbox writes the one Docker gives `--network none` containers.
OFFLINE_HOSTS = "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n"
# Files travel base64-encoded through the internal shell: a read costs a few ms at any size,
# a write about 2 ms per KB (bash reads its input a byte at a time). Bigger writes, and
# images without base64, use the archive API: about 90 ms and as much dockerd CPU each
# way, as dockerd re-executes itself to walk the container's filesystem.
SHELL_READ_BYTES = 4 * 2**20
SHELL_WRITE_BYTES = 48 * 2**10


class SandboxSpec(BaseModel):
    """Everything that decides how a sandbox container is started."""

    model_config = ConfigDict(extra="forbid")

    image: str
    workdir: str = "/testbed"
    mount: Path | None = Field(None, description="host directory bind-mounted at workdir")
    copy_from: Path | None = Field(None, description="host directory copied into workdir")
    readonly_mounts: dict[Path, str] = Field(default_factory=dict, description="host directory -> container path, read-only")
    cpus: float | None = 2.0
    memory: str | None = "4g"
    pids_limit: int | None = 1024
    network: bool = False
    env: dict[str, str] = Field(default_factory=dict)
    ca_bundle: Path | None = None
    run_id: str = "adhoc"
    start_timeout: float = 60.0
    command_timeout: float = 1800.0
    output_limit: int = 1_000_000
    extra_capabilities: list[str] = Field(default_factory=list)


def connect(timeout: float = 120.0) -> Any:
    """A Docker client, or one clear line saying why there is none."""
    import docker
    from docker.errors import DockerException

    host = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
    try:
        client = docker.from_env(timeout=timeout)
        if client.api.base_url.startswith("http+docker://"):  # a local socket: no proxy or .netrc applies
            client.api.trust_env = False  # requests would look both up again on every call
        client.ping()
        return client
    except DockerException as exc:
        raise SandboxError(explain_docker_error(exc, host)) from None


def explain_docker_error(exc: BaseException, host: str = "unix:///var/run/docker.sock") -> str:
    text = str(exc)
    sock = host.removeprefix("unix://")
    if "PermissionError" in text or "Permission denied" in text:
        return f"permission denied on the Docker socket {sock}: run as root or add your user to the 'docker' group"
    if "FileNotFoundError" in text or "No such file" in text:
        import shutil

        if not shutil.which("docker") and not shutil.which("dockerd"):
            return "Docker is not installed: install it (Debian: apt-get install docker.io) and start dockerd"
        return f"the Docker daemon is not running (no socket at {sock}): start it with 'dockerd &' or 'systemctl start docker'"
    if "Connection refused" in text or "ConnectionRefused" in text:
        return f"the Docker daemon is not answering at {host}: start it with 'dockerd &' or 'systemctl start docker'"
    if "no space left on device" in text.lower():
        return "Docker is out of disk space: free some with 'agent sandbox prune' and 'docker system prune'"
    return f"Docker error: {text.splitlines()[0] if text else type(exc).__name__}"


class DockerSandbox:
    """A running container plus its persistent shell; implements `sandbox.base.Sandbox`."""

    def __init__(self, client: Any, container: Any, spec: SandboxSpec, attach_nonce: str | None = None) -> None:
        self.client = client
        self.container = container
        self.spec = spec
        self.workdir = spec.workdir
        # The container's main process is a bash for the internal shell, which spawns the model's.
        self._main = MainBash(client.api, container.id, attach_nonce) if attach_nonce else None
        self._service: PersistentShell | None = None
        self._base64: bool | None = None
        self.shell = PersistentShell(client.api, container.id, workdir=spec.workdir, output_limit=spec.output_limit,
                                     opener=self._spawn_model_shell, side=self._model_shell_side)
        self.shell.start()

    @property
    def id(self) -> str:
        return self.container.id

    def run(self, command: str, timeout: float | None = None) -> CommandResult:
        from docker.errors import DockerException

        try:
            return self.shell.run(command, timeout=min(timeout or self.spec.command_timeout, self.spec.command_timeout))
        except DockerException as exc:
            raise SandboxError(f"the sandbox container {self.id[:12]} is unusable: {_docker_message(exc)}") from None

    # -- files -------------------------------------------------------------
    def resolve(self, path: str) -> str:
        return posixpath.normpath(posixpath.join(self.workdir, path))

    def _service_shell(self) -> PersistentShell:
        """Internal commands go through a second shell, so the model's shell state never matters."""
        if self._service is None:
            service = PersistentShell(self.client.api, self.container.id, workdir="/", spawns=True,
                                      opener=self._main.attach if self._main else None,
                                      output_limit=2 * SHELL_READ_BYTES)
            service.start()
            self._service = service
        return self._service

    def _service_run(self, command: str) -> CommandResult:
        from docker.errors import DockerException

        try:
            service = self._service_shell()
            result = service.run(command, timeout=60)
            if result.restarted and not result.ok and not result.timed_out:  # the shell died under it: once more
                result = service.run(command, timeout=60)
            return result
        except DockerException as exc:
            raise SandboxError(f"the sandbox container {self.id[:12]} is unusable: {_docker_message(exc)}") from None

    def _spawn_model_shell(self, cwd: str) -> ShellLink | None:
        """The model's shell as a child of the internal one: no exec (about 75 ms of CPU) to start it."""
        if self._main is None:
            return None
        return self._service_shell().spawn_child(cwd)

    def _model_shell_side(self, script: str) -> None:
        """Signals for the model's shell go through the internal shell, which is idle meanwhile."""
        self._service_run(script)

    def write_offline_hosts(self) -> None:
        """Give `localhost` a name, as the image's user if it may write /etc/hosts, else as root."""
        script = f"[ -s /etc/hosts ] || printf %s {shlex.quote(OFFLINE_HOSTS)} > /etc/hosts"
        if self._service_run(f"({script}) 2>/dev/null").ok:
            return
        done = self.container.exec_run(["sh", "-c", script], user="root")
        if done.exit_code != 0:
            raise SandboxError(f"cannot write /etc/hosts in {self.spec.image}: "
                               f"{done.output.decode(errors='replace').strip()}")

    def _shell_transfers(self) -> bool:
        if self._base64 is None:
            self._base64 = self._service_run("command -v base64 >/dev/null").ok
        return self._base64

    def read_file(self, path: str) -> bytes:
        full = self.resolve(path)
        if self._shell_transfers():
            quoted = shlex.quote(full)
            result = self._service_run(
                f"if [ ! -e {quoted} ]; then echo missing; elif [ ! -f {quoted} ]; then echo special; "
                f"elif [ ! -r {quoted} ]; then echo unreadable; "
                f"elif [ \"$(command stat -L -c %s -- {quoted})\" -gt {SHELL_READ_BYTES} ]; then echo big; "
                f"else echo file; command base64 -w0 < {quoted}; fi"
            )
            kind, _, body = result.output.partition("\n")
            if kind == "missing":
                raise FileNotFoundError(f"{path}: no such file")
            if kind == "special":
                raise IsADirectoryError(f"{path} is not a regular file")
            if kind == "file" and result.ok:
                return base64.b64decode(body)
        return self._read_archive(path, full)

    def _read_archive(self, path: str, full: str) -> bytes:
        try:
            stream, _ = self.container.get_archive(full)
            data = b"".join(stream)
        except Exception as exc:
            if "no such container" in str(exc).lower():
                raise SandboxError(f"the sandbox container {self.id[:12]} is gone") from None
            raise FileNotFoundError(f"{path}: {_docker_message(exc)}") from None
        with tarfile.open(fileobj=io.BytesIO(data)) as tar:
            member = tar.next()
            if member is None or not member.isfile():
                raise IsADirectoryError(f"{path} is not a regular file")
            extracted = tar.extractfile(member)
            assert extracted is not None
            return extracted.read()

    def write_file(self, path: str, data: bytes) -> None:
        """Write atomically: a temporary file in the same directory, then rename over."""
        full = self.resolve(path)
        directory, name = posixpath.split(full)
        tmp = posixpath.join(directory, f".{name}.moe-{secrets.token_hex(4)}")
        target, temp, parent = shlex.quote(full), shlex.quote(tmp), shlex.quote(directory)
        if len(data) <= SHELL_WRITE_BYTES and self._shell_transfers():
            encoded = base64.b64encode(data).decode()
            # The mode of the file replaced is kept; a new file gets 644 whatever the umask.
            result = self._service_run(  # in a subshell: `exit` must not end the internal shell
                f"( if [ -d {target} ]; then echo __moe_isdir; exit 0; fi; "
                f"mode=$(command stat -L -c %a -- {target} 2>/dev/null || echo 644); "
                f"command mkdir -p -- {parent} && printf %s {encoded} | command base64 -d > {temp} "
                f"&& command chmod \"$mode\" -- {temp} && command mv -f -- {temp} {target} "
                f"|| {{ rc=$?; command rm -f -- {temp}; exit $rc; }} )"
            )
            if result.output.startswith("__moe_isdir"):
                raise IsADirectoryError(f"{path} is a directory")
            if not result.ok:
                raise OSError(f"could not write {path}: {result.output.strip()}")
            return
        current = self.stat(full)
        mode = current.mode & 0o7777 if current.exists and not current.is_dir else 0o644
        if current.is_dir:
            raise IsADirectoryError(f"{path} is a directory")
        made = self._service_run(f"mkdir -p -- {parent}")
        if not made.ok:
            raise OSError(f"cannot create directory {directory}: {made.output.strip()}")
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as tar:
            info = tarfile.TarInfo(posixpath.basename(tmp))
            info.size, info.mode, info.mtime = len(data), mode, int(time.time())
            tar.addfile(info, io.BytesIO(data))
        if not self.container.put_archive(directory, buf.getvalue()):
            raise OSError(f"could not write {path}")
        moved = self._service_run(f"mv -f -- {temp} {target}")
        if not moved.ok:
            raise OSError(f"could not write {path}: {moved.output.strip()}")

    def stat(self, path: str) -> FileStat:
        full = self.resolve(path)
        quoted = shlex.quote(full)
        result = self._service_run(
            f"if [ -e {quoted} ] || [ -L {quoted} ]; then command stat -c '%F|%s|%f' -- {quoted}; "
            f"command readlink -- {quoted} || true; else echo missing; fi"
        )
        first, _, rest = result.output.partition("\n")
        if first == "missing" or "|" not in first:
            return FileStat(path=full, exists=False)
        kind, size, mode = first.split("|")
        return FileStat(
            path=full,
            exists=True,
            is_dir=kind == "directory",
            is_symlink=kind == "symbolic link",
            size=int(size),
            mode=int(mode, 16),
            link_target=rest.strip(),
        )

    def list_dir(self, path: str, depth: int = 1) -> list[str]:
        """Relative paths below `path`, directories with a trailing slash, hidden ones left out."""
        full = self.resolve(path)
        result = self._service_run(
            f"command find {shlex.quote(full)} -mindepth 1 -maxdepth {int(depth)} -not -path '*/.*' -printf '%y %P\\n'"
        )
        if not result.ok:
            raise FileNotFoundError(f"{path}: {result.output.strip()}")
        entries = []
        for line in result.output.splitlines():
            kind, _, rel = line.partition(" ")
            entries.append(rel + "/" if kind == "d" else rel)
        return sorted(entries)

    def read_tree(self, paths: list[str], max_file_bytes: int = 1_000_000) -> dict[str, bytes]:
        """Many files (relative to workdir) in one archive round trip; big and missing ones left out."""
        if not paths:
            return {}
        wanted = set(paths)
        try:
            stream, _ = self.container.get_archive(self.workdir.rstrip("/") + "/.")
        except Exception as exc:
            raise SandboxError(f"cannot read the sandbox's files: {_docker_message(exc)}") from None
        with tempfile.TemporaryFile() as spool:
            for chunk in stream:
                spool.write(chunk)
            spool.seek(0)
            found: dict[str, bytes] = {}
            with tarfile.open(fileobj=spool, mode="r|") as tar:
                for member in tar:
                    name = member.name.removeprefix("./")
                    if name in wanted and member.isfile() and member.size <= max_file_bytes:
                        extracted = tar.extractfile(member)
                        if extracted is not None:
                            found[name] = extracted.read()
        return found

    def unpack(self, archive: Iterable[bytes], dest: str | None = None) -> None:
        """Unpack a tar stream (chunks, sent as they come) at `dest` (default: the workdir)."""
        try:
            done = self.container.put_archive(dest or self.workdir, archive)
        except Exception as exc:
            raise SandboxError(f"could not copy the repository into the sandbox: {_docker_message(exc)}") from None
        if not done:
            raise SandboxError("could not copy the repository into the sandbox")

    def close(self) -> None:
        for shell in (self.shell, self._service):
            if shell is not None:
                shell.close()
        if self._main is not None:
            self._main.close()
        try:
            self.container.remove(force=True, v=True)
        except Exception:
            pass
        cleanup.forget(self.container.id)

    def __enter__(self) -> DockerSandbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _docker_message(exc: BaseException) -> str:
    explanation = getattr(exc, "explanation", None)
    return str(explanation or exc).splitlines()[0]


def container_options(spec: SandboxSpec, attach_nonce: str) -> dict[str, Any]:
    """The `containers.create` keyword arguments for `spec` (all but the image)."""
    env = dict(spec.env)
    volumes: dict[str, dict[str, str]] = {}
    if spec.mount is not None:
        volumes[str(spec.mount.resolve())] = {"bind": spec.workdir, "mode": "rw"}
    for host, target in spec.readonly_mounts.items():
        volumes[str(host)] = {"bind": target, "mode": "ro"}
    bundle = combined_bundle(spec.ca_bundle)
    if bundle is not None:
        volumes[str(bundle)] = {"bind": CONTAINER_BUNDLE, "mode": "ro"}
        env.update(ca_environment(CONTAINER_BUNDLE))
    labels = {
        LABEL: "1",
        f"{LABEL}.run": spec.run_id,
        f"{LABEL}.pid": str(os.getpid()),
        f"{LABEL}.host": socket.gethostname(),
        f"{LABEL}.created": str(int(time.time())),
    }
    return {
        "command": attachable_command(attach_nonce),
        "stdin_open": True,  # the internal shell attaches to the main process instead of paying an exec
        "working_dir": spec.workdir,
        "environment": env,
        "labels": labels,
        "volumes": volumes,
        "network_mode": "bridge" if spec.network else "none",
        "network_disabled": not spec.network,
        "nano_cpus": int(spec.cpus * 1e9) if spec.cpus else None,
        "mem_limit": spec.memory,
        "pids_limit": spec.pids_limit,
        "cap_add": spec.extra_capabilities or None,
        "init": True,
        "log_config": {"type": "none"},  # output goes through the shell socket; logs would only cost start time
        "detach": True,
    }


def start_sandbox(spec: SandboxSpec, client: Any | None = None) -> DockerSandbox:
    """Create and start a container for `spec` and attach a persistent shell to it."""
    from docker.errors import APIError, ImageNotFound

    client = client or connect(timeout=spec.start_timeout)
    cleanup.install_handlers()
    try:
        nonce = secrets.token_hex(8)
        container = client.containers.create(spec.image, **container_options(spec, nonce))
    except ImageNotFound:
        raise ImageMissing(f"image {spec.image} is not present: build it with 'agent sandbox build'") from None
    except APIError as exc:
        raise SandboxError(f"cannot create a container from {spec.image}: {_docker_message(exc)}") from None
    cleanup.remember(container.id)
    try:
        if spec.copy_from is not None:
            _copy_tree(container, spec.copy_from, spec.workdir)
        container.start()
        box = DockerSandbox(client, container, spec, attach_nonce=nonce)
        if not spec.network:
            box.write_offline_hosts()
        return box
    except BaseException as exc:
        try:
            container.remove(force=True, v=True)
        finally:
            cleanup.forget(container.id)
        if isinstance(exc, APIError):
            raise SandboxError(f"cannot start a container from {spec.image}: {_docker_message(exc)}") from None
        raise


def _copy_tree(container: Any, source: Path, dest: str) -> None:
    """Copy a host directory into a created container with one tar stream."""
    if not source.is_dir():
        raise SandboxError(f"cannot copy {source} into the sandbox: not a directory")
    with tempfile.TemporaryFile() as spool:
        with tarfile.open(fileobj=spool, mode="w") as tar:
            tar.add(str(source), arcname=".")
        spool.seek(0)
        if not container.put_archive(dest, spool):
            raise SandboxError(f"could not copy {source} into the sandbox")


@contextmanager
def sandbox(spec: SandboxSpec, client: Any | None = None) -> Iterator[DockerSandbox]:
    box = start_sandbox(spec, client)
    try:
        yield box
    finally:
        box.close()
