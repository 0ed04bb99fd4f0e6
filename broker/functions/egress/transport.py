"""The two ways an attempt reaches a consumer: an HTTPS POST to a vetted address, or an SQS send.

HTTPS: the URL is checked by the shared SSRF module at every attempt (`vet_url`, the portal's
rules and settings), which returns the addresses it vetted; the connection goes to the first
of them, with the URL's host name as Host header, TLS SNI and certificate name, so a DNS
answer that changes after the check (rebinding) is never used. No redirect is followed (a 3xx
is a failed attempt) and at most `MAX_ANSWER_BYTES` of the answer are read. Kept-alive
connections are pooled per (scheme, address, port, host name), so a warm function reuses its
TLS connections; the HTTP is the standard library's http.client (`_Pool` says why not
urllib3).

The consumer's timeout is a wall-clock limit on the whole attempt: address check, connect,
TLS handshake, sending the request and reading the answer. A socket timeout bounds each
socket operation, so a consumer that trickles its answer a byte at a time would never trip
it; here every socket operation gets the time left as its timeout, and a watchdog thread
shuts the connection's socket down when the attempt's deadline passes, which ends whatever
read or write is blocked on it. (The DNS lookup of the address check is the one step it
cannot cut; it counts against the same deadline.)
"""

import heapq
import http.client
import itertools
import select
import socket
import ssl
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from urllib.parse import urlsplit

from botocore.exceptions import BotoCoreError, ClientError

from broker.functions import aws, settings
from broker.functions.shared import arn, messages, ssrf

MAX_ANSWER_BYTES = 4096
_MAX_POOLS = 256


@dataclass
class Outcome:
    """What one attempt gave: ok, or why not (an error kind of shared.messages)."""

    ok: bool
    status: int | None = None
    error: str = ""
    error_kind: str | None = None
    latency_ms: float = 0.0


class _Watchdog:
    """One daemon thread that calls each registered `cut` when its deadline passes, unless the
    entry was cancelled first. A thread per attempt would cost more than the attempt's own
    work at a thousand deliveries a second; this costs a heap push and pop."""

    def __init__(self):
        self._cv = threading.Condition()
        self._heap: list[tuple[float, int, list]] = []
        self._seq = itertools.count()
        self._thread: threading.Thread | None = None

    def watch(self, at: float, cut) -> list:
        entry = [cut]
        with self._cv:
            heapq.heappush(self._heap, (at, next(self._seq), entry))
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="egress-cut", daemon=True)
                self._thread.start()
            elif self._heap[0][2] is entry:
                self._cv.notify()  # earlier than what the thread waits for
        return entry

    @staticmethod
    def cancel(entry: list) -> None:
        entry[0] = None

    def _run(self) -> None:
        while True:
            with self._cv:
                while self._heap and self._heap[0][2][0] is None:
                    heapq.heappop(self._heap)
                if not self._heap:
                    self._cv.wait()
                    continue
                wait = self._heap[0][0] - time.monotonic()
                if wait > 0:
                    self._cv.wait(wait)
                    continue
                _, _, entry = heapq.heappop(self._heap)
                cut, entry[0] = entry[0], None
            if cut is not None:
                try:
                    cut()
                except Exception:  # noqa: S110 (a socket already closed is the goal reached)
                    pass


_WATCHDOG = _Watchdog()


class _Attempt:
    """The deadline of one POST and the socket it uses (set by the connection classes below
    through a thread-local, since urllib3 hands the pool's connection around internally)."""

    def __init__(self, at: float):
        self.at = at
        self.sock: socket.socket | None = None
        self.cut = False
        self._lock = threading.Lock()

    def left(self) -> float:
        return max(0.001, self.at - time.monotonic())

    def use(self, sock) -> None:
        with self._lock:
            self.sock = sock
            cut = self.cut
        if cut:
            self._shutdown(sock)

    def expire(self) -> None:
        with self._lock:
            self.cut = True
            sock = self.sock
        if sock is not None:
            self._shutdown(sock)

    @staticmethod
    def _shutdown(sock) -> None:
        # The plain socket's shutdown, also for a TLS socket: another thread is reading it,
        # and SSLSocket.shutdown would drop the TLS object under that read.
        try:
            socket.socket.shutdown(sock, socket.SHUT_RDWR)
        except OSError:
            pass


_current = threading.local()


class _HTTPConnection(http.client.HTTPConnection):
    """http.client's connection to a vetted address (`host`), whose socket is handed to the
    attempt in progress as soon as it exists, and given the attempt's time left before each
    request (a kept-alive connection has no new socket)."""

    def connect(self) -> None:
        attempt = _current.attempt
        self.timeout = attempt.left()
        super().connect()  # TCP_NODELAY set there
        attempt.use(self.sock)

    def begin(self, attempt: "_Attempt") -> None:
        if self.sock is None:
            self.connect()  # the TLS handshake too, for HTTPS
        else:
            attempt.use(self.sock)
            self.sock.settimeout(attempt.left())


