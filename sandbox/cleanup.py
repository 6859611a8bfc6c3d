"""Never leave anything behind: this process's containers on exit and signals, others' by label,
and the temporary directories of runs whose process is gone (named after their owner)."""

from __future__ import annotations

import atexit
import os
import re
import shutil
import signal
import socket
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

LABEL = "moe-agent"
_live: set[str] = set()
_lock = threading.Lock()
_installed = False


def remember(container_id: str) -> None:
    with _lock:
        _live.add(container_id)


def forget(container_id: str) -> None:
    with _lock:
        _live.discard(container_id)


def live() -> set[str]:
    with _lock:
        return set(_live)


def remove_live() -> None:
    """Remove every container this process started and has not closed yet."""
    ids = live()
    if not ids:
        return
    try:
        import docker

        client = docker.from_env(timeout=30)
    except Exception:
        return
    for cid in ids:
        remove_container(client, cid)
        forget(cid)


def remove_container(client: Any, container_id: str, limit: float = 30.0) -> bool:
    """Remove a container (running or not, with its volumes); True once Docker no longer has it.

    Every removal goes through here, because a container that has just ended by itself is
    already being removed (`auto_remove`, see `sandbox.docker.attachable_command`): Docker then
    answers 409 ("removal already in progress") at once while the container is still listed,
    as `removing`, for up to a second or more on a loaded machine. On 409 this waits (polling
    every 50 ms, up to `limit` seconds) until it is gone. False: the engine refused otherwise,
    went away, or was still removing it at the limit.
    """
    from docker.errors import APIError, NotFound

    try:
        client.api.remove_container(container_id, force=True, v=True)
        return True
    except NotFound:
        return True
    except APIError as exc:
        if exc.status_code != 409:
            return False
    except Exception:  # the engine is gone or unreachable
        return False
    deadline = time.monotonic() + limit
    while True:
        try:
            client.api.inspect_container(container_id)
        except NotFound:
            return True
        except Exception:
            return False
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)


# The signals that end a run: Ctrl-C, `kill`/`timeout`/CI runners/`docker stop`, and a closed
# terminal or ssh session. Each ends it the same way, with exit status 128 + its number.
HANDLED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class Interrupted(KeyboardInterrupt):
    """SIGINT, SIGTERM or SIGHUP arrived: the run stops and cleans up; exit status 128 + `signum`.

    A `KeyboardInterrupt`, so every path that already handles Ctrl-C handles the others the same way.
    """

    def __init__(self, signum: int) -> None:
        super().__init__(f"interrupted by {signal.Signals(signum).name}")
        self.signum = signum


