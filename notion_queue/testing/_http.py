"""Plumbing shared by the fakes: the token bucket they limit with, and a loopback server."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx

from notion_queue.pacing import TokenBucket

__all__ = ["Handler", "TokenBucket", "serve"]


Handler = Callable[[httpx.Request], httpx.Response]


@contextlib.contextmanager
def serve(handler: Handler, host: str = "127.0.0.1", port: int = 0) -> Iterator[str]:
    """Serve `handler` over real HTTP on loopback; yields the base URL. Stops on exit.

    A handler that raises `httpx.TimeoutException` or `httpx.TransportError` makes the server
    drop the connection without an answer, which is what a client sees of a timeout or an outage.
    """

    class _RequestHandler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _handle(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            request = httpx.Request(
                self.command,
                f"http://{self.headers.get('Host', host)}{self.path}",
                headers=list(self.headers.items()),
                content=body,
            )
            try:
                response = handler(request)
            except (httpx.TimeoutException, httpx.TransportError):
                self.close_connection = True
                with contextlib.suppress(OSError):
                    self.connection.shutdown(2)
                return
            payload = response.read()
            self.send_response(response.status_code)
            for name, value in response.headers.items():
                if name.lower() not in ("content-length", "transfer-encoding", "connection"):
                    self.send_header(name, value)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        do_GET = do_POST = do_PATCH = do_DELETE = do_PUT = _handle

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer((host, port), _RequestHandler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, name="fake-http", daemon=True)
    thread.start()
    try:
        yield f"http://{host}:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
