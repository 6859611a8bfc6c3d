"""Starting Docker sandboxes (deployment) and the `Sandbox` they hand back (runtime).

Containers are created with no host environment, no Docker socket, the network off unless
asked for, resource limits, and labels naming the run, so that leftovers can be found.
They are hardened (`hardening_options`): every Linux capability dropped but those a spec
names, `no-new-privileges`, and the user the spec names (else the image's: the default
image's is the unprivileged `agent`, and what is copied in is made its own).
"""

from __future__ import annotations

import base64
import dataclasses
import io
import os
import posixpath
import re
import secrets
import shlex
import tarfile
import tempfile
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from sandbox import cleanup
from sandbox.base import CommandResult, FileStat, ImageMissing, SandboxError
from sandbox.cache import cache_home
from sandbox.certs import CONTAINER_BUNDLE, ca_environment, combined_bundle
from sandbox.disk import DiskLimit, human_size
from sandbox.shell import GONE as GONE_MARK, MainBash, PersistentShell, ShellLink, attachable_command

LABEL = "moe-agent"
# With the network off, Docker is told the container has none at all (`NetworkDisabled`):
# that skips libnetwork's prestart hook, which costs ~170 ms of a ~290 ms start here, and
# the container still gets its own namespace with loopback up. Docker then writes no
# /etc/hosts (an empty file of root's), so the sandbox writes the one Docker gives `--network
# none` containers, or, when it does not run as root, has it bind-mounted (`offline_hosts_file`).
OFFLINE_HOSTS = "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n"
# Files travel base64-encoded through the internal shell: a read costs a few ms at any size,
# a write about 2 ms per KB (bash reads its input a byte at a time). Bigger writes, and
# images without base64, use the archive API: about 90 ms and as much dockerd CPU each
# way, as dockerd re-executes itself to walk the container's filesystem.
NO_SPACE = "No space left on device"
FORK_FAILED = "Resource temporarily unavailable"  # bash: "fork: retry: Resource temporarily unavailable"
NO_GROWTH = "ulimit -S -f 0"  # a shell past the disk limit may only shrink files (sandbox.disk)
# Shell builtins only (no fork: the limit may be exhausted). How many forks the pids cgroup
# refused so far (cgroup v2, then v1); prints nothing where neither file is readable.
_PIDS_LIMIT_HITS = (
    "{ read -r _ n < /sys/fs/cgroup/pids.events || read -r _ n < /sys/fs/cgroup/pids/pids.events; } 2>/dev/null; "
    'echo "${n:-}"'
)
# The same counter seen from the host (a local engine): cgroup v1 with cgroupfs, v2 with
# cgroupfs, v2 with systemd. Reading it costs microseconds, so it is read before every command.
_HOST_PIDS_EVENTS = (
    "/sys/fs/cgroup/pids/docker/{id}/pids.events",
    "/sys/fs/cgroup/docker/{id}/pids.events",
    "/sys/fs/cgroup/system.slice/docker-{id}.scope/pids.events",
)
# Builtins only. Freeze every process but PID 1 and this shell, pass after pass until no new
# one appears (a frozen process cannot fork); then kill all of them but the container's main
# process (parent 1, command line holding KEEP) and this shell's children (the wrappers that
# report a model shell's death), and let those run again. Prints the pids in use afterwards.
_STOP_RUNAWAYS = r"""
__moe_all=()
for __moe_pass in 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16; do
  __moe_now=()
  for __moe_p in /proc/[0-9]*; do
    __moe_p=${__moe_p#/proc/}
    [ "$__moe_p" = 1 ] || [ "$__moe_p" = $$ ] || __moe_now+=("$__moe_p")
  done
  kill -STOP "${__moe_now[@]}" 2>/dev/null
  [ "${#__moe_now[@]}" = "${#__moe_all[@]}" ] && break
  __moe_all=("${__moe_now[@]}")
done
__moe_kill=(); __moe_keep=()
for __moe_p in "${__moe_now[@]}"; do
  read -r __moe_stat < /proc/$__moe_p/stat 2>/dev/null || continue
  __moe_rest=${__moe_stat##*) }; set -- $__moe_rest
  if [ "$2" = $$ ]; then __moe_keep+=("$__moe_p"); continue; fi
  if [ "$2" = 1 ] || [ "$2" = 0 ]; then
    __moe_args=(); mapfile -d '' __moe_args < /proc/$__moe_p/cmdline 2>/dev/null
    case "${__moe_args[*]}" in *KEEP*) __moe_keep+=("$__moe_p"); continue;; esac
  fi
  __moe_kill+=("$__moe_p")
done
kill -KILL "${__moe_kill[@]}" 2>/dev/null
kill -CONT "${__moe_keep[@]}" 2>/dev/null
{ read -r __moe_n < /sys/fs/cgroup/pids.current || read -r __moe_n < /sys/fs/cgroup/pids/pids.current; } 2>/dev/null
echo "${__moe_n:-?} ${#__moe_kill[@]}"
"""
# Builtins but one `tar --version`: what the shell can do for file transfers (see `_probe`).
_PROBE = ('command -v base64 >/dev/null && echo base64; [ "$EUID" = 0 ] && command -v head >/dev/null && '
          'case "$(tar --version 2>/dev/null)" in *"GNU tar"*) echo untar;; esac; true')