class _Signals:
    """This process's signal state: the first signal raises `Interrupted` (at once, or when the
    cleanup it arrived in is done); a second only says cleanup is under way; a third quits at once.

    Never raised where it would do harm (`_cannot_raise_in`): inside the import system's or
    `logging`'s own code, where it can leave a module's import lock, the global import lock or
    logging's lock held by the main thread for good, and the next thread to import that module
    or to set up a logger waits forever (a run at start-up imports in the main thread while its
    background threads import and use the Docker client); nor where Python 3.11 would turn it
    into an error (class creation). A signal arriving there is raised a moment later, once the
    main thread is out of it.

    A handler's exception can also land where Python cannot pass it on: a `__del__` or another
    callback, which print it and go on. Such a swallowed `Interrupted` reaches
    `sys.unraisablehook` instead, and is raised again from there a moment later, so no moment of
    a run loses its signal.
    """

    def __init__(self) -> None:
        self.received: int | None = None
        self.count = 0
        self.raised = False
        self.shield = 0  # depth of `shielded()` blocks in the main thread
        self.again = False  # the next call is a re-delivery (`_later`), not a new signal
        self.pending = False  # `_later` is sending the signal again
        self.reported = False  # the command has told the user (one line, its JSON)

    def handle(self, signum: int, frame: FrameType | None) -> None:
        if self.again:
            self.again = False
        else:
            self.count += 1
            if self.received is None:
                self.received = signum
            if self.count >= 3:
                _say(b"error: interrupted three times; quitting without cleaning up "
                     b"(the next run removes the containers left)\n")
                os._exit(128 + self.received)
            if self.count == 2:
                _say(b"interrupted: cleaning up, one moment (a third signal quits at once)\n")
        if self.raised or self.shield:
            return
        if _cannot_raise_in(frame):
            self._later()
            return
        self.raised = True
        raise Interrupted(self.received or signum)

    def release(self) -> None:
        """The shield is down: raise the interruption that arrived under it, if any."""
        if self.shield == 0 and self.received is not None and not self.raised:
            self.raised = True
            raise Interrupted(self.received)

    def swallowed(self, unraisable: Any) -> None:
        """`sys.unraisablehook`: an `Interrupted` that could not propagate is raised again, later."""
        if not isinstance(unraisable.exc_value, Interrupted):
            _unraisable_default(unraisable)
            return
        self.raised = False
        self._later()

    def _later(self) -> None:
        """Send the signal received to the main thread again every 10 ms until it is raised there.

        From a thread of its own (one at a time), never from the handler or callback that could
        not raise: a re-sent signal that comes while the handler still runs (on a loaded machine,
        while it starts that thread) is deferred too, and the next one comes 10 ms later. A real
        signal, not `_thread.interrupt_main`: it also ends a wait in the main thread (a lock, a
        socket), as the first one did. It stops while a shield is up: `release` raises then.
        """
        if self.pending:
            return
        self.pending = True

        def resend() -> None:
            while True:
                time.sleep(0.01)
                if self.raised or self.shield:
                    self.pending = False
                    if self.raised or self.shield:  # looked at again: `swallowed` may have just reset it
                        return
                    self.pending = True
                self.again = True
                try:
                    signal.pthread_kill(threading.main_thread().ident or 0, self.received or signal.SIGINT)
                except OSError:  # the main thread has ended: so has the run
                    self.pending = False
                    return

        threading.Thread(target=resend, name="moe-signal", daemon=True).start()


# Code that takes a lock and only then enters the `try` that releases it, in pure Python: an
# exception raised between the two leaves the lock held by the main thread for good. CPython's
# import system (a module's import lock, the global import lock) and `logging` (its module lock,
# taken by `getLogger` and by a logger's first check of its level). Not `threading`, whose waits
# (a future's result) must stay interruptible, and which releases its locks in `with` blocks.
_LOCKING_CODE = frozenset({"<frozen importlib._bootstrap>", "<frozen importlib._bootstrap_external>",
                           os.path.join(os.path.dirname(threading.__file__), "logging", "__init__.py")})


def _cannot_raise_in(frame: FrameType | None) -> bool:
    """Whether an exception raised by a signal handler called in `frame` would do harm there.

    Inside `_LOCKING_CODE` (that frame only: a module's own code being imported or a log
    handler's `emit` are ordinary places to stop, and the blocks above them release their locks
    as the exception passes); anywhere below this module's own handling (`_HANDLING`); and,
    before Python 3.12, anywhere below a `__set_name__` (class creation: a dataclass's or a
    pydantic model's fields), which turns every exception into a `RuntimeError`, so the
    interruption would end the run as an error with a traceback.
    """
    if frame is None:
        return False
    if frame.f_code.co_filename in _LOCKING_CODE:
        return True
    while frame is not None:
        if frame.f_code in _HANDLING or (_SET_NAME_WRAPS and frame.f_code.co_name == "__set_name__"):
            return True
        frame = frame.f_back
    return False


_SET_NAME_WRAPS = sys.version_info < (3, 12)
# This module's own handling: a signal that comes while it runs (the re-sent one, on a loaded
# machine, while `_later` starts its timer) runs the handler again inside it, and an exception
# raised there would leave through the frame the first call was deferred from.
_HANDLING = frozenset({_Signals.handle.__code__, _Signals.swallowed.__code__, _Signals._later.__code__})


