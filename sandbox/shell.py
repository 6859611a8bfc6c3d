"""A persistent bash session in a container over one exec socket.

One `docker exec` per command costs 60-110 ms; writing to an already attached bash costs
about 0.2 ms. `cd`, exported variables and activated virtualenvs persist because every
command is `eval`-ed by the same bash process. A container whose main process is a bash
waiting on stdin (`attachable_command`) needs no exec at all: the internal shell attaches
to that bash (about 4 ms of CPU where an exec costs about 75 ms, as runc starts a process
in the container), and the model's shell is a child it spawns (`spawn_child`), reading
the commands it relays through a FIFO and writing to the container's stderr, which
Docker frames apart from its stdout on the same socket. A shell that dies is restarted
the same way, or through exec when its parent is gone.

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
from collections.abc import Callable, Iterable
from dataclasses import dataclass
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
# Reads the frames `PersistentShell._send_framed` writes and pipes their bytes to the command
# that follows (eval'ed). `head -c N` reads exactly N bytes, never more, even from a pipe.
_FRAMED = (b'while IFS= read -r __moe_n && [ "$__moe_n" -gt 0 ] 2>/dev/null; do command head -c "$__moe_n"; done'
           b" | eval ")
FRAME_BYTES = 1 << 20


def attachable_command(nonce: str) -> list[str]:
    """A container's main process: a bash on stdin for one attached shell, then a stdin watcher.

    The watcher keeps the container up when that bash exits or is killed, for as long as
    the attached process is there: its stream does not close then (the init process holds
    it), so a line carrying the nonce says the bash is gone. The container's stdin closes
    when the one attached client goes (Docker's StdinOnce, which `stdin_open` sets): when
    its owner dies, even by `kill -9`, the watcher reads end-of-file and the container ends.

    SIGXFSZ is ignored by every process (an ignored signal stays ignored across exec): a write
    past the file size limit (`sandbox.disk`) then fails with "File too large" instead of
    killing the writer, the model's shell included.
    """
    watch = "cat >/dev/null 2>&1 || while read -r _; do :; done"
    return ["sh", "-c", f"trap '' XFSZ; bash --noprofile --norc; rc=$?; echo; echo {GONE}{nonce} $rc; {watch}"]


_SAFE = frozenset(range(0x20, 0x7F)) - {ord("\\"), ord("'")}
_SAFE_BYTES = bytes(sorted(_SAFE))


def ansi_c_quote(data: bytes) -> str:
    """Quote arbitrary bytes as a bash $'...' string."""
    if not data.translate(None, _SAFE_BYTES):  # plain printable text (base64 payloads): no escapes
        return "$'" + data.decode("ascii") + "'"
    return "$'" + "".join(chr(b) if b in _SAFE else f"\\x{b:02x}" for b in data) + "'"


class ShellExited(Exception):
    """The bash process went away (`exit`, killed, OOM)."""


class DockerStreams:
    """One hijacked Docker socket (an exec's, or the main process's), its frames sorted by stream.

    Docker frames stdout (1) and stderr (2) apart on the socket when there is no TTY, so
    two shells can share one socket: the internal shell's output is stdout, the model's
    shell writes to stderr. Whoever needs output reads the socket; bytes for the other
    stream wait in a buffer. With `merge`, both streams are one, in order.
    """

    def __init__(self, raw: Any, *, merge: bool) -> None:
        sock = getattr(raw, "_sock", raw)
        sock.setblocking(True)
        self._raw, self._sock, self._merge = raw, sock, merge
        self._send_lock = threading.Lock()
        self._cond = threading.Condition()
        self._pending = {1: bytearray(), 2: bytearray()}
        self._reading = False
        self._closed = False
        self._frame_left = 0
        self._frame_stream = 1
        self._frame_header = b""

    def send(self, data: bytes) -> None:
        with self._send_lock:
            try:
                self._sock.sendall(data)
            except OSError:
                raise ShellExited() from None

    def read(self, stream: int, deadline: float | None) -> bytes | None:
        """Output of `stream` (1 when merged), or None once the deadline passes with none."""
        key = 1 if self._merge else stream
        while True:
            with self._cond:
                while True:
                    if self._pending[key]:
                        data = bytes(self._pending[key])
                        self._pending[key].clear()
                        return data
                    if self._closed:
                        raise ShellExited()
                    wait = None if deadline is None else deadline - time.monotonic()
                    if not self._reading:
                        self._reading = True
                        break
                    if wait is not None and wait <= 0:
                        return None
                    self._cond.wait(wait)
            data: bytes | None = None
            try:
                ready, _, _ = select.select([self._sock], [], [], None if wait is None else max(wait, 0))
                if ready:
                    try:
                        data = self._sock.recv(1 << 16)
                    except OSError:
                        data = b""
            finally:
                with self._cond:
                    self._reading = False
                    if data == b"":
                        self._closed = True
                    elif data:
                        self._sort(data)
                    self._cond.notify_all()
            if data is None:  # the deadline passed with nothing on the socket
                with self._cond:
                    if not self._pending[key]:
                        return None

    def _sort(self, data: bytes) -> None:
        """Undo Docker's 8-byte stream framing into the per-stream buffers."""
        while data:
            if self._frame_left == 0:
                need = 8 - len(self._frame_header)
                self._frame_header += data[:need]
                data = data[need:]
                if len(self._frame_header) == 8:
                    self._frame_stream = 2 if self._frame_header[0] == 2 and not self._merge else 1
                    self._frame_left = struct.unpack(">I", self._frame_header[4:])[0]
                    self._frame_header = b""
                continue
            take = data[: self._frame_left]
            self._pending[self._frame_stream] += take
            self._frame_left -= len(take)
            data = data[len(take) :]

    def close(self) -> None:
        """Close the socket for good: shut down first, since docker-py's response objects may hold
        more references to it, and only the last close would end the connection (and, for the main
        process's socket, the container's stdin)."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        for end in (lambda: self._sock.shutdown(socket.SHUT_RDWR), self._sock.close):
            try:
                end()
            except OSError:
                pass


@dataclass
class ShellLink:
    """How one bash is reached: where its input goes, which output is its, how its death shows."""

    streams: DockerStreams
    stream: int
    send: Callable[[bytes], None]
    gone: bytes = b""  # printed when the bash is gone: the socket stays open for the process that prints it
    exec_id: str | None = None
    owns_streams: bool = True  # an exec's socket is closed with its shell; a shared one is not


Opener = Callable[[str], "ShellLink | None"]


class MainBash:
    """The container's main process (`attachable_command`), lent once to the internal shell.

    Its socket outlives that shell: the model's shell, a child of that bash, writes to
    the same socket's stderr even after a restart of the internal shell through exec.
    """

    def __init__(self, api: Any, container_id: str, nonce: str) -> None:
        self.api, self.container_id, self.nonce = api, container_id, nonce
        self._streams: DockerStreams | None = None
        self._lent = False

    def attach(self, cwd: str) -> ShellLink | None:
        if self._lent:
            return None
        self._lent = True
        raw = self.api.attach_socket(self.container_id, params={"stdin": 1, "stdout": 1, "stderr": 1, "stream": 1})
        self._streams = DockerStreams(raw, merge=False)
        return ShellLink(self._streams, 1, self._streams.send, gone=f"\n{GONE}{self.nonce}".encode(),
                         owns_streams=False)

    def close(self) -> None:
        if self._streams is not None:
            self._streams.close()


class PersistentShell:
    """One long-lived bash process; not thread-safe by design, guarded by a lock.

    `opener` starts the bash (given the directory to start in) when there is a cheaper way
    than an exec, returning None when there is not; `side` runs a short script for process
    control (signals) while this shell is busy, through an exec unless given.
    """

    def __init__(
        self,
        api: Any,
        container_id: str,
        *,
        workdir: str = "/",
        output_limit: int = 1_000_000,
        start_timeout: float = 20.0,
        interrupt_grace: float = 2.0,
        opener: Opener | None = None,
        side: Callable[[str], None] | None = None,
        spawns: bool = False,
    ) -> None:
        self.api = api
        self.container_id = container_id
        self.workdir = workdir
        self.output_limit = output_limit
        self.start_timeout = start_timeout
        self.interrupt_grace = interrupt_grace
        self._opener = opener
        self._side = side or self._side_exec
        self._spawns = spawns  # keeps its stderr on fd 9 for the children it spawns
        self._lock = threading.Lock()
        self._nonce = secrets.token_hex(8)
        self._seq = 0
        self._link: ShellLink | None = None
        self._exec_id: str | None = None
        self._gone_tail = b""
        self._gone_code: int | None = None
        self._pid: int | None = None
        self._scan = b""
        self._marker = b""
        self.cwd = workdir
        self.restarts = 0
        self.prelude = ""  # shell code every (re)start runs first: state a restart must keep (a ulimit)

    # -- lifecycle -------------------------------------------------------
    def start(self) -> None:
        link = self._opener(self.cwd) if self._opener else None
        if link is None:
            link = self._exec_link()
        self._link, self._exec_id, self._gone_tail, self._gone_code = link, link.exec_id, b"", None
        keep_stderr = "9>&2 " if self._spawns else ""
        boot = (f"cd {ansi_c_quote(self.cwd.encode('utf-8', 'surrogateescape'))} 2>/dev/null; exec {keep_stderr}2>&1; "
                f"unset HISTFILE; PS1=; PS2=; {self.prelude + '; ' if self.prelude else ''}echo __moe_pid=$$\n").encode()
        try:
            reply = self._exchange(boot + self._sentinel_command(), self.start_timeout)
        except ShellExited:
            reply = _Reply(HeadTailBuffer(self.output_limit), None)
        match = re.search(rb"__moe_pid=(\d+)", reply.body)
        if reply.exit_code is None or not match:
            self.close()
            if link.exec_id is None:  # nothing to attach to or spawn from: exec instead
                opener, self._opener = self._opener, None
                try:
                    return self.start()
                finally:
                    self._opener = opener
            raise SandboxError("could not start a shell in the container (is bash installed in the image?)")
        self._pid = int(match.group(1))

    def _exec_link(self) -> ShellLink:
        exec_id = self.api.exec_create(
            self.container_id,
            ["bash", "--noprofile", "--norc"],
            stdin=True,
            stdout=True,
            stderr=True,
            tty=False,
            workdir=self.cwd,
        )["Id"]
        streams = DockerStreams(self.api.exec_start(exec_id, socket=True), merge=not self._spawns)
        return ShellLink(streams, 1, streams.send, exec_id=exec_id)

    def close(self) -> None:
        link, self._link = self._link, None
        if link is None or not link.owns_streams:
            return
        try:
            link.send(b"exit 0\n")
        except ShellExited:
            pass
        link.streams.close()

    def _restart(self) -> None:
        self.close()
        self.restarts += 1
        self.start()

    def spawn_child(self, cwd: str) -> ShellLink | None:
        """A second bash, child of this one: it reads what this one relays through a FIFO and
        writes to the container's stderr, so starting it costs no exec. None if it cannot be.
        """
        link = self._link
        if link is None or not self._spawns:
            return None
        nonce = secrets.token_hex(8)
        # `exec 7>` waits for the child to open the FIFO (so it can be unlinked), then fd 7 is
        # reopened read-write: a write after the child died then never raises SIGPIPE here. It
        # replaces the previous child's FIFO, which then ends at EOF, as it does when this bash dies.
        script = (
            '__moe_d=$(command mktemp -d 2>/dev/null) && command mkfifo "$__moe_d/in" && '
            '{ ( exec 7>&-; bash --noprofile --norc <"$__moe_d/in" 9>&-; rc=$?; '
            f'echo; echo {GONE}{nonce} $rc ) >&9 2>&9 & }} && __moe_child=$! && '
            'exec 7>"$__moe_d/in" && exec 7<>"$__moe_d/in" && command rm -rf "$__moe_d" && echo __moe_spawned'
        )
        if "__moe_spawned" not in self.run(script, timeout=self.start_timeout).output:
            return None

        def relay(data: bytes) -> None:
            """Hand `data` to the child without waiting for an answer: whatever goes wrong (the
            child or this bash gone) ends with the child's gone-line, which its reader sees."""
            with self._lock:
                if self._link is not link:
                    raise ShellExited()  # this bash died or restarted: the FIFO went with it
                # `kill -0`: a dead child's FIFO is never written to, so a big write cannot block here.
                link.send(b'kill -0 "$__moe_child" 2>/dev/null && printf %s ' + ansi_c_quote(data).encode()
                          + b" >&7 2>/dev/null\n")

        return ShellLink(link.streams, 2, relay, gone=f"\n{GONE}{nonce}".encode(), owns_streams=False)

    # -- commands --------------------------------------------------------
    def run(self, command: str | bytes, timeout: float | None = None,
            stdin: Iterable[bytes] | None = None) -> CommandResult:
        """Run `command`; its stdin is /dev/null, or the bytes of `stdin` (streamed, then end-of-file).

        `stdin` travels on this shell's own input, framed (`_framed`): no exec, no archive
        API. `timeout` (seconds) counts from when the last byte was sent.
        """
        with self._lock:
            notes: list[str] = []
            restarted = False
            if self._link is None:
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
            data = command.encode("utf-8", "surrogateescape") if isinstance(command, str) else command
            payload = b"eval " + ansi_c_quote(data).encode() + b" < /dev/null\n"
            started = time.monotonic()
            buffer = HeadTailBuffer(self.output_limit)
            try:
                if stdin is not None:
                    self._send_framed(data, stdin)
                    payload = b""
                reply = self._exchange(payload + self._sentinel_command(), timeout, buffer)
            except ShellExited:
                code = self._exit_code()
                cwd = self.cwd
                buffer.write(self._scan)
                self._restart()
                return CommandResult(
                    output=buffer.getvalue().decode("utf-8", errors="surrogateescape"),
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
                output=reply.body.decode("utf-8", errors="surrogateescape"),
                exit_code=reply.exit_code,
                duration=time.monotonic() - started,
                timed_out=reply.timed_out,
                truncated_bytes=reply.dropped,
                restarted=restarted,
                notes=tuple(notes),
            )

    def _send_framed(self, command: bytes, chunks: Iterable[bytes]) -> None:
        """Send `command` reading this shell's own input, then `chunks` framed for it.

        bash reads its commands a byte at a time from a pipe, so what follows the command's
        line is left for the command: frames of a length line and that many bytes (`head -c`
        reads exactly that many), then a 0 line. Frames are at least `FRAME_BYTES` (but the
        last), so that a large stream costs few `head` processes.
        """
        assert self._link is not None
        send = self._link.send
        self._scan = b""
        send(_FRAMED + ansi_c_quote(command).encode() + b"\n")
        pending: list[bytes] = []
        size = 0
        try:
            for chunk in chunks:
                pending.append(chunk)
                size += len(chunk)
                if size >= FRAME_BYTES:
                    send(b"%d\n" % size + b"".join(pending))
                    pending, size = [], 0
        except BaseException:  # the stream failed on our side: end it where it stands, and the command
            send(b"0\n" + self._sentinel_command())
            raise
        send((b"%d\n" % size + b"".join(pending) if size else b"") + b"0\n")

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
        if self._link is None:
            raise ShellExited()
        if payload:
            self._scan = b""
            self._link.send(payload)
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
                    self.cwd = cwd.decode("utf-8", errors="surrogateescape") or self.cwd
                    return _Reply(buffer, int(rc))
            elif len(self._scan) > keep:
                buffer.write(self._scan[:-keep])
                self._scan = self._scan[-keep:]

    def _read_payload(self, deadline: float | None) -> bytes | None:
        """This shell's output bytes; ShellExited when its socket ends or its gone-line shows."""
        link = self._link
        if link is None:
            raise ShellExited()
        try:
            out = link.streams.read(link.stream, deadline)
        except ShellExited:
            self._link = None
            raise
        if out and link.gone:
            window = self._gone_tail + out
            at = window.find(link.gone)
            if at >= 0:
                self._scan += window[len(self._gone_tail) : at]  # output before the gone-line is the command's
                code = re.match(rb" (\d+)", window[at + len(link.gone) :])
                self._gone_code = int(code.group(1)) if code else None
                self._link = None
                raise ShellExited()
            self._gone_tail = window[-len(link.gone) :]
        return out

    def _drain(self) -> int:
        """Throw away output that arrived between commands (background jobs)."""
        dropped = 0
        try:
            while self._link is not None:
                chunk = self._read_payload(time.monotonic())
                if chunk is None:
                    break
                dropped += len(chunk)
        except ShellExited:
            self._restart()
        return dropped

    # -- process control through side channels -----------------------------
    def stop_command(self) -> None:
        """Kill the running command, loops of the shell itself included: its processes, then the shell.

        For another thread, while `run` waits: `run` then returns, and the shell is restarted.
        """
        self._kill_shell()

    def _side_exec(self, script: str) -> None:
        exec_id = self.api.exec_create(self.container_id, ["bash", "-c", script], stdout=True, stderr=True)["Id"]
        self.api.exec_start(exec_id)

    def _signal_children(self, sig: str) -> None:
        if self._pid:
            self._side(f"bash -c {ansi_c_quote(_SIGNAL_TREE.encode())} signal-tree {self._pid} {sig}")

    def _kill_shell(self) -> None:
        if self._pid:
            self._signal_children("KILL")
            self._side(f"kill -KILL {self._pid}")  # no procps in the image: the builtin

    def _exit_code(self) -> int | None:
        if self._gone_code is not None or not self._exec_id:
            return self._gone_code
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


