"""Never leave containers behind: this process's on exit and signals, others' by label."""

from __future__ import annotations

import atexit
import signal
import sys
import threading
import time
from dataclasses import dataclass
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
        try:
            client.api.remove_container(cid, force=True, v=True)
        except Exception:
            pass
        forget(cid)


def install_handlers() -> None:
    """atexit always; SIGTERM becomes SystemExit so `finally` blocks and atexit run."""
    global _installed
    if _installed:
        return
    _installed = True
    atexit.register(remove_live)
    if threading.current_thread() is threading.main_thread():
        if signal.getsignal(signal.SIGTERM) in (signal.SIG_DFL, None):
            signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))


@dataclass(frozen=True)
class Leftover:
    id: str
    name: str
    image: str
    run_id: str
    status: str
    age_seconds: float
    pid: int | None


def leftovers(client: Any, run_id: str | None = None) -> list[Leftover]:
    filters = {"label": [f"{LABEL}.run={run_id}"] if run_id else [LABEL]}
    found = []
    now = time.time()
    for c in client.containers.list(all=True, filters=filters):
        labels = c.labels or {}
        created = float(labels.get(f"{LABEL}.created", now))
        pid = labels.get(f"{LABEL}.pid")
        found.append(
            Leftover(
                id=c.id,
                name=c.name,
                image=(c.image.tags[0] if c.image and c.image.tags else labels.get("image", "?")),
                run_id=labels.get(f"{LABEL}.run", "?"),
                status=c.status,
                age_seconds=max(0.0, now - created),
                pid=int(pid) if pid and pid.isdigit() else None,
            )
        )
    return sorted(found, key=lambda item: -item.age_seconds)


def prune(client: Any, older_than: float = 0.0, run_id: str | None = None, keep_own: bool = True) -> list[Leftover]:
    """Remove labelled containers older than `older_than` seconds; never our own live ones."""
    removed = []
    own = live() if keep_own else set()
    for item in leftovers(client, run_id):
        if item.age_seconds < older_than or item.id in own:
            continue
        try:
            client.api.remove_container(item.id, force=True, v=True)
            removed.append(item)
        except Exception:
            continue
    return removed


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

