"""The sandbox's disk limit: measured and enforced by us, since Docker here cannot.

Docker limits a container's writable layer (`--storage-opt size`) only on overlay2 over xfs
mounted with `pquota`; on the usual ext4 host (and in CI) whatever the model writes to the
container's own files (/testbed, site-packages, caches) lands on the host's disk unbounded,
and `df` inside shows the host's disk. So the sandbox bounds it itself:

- every file is capped at the limit by RLIMIT_FSIZE, set on the container (`fsize_ulimit`):
  one `dd` cannot write past it;
- what the sandbox wrote (Docker's `SizeRw`, the bytes of the files the container added or
  changed, never the image's, less what it held once the repository was copied in) is
  measured by a watcher for the sandbox's whole life (`poll_interval`: background jobs write
  between commands too) and after each command that ran long enough to have written much
  (`worth_measuring`); a process that grows it past the limit is stopped with the shell;
- at or past the limit (or once the watcher stopped a writer) the model is told, with the
  limit and what is used, and its shell, restarted or not, may only shrink files
  (`ulimit -f 0`, the shell's prelude) until it has deleted enough; a sandbox that grows a
  further `slack` past that (the model raised its own ulimit) ends the run (`SandboxError`).

A measurement is one Docker API call in which the engine walks the layer: about 5 ms for an
empty one, 50 ms for 2,000 files here (`benchmarks/disk_limit.py`); hence not after every
command.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from sandbox.base import SandboxError

MIN_SLACK = 64 * 2**20  # bytes a stopped sandbox may still grow (an index, a patch) before the run ends
WRITE_RATE = 4 * 2**30  # bytes per second a sandbox is assumed to write at most (dd to a page cache: 2+ GB/s here)
POLL_SECONDS = (1.0, 10.0)  # the watcher's shortest and longest wait between measurements
POLL_DUTY = 0.02  # the share of time the watcher may spend measuring (the engine's CPU, walking the layer)


def human_size(size: int) -> str:
    """1.5 GB, 64 MB: how the model and the user read a size (binary units, as Docker's `4g`)."""
    return f"{size / 2**30:.1f} GB" if size >= 2**30 else f"{size / 2**20:.0f} MB"


@dataclass
class DiskLimit:
    """How much the sandbox may write to its writable layer (`limit`, bytes) and what it has written.

    `measure` returns the writable layer's size in bytes now (None when it cannot be told);
    `setting` names where the limit comes from, for messages.
    """

    limit: int
    measure: Callable[[], int | None]
    setting: str = "[sandbox] disk_size"
    used: int = 0
    full: bool = False  # past the limit: the model's writes are refused until it deletes
    stopped_at: int = 0  # the size when writes were stopped
    measured_at: float = 0.0  # time.monotonic() of the last `check` (0: never), so quick commands add up
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def slack(self) -> int:
        return max(MIN_SLACK, self.limit // 8)

    def worth_measuring(self, seconds: float) -> bool:
        """After a command that ran `seconds`: whether it could have reached the limit since the last
        measurement (the time since then counts: many quick commands write as much as one long one)."""
        since = max(seconds, time.monotonic() - self.measured_at)
        return self.full or self.used + since * WRITE_RATE >= self.limit

    def poll_interval(self, cost: float) -> float:
        """Seconds until the watcher measures again: the time the sandbox needs to fill what is left
        at WRITE_RATE, within POLL_SECONDS, and never less than the measurement's `cost` allows."""
        left = max(0, (self.ceiling if self.full else self.limit) - self.used) / WRITE_RATE
        return max(min(max(left, POLL_SECONDS[0]), POLL_SECONDS[1]), cost / POLL_DUTY)

    @property
    def ceiling(self) -> int:
        """Bytes a sandbox whose writes were stopped may reach before the run ends."""
        return max(self.stopped_at, self.limit) + self.slack

    def check(self) -> str | None:
        """Measure; return the note for the model when the state changed (full, or free again).

        Raises `SandboxError` when a sandbox whose writes were stopped grew `slack` further.
        """
        with self._lock:
            used = self.measure()
            if used is None:
                return None
            self.used, self.measured_at = used, time.monotonic()
            if used >= self.limit:  # at it is full too: one file capped at the limit (RLIMIT_FSIZE) fills it exactly
                if not self.full:
                    self.full, self.stopped_at = True, used
                    return self.full_note()
                if used > self.ceiling:
                    raise SandboxError(f"the sandbox wrote {human_size(used)} to its disk, past its limit of "
                                       f"{human_size(self.limit)} ({self.setting}), after its writes were stopped")
                self.stopped_at = min(self.stopped_at, used)  # what it deleted since no longer counts as slack
                return self.full_note()
            if self.full:
                self.full = False
                return (f"disk space is available again: {human_size(used)} of the sandbox's "
                        f"{human_size(self.limit)} are used; writing is allowed again")
            return None

    def stopped(self, used: int) -> None:
        """The watcher stopped processes that wrote `used` bytes: writes are refused from now on."""
        with self._lock:
            self.used = used
            if not self.full:
                self.full, self.stopped_at = True, used

    def grew_past(self, before: int) -> int | None:
        """The watcher's question: the size now, if it is bigger than `before` and than allowed; else None.

        Allowed is the limit, or, once writes were stopped, `slack` more: what a submit writes
        (an index, a patch) must not get it killed.
        """
        used = self.measure()
        allowed = self.ceiling if self.full else self.limit
        return used if used is not None and used > allowed and used > before else None

    def full_note(self) -> str:
        """What the model is told while the sandbox is past its limit."""
        return (f"no space left: this sandbox may write at most {human_size(self.limit)} to its disk "
                f"({self.setting}) and {human_size(self.used)} is written; `df` shows the host's disk, not this "
                f"limit. Writing files is refused (file size limit 0) until you delete at least "
                f"{human_size(max(self.used - self.limit, 2**20))} of files you made (rm); /tmp is separate.")

    def usage_note(self) -> str:
        """What a command that asks about free space (`df`) is told besides its output."""
        return (f"note: `df` shows the host's disk; this sandbox may write at most {human_size(self.limit)} "
                f"to its disk ({self.setting}), of which {human_size(self.used)} is used")