# Unpacks the archive on stdin; tar's words (the last 4000 bytes) and its exit status come at the
# end, and whatever tar left unread is drained, so the stream's sender never blocks.
_UNTAR = ('{{ command tar -x -f - -C {dest} --no-same-owner 2>&1; echo "__moe_untar=$?"; command cat >/dev/null; }} '
          '| command tail -c 4000')
# A command that asks how much space is free: `df` shows the host's disk, not the sandbox's limit.
_ASKS_FOR_SPACE = re.compile(r"(^|[\s;&|(`])df(\s|$)")
SHELL_READ_BYTES = 4 * 2**20
SHELL_WRITE_BYTES = 48 * 2**10


class SandboxSpec(BaseModel):
    """Everything that decides how a sandbox container is started."""

    model_config = ConfigDict(extra="forbid")

    image: str
    workdir: str = "/testbed"
    mount: Path | None = Field(None, description="host directory bind-mounted at workdir (its host owners "
                               "and modes decide what the sandbox's user may write)")
    copy_from: Path | None = Field(None, description="host directory copied into workdir")
    readonly_mounts: dict[Path, str] = Field(default_factory=dict, description="host directory -> container path, read-only")
    cpus: float | None = 2.0
    memory: str | None = "4g"
    pids_limit: int | None = 1024
    tmp_size: str | None = Field("1g", description="size of the tmpfs at /tmp and /var/tmp (None: the image's own)")
    disk_size: str | None = Field(None, description="what the container may write to its own files (a Docker "
                                  "size such as 4g): enforced by the engine where it can (overlay2 on xfs with "
                                  "pquota), else measured and enforced by the sandbox (sandbox.disk)")
    network: bool = False
    env: dict[str, str] = Field(default_factory=dict)
    ca_bundle: Path | None = None
    run_id: str = "adhoc"  # the fix run's id, or the eval batch's
    labels: dict[str, str] = Field(default_factory=dict, description="more labels, each under moe-agent.<key>")
    start_timeout: float = 60.0
    command_timeout: float = 1800.0
    output_limit: int = 1_000_000
    extra_capabilities: list[str] = Field(default_factory=list, description="added back after dropping all")
    user: str | None = Field(None, description="uid[:gid] or name to run as; None: the image's user, or root "
                             "when `extra_capabilities` is not empty (`_root_for_capabilities`)")

    @model_validator(mode="after")
    def _root_for_capabilities(self) -> SandboxSpec:
        """Capabilities added back take effect only for root: Docker gives a process of any other user none
        (its effective set is empty, whatever `cap_add` says). A spec that needs one and leaves the user to
        the image (whose user may be `agent`, uid 1000, as the default image's is) runs as root, as
        SWE-bench task images do anyway; a user the caller names is kept (`agent fix` warns about it)."""
        if self.user is None and self.extra_capabilities:
            self.user = "root"
        return self


