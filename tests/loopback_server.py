"""A real HTTP server on 127.0.0.1 for the download tests (``http.server`` in a thread).

Each path serves one :class:`Route`: a file (with HTTP Range support, optionally cut off after
some bytes on its first full request, like a dropped connection), an HTML page, a 404, or a
server that sends headers and then stalls. Every request is logged with its ``Range`` header.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Literal


@dataclass
class Route:
    """What one path answers.

    Attributes:
        kind: ``"file"``, ``"html"``, ``"404"`` or ``"stall"``.
        body: the bytes of a ``"file"`` route (or read from ``path``).
        path: a file to serve instead of ``body`` (read per request, so it can be large).
        cut_first_at: for ``"file"``: the first request without ``Range`` announces the full
            length but sends only this many bytes and closes the connection.
        range_support: answer ``Range`` requests with 206 (else always the whole file).
        chunk_delay: seconds to wait after each 256 KiB sent (a slow link), 0 for none.
    """

    kind: Literal["file", "html", "404", "stall"] = "file"
    body: bytes = b""
    path: Path | None = None
    cut_first_at: int | None = None
    range_support: bool = True
    chunk_delay: float = 0.0
    _cut_done: bool = field(default=False, repr=False)

    def data(self) -> bytes:
        return self.path.read_bytes() if self.path is not None else self.body


@dataclass
class LoopbackServer:
    """A running server: its base URL, its routes and the requests it saw."""

    url: str
    routes: dict[str, Route]
    log: list[dict[str, str | None]]
    stop_stalling: threading.Event

    def requests_to(self, path: str) -> list[dict[str, str | None]]:
        """Returns the logged requests for ``path`` (each ``{"path", "range"}``)."""
        return [r for r in self.log if r["path"] == path]


def _handler(server_state: LoopbackServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:  # keep test output quiet
            pass

        def do_GET(self) -> None:
            state = server_state
            state.log.append({"path": self.path, "range": self.headers.get("Range")})
            route = state.routes.get(self.path)
            if route is None or route.kind == "404":
                self.send_error(404, "Not Found")
                return
            if route.kind == "html":
                page = b"<!DOCTYPE html><html><body><h1>Please sign in</h1></body></html>"
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(page)))
                self.end_headers()
                self.wfile.write(page)
                return
            if route.kind == "stall":
                self.send_response(200)
                self.send_header("Content-Type", "application/octet-stream")
                self.send_header("Content-Length", "1000000")
                self.end_headers()
                self.wfile.write(b"\x80\x04")
                self.wfile.flush()
                state.stop_stalling.wait(60)
                return
            self._send_file(route)

        def _send_file(self, route: Route) -> None:
            data = route.data()
            start = 0
            requested = self.headers.get("Range")
            if requested and route.range_support and requested.startswith("bytes="):
                start = int(requested[len("bytes=") :].split("-")[0])
                if start >= len(data):
                    self.send_response(416)
                    self.send_header("Content-Range", f"bytes */{len(data)}")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                self.send_response(206)
                self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
            else:
                self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(len(data) - start))
            self.end_headers()
            payload = memoryview(data)[start:]
            if route.cut_first_at is not None and not route._cut_done and start == 0:
                route._cut_done = True
                payload = payload[: route.cut_first_at]
                self.close_connection = True
            step = 256 * 1024 if route.chunk_delay else len(payload) or 1
            with suppress(BrokenPipeError, ConnectionResetError):
                for start_at in range(0, len(payload), step):
                    self.wfile.write(payload[start_at : start_at + step])
                    if route.chunk_delay and server_state.stop_stalling.wait(route.chunk_delay):
                        return

    return Handler


@contextmanager
def loopback_server(routes: dict[str, Route] | None = None) -> Iterator[LoopbackServer]:
    """Yields a :class:`LoopbackServer` on a free port of 127.0.0.1; stops it on exit."""
    state = LoopbackServer("", dict(routes or {}), [], threading.Event())
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    httpd.daemon_threads = True
    state.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        state.stop_stalling.set()
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)