class _HTTPSConnection(_HTTPConnection):
    """The same over TLS: the TLS socket is the attempt's before the handshake (so the
    handshake can be cut too); SNI and the certificate's name are the URL's host name, not the
    address connected to."""

    def __init__(self, host: str, port: int, *, hostname: str, context: ssl.SSLContext):
        super().__init__(host, port)
        self._hostname = hostname
        self._context = context

    def connect(self) -> None:
        super().connect()
        # Wrapping detaches the raw socket object: the TLS one is the attempt's from here on,
        # before the handshake, so that a handshake kept alive past the deadline is cut too.
        sock = self._context.wrap_socket(
            self.sock, server_hostname=self._hostname, do_handshake_on_connect=False
        )
        self.sock = sock
        _current.attempt.use(sock)
        sock.do_handshake()


class _Pool:
    """Kept-alive connections to one (scheme, address, port, host name); at most `MAX_IDLE`
    idle. http.client on its own: urllib3's pool, retries and header dictionaries around the
    same http.client calls were about half of a POST's CPU (243 against 126 µs;
    docs/data-plane.md, "Measured")."""

    MAX_IDLE = 10  # a batch's attempts run concurrently (deliver.py), up to a batch each

    def __init__(self, scheme: str, address: str, port: int, hostname: str):
        self.scheme, self.address, self.port, self.hostname = scheme, address, port, hostname
        self._idle: list[_HTTPConnection] = []
        self._lock = threading.Lock()
        self._context: ssl.SSLContext | None = None
        if scheme == "https":
            # CERT_REQUIRED and the host name checked; the default CA store (SSL_CERT_FILE).
            self._context = ssl.create_default_context()

    def _connection(self) -> _HTTPConnection:
        while True:
            with self._lock:
                conn = self._idle.pop() if self._idle else None
            if conn is None:
                break
            if not _dropped(conn.sock):
                return conn
            conn.close()  # the peer closed it while idle (or sent something unasked)
        if self._context is not None:
            return _HTTPSConnection(
                self.address, self.port, hostname=self.hostname, context=self._context
            )
        return _HTTPConnection(self.address, self.port)

    def post(self, path: str, *, body: bytes, headers: dict[str, str], attempt: "_Attempt"):
        """(status, the answer's first `MAX_ANSWER_BYTES`, Location header); raises OSError,
        http.client.HTTPException or ssl.SSLError for what the network or the peer did."""
        conn = self._connection()
        try:
            conn.begin(attempt)
            conn.request("POST", path, body=body, headers=headers)
            response = conn.getresponse()
            answer = response.read(MAX_ANSWER_BYTES)
            complete = not response.read(1)  # b"" once the answer is over
        except BaseException:
            conn.close()
            raise
        if attempt.cut or not complete or response.will_close:
            conn.close()  # a cut socket or an unread answer: this connection cannot be reused
        else:
            with self._lock:
                if len(self._idle) < self.MAX_IDLE:
                    self._idle.append(conn)
                    conn = None
            if conn is not None:
                conn.close()
        if attempt.cut:
            raise TimeoutError("the attempt's deadline passed while reading the answer")
        return response.status, answer, response.getheader("Location", "")

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()


def _dropped(sock) -> bool:
    """True when an idle kept-alive socket has something to read: its peer closed it (or
    sent bytes nobody asked for); either way it cannot carry the next request."""
    if sock is None:
        return True
    try:
        poller = select.poll()  # not select(): no limit on the descriptor's number
        poller.register(sock, select.POLLIN)
        return bool(poller.poll(0))
    except (OSError, ValueError):
        return True


_pools_lock = threading.Lock()
_pools: OrderedDict[tuple, _Pool] = OrderedDict()


def _pool(scheme: str, address: str, port: int, hostname: str) -> _Pool:
    key = (scheme, address, port, hostname)
    with _pools_lock:
        pool = _pools.get(key)
        if pool is not None:
            _pools.move_to_end(key)
            return pool
        pool = _pools[key] = _Pool(scheme, address, port, hostname)
        while len(_pools) > _MAX_POOLS:
            _pools.popitem(last=False)[1].close()
        return pool


def close_pools() -> None:
    with _pools_lock:
        while _pools:
            _pools.popitem()[1].close()


def _host_header(hostname: str, scheme: str, port: int) -> str:
    host = f"[{hostname}]" if ":" in hostname else hostname
    return host if port == (443 if scheme == "https" else 80) else f"{host}:{port}"


def vet_url(url: str) -> list[ssrf.IPAddress]:
    """The addresses `url` may be called at, by the rules the portal applied when the consumer
    was saved (broker/services/consumers.py): the same shared check, fed the same two settings,
    `CONSUMER_HTTP_ALLOWED_HOSTS` and `CONSUMER_PRIVATE_TARGETS`. Raises ssrf.UnsafeURL."""
    s = settings.get()
    return ssrf.check_url(
        url,
        allow_http_hosts=s.http_allowed_hosts,
        private_targets=ssrf.parse_private_targets(s.private_targets),
    )