def connect(timeout: float = 120.0) -> Any:
    """A Docker client, or one clear line saying why there is none."""
    import docker
    from docker.errors import DockerException

    host = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
    try:
        client = docker.from_env(timeout=timeout)
        if client.api.base_url.startswith("http+docker://"):  # a local socket: no proxy or .netrc applies
            client.api.trust_env = False  # requests would look both up again on every call
        return client  # no ping: from_env has just asked the engine for its API version
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
        self._owner: tuple[int, int] | None = None
        self._untar: bool | None = None
        self._pids_limit_hits = 0  # the cgroup's count of forks refused at the pids limit, as last seen
        self._host_pids_events: Path | bool | None = None  # that count's file on the host; False: not visible
        self.disk = DiskLimit(disk_bytes(spec.disk_size), self._written) if spec.disk_size else None
        self._layer_baseline = 0  # bytes the layer held before the model's first command (the repository copied in)
        self.shell = PersistentShell(client.api, container.id, workdir=spec.workdir, output_limit=spec.output_limit,
                                     opener=self._spawn_model_shell, side=self._model_shell_side)
        self.shell.start()
        self._disk_stopped = False  # the watcher stopped processes that wrote past the limit (told once)
        self._disk_done = threading.Event()
        if self.disk is not None:
            threading.Thread(target=self._watch_disk, name="sandbox-disk", daemon=True).start()

    @property
    def id(self) -> str:
        return self.container.id

    def run(self, command: str, timeout: float | None = None) -> CommandResult:
        """Run in the model's shell, stopping runaway processes that exhausted the pids limit first."""
        from docker.errors import DockerException

        try:
            notes = [note for note in (self.stop_runaway_processes(cheap_only=True),) if note]
            limit = min(timeout or self.spec.command_timeout, self.spec.command_timeout)
            result = self.shell.run(command, timeout=limit)
            if FORK_FAILED in result.output or result.timed_out:
                notes += [note for note in (self.stop_runaway_processes(),) if note]
            notes += self._disk_notes(command, result.duration)
        except DockerException as exc:
            raise SandboxError(f"the sandbox container {self.id[:12]} is unusable: {_docker_message(exc)}") from None
        if NO_SPACE in result.output:
            notes.append(self.space_note())
        return dataclasses.replace(result, notes=(*notes, *result.notes)) if notes else result

    # -- the disk limit (sandbox.disk) -------------------------------------------
    def _layer_size(self) -> int | None:
        """Bytes in the container's writable layer (Docker's SizeRw; the engine walks the layer)."""
        try:
            found = self.client.api.containers(all=True, size=True, filters={"id": [self.id]})
        except Exception:
            return None
        if not found:
            return None
        return int(found[0].get("SizeRw") or 0)  # Docker omits a SizeRw of 0 (an empty layer: all deleted)

    def _written(self) -> int | None:
        """Bytes the sandbox's commands added to the writable layer: what `disk_size` limits."""
        size = self._layer_size()
        return None if size is None else max(0, size - self._layer_baseline)

    def _watch_disk(self) -> None:
        """For the sandbox's life: measure what it wrote now and then (`DiskLimit.poll_interval`),
        and stop the processes that grow it past the limit, during a command or between them."""
        disk = self.disk
        assert disk is not None
        reference, cost = 0, 0.0
        while not self._disk_done.wait(disk.poll_interval(cost)):
            started = time.monotonic()
            grown = disk.grew_past(max(reference, disk.used))
            cost = time.monotonic() - started
            if grown is not None and not self._disk_done.is_set():
                reference, self._disk_stopped = grown, True
                disk.stopped(grown)
                self.shell.prelude = NO_GROWTH  # the shell it restarts may only shrink files
                try:
                    self.shell.stop_command()  # the command's processes, background ones, and the shell
                except Exception:  # the container went meanwhile: nothing left to stop
                    pass

    def _disk_notes(self, command: str, seconds: float) -> list[str]:
        """After a command: measure what was written when it may have mattered; past the limit the
        model's shell may no longer grow files."""
        disk = self.disk
        if disk is None:
            return []
        stopped, self._disk_stopped = self._disk_stopped, False
        asks = _ASKS_FOR_SPACE.search(command) is not None
        if not (stopped or asks or disk.worth_measuring(seconds)):
            return []
        notes = [f"processes were stopped (and the shell restarted): they kept writing past the sandbox's disk "
                 f"limit of {human_size(disk.limit)}"] if stopped else []
        note = disk.check()
        if disk.full or note:  # the soft limit: 0 while full, the hard one (the limit) once free again
            self.shell.prelude = NO_GROWTH if disk.full else ""  # and in every shell restarted meanwhile
            self.shell.run(NO_GROWTH if disk.full else 'ulimit -S -f "$(ulimit -H -f)"', timeout=10)
        if note is None and asks:
            note = disk.usage_note()
        return notes + [note] if note else notes

    # -- exhausted resources -------------------------------------------------
    def stop_runaway_processes(self, cheap_only: bool = False, restart_shell: bool = True) -> str | None:
        """After the pids limit was hit (a fork bomb, a leak), kill every process commands started.

        Asks the host's cgroup files when they are visible (microseconds), else, unless
        `cheap_only`, the container (one round trip of shell builtins). The model's shell is
        started again unless `restart_shell` is False (its own interrupt logic will). Returns
        the note for the model, or None; raises `SandboxError` when they cannot be stopped.
        """
        hits = self._pids_limit_hits_now(cheap_only)
        if hits is None or hits <= self._pids_limit_hits:
            return None
        keep = f"{GONE_MARK}{self._main.nonce}" if self._main else "__moe_keep_nothing__"
        limit = self.spec.pids_limit or 0
        for attempt in range(3):  # killed processes take a moment to be reaped on a loaded machine: look again
            if attempt:
                time.sleep(0.5)
            left = self._service_run(_STOP_RUNAWAYS.replace("KEEP", keep)).output.split()
            if not (len(left) == 2 and left[0].isdigit() and limit and int(left[0]) >= limit - 2):
                break
        else:
            raise SandboxError(f"the sandbox reached its limit of {limit} processes and they could not be stopped")
        self._pids_limit_hits = self._pids_limit_hits_now(False) or hits
        killed = left[1] if len(left) == 2 else "its"
        if restart_shell:
            self.shell.run(":", timeout=10)  # collects the killed shell's last words and starts a new one
        return (f"the sandbox had reached its limit of {limit or '?'} processes (a fork bomb or a process leak): "
                f"{killed} processes started by commands were killed and the shell was restarted, so exported "
                "variables and activated environments are reset")

    def _pids_limit_hits_now(self, cheap_only: bool) -> int | None:
        """The cgroup's count of forks refused at the pids limit; None when it cannot be read."""
        if self._host_pids_events is None:
            found = (Path(pattern.format(id=self.id)) for pattern in _HOST_PIDS_EVENTS)
            self._host_pids_events = next((path for path in found if path.is_file()), False)
        if self._host_pids_events:
            try:
                return int(self._host_pids_events.read_text().split()[1])
            except (OSError, IndexError, ValueError):
                pass
        if cheap_only:
            return None
        text = self._service_run(_PIDS_LIMIT_HITS).output.strip()
        return int(text) if text.isdigit() else None

    def space_note(self) -> str:
        """What the model is told when a write failed for lack of space: where the limits are."""
        tmp = f"/tmp holds at most {self.spec.tmp_size}" if self.spec.tmp_size else "/tmp has no size limit of its own"
        rest = f", the rest of the sandbox at most {human_size(self.disk.limit)}" if self.disk else ""
        return (f"no space left on device: the sandbox's writable space is limited ({tmp}{rest}); delete files "
                "you no longer need (e.g. in /tmp) before writing more")

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
        """Signals for the model's shell go through the internal shell, which is idle meanwhile.

        With the pids limit exhausted the signal script could not even start (it forks):
        every process of the commands is stopped instead, builtins only.
        """
        if self.stop_runaway_processes(restart_shell=False) is None:
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

    @property
    def owner(self) -> tuple[int, int]:
        """(uid, gid) the container's commands run as: what files put into it are owned by.

        Without CAP_CHOWN or CAP_DAC_OVERRIDE even root cannot write a file another user owns,
        so files arrive with this owner, whoever owns them on the host.
        """
        if self._owner is None:
            found = self._service_run("command id -u; command id -g").output.split()
            if len(found) != 2 or not all(part.isdigit() for part in found):
                raise SandboxError(f"cannot tell which user the sandbox {self.id[:12]} runs as: {' '.join(found)[:200]}")
            self._owner = (int(found[0]), int(found[1]))
        return self._owner

    def _shell_transfers(self) -> bool:
        if self._base64 is None:
            self._probe()
        return bool(self._base64)

    def _probe(self) -> None:
        """One round trip: whether files can travel through the shell (base64), and archives
        unpack there (`unpack`: root, GNU tar and head in the image)."""
        found = self._service_run(_PROBE).output.split()
        self._base64, self._untar = "base64" in found, "untar" in found

    def read_file(self, path: str) -> bytes:
        full = self.resolve(path)
        if self._shell_transfers():
            quoted = shlex.quote(full)
            result = self._service_run(
                f"if [ ! -e {quoted} ]; then echo missing; elif [ ! -f {quoted} ]; then echo special; "
                f"elif [ ! -r {quoted} ]; then echo unreadable; "
                f"elif [ \"$(command stat -L -c %s -- {quoted})\" -gt {SHELL_READ_BYTES} ]; then "
                f"echo big; command stat -L -c %s -- {quoted}; "
                f"else echo file; command base64 -w0 < {quoted}; fi"
            )
            kind, _, body = result.output.partition("\n")
            if kind == "missing":
                raise FileNotFoundError(f"{path}: no such file")
            if kind == "special":
                raise IsADirectoryError(f"{path} is not a regular file")
            if kind == "file" and result.ok:
                return base64.b64decode(body)
            if kind == "big" and result.ok and body.strip().isdigit():
                return self._read_in_pieces(path, quoted, int(body.strip()))
        return self._read_archive(path, full)

    def _read_in_pieces(self, path: str, quoted: str, size: int) -> bytes:
        """A file too big for one shell answer, read through the shell a piece at a time.

        Not Docker's archive API: it reads the container's layers and cannot see a tmpfs
        (the sandbox's /tmp), where tools keep big temporary files such as a large patch.
        """
        pieces = []
        for offset in range(0, size, SHELL_READ_BYTES):
            result = self._service_run(
                f"command tail -c +{offset + 1} -- {quoted} | command head -c {SHELL_READ_BYTES} | command base64 -w0")
            if not result.ok:
                raise FileNotFoundError(f"{path}: could not be read ({result.output.strip()[:200]})")
            pieces.append(base64.b64decode(result.output))
        return b"".join(pieces)

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
        """Write atomically: a temporary file in the same directory, then rename over.

        Refused with `OSError` (saying why) while the sandbox is past its disk limit.
        """
        if self.disk is not None and self.disk.full:
            raise OSError(self.disk.full_note())
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
        # Docker's archive API writes beneath a tmpfs mount, not into it: stage such files in
        # the working directory, then move them (a copy, across filesystems).
        stage = self.workdir if self._on_scratch(directory) else directory
        staged = posixpath.join(stage, posixpath.basename(tmp))
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as tar:
            info = tarfile.TarInfo(posixpath.basename(staged))
            info.size, info.mode, info.mtime = len(data), mode, int(time.time())
            info.uid, info.gid = self.owner
            tar.addfile(info, io.BytesIO(data))
        if not self.container.put_archive(stage, buf.getvalue()):
            raise OSError(f"could not write {path}")
        quoted = shlex.quote(staged)  # in a subshell: `exit` must not end the internal shell
        moved = self._service_run(
            f"( command mv -f -- {quoted} {target} || {{ rc=$?; command rm -f -- {quoted}; exit $rc; }} )")
        if not moved.ok:
            raise OSError(f"could not write {path}: {moved.output.strip()}")

    def _on_scratch(self, directory: str) -> bool:
        """Whether `directory` lies on one of the tmpfs mounts of `scratch_mounts`."""
        return any(directory == mount or directory.startswith(mount + "/") for mount in scratch_mounts(self.spec) or {})

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
            f"command find {shlex.quote(full)} -mindepth 1 -maxdepth {int(depth)} -not -path '*/.*' -printf '%y %P\\0'"
        )  # NUL-separated: a name may hold a newline
        if not result.ok:
            raise FileNotFoundError(f"{path}: {result.output.strip()}")
        entries = []
        for record in result.output.split("\0")[:-1]:
            kind, _, rel = record.partition(" ")
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
        """Unpack a tar stream (chunks, sent as they come) at `dest` (default: the workdir).

        Through the internal shell into the image's GNU tar when the sandbox runs as root:
        about 10-25 ms where Docker's archive API takes 0.4-1 s on a loaded machine (dockerd
        re-executes itself to walk the container's filesystem). Files then belong to the
        sandbox's user (root without CAP_CHOWN cannot give them the host's owner); mode and
        mtime are kept. Elsewhere (another user, no GNU tar) the archive API, which keeps the
        owners the headers name: make them `owner`'s. What it unpacks does not count against
        the disk limit.
        """
        dest = dest or self.workdir
        if self._untar is None:
            self._probe()
        if self._untar:
            done = self._service_shell().run(_UNTAR.format(dest=shlex.quote(dest)), timeout=3600, stdin=archive)
            code = re.search(r"__moe_untar=(\d+)", done.output)
            if code is None or code.group(1) != "0":
                said = re.sub(r"__moe_untar=\d+", "", done.output).strip().splitlines()  # the first says why
                raise SandboxError("could not copy the repository into the sandbox: "
                                   + (said[0][:200] if said else f"tar exit {code.group(1) if code else '?'}"))
        else:
            try:
                done = self.container.put_archive(dest, archive)
            except Exception as exc:
                raise SandboxError(f"could not copy the repository into the sandbox: {_docker_message(exc)}") from None
            if not done:
                raise SandboxError("could not copy the repository into the sandbox")
        if self.disk is not None:  # the copy is the user's repository, not what the limit is for
            self._layer_baseline = self._layer_size() or 0

    def close(self, wait: bool = True) -> None:
        """Stop the shells and remove the container; a signal meanwhile waits until it is gone.

        With `wait` False the container is left to end by itself, costing the caller nothing
        (Docker's removal takes 0.1-0.5 s): closing its main process's socket closes its stdin
        (`attachable_command`), that process exits and Docker removes the container
        (`auto_remove`). Should it not end, `cleanup.reap_orphans` removes it once this process
        is gone. A container without that main process is removed as with `wait`.
        """
        self._disk_done.set()
        with cleanup.shielded():
            for shell in (self.shell, self._service):
                if shell is not None:
                    shell.close()
            if self._main is not None:
                self._main.close()
                if not wait:
                    cleanup.forget(self.container.id)
                    return
            cleanup.remove_container(self.client, self.container.id)
            cleanup.forget(self.container.id)

    def __enter__(self) -> DockerSandbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _docker_message(exc: BaseException) -> str:
    explanation = getattr(exc, "explanation", None)
    return str(explanation or exc).splitlines()[0]


