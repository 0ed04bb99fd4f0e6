"""The two ways an attempt reaches a consumer: an HTTPS POST to a vetted address, or an SQS send.

HTTPS: the URL is checked by the shared SSRF module at every attempt (`vet_url`, the portal's
rules and settings), which returns the addresses it vetted; the connection goes to the first of them, with the URL's host name as
Host header, TLS SNI and certificate name, so a DNS answer that changes after the check
(rebinding) is never used. No redirect is followed (a 3xx is a failed attempt), the consumer's
timeout bounds connect and read together, and at most `MAX_ANSWER_BYTES` of the answer are
read. Connection pools are kept per (scheme, address, port, host name), so a warm function
reuses its TLS sessions.
"""

import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from urllib.parse import urlsplit

import urllib3
from botocore.exceptions import BotoCoreError, ClientError
from urllib3.exceptions import HTTPError, NewConnectionError
from urllib3.exceptions import TimeoutError as Urllib3Timeout

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


_pools_lock = threading.Lock()
_pools: OrderedDict[tuple, urllib3.HTTPConnectionPool] = OrderedDict()


def _pool(scheme: str, address: str, port: int, hostname: str) -> urllib3.HTTPConnectionPool:
    key = (scheme, address, port, hostname)
    with _pools_lock:
        pool = _pools.get(key)
        if pool is not None:
            _pools.move_to_end(key)
            return pool
        kwargs = {"host": address, "port": port, "maxsize": 4, "block": False, "retries": False}
        if scheme == "https":
            # Connect to the vetted IP, but verify the certificate against the URL's host name.
            pool = urllib3.HTTPSConnectionPool(
                server_hostname=hostname,
                assert_hostname=hostname,
                cert_reqs="CERT_REQUIRED",
                **kwargs,
            )
        else:
            pool = urllib3.HTTPConnectionPool(**kwargs)
        _pools[key] = pool
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
    """POSTs `body` to `url` once. Never raises for what the consumer or the network does."""
    started = time.perf_counter()

    def done(**kwargs) -> Outcome:
        return Outcome(latency_ms=(time.perf_counter() - started) * 1000, **kwargs)

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
        response = pool.urlopen(
            "POST",
            path,
            body=body,
            headers=all_headers,
            redirect=False,
            retries=False,
            assert_same_host=False,
            preload_content=False,
            decode_content=False,
            timeout=urllib3.Timeout(total=timeout_s),
        )
    except NewConnectionError as exc:  # refused, unreachable (a subclass of the timeout error)
        return done(ok=False, error=_reason(exc), error_kind=messages.ERROR_CONNECTION)
    except Urllib3Timeout as exc:
        return done(ok=False, error=f"Timed out: {_reason(exc)}", error_kind=messages.ERROR_TIMEOUT)
    except (HTTPError, OSError) as exc:
        return done(ok=False, error=_reason(exc), error_kind=messages.ERROR_CONNECTION)
    try:
        answer = response.read(MAX_ANSWER_BYTES)
        complete = not response.read(1)  # b"" once the answer is over
    except Urllib3Timeout as exc:
        response.close()
        return done(ok=False, error=f"Timed out: {_reason(exc)}", error_kind=messages.ERROR_TIMEOUT)
    except (HTTPError, OSError) as exc:
        response.close()
        return done(ok=False, error=_reason(exc), error_kind=messages.ERROR_CONNECTION)
    if not complete:
        response.close()  # unread answer left: this connection cannot be reused
    response.release_conn()
    status = response.status
    if 200 <= status < 300:
        return done(ok=True, status=status)
    text = answer.decode("utf-8", "replace").strip()
    if 300 <= status < 400:
        location = response.headers.get("Location", "")
        error = f"HTTP {status}: redirect not followed (Location: {location[:200]})"
    else:
        error = f"HTTP {status}: {text[:500]}"
    return done(ok=False, status=status, error=error, error_kind=messages.ERROR_HTTP)


def _reason(exc: BaseException) -> str:
    """A short, secret-free description of a network error."""
    reason = getattr(exc, "reason", None) or exc
    text = str(reason)
    if ": " in text and "HTTPConnection" in text:  # urllib3 prefixes the connection repr
        text = text.split(": ", 1)[1]
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
