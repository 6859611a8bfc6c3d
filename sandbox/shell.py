"""A persistent bash session in a container over one exec socket.

One `docker exec` per command costs 60-110 ms; writing to an already attached bash costs
about 0.2 ms. `cd`, exported variables and activated virtualenvs persist because every
command is `eval`-ed by the same bash process. A container whose main process is a bash
waiting on stdin (`attachable_command`) lends it to one shell through `attach_nonce`:
attaching costs about 4 ms of CPU where an exec costs about 100 ms (runc starts a process
in the container). That shell is restarted through exec if it ever dies.

Wire protocol: each command is sent as an ANSI-C quoted string (so any bytes survive),
evaluated with stdin from /dev/null (a command that reads stdin gets EOF instead of
eating the protocol), then bash prints a sentinel line carrying a per-session random
nonce, a sequence number, the exit code and the working directory.
"""

from __future__ import annotations

import re
import secrets
import select
import socket
import struct
import threading
import time
from typing import Any

from sandbox.base import CommandResult, SandboxError
from sandbox.output import HeadTailBuffer

# Walks /proc (no procps needed) and signals every descendant of a pid.
_SIGNAL_TREE = r"""
root=$1; sig=$2; all=""; frontier=$root
while [ -n "$frontier" ]; do
  next=""
  for st in /proc/[0-9]*/stat; do
    read -r line < "$st" 2>/dev/null || continue
    rest=${line##*) }; set -- $rest; ppid=$2
    pid=${st#/proc/}; pid=${pid%/stat}
    for f in $frontier; do [ "$ppid" = "$f" ] && next="$next $pid"; done
  done
  all="$all $next"; frontier=$next
done
[ -n "${all// /}" ] && kill -s "$sig" $all 2>/dev/null
exit 0
"""

GONE = "__moe_gone_"


def attachable_command(nonce: str) -> list[str]:
    """A container's main process: a bash on stdin for one attached shell, then a sleeper.

    The sleeper keeps the container up when that bash exits or is killed. The attach
    stream does not close then (the init process holds it), so a line carrying the nonce
    says the bash is gone.
    """
    return ["sh", "-c", f"bash --noprofile --norc; echo; echo {GONE}{nonce}; exec sleep infinity"]


_SAFE = frozenset(range(0x20, 0x7F)) - {ord("\\"), ord("'")}
_SAFE_BYTES = bytes(sorted(_SAFE))


def ansi_c_quote(data: bytes) -> str:
    """Quote arbitrary bytes as a bash $'...' string."""
    if not data.translate(None, _SAFE_BYTES):  # plain printable text (base64 payloads): no escapes
        return "$'" + data.decode("ascii") + "'"
    return "$'" + "".join(chr(b) if b in _SAFE else f"\\x{b:02x}" for b in data) + "'"


class ShellExited(Exception):
    """The bash process went away (`exit`, killed, OOM)."""