def sandbox_labels(spec: SandboxSpec) -> dict[str, str]:
    """Labels that find a sandbox again: its run (or batch), and its owner process (`cleanup.owner_labels`)."""
    return {
        LABEL: "1",
        f"{LABEL}.run": spec.run_id,
        f"{LABEL}.created": str(int(time.time())),
        **cleanup.owner_labels(),
        **{f"{LABEL}.{key}": value for key, value in spec.labels.items()},
    }


def scratch_mounts(spec: SandboxSpec) -> dict[str, str] | None:
    """/tmp and /var/tmp as size-limited tmpfs (charged to the container's memory), so scratch
    files can neither fill the host's disk nor grow past `tmp_size`; None keeps the image's."""
    if not spec.tmp_size:
        return None
    return {path: f"size={spec.tmp_size},mode=1777,exec" for path in ("/tmp", "/var/tmp")}


def disk_bytes(size: str) -> int:
    """A Docker size (`4g`, `512m`, `1024`) in bytes, as Docker reads it (binary units)."""
    from docker.utils import parse_bytes

    return int(parse_bytes(size))


def fsize_ulimit(spec: SandboxSpec) -> list[Any] | None:
    """RLIMIT_FSIZE at the disk limit for every process in the container: no one file can be bigger."""
    if not spec.disk_size:
        return None
    from docker.types import Ulimit

    size = disk_bytes(spec.disk_size)
    return [Ulimit(name="fsize", soft=size, hard=size)]


