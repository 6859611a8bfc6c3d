"""What every fake server here shares: keep-alive HTTP/1.1 that answers without delay.

Python's `http.server` answers keep-alive requests ~45 ms late when headers and body go
out as separate writes (Nagle meets delayed ACK), so sockets get TCP_NODELAY and every
response leaves in a single write.
"""

from __future__ import annotations

import socket
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler
from typing import Any


class FastHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, like the real servers

    def setup(self) -> None:
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: tests read what the fake recorded, not access logs."""

    @property
    def fake(self) -> Any:
        return self.server.fake  # type: ignore[attr-defined]

    def send_once(self, status: int, payload: bytes, headers: dict[str, str]) -> None:
        """Status line, headers and body in ONE write, so Nagle never holds the body back."""
        lines = [f"HTTP/1.1 {status} {HTTPStatus(status).phrase}", f"Content-Length: {len(payload)}",
                 *(f"{name}: {value}" for name, value in headers.items() if name.lower() != "content-length")]
        try:
            self.wfile.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + payload)
        except OSError:  # the client gave up (timed out) before we answered
            self.close_connection = True