class PersistentShell:
    """One long-lived bash process; not thread-safe by design, guarded by a lock."""

    def __init__(
        self,
        api: Any,
        container_id: str,
        *,
        workdir: str = "/",
        output_limit: int = 1_000_000,
        start_timeout: float = 20.0,
        interrupt_grace: float = 2.0,
        attach_nonce: str | None = None,
    ) -> None:
        self.api = api
        self.container_id = container_id
        self.workdir = workdir
        self.output_limit = output_limit
        self.start_timeout = start_timeout
        self.interrupt_grace = interrupt_grace
        self._lock = threading.Lock()
        self._nonce = secrets.token_hex(8)
        self._seq = 0
        self._sock: socket.socket | None = None
        self._exec_id: str | None = None
        self._attach = attach_nonce is not None  # the first start attaches to the main process; restarts exec
        self._gone = f"\n{GONE}{attach_nonce}".encode() if attach_nonce else b""
        self._gone_tail = b""
        self._pid: int | None = None
        self._frame_left = 0
        self._frame_header = b""
        self._scan = b""
        self._marker = b""
        self.cwd = workdir
        self.restarts = 0

    # -- lifecycle -------------------------------------------------------
    def start(self) -> None:
        boot = b"exec 2>&1; unset HISTFILE; PS1=; PS2=; echo __moe_pid=$$\n"
        if self._attach:
            self._attach = False
            self._gone_tail = b""
            raw = self.api.attach_socket(self.container_id, params={"stdin": 1, "stdout": 1, "stderr": 1, "stream": 1})
            exec_id = None
            boot = f"cd {ansi_c_quote(self.cwd.encode())} 2>/dev/null; ".encode() + boot
        else:
            exec_id = self.api.exec_create(
                self.container_id,
                ["bash", "--noprofile", "--norc"],
                stdin=True,
                stdout=True,
                stderr=True,
                tty=False,
                workdir=self.cwd,
            )["Id"]
            raw = self.api.exec_start(exec_id, socket=True)
            self._gone = b""
        sock = getattr(raw, "_sock", raw)
        sock.setblocking(True)
        self._raw, self._sock, self._exec_id = raw, sock, exec_id
        self._frame_left, self._frame_header = 0, b""
        try:
            reply = self._exchange(boot + self._sentinel_command(), self.start_timeout)
        except ShellExited:
            reply = _Reply(HeadTailBuffer(self.output_limit), None)
        match = re.search(rb"__moe_pid=(\d+)", reply.body)
        if reply.exit_code is None or not match:
            if exec_id is None:  # nothing to attach to (an older container): exec instead
                self.close()
                return self.start()
            raise SandboxError("could not start a shell in the container (is bash installed in the image?)")
        self._pid = int(match.group(1))

    def close(self) -> None:
        if self._sock is not None:
            try:
                self._sock.sendall(b"exit 0\n")
            except OSError:
                pass
            try:
                self._sock.close()
            except OSError:
                pass
        self._sock = None

    def _restart(self) -> None:
        self.close()
        self.restarts += 1
        self.start()

    # -- commands --------------------------------------------------------
    def run(self, command: str | bytes, timeout: float | None = None) -> CommandResult:
        with self._lock:
            notes: list[str] = []
            restarted = False
            if self._sock is None:
                self._restart()
                restarted = True
                notes.append("the shell was not running and was restarted")
            before = self.restarts
            stale = self._drain()
            if self.restarts != before:
                restarted = True
                notes.append(f"the shell had exited since the last command and was restarted in {self.cwd}; "
                             "exported variables and activated environments were reset")
            if stale:
                notes.append(f"discarded {stale} bytes that background jobs printed after the last command")
            data = command.encode() if isinstance(command, str) else command
            payload = b"eval " + ansi_c_quote(data).encode() + b" < /dev/null\n" + self._sentinel_command()
            started = time.monotonic()
            buffer = HeadTailBuffer(self.output_limit)
            try:
                reply = self._exchange(payload, timeout, buffer)
            except ShellExited:
                code = self._exit_code()
                cwd = self.cwd
                buffer.write(self._scan)
                self._restart()
                return CommandResult(
                    output=buffer.getvalue().decode("utf-8", errors="replace"),
                    truncated_bytes=buffer.dropped,
                    exit_code=code,
                    duration=time.monotonic() - started,
                    restarted=True,
                    notes=(*notes, f"the shell exited (code {code}) and was restarted in {cwd}; "
                           "exported variables and activated environments were reset"),
                )
            if reply.exit_code is None:  # deadline passed: interrupt, then kill
                reply = self._interrupt(reply, started)
                restarted = restarted or reply.restarted
                notes.extend(reply.notes)
            return CommandResult(
                output=reply.body.decode("utf-8", errors="replace"),
                exit_code=reply.exit_code,
                duration=time.monotonic() - started,
                timed_out=reply.timed_out,
                truncated_bytes=reply.dropped,
                restarted=restarted,
                notes=tuple(notes),
            )

    def _interrupt(self, partial: _Reply, started: float) -> _Reply:
        for sig in ("INT", "KILL"):
            self._signal_children(sig)
            try:
                more = self._exchange(b"", self.interrupt_grace, partial.buffer)
            except ShellExited:
                break
            if more.exit_code is not None:
                more.timed_out = True
                more.notes.append(f"command timed out after {time.monotonic() - started:.1f}s and was stopped with SIG{sig}")
                return more
        cwd = self.cwd
        partial.buffer.write(self._scan)
        self._kill_shell()
        self._restart()
        partial.timed_out, partial.restarted = True, True
        partial.notes.append(f"command timed out and could not be interrupted; the shell was restarted in {cwd}")
        return partial

    # -- wire ------------------------------------------------------------
    def _sentinel_command(self) -> bytes:
        self._seq += 1
        self._marker = f"\n__MOE_{self._nonce}_{self._seq}__ ".encode()
        head, tail = self._marker[1:7].decode(), self._marker[7:].decode()
        # The marker is split in the command text, so it never appears until printf joins it.
        return (f"__moe_rc=$?; printf '\\n%s%s%d %s\\n' '{head}' '{tail}' \"$__moe_rc\" \"$PWD\"\n").encode()

    def _exchange(self, payload: bytes, timeout: float | None, buffer: HeadTailBuffer | None = None) -> _Reply:
        """Send `payload`, then collect output until the sentinel or the deadline.

        On a deadline the unmatched tail stays in `self._scan`, so a later call with an
        empty payload (after an interrupt) continues where this one stopped.
        """
        assert self._sock is not None
        if payload:
            self._scan = b""
            self._sock.sendall(payload)
        buffer = buffer or HeadTailBuffer(self.output_limit)
        deadline = None if timeout is None else time.monotonic() + timeout
        keep = len(self._marker) + 4096
        while True:
            chunk = self._read_payload(deadline)
            if chunk is None:
                return _Reply(buffer, None)
            self._scan += chunk
            at = self._scan.find(self._marker)
            if at >= 0:
                end = self._scan.find(b"\n", at + len(self._marker))
                if end >= 0:
                    buffer.write(self._scan[:at])
                    rc, _, cwd = self._scan[at + len(self._marker) : end].partition(b" ")
                    self._scan = b""
                    self.cwd = cwd.decode("utf-8", errors="replace") or self.cwd
                    return _Reply(buffer, int(rc))
            elif len(self._scan) > keep:
                buffer.write(self._scan[:-keep])
                self._scan = self._scan[-keep:]

    def _read_payload(self, deadline: float | None) -> bytes | None:
        """Read stdout/stderr payload bytes, undoing Docker's 8-byte stream framing."""
        assert self._sock is not None
        while True:
            wait = None if deadline is None else deadline - time.monotonic()
            if wait is not None and wait <= 0:
                return None
            ready, _, _ = select.select([self._sock], [], [], wait)
            if not ready:
                return None
            data = self._sock.recv(1 << 16)
            if not data:
                self._sock = None
                raise ShellExited()
            out = bytearray()
            while data:
                if self._frame_left == 0:
                    need = 8 - len(self._frame_header)
                    self._frame_header += data[:need]
                    data = data[need:]
                    if len(self._frame_header) == 8:
                        self._frame_left = struct.unpack(">I", self._frame_header[4:])[0]
                        self._frame_header = b""
                    continue
                take = data[: self._frame_left]
                out += take
                self._frame_left -= len(take)
                data = data[len(take) :]
            if self._gone:
                window = self._gone_tail + out
                if self._gone in window:
                    self._sock = None
                    raise ShellExited()
                self._gone_tail = window[-len(self._gone):]
            if out:
                return bytes(out)

    def _drain(self) -> int:
        """Throw away output that arrived between commands (background jobs)."""
        dropped = 0
        try:
            while self._sock is not None:
                chunk = self._read_payload(time.monotonic())
                if chunk is None:
                    break
                dropped += len(chunk)
        except ShellExited:
            self._restart()
        return dropped

    # -- process control through side channels -----------------------------
    def _side_exec(self, argv: list[str]) -> None:
        exec_id = self.api.exec_create(self.container_id, argv, stdout=True, stderr=True)["Id"]
        self.api.exec_start(exec_id)

    def _signal_children(self, sig: str) -> None:
        if self._pid:
            self._side_exec(["bash", "-c", _SIGNAL_TREE, "signal-tree", str(self._pid), sig])

    def _kill_shell(self) -> None:
        if self._pid:
            self._signal_children("KILL")
            self._side_exec(["sh", "-c", f"kill -KILL {self._pid}"])  # no procps in the image: the builtin

    def _exit_code(self) -> int | None:
        if not self._exec_id:
            return None
        for _ in range(50):
            info = self.api.exec_inspect(self._exec_id)
            if not info.get("Running"):
                return info.get("ExitCode")
            time.sleep(0.01)
        return None


class _Reply:
    """What came back for one command, before it becomes a CommandResult."""

    def __init__(self, buffer: HeadTailBuffer, exit_code: int | None) -> None:
        self.buffer = buffer
        self.exit_code = exit_code
        self.timed_out = False
        self.restarted = False
        self.notes: list[str] = []

    @property
    def body(self) -> bytes:
        return self.buffer.getvalue()

    @property
    def dropped(self) -> int:
        return self.buffer.dropped