def cpu_quota(cpus: float | None) -> int | None:
    """Docker's `nano_cpus` for a limit of `cpus` CPUs, capped at the CPUs this process may use.

    Docker refuses a limit above what the daemon's machine has ("Range of CPUs is from 0.01 to
    1.00"), so the default of 2 would fail every sandbox on a one-CPU machine or under a CPU
    affinity mask; the local daemon sees what we see. None: no limit.
    """
    if not cpus:
        return None
    available = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return int(min(cpus, available) * 1e9)


def offline_hosts_file() -> Path:
    """A host file holding `OFFLINE_HOSTS`, for sandboxes whose user may not write /etc/hosts."""
    path = cache_home() / "offline-hosts"
    if not path.is_file() or path.read_text() != OFFLINE_HOSTS:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, temp = tempfile.mkstemp(dir=path.parent, prefix=".offline-hosts.")
        with os.fdopen(fd, "w") as handle:
            handle.write(OFFLINE_HOSTS)
        os.chmod(temp, 0o644)
        os.replace(temp, path)
    return path


def runs_as_root(spec: SandboxSpec, client: Any) -> bool:
    """Whether the container's commands run as root: `spec.user`, else the image's own user."""
    user = spec.user if spec.user is not None else _image_user(client, spec.image)
    return user.split(":")[0] in ("", "root", "0")


