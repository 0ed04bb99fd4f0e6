"""The ingress over HTTP: each request becomes a Lambda function URL event (payload 2.0)."""

import json
import logging
import socket
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from broker.functions.local import events

log = logging.getLogger("broker.functions.runner")

MAX_HTTP_BODY = 6 * 1024 * 1024  # a function URL's request payload limit


class IngressServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, address, handler):
        super().__init__(address, _HTTPHandler)
        self.handler = handler


class _HTTPHandler(BaseHTTPRequestHandler):
    server: IngressServer
    protocol_version = "HTTP/1.1"  # keep-alive: curl loops and benchmarks reuse connections

    def setup(self):
        super().setup()
        # Headers and body go out in two writes: without this, Nagle's algorithm holds the
        # body until the client's delayed ACK (40 ms) on every keep-alive request.
        self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

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
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            chunks, total = [], 0
            while True:
                size = int(self.rfile.readline().split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                total += size
                if total > MAX_HTTP_BODY:
                    return None
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_HTTP_BODY:
            return None
        return self.rfile.read(length) if length else b""

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
        try:
            result = self.server.handler(event, events.LambdaContext("ingress", timeout_s=30))
        except Exception:
            log.exception("ingress handler raised")
            # What a function URL answers when the function fails.
            self._error(502, "internal_error", "The function failed.")
            return
        self._send(*events.http_answer(result))

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _handle