def post(url: str, *, body: bytes, headers: dict[str, str], timeout_s: float) -> Outcome:
    """POSTs `body` to `url` once, all of it within `timeout_s` of wall-clock time (see the
    module docstring). Never raises for what the consumer or the network does."""
    started = time.perf_counter()
    attempt = _Attempt(time.monotonic() + timeout_s)
    entry = _WATCHDOG.watch(attempt.at, attempt.expire)
    _current.attempt = attempt
    try:
        outcome = _post(url, body=body, headers=headers, attempt=attempt)
    finally:
        _current.attempt = None
        _WATCHDOG.cancel(entry)
    outcome.latency_ms = (time.perf_counter() - started) * 1000
    if attempt.cut and not outcome.ok:
        # Whatever the cut socket raised (a reset, an incomplete answer), it was the limit.
        outcome.status = None
        outcome.error = f"Timed out: no complete answer within {timeout_s * 1000:.0f} ms"
        outcome.error_kind = messages.ERROR_TIMEOUT
    return outcome


def _post(url: str, *, body: bytes, headers: dict[str, str], attempt: _Attempt) -> Outcome:
    def done(**kwargs) -> Outcome:
        return Outcome(**kwargs)

    try:
        addresses = vet_url(url)
    except ssrf.UnsafeURL as exc:
        return done(ok=False, error=str(exc), error_kind=messages.ERROR_SSRF)
    parts = urlsplit(url)
    scheme = parts.scheme
    port = parts.port or (443 if scheme == "https" else 80)
    hostname = (parts.hostname or "").rstrip(".")
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    all_headers = {
        **headers,
        "Host": _host_header(hostname, scheme, port),
        "Content-Type": "application/json",
        "User-Agent": "broker-egress/1",
    }
    pool = _pool(scheme, str(addresses[0]), port, hostname)
    try:
        status, answer, location = pool.post(path, body=body, headers=all_headers, attempt=attempt)
    except TimeoutError as exc:  # socket.timeout too
        return done(ok=False, error=f"Timed out: {_reason(exc)}", error_kind=messages.ERROR_TIMEOUT)
    except (OSError, http.client.HTTPException) as exc:  # refused, reset, TLS, a bad answer
        return done(ok=False, error=_reason(exc), error_kind=messages.ERROR_CONNECTION)
    if 200 <= status < 300:
        return done(ok=True, status=status)
    text = answer.decode("utf-8", "replace").strip()
    if 300 <= status < 400:
        error = f"HTTP {status}: redirect not followed (Location: {location[:200]})"
    else:
        error = f"HTTP {status}: {text[:500]}"
    return done(ok=False, status=status, error=error, error_kind=messages.ERROR_HTTP)


def _reason(exc: BaseException) -> str:
    """A short, secret-free description of a network error."""
    text = str(exc) or "no detail"
    return f"{type(exc).__name__}: {text}"[:500]


def send_sqs(queue_arn: str, *, body: str, delivery: messages.Delivery) -> Outcome:
    """SendMessage to an SQS consumer's queue: the body is the event JSON (what an HTTPS
    consumer receives), the delivery metadata rides in message attributes."""
    started = time.perf_counter()
    attrs = {
        "webhook-id": delivery.delivery_id,
        "event_id": delivery.event_id,
        "event_type": delivery.event_type,
        "replay": str(delivery.replay),
        "attempt": str(delivery.attempt),
        "subscription_id": delivery.subscription_id,
        "producer_id": delivery.producer_id,
    }
    kwargs = {
        "MessageBody": body,
        "MessageAttributes": {
            name: {
                "DataType": "Number" if name in ("replay", "attempt") else "String",
                "StringValue": value,
            }
            for name, value in attrs.items()
            if value
        },
    }
    try:
        parsed = arn.parse_sqs_arn(queue_arn)
        url = arn.queue_url_from_arn(queue_arn, settings.get().endpoint_url)
        if parsed.fifo:
            kwargs["MessageGroupId"] = delivery.subscription_id or delivery.consumer_id
            kwargs["MessageDeduplicationId"] = f"{delivery.delivery_id}-{delivery.replay}"
        aws.sqs().send_message(QueueUrl=url, **kwargs)
    except arn.ArnError as exc:
        return _sqs_failed(started, str(exc))
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "")
        return _sqs_failed(started, f"SQS refused the message: {code}")
    except BotoCoreError as exc:
        return _sqs_failed(started, f"SQS unreachable: {type(exc).__name__}")
    return Outcome(ok=True, latency_ms=(time.perf_counter() - started) * 1000)


def _sqs_failed(started: float, error: str) -> Outcome:
    return Outcome(
        ok=False,
        error=error,
        error_kind=messages.ERROR_SQS,
        latency_ms=(time.perf_counter() - started) * 1000,
    )