_image_users: dict[str, str] = {}  # image id or tag -> its configured user ("" for root)


def _image_user(client: Any, image: str) -> str:
    if image not in _image_users:
        _image_users[image] = (client.images.get(image).attrs.get("Config") or {}).get("User") or ""
    return _image_users[image]


def container_options(spec: SandboxSpec, attach_nonce: str, as_root: bool = True) -> dict[str, Any]:
    """The `containers.create` keyword arguments for `spec` (all but the image).

    Without a network Docker leaves /etc/hosts an empty file of root's; a sandbox that does
    not run as root (`as_root` False) gets `offline_hosts_file` over it, read-only, instead
    of an `exec` as root (about 75 ms of CPU) to fill it.
    """
    from docker.types import Mount

    env = dict(spec.env)
    # Mount objects, not "host:target:mode" strings: a host path may itself hold ':' or ','.
    mounts: list[Mount] = []
    if spec.mount is not None:
        mounts.append(Mount(spec.workdir, str(spec.mount.resolve()), type="bind"))
    if not spec.network and not as_root:
        mounts.append(Mount("/etc/hosts", str(offline_hosts_file()), type="bind", read_only=True))
    for host, target in spec.readonly_mounts.items():
        mounts.append(Mount(target, str(host), type="bind", read_only=True))
    bundle = combined_bundle(spec.ca_bundle)
    if bundle is not None:
        mounts.append(Mount(CONTAINER_BUNDLE, str(bundle), type="bind", read_only=True))
        env.update(ca_environment(CONTAINER_BUNDLE))
    return {
        "command": attachable_command(attach_nonce),
        "stdin_open": True,  # the internal shell attaches to the main process instead of paying an exec
        "working_dir": spec.workdir,
        "environment": env,
        "labels": sandbox_labels(spec),
        "mounts": mounts,
        "network_mode": "bridge" if spec.network else "none",
        "network_disabled": not spec.network,
        "nano_cpus": cpu_quota(spec.cpus),
        "mem_limit": spec.memory,
        "pids_limit": spec.pids_limit,
        "tmpfs": scratch_mounts(spec),
        "ulimits": fsize_ulimit(spec),
        "init": True,
        "auto_remove": True,  # a container whose owner died ends by itself (see attachable_command): then it goes
        "log_config": {"type": "none"},  # output goes through the shell socket; logs would only cost start time
        # Not detached: docker-py then sets StdinOnce, so the container's stdin closes when the
        # attached owner goes, however it goes (see attachable_command); starting stays ours.
        "detach": False,
        **hardening_options(spec),
    }


