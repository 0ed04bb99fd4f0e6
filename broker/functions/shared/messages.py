"""Message formats on the data plane's queues (docs/data-plane.md), one definition for all.

Who writes and who reads:

| message | written by | read by |
|---|---|---|
| delivery (`kind = "delivery"`) | ingress (routing), egress (retry re-enqueue), portal (replay, test event) | egress |
| dead letter (`kind = "dead_letter"`) | egress, after the last attempt | portal (DLQ ingest) |

SQS allows 10 message attributes, so the metadata travels in the body's envelope; `tenant_id`
and `consumer_id` are also attributes (String), for filtering and for operators reading a
queue by hand. The body is JSON:

    {
      "v": 1,
      "kind": "delivery",
      "delivery": {delivery_id, replay, attempt, tenant_id, producer_id, consumer_id,
                   subscription_id, event_id, event_type, first_attempt_at, test,
                   not_before?,           # optional: a retry's due time (ISO 8601 UTC)
                   ordering_key?, group_id?,   # optional: an ordered delivery (FIFO queue)
                   unordered_reason?,     # optional: why an ordered subscription's was not
                   throttled_ms?},        # optional: delays over the consumer's rate (ms)
      "event": {id, type, time, data, source_id},
      "failure": {attempts, last_status, last_error, error_kind,      # dead letters only
                  first_attempt_at, last_attempt_at, dead_lettered_at}
    }

`delivery_id` is stable for a delivery across every retry and every replay (it is the
Standard Webhooks `webhook-id`); `replay` is 0 for the first life of a delivery and n for its
n-th replay; `attempt` counts from 1 within one life. Egress idempotency is keyed on
(delivery_id, replay, attempt), so a duplicated SQS message is absorbed while a retry or a
replay is not.

Readers accept every version in READABLE_VERSIONS; anything else is `MessageError`.

Bodies are `jsontext.dumps`: UTF-8 without `\\u` escapes except for the characters SQS refuses,
so their size is what SQS counts, in bytes. `MAX_BODY_BYTES` is the queues' MaximumMessageSize
this code assumes; `ENVELOPE_RESERVE_BYTES` bounds everything a body holds besides its event,
whatever the egress adds later (retry fields, the failure of a dead letter), so an event of
`max_event_bytes()` always fits in its delivery message and its dead letter.
"""

import hashlib
import json
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime

from . import jsontext

VERSION = 1
READABLE_VERSIONS = frozenset({1})
DELIVERY = "delivery"
DEAD_LETTER = "dead_letter"

# Error kinds of a failed attempt (the portal groups dead letters by them).
ERROR_HTTP = "http_status"  # the consumer answered, not 2xx (see last_status)
ERROR_TIMEOUT = "timeout"
ERROR_CONNECTION = "connection"  # refused, reset, DNS failure, TLS error
ERROR_SSRF = "ssrf_refused"  # the target resolved to a refused address at delivery time
ERROR_CONSUMER_GONE = "consumer_unavailable"  # deleted or disabled consumer
ERROR_SQS = "sqs_error"  # an SQS consumer's queue refused the message
ERROR_KINDS = (
    ERROR_HTTP,
    ERROR_TIMEOUT,
    ERROR_CONNECTION,
    ERROR_SSRF,
    ERROR_CONSUMER_GONE,
    ERROR_SQS,
)

LAST_ERROR_MAX_CHARS = 1000
# SQS's MaximumMessageSize (256 KiB), set on every delivery queue and the central DLQ.
MAX_BODY_BYTES = 256 * 1024


class MessageError(ValueError):
    """A body that is not a message of this format (malformed, unknown version or kind)."""


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def new_delivery_id() -> str:
    """`msg_` + 32 hex: Standard Webhooks ids are opaque strings; a prefix says what it is.
    A random one, for a delivery that has no subscription (a portal test event)."""
    return "msg_" + uuid.uuid4().hex


def delivery_id_for(tenant_id: str, event_id: str, subscription_id: str) -> str:
    """The delivery id of an event for one subscription: the same format as `new_delivery_id`,
    derived from what identifies the delivery, so a producer's retry of the same event (same
    event id) reaches the consumer with the same `webhook-id`, and the egress's idempotency on
    (delivery id, replay, attempt) drops the repeat."""
    key = json.dumps([str(tenant_id), str(event_id), str(subscription_id)])
    return "msg_" + hashlib.sha256(key.encode()).hexdigest()[:32]


# Delivery fields left out of a body when unset (added after v1 shipped).
OPTIONAL_FIELDS = (
    "not_before",
    "ordering_key",
    "group_id",
    "unordered_reason",
    "throttled_ms",
)


@dataclass
class Delivery:
    delivery_id: str
    tenant_id: str
    consumer_id: str
    subscription_id: str | None
    producer_id: str | None
    event_id: str
    event_type: str
    replay: int = 0
    attempt: int = 1
    first_attempt_at: str | None = None
    test: bool = False
    # Optional (absent = None), added after v1 shipped; readers of older bodies get the default.
    # The egress re-enqueues a retry whose delay exceeds SQS's 900 s DelaySeconds in steps: the
    # message carries the time its attempt is due and is put back until then.
    not_before: str | None = None
    # Ordered subscriptions (shared/ordering.py): the key and its MessageGroupId, on a delivery
    # sent to a FIFO queue; or why a delivery of an ordered subscription went unordered
    # (`no_ordering_key`, `ordering_key_too_long`, `no_ordered_queue`), which its delivery
    # record shows.
    ordering_key: str | None = None
    group_id: str | None = None
    unordered_reason: str | None = None
    # The delays a delivery over its consumer's rate limit was put back with so far, in ms
    # (egress/ratelimit.py); its attempt record shows them. Absent = not throttled.
    throttled_ms: int | None = None