def _say(line: bytes) -> None:
    """A line on stderr from a signal handler; none when stderr is gone (SIGHUP: the terminal closed)."""
    try:
        os.write(2, line)
    except OSError:
        pass


_signals = _Signals()
_unraisable_default = sys.unraisablehook


def install_handlers() -> None:
    """SIGINT, SIGTERM and SIGHUP all raise `Interrupted` in the main thread; containers go at exit.

    Idempotent. Called by the CLI before any work, and by `start_sandbox` for library users.
    """
    global _installed
    if not _installed:
        _installed = True
        atexit.register(remove_live)
    if threading.current_thread() is threading.main_thread():
        sys.unraisablehook = _signals.swallowed
        for signum in HANDLED:
            if signal.getsignal(signum) != _signals.handle:
                signal.signal(signum, _signals.handle)


def interrupted_by() -> int | None:
    """The first signal this process received, if any (SIGHUP is 1, SIGINT 2, SIGTERM 15)."""
    return _signals.received


def mark_reported() -> None:
    """The command has said it was interrupted (its line, its JSON): the CLI says nothing more."""
    _signals.reported = True


def unreported() -> int | None:
    """The signal that ended this process's command without the command saying so, if any."""
    return None if _signals.reported else _signals.received


@contextmanager
def shielded(deliver: bool = True) -> Iterator[None]:
    """Cleanup that a signal must not cut in half: a signal arriving inside waits for its end.

    With `deliver` False it waits longer, until `deliver_pending()`: for a block that makes
    what the `try` after it cleans up. Only the main thread receives signals, so elsewhere
    this does nothing.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    _signals.shield += 1
    try:
        yield
    finally:
        _signals.shield -= 1
    if deliver:
        _signals.release()


def deliver_pending() -> None:
    """Raise now the interruption that arrived in a `shielded(deliver=False)` block, if any."""
    if threading.current_thread() is threading.main_thread():
        _signals.release()


def process_start(pid: int) -> str | None:
    """When `pid` started, in clock ticks since boot (/proc/<pid>/stat field 22); None if it is gone.

    With the host and the boot id it names one process for good: a PID reused later has
    another start time.
    """
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rfind(")") + 2:].split()  # the command name may hold spaces and parentheses
    return fields[19] if len(fields) > 19 else None


def _boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return ""


def owner_labels() -> dict[str, str]:
    """Labels naming this process as the owner of a container: host, boot, PID and its start time."""
    return {
        f"{LABEL}.host": socket.gethostname(),
        f"{LABEL}.boot": _boot_id(),
        f"{LABEL}.pid": str(os.getpid()),
        f"{LABEL}.pid_start": process_start(os.getpid()) or "",
    }


def owner_state(labels: dict[str, str]) -> str:
    """"alive", "gone", or "unknown" (another host, or labels too old to tell) for a container's owner."""
    if labels.get(f"{LABEL}.host") != socket.gethostname():
        return "unknown"
    pid, started = labels.get(f"{LABEL}.pid", ""), labels.get(f"{LABEL}.pid_start")
    if not pid.isdigit():
        return "unknown"
    boot = labels.get(f"{LABEL}.boot")
    if boot and boot != _boot_id():
        return "gone"  # the machine rebooted since
    now = process_start(int(pid))
    if now is None:
        return "gone"
    if started is None:  # made before owners carried a start time: a live PID may be a reused one
        return "unknown"
    return "alive" if now == started else "gone"


@dataclass(frozen=True)
class Leftover:
    """A labelled sandbox container as `agent sandbox ls` and `doctor` show it."""

    id: str
    name: str
    image: str
    run_id: str
    status: str
    age_seconds: float
    pid: int | None
    owner: str = "unknown"  # owner_state(): alive, gone or unknown
    host: str = ""
    instance: str = ""