# -- hardening ------------------------------------------------------------------------------
def hardening_options(spec: SandboxSpec) -> dict[str, Any]:
    """What keeps untrusted code in the container: no capabilities, no privilege gain, a chosen user.

    Docker's default set (14 capabilities: CHOWN, DAC_OVERRIDE, SETUID, NET_RAW...) is
    dropped whole; a spec adds back only what its task needs (the requests recipe's
    route needs NET_ADMIN). `no-new-privileges` makes setuid binaries (sudo, su) useless.
    Docker lets containers with their own network namespace bind ports below 1024 without
    NET_BIND_SERVICE (`net.ipv4.ip_unprivileged_port_start=0`).
    """
    options = confinement(spec.extra_capabilities)
    if spec.user:
        options["user"] = spec.user
    return options


def confinement(capabilities: Iterable[str] = ()) -> dict[str, Any]:
    """Container options dropping Docker's default capabilities but `capabilities`, with `no-new-privileges`.

    Shared by the model's sandbox and the setup container (repository-controlled commands).
    """
    return {
        "cap_drop": ["ALL"],
        "cap_add": sorted(set(capabilities)) or None,
        "security_opt": ["no-new-privileges:true"],
    }


def start_sandbox(spec: SandboxSpec, client: Any | None = None) -> DockerSandbox:
    """Create and start a container for `spec` and attach a persistent shell to it."""
    from docker.errors import APIError, ImageNotFound

    client = client or connect(timeout=spec.start_timeout)
    cleanup.install_handlers()
    cleanup.reap_orphans(client)
    try:
        nonce = secrets.token_hex(8)
        with cleanup.shielded():  # a container created is a container remembered, whatever signal comes
            container = _create(client, spec, container_options(spec, nonce, runs_as_root(spec, client)))
            cleanup.remember(container.id)
    except ImageNotFound:
        raise ImageMissing(f"image {spec.image} is not present: build it with 'agent sandbox build'") from None
    except APIError as exc:
        raise SandboxError(f"cannot create a container from {spec.image}: {_docker_message(exc)}") from None
    try:
        container.start()
        box = DockerSandbox(client, container, spec, attach_nonce=nonce)
        if not spec.network:
            box.write_offline_hosts()
        if spec.copy_from is not None:
            _copy_tree(container, spec.copy_from, spec.workdir, box.owner)
        return box
    except BaseException as exc:
        with cleanup.shielded():
            cleanup.remove_container(client, container.id)
            cleanup.forget(container.id)
        if isinstance(exc, APIError):
            raise SandboxError(f"cannot start a container from {spec.image}: {_docker_message(exc)}") from None
        raise


