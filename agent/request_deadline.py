"""A wall-clock deadline over each whole HTTP request of the model client.

httpx's timeouts are per operation: its read timeout starts again with every chunk that
arrives, so a server (or proxy) that answers `200 OK`, `Content-Length: 100000` and then
sends one byte every two seconds keeps a request alive for days, past the run's time limit
and past `agent doctor`'s budget. Here every request gets a watchdog: when the request's
own timeout (which the model client already caps by the time left) has passed on the
wall clock, the watchdog shuts the request's socket down from its own thread, so the read
in flight fails at once. The request then ends as a timeout (`cut_at_deadline`).

The socket is the one httpcore reports through its `trace` request extension when it opens
the request's connection (`connect_tcp` / `connect_unix_socket`). A kept-alive connection
opens before an earlier request, so the client built here keeps none: each request opens
its own (about 0.1 ms on loopback, one TLS handshake to a remote server, against model
replies of seconds).
"""

from __future__ import annotations

import socket
import sys
import threading
from types import ModuleType
from typing import Any

_KEY = "moe_agent.request_deadline"  # our watchdog, in the request's extensions
_CONNECTED = ("connect_tcp.complete", "connect_unix_socket.complete")
_FINISHED = ("response_closed.complete", "response_closed.failed", "connect_tcp.failed",
             "connect_unix_socket.failed")


class _Watchdog:
    """Shuts one request's connection down once `seconds` (wall clock) have passed."""

    def __init__(self, seconds: float) -> None:
        self.expired = False
        self._socket: socket.socket | None = None
        self._lock = threading.Lock()
        self._timer = threading.Timer(seconds, self._expire)
        self._timer.daemon = True
        self._timer.start()

    def trace(self, name: str, info: dict[str, Any]) -> None:
        """httpcore's trace callback, called in the requesting thread as the request goes."""
        if name.endswith(_CONNECTED):
            stream = info.get("return_value")
            sock = stream.get_extra_info("socket") if stream is not None else None
            with self._lock:
                self._socket = sock
                if self.expired:
                    _shut(sock)
        elif name.endswith(_FINISHED):
            self._timer.cancel()

    def _expire(self) -> None:
        with self._lock:
            self.expired = True
            _shut(self._socket)


def _shut(sock: socket.socket | None) -> None:
    """Wake any read or write blocked on `sock` (it then sees the connection closed).

    `socket.socket.shutdown` itself, not an `SSLSocket`'s override, which also drops the
    TLS object another thread is reading through.
    """
    if sock is None:
        return
    try:
        socket.socket.shutdown(sock, socket.SHUT_RDWR)
    except OSError:  # already closed: the request ended meanwhile
        pass


def _watch(request: Any) -> None:
    """httpx's request hook: arm a watchdog for the request's own timeout, in seconds."""
    timeouts = request.extensions.get("timeout") or {}
    seconds = max((value for value in timeouts.values() if value is not None), default=None)
    if seconds is None:
        return
    watchdog = _Watchdog(seconds)
    request.extensions[_KEY] = watchdog
    request.extensions["trace"] = watchdog.trace


def cut_at_deadline(request: Any) -> bool:
    """Whether `request` failed because its watchdog shut it down (a timeout, not a broken server)."""
    watchdog = request.extensions.get(_KEY) if request is not None else None
    return bool(watchdog is not None and watchdog.expired)


def deadline_client(client_type: type, **kwargs: Any) -> Any:
    """An httpx client (of `client_type`, e.g. the OpenAI SDK's default one) whose every request
    ends by its timeout on the wall clock, however slowly the server sends."""
    limits = _transport(client_type).Limits(max_keepalive_connections=0)
    return client_type(limits=limits, event_hooks={"request": [_watch]}, **kwargs)


def _transport(client_type: type) -> ModuleType:
    """The HTTP library `client_type` is built on: `httpx`, or its fork `httpx2`, which the
    OpenAI SDK uses from version 3 on (its wheel requires `httpx2`, not `httpx`). Taken from
    the class, so this module imports neither and works with the SDK that is installed.

    Raises `TypeError` for a class built on neither.
    """
    for base in client_type.__mro__:
        package = base.__module__.partition(".")[0]
        if package in ("httpx", "httpx2"):
            return sys.modules[package]
    raise TypeError(f"{client_type.__qualname__} is not an httpx client")
