"""The ingress over HTTP: each request becomes a Lambda function URL event (payload 2.0).

Slow clients are cut as a load balancer in front of a function would cut them, so one cannot
hold a server thread: a connection waits `idle_timeout` for its next request (an ALB's
default idle timeout, 60 s); once a request line has arrived, its headers and body must come
within `body_timeout` (10 s, the HTTP function's own timeout), or the answer is 408 and the
connection is closed. A body shorter than its Content-Length is such a slow body. A
Content-Length that is not a non-negative integer is a 400 at once.
"""

import json
import logging
import socket
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from broker.functions.local import events

log = logging.getLogger("broker.functions.runner")

MAX_HTTP_BODY = 6 * 1024 * 1024  # a function URL's request payload limit
IDLE_TIMEOUT_S = 60.0
BODY_TIMEOUT_S = 10.0


class BodyTimeout(Exception):
    """The request did not arrive whole within `body_timeout`."""


class IngressServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(
        self,
        address,
        handler,
        *,
        idle_timeout: float = IDLE_TIMEOUT_S,
        body_timeout: float = BODY_TIMEOUT_S,
    ):
        super().__init__(address, _HTTPHandler)
        self.handler = handler
        self.idle_timeout = idle_timeout
        self.body_timeout = body_timeout


class _HTTPHandler(BaseHTTPRequestHandler):
    server: IngressServer
    protocol_version = "HTTP/1.1"  # keep-alive: curl loops and benchmarks reuse connections

    def setup(self):
        super().setup()
        # Headers and body go out in two writes: without this, Nagle's algorithm holds the
        # body until the client's delayed ACK (40 ms) on every keep-alive request.
        self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def handle_one_request(self):
        # Waiting for a request line: a timeout there closes the connection quietly (the
        # base class catches it).
        self.connection.settimeout(self.server.idle_timeout)
        super().handle_one_request()

    def parse_request(self) -> bool:
        # The request line is in: from here headers and body share one deadline.
        self._deadline = time.monotonic() + self.server.body_timeout
        self.connection.settimeout(self.server.body_timeout)
        return super().parse_request()

    def _wait(self) -> None:
        """Bounds the next read by what is left of the request's deadline."""
        left = self._deadline - time.monotonic()
        if left <= 0:
            raise BodyTimeout
        self.connection.settimeout(left)

    def _read(self, length: int) -> bytes:
        chunks, left = [], length
        while left > 0:
            self._wait()
            try:
                chunk = self.rfile.read1(min(left, 65536))
            except TimeoutError:
                raise BodyTimeout from None
            if not chunk:  # the client closed with the body short: nobody to answer
                raise BodyTimeout
            chunks.append(chunk)
            left -= len(chunk)
        return b"".join(chunks)

    def _readline(self) -> bytes:
        self._wait()
        try:
            return self.rfile.readline(65537)
        except TimeoutError:
            raise BodyTimeout from None

    def log_message(self, format, *args):  # noqa: A002 (the base class's name)
        log.debug("ingress %s %s", self.address_string(), format % args)

    def _send(self, status: int, headers: list[tuple[str, str]], body: bytes) -> None:
        self.send_response(status)
        for name, value in headers:
            if name.lower() not in ("content-length", "connection", "transfer-encoding"):
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _error(self, status: int, code: str, message: str) -> None:
        body = json.dumps({"error": {"code": code, "message": message}}).encode()
        self._send(status, [("Content-Type", "application/json")], body)

    def _body(self) -> bytes | None:
        """The body; None when over MAX_HTTP_BODY. ValueError for a malformed length,
        BodyTimeout for a slow or short one."""
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            chunks, total = [], 0
            while True:
                size = int(self._readline().split(b";", 1)[0].strip() or b"0", 16)
                if size < 0:
                    raise ValueError("negative chunk size")
                if size == 0:
                    while self._readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                total += size
                if total > MAX_HTTP_BODY:
                    return None
                chunks.append(self._read(size))
                self._readline()
        declared = (self.headers.get("Content-Length") or "0").strip()
        if not declared.isdigit():  # -1, 1e3, "10, 10": read until EOF, or nonsense
            raise ValueError(f"Content-Length {declared[:20]!r}")
        length = int(declared)
        if length > MAX_HTTP_BODY:
            return None
        return self._read(length) if length else b""

    def _handle(self) -> None:
        if self.path == "/_local/health":
            self._send(200, [("Content-Type", "application/json")], b'{"ok":true}')
            return
        try:
            body = self._body()
        except ValueError:
            self.close_connection = True
            self._error(400, "parse_error", "Malformed request body.")
            return
        except BodyTimeout:
            self.close_connection = True
            try:
                self._error(
                    408,
                    "request_timeout",
                    f"The request did not arrive within {self.server.body_timeout:g} s.",
                )
            except OSError:
                pass  # the client is gone
            return
        if body is None:
            self.close_connection = True
            self._error(413, "too_large", "The request body is over 6 MB.")
            return
        host = self.headers.get("Host") or f"{self.server.server_address[0]}"
        event = events.http_event(
            method=self.command,
            target=self.path,
            headers=list(self.headers.items()),
            body=body,
            source_ip=self.client_address[0],
            domain=host.split(":", 1)[0],
        )
        self.connection.settimeout(self.server.idle_timeout)  # for writing the answer
        try:
            result = self.server.handler(event, events.LambdaContext("ingress", timeout_s=30))
        except Exception:
            log.exception("ingress handler raised")
            # What a function URL answers when the function fails.
            self._error(502, "internal_error", "The function failed.")
            return
        self._send(*events.http_answer(result))

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _handle