_no_storage_opt: set[str] = set()  # engines (see `_engine_key`) that refused a writable-layer size


def _create(client: Any, spec: SandboxSpec, options: dict[str, Any]) -> Any:
    """Create the container, with a writable-layer size limit where the engine can enforce one.

    Only overlay2 on xfs mounted with pquota can; other engines refuse the option, and the
    container is then created without it. The refusal is remembered for the engine's life
    (`_engine_key`), in this process and in the cache folder, so later runs ask once.
    """
    from docker.errors import APIError

    engine = _engine_key(client)
    if spec.disk_size and engine not in _no_storage_opt and not _refused_before(engine):
        try:
            return _create_container(client, spec.image, {**options, "storage_opt": {"size": spec.disk_size}})
        except APIError as exc:
            if "storage-opt" not in str(exc):
                raise
            _no_storage_opt.add(engine)
            _remember_refusal(engine)
    return _create_container(client, spec.image, options)


def _create_container(client: Any, image: str, options: dict[str, Any]) -> Any:
    """`client.containers.create` without the inspect it ends with (a round trip nothing here reads)."""
    from docker.models.containers import _create_container_args

    created = client.api.create_container(**_create_container_args(
        {**options, "image": image, "version": client.api._version}))
    return client.containers.prepare_model({"Id": created["Id"]})


def _engine_key(client: Any) -> str:
    """The engine's API URL, with the time its unix socket was made: a restarted daemon (the only
    way to change its storage driver) makes a new socket, and so a new key."""
    url = str(client.api.base_url)
    socket = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
    if url.startswith("http+docker://") and socket.startswith("unix://"):
        try:
            return f"{socket}@{os.stat(socket.removeprefix('unix://')).st_ctime_ns}"
        except OSError:
            pass
    return url


def _refusals() -> Path:
    return cache_home() / "engines-without-storage-opt"


def _refused_before(engine: str) -> bool:
    """Whether an earlier run saw ENGINE refuse a writable-layer size (only a unix socket's key is kept)."""
    try:
        return engine in _refusals().read_text().splitlines()
    except OSError:
        return False


def _remember_refusal(engine: str) -> None:
    if "@" not in engine:
        return
    try:
        _refusals().parent.mkdir(parents=True, exist_ok=True)
        with open(_refusals(), "a") as listing:
            listing.write(engine + "\n")
    except OSError:  # a read-only cache: the next run asks again
        pass


def _copy_tree(container: Any, source: Path, dest: str, owner: tuple[int, int]) -> None:
    """Copy a host directory into a container with one tar stream, every entry owned by `owner` (uid, gid)."""
    if not source.is_dir():
        raise SandboxError(f"cannot copy {source} into the sandbox: not a directory")

    def owned(info: tarfile.TarInfo) -> tarfile.TarInfo:
        info.uid, info.gid, info.uname, info.gname = *owner, "", ""
        return info

    with tempfile.TemporaryFile() as spool:
        with tarfile.open(fileobj=spool, mode="w") as tar:
            tar.add(str(source), arcname=".", filter=owned)
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
