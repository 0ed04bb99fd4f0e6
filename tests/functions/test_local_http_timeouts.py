"""The local ingress server cuts slow and short request bodies as a load balancer would: a
408 and a closed connection once the request's deadline passes, a 400 at once for a
Content-Length that is not a length, and the function is never called for them."""

import socket
import threading
import time

import pytest

from broker.functions.local.http import IngressServer

HEAD = b"POST /v1/events HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"


@pytest.fixture
def server():
    calls = []

    def handler(event, context):
        calls.append(event)
        return {"statusCode": 202, "body": "{}"}

    srv = IngressServer(("127.0.0.1", 0), handler, idle_timeout=5, body_timeout=0.5)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    srv.calls = calls
    yield srv
    srv.shutdown()
    srv.server_close()


def _connect(server) -> socket.socket:
    sock = socket.create_connection(server.server_address)
    sock.settimeout(30)  # a guard against a hung test, not an assertion on time
    return sock


def _answer(sock) -> bytes:
    """Everything the server sends until it closes the connection."""
    out = b""
    while chunk := sock.recv(65536):
        out += chunk
    return out


def test_a_body_shorter_than_its_content_length_is_cut_with_408(server):
    with _connect(server) as sock:
        sock.sendall(HEAD + b"Content-Length: 100\r\n\r\n" + b'{"type":')
        answer = _answer(sock)
    assert answer.startswith(b"HTTP/1.1 408")
    assert b'"request_timeout"' in answer
    assert server.calls == []


def test_a_body_trickling_in_is_cut_at_the_deadline_not_only_when_idle(server):
    stop = threading.Event()
    with _connect(server) as sock:
        sock.sendall(HEAD + b"Content-Length: 1000\r\n\r\n")

        def trickle():
            while not stop.is_set():
                try:
                    sock.sendall(b" ")
                except OSError:
                    return
                time.sleep(0.05)  # well within any idle timeout

        thread = threading.Thread(target=trickle, daemon=True)
        thread.start()
        try:
            answer = _answer(sock)
        finally:
            stop.set()
            thread.join()
    assert answer.startswith(b"HTTP/1.1 408")
    assert server.calls == []


@pytest.mark.parametrize("length", [b"-1", b"1e3", b"abc", b"10, 10"])
def test_a_content_length_that_is_not_a_length_is_a_400_at_once(server, length):
    with _connect(server) as sock:
        sock.sendall(HEAD + b"Content-Length: " + length + b"\r\n\r\n{}")
        answer = _answer(sock)
    assert answer.startswith(b"HTTP/1.1 400")
    assert server.calls == []


def test_a_whole_request_is_handed_to_the_function(server):
    with _connect(server) as sock:
        sock.sendall(HEAD + b"Content-Length: 2\r\nConnection: close\r\n\r\n{}")
        answer = _answer(sock)
    assert answer.startswith(b"HTTP/1.1 202")
    assert len(server.calls) == 1