def leftovers(client: Any, run_id: str | None = None) -> list[Leftover]:
    """Every labelled container on the engine (one API call, no per-container inspect), oldest first."""
    filters = {"label": [f"{LABEL}.run={run_id}"] if run_id else [LABEL]}
    found = []
    now = time.time()
    for c in client.api.containers(all=True, filters=filters):
        labels = c.get("Labels") or {}
        created = float(labels.get(f"{LABEL}.created") or c.get("Created") or now)
        pid = labels.get(f"{LABEL}.pid")
        found.append(
            Leftover(
                id=c["Id"],
                name=(c.get("Names") or ["?"])[0].lstrip("/"),
                image=c.get("Image") or "?",
                run_id=labels.get(f"{LABEL}.run", "?"),
                status=c.get("State") or "?",
                age_seconds=max(0.0, now - created),
                pid=int(pid) if pid and pid.isdigit() else None,
                owner=owner_state(labels),
                host=labels.get(f"{LABEL}.host", ""),
                instance=labels.get(f"{LABEL}.instance", ""),
            )
        )
    return sorted(found, key=lambda item: -item.age_seconds)


def prune(
    client: Any, older_than: float = 0.0, run_id: str | None = None, keep_own: bool = True, force: bool = False
) -> list[Leftover]:
    """Remove labelled containers older than `older_than` seconds whose owner is gone.

    A container whose owner is alive, or cannot be told (another host sharing the engine),
    is kept unless `force`; this process's own live ones are kept unless `keep_own` is False.
    """
    removed = []
    own = live() if keep_own else set()
    for item in leftovers(client, run_id):
        if item.age_seconds < older_than or item.id in own or (item.owner != "gone" and not force):
            continue
        if remove_container(client, item.id):
            removed.append(item)
    return removed


_reaped = False


def reap_orphans(client: Any) -> list[Leftover]:
    """Once per process: remove the containers of runs on this host whose process is gone (killed -9)."""
    global _reaped
    if _reaped:
        return []
    _reaped = True
    try:
        return prune(client)
    except Exception:  # reaping is a courtesy; a run never fails for it
        return []


def parse_age(text: str) -> float:
    """'90s', '15m', '2h', '1d' -> seconds; a bare number is seconds."""
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    text = text.strip().lower()
    try:
        if text and text[-1] in units:
            return float(text[:-1]) * units[text[-1]]
        return float(text)
    except ValueError:
        raise ValueError(f"not a duration: {text!r} (use for example 30m, 2h, 1d)") from None


# -- temporary directories ----------------------------------------------------------------
# `moe-fix-<pid>-<start>-<random>`: the owner's PID and its start time (`process_start`).
_SCRATCH_NAME = re.compile(r"moe-(?P<kind>[a-z]+)-(?P<pid>\d+)-(?P<start>\d+)-[^/]+")


def scratch_dir(kind: str = "fix", root: Path | None = None) -> Path:
    """A new temporary directory (under `root`, default `$TMPDIR`) named after this process, so
    that once it dies (even by `kill -9`) the next run can tell it is nobody's (`stale_scratch`)."""
    return Path(tempfile.mkdtemp(prefix=f"moe-{kind}-{os.getpid()}-{process_start(os.getpid()) or 0}-", dir=root))


def stale_scratch(root: Path | None = None) -> list[Path]:
    """The temporary directories under `root` (default: `$TMPDIR`) whose owner process is gone."""
    found = []
    for path in Path(root or tempfile.gettempdir()).glob("moe-*-*-*-*"):
        named = _SCRATCH_NAME.fullmatch(path.name)
        if named is None or not path.is_dir() or path.is_symlink():
            continue
        owner = {f"{LABEL}.host": socket.gethostname(), f"{LABEL}.pid": named["pid"],
                 f"{LABEL}.pid_start": named["start"]}
        if owner_state(owner) == "gone":
            found.append(path)
    return found


def reap_scratch(root: Path | None = None) -> list[Path]:
    """Remove the temporary directories whose owner is gone (`stale_scratch`); return them."""
    removed = []
    for path in stale_scratch(root):
        shutil.rmtree(path, ignore_errors=True)
        if not path.exists():
            removed.append(path)
    return removed