@dataclass
class Failure:
    attempts: int
    last_status: int | None
    last_error: str
    error_kind: str
    first_attempt_at: str
    last_attempt_at: str
    dead_lettered_at: str = field(default_factory=now_iso)


@dataclass
class Message:
    kind: str
    delivery: Delivery
    event: dict
    failure: Failure | None = None

    def body(self) -> str:
        # Flat dataclasses: a copy of their fields is what asdict() returns, at a fraction of
        # its cost (asdict deep-copies every value; the ingress builds a body per delivery).
        delivery = dict(vars(self.delivery))
        for name in OPTIONAL_FIELDS:
            if delivery[name] is None:
                # Left out when unset, so a reader that predates the field still reads the body.
                del delivery[name]
        out = {"v": VERSION, "kind": self.kind, "delivery": delivery}
        out["event"] = self.event
        if self.failure is not None:
            failure = dict(vars(self.failure))
            failure["last_error"] = (failure["last_error"] or "")[:LAST_ERROR_MAX_CHARS]
            out["failure"] = failure
        return jsontext.dumps(out)

    def attributes(self) -> dict:
        return {
            "tenant_id": {"DataType": "String", "StringValue": self.delivery.tenant_id},
            "consumer_id": {"DataType": "String", "StringValue": self.delivery.consumer_id},
        }


def event_body(*, event_id: str, type_: str, time: str, data, source_id: str | None) -> dict:
    """The event as consumers receive it: `source_id` is the producer's own id, if it gave one."""
    out = {"id": event_id, "type": type_, "time": time, "data": data}
    if source_id is not None:
        out["source_id"] = source_id
    return out


def delivery_message(delivery: Delivery, event: dict) -> Message:
    return Message(kind=DELIVERY, delivery=delivery, event=event)


def dead_letter_message(delivery: Delivery, event: dict, failure: Failure) -> Message:
    if failure.error_kind not in ERROR_KINDS:
        raise ValueError(f"unknown error kind {failure.error_kind!r}")
    return Message(kind=DEAD_LETTER, delivery=delivery, event=event, failure=failure)


def _reserve() -> int:
    """The bytes of the largest body around an empty event: every id at its longest, the
    retry fields set, a dead letter's failure with the longest error (each character of it
    escaped: 6 bytes, more than any UTF-8 character takes)."""
    longest = "x" * 64
    delivery = Delivery(
        delivery_id=longest,
        tenant_id=longest,
        consumer_id=longest,
        subscription_id=longest,
        producer_id=longest,
        event_id=longest,
        event_type="x" * 200,
        replay=99_999,
        attempt=99_999,
        first_attempt_at=now_iso(),
        test=False,
        not_before=now_iso(),
        ordering_key="\uffff" * 128,  # the envelope's ordering_key: at most 128 characters
        group_id="x" * 64,
        unordered_reason="x" * 32,
        throttled_ms=10**12,
    )
    failure = Failure(
        attempts=99_999,
        last_status=599,
        last_error="\uffff" * LAST_ERROR_MAX_CHARS,
        error_kind=max(ERROR_KINDS, key=len),
        first_attempt_at=now_iso(),
        last_attempt_at=now_iso(),
        dead_lettered_at=now_iso(),
    )
    body = Message(kind=DEAD_LETTER, delivery=delivery, event={}, failure=failure).body()
    return len(body.encode()) - len("{}")


ENVELOPE_RESERVE_BYTES = _reserve()


def max_event_bytes() -> int:
    """The largest event (its `jsontext.dumps`, in bytes) whose messages fit in a queue."""
    return MAX_BODY_BYTES - ENVELOPE_RESERVE_BYTES


def parse(body: str | bytes) -> Message:
    """Reads a delivery or dead-letter body; raises MessageError for anything else."""
    try:
        raw = json.loads(body)
    except (TypeError, ValueError) as exc:
        raise MessageError(f"not JSON: {exc}") from None
    if not isinstance(raw, dict):
        raise MessageError("not a JSON object")
    if raw.get("v") not in READABLE_VERSIONS:
        raise MessageError(f"unknown message version {raw.get('v')!r}")
    kind = raw.get("kind")
    if kind not in (DELIVERY, DEAD_LETTER):
        raise MessageError(f"unknown message kind {kind!r}")
    try:
        delivery = Delivery(**raw["delivery"])
        event = raw["event"]
        if not isinstance(event, dict) or "type" not in event or "id" not in event:
            raise MessageError("event without id or type")
        failure = Failure(**raw["failure"]) if kind == DEAD_LETTER else None
    except (KeyError, TypeError) as exc:
        raise MessageError(f"missing or unknown field: {exc}") from None
    for name in ("delivery_id", "tenant_id", "consumer_id", "event_id", "event_type"):
        if not isinstance(getattr(delivery, name), str) or not getattr(delivery, name):
            raise MessageError(f"delivery.{name} must be a non-empty string")
    if not isinstance(delivery.replay, int) or not isinstance(delivery.attempt, int):
        raise MessageError("delivery.replay and delivery.attempt must be integers")
    if delivery.throttled_ms is not None and not isinstance(delivery.throttled_ms, int):
        raise MessageError("delivery.throttled_ms must be an integer")
    return Message(kind=kind, delivery=delivery, event=event, failure=failure)
