"""One delivery message → one attempt, a retry scheduled or a dead letter (docs/design.md, flow 5).

`process_body` is the whole egress for one SQS record, as a plain function over the body and
the ARN of the queue it came from. It returns what happened (an `OUTCOMES` name) and raises
only for transient errors of the platform itself (DynamoDB, SQS or KMS unavailable): the
handler reports those records as failed, so SQS hands them out again later. What a consumer
does (an error answer, a timeout, a refused connection, a refused queue) is never an
exception: it is a failed attempt, retried per the consumer's policy and, after the last
one, a dead letter on the central DLQ.

A duplicated SQS message is absorbed by idempotency on (tenant, delivery id, replay, attempt)
in `IDEMPOTENCY_TABLE` (egress/idempotency.py: one conditional claim per delivery, Powertools'
semantics and item layout): the second copy returns the first one's result without calling
the consumer. A retry (attempt + 1) or a replay (replay + 1) is a new key. Within a handler's
batch the COMPLETED marks are written together at its end (nothing a consumer sees).

A batch's records may run concurrently (app.py), sharing a `Batch`: at most `concurrency`
attempts at once in the invocation, and per consumer at most what its lane allows (inflight.py:
the slots a pool consumer got under its `concurrency`, one at a time for a silo consumer).
Before an attempt starts, the time left in the invocation must cover the consumer's timeout
plus `DEADLINE_MARGIN_MS` (the retry or dead letter, the records and marks written after it); a
record that cannot start in time is handed back untried (`HandedBack`: the handler reports it
in `batchItemFailures`, so SQS hands out the same body, the same attempt number, after the
visibility timeout). A hand-back adds a receive toward the queue's redrive maxReceiveCount
(10), which is not an attempt count: from its `HANDBACK_REQUEUE_AT`-th receive a record is
instead sent back to its queue as a new message (the same body, a fresh receive count) and
succeeds, so hand-backs alone never take a delivery to the DLQ.

Ordered deliveries (a record of a FIFO queue, `FifoRecord`; docs/data-plane.md, "Ordering")
keep their key's order, so nothing is sent back to the queue behind the key's later events:
- a retry waits in place: the attempt is counted in the data-plane table
  (`records.ordered_attempt_key`: a FIFO message's body cannot change), and `PutBack` makes
  the handler set the record's visibility to the retry policy's delay (at most 12 h) and report
  it failed, so SQS hands it out again, still its key's head; the same for a deferral (in-flight
  cap), a not-yet-due message and the rate limiter's delay, which are not attempts;
- a record handed back is never sent back as a new message (its key's later events would
  pass it): the FIFO queues' redrive count is high instead (deploy/template.yaml);
- after the last attempt, the route's `on_head_failure` decides: `skip` dead-letters it to the
  central FIFO DLQ (in its key's message group) and the key's next event flows; `hold` holds
  the key (shared/held.py): the head and every later event of the key are kept in the
  data-plane table, their SQS messages deleted, until someone retries or skips the key;
- a record of a held key is appended behind it (`HELD_BEHIND`) and deleted from SQS; a message
  the hold released is delivered, then the next one released (`held.advance`).
"""

import dataclasses
import functools
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta

from aws_lambda_powertools import Logger

from broker.functions import aws, config, settings
from broker.functions.egress import (
    idempotency,
    inflight,
    policy,
    ratelimit,
    signing,
    slowlane,
    transport,
)
from broker.functions.egress.recorder import RECORDER
from broker.functions.shared import arn, held, jsontext, messages, ordering, records, secrets

logger = Logger(service="broker-egress", child=True)

DELIVERED, RETRYING, DEAD = "delivered", "retrying", "dead"
DUPLICATE = "duplicate"  # an SQS duplicate absorbed by idempotency
DEFERRED = "deferred"  # over the consumer's in-flight cap: put back, not an attempt
WAITING = "waiting"  # a retry not due yet (delays beyond 900 s): put back for another step
MALFORMED = "malformed"  # not a delivery message: forwarded as it is to the central DLQ
HANDED_BACK = "handed_back"  # no time left to try it: reported failed, SQS hands it out again
REQUEUED = "requeued"  # no time left, received often already: sent back as a new message
SLOW_LANE = "slow_lane"  # a consumer on the slow lane: moved to its queue untried (slowlane.py)
THROTTLED = "throttled"  # over the consumer's rate limit: put back, not an attempt
HELD = "held"  # an ordered key's head failed for good under `hold`: the key is held
HELD_BEHIND = "held_behind"  # a later event of a held key: kept behind its head, off SQS
STALE = "stale_release"  # a message a held key's release sent earlier, superseded: dropped
OUTCOMES = (
    DELIVERED,
    RETRYING,
    DEAD,
    DUPLICATE,
    DEFERRED,
    WAITING,
    MALFORMED,
    HANDED_BACK,
    REQUEUED,
    SLOW_LANE,
    THROTTLED,
    HELD,
    HELD_BEHIND,
    STALE,
)

# How long a duplicate is recognised: far longer than SQS keeps a message invisible.
IDEMPOTENCY_EXPIRY_SECONDS = 24 * 3600
# Outside Lambda (local runner, tests) there is no remaining time to bound an in-progress
# idempotency record: one left by a killed process blocks its message this long.
LOCAL_IN_PROGRESS_MS = 5 * 60 * 1000
DEFAULT_TIMEOUT_MS = 10_000  # a consumer item without `timeout_ms`
# An attempt starts only with its timeout plus this left in the invocation: what follows it
# (retry or dead letter sent, marks, slots and records written) must fit too.
DEADLINE_MARGIN_MS = 5_000
# Attempts one invocation runs at once (a batch is at most 10 records: all of them).
BATCH_CONCURRENCY = 10
# From this receive on, a record handed back goes back as a new message instead: the queue's
# redrive sends a message to the DLQ at its 10th receive (deploy/template.yaml), and hand-backs
# must not get it there. Below it, a hand-back costs no call.
HANDBACK_REQUEUE_AT = 5


# The longest a FIFO record may wait in place (ChangeMessageVisibility's 12 h, less a margin).
MAX_VISIBILITY_SECONDS = 12 * 3600 - 60
# How long an ordered delivery's attempt count is kept: the queues' retention.
ORDERED_ATTEMPT_TTL_SECONDS = 15 * 86400


class HandedBack(Exception):
    """The record was not tried (no time left): report it failed, SQS hands it out again."""


class PutBack(Exception):
    """A FIFO record waits in place: the handler sets its visibility to `delay` seconds and
    reports it failed, so it stays its key's head. `outcome`: why (RETRYING after a failed
    attempt; DEFERRED, WAITING: not an attempt)."""

    def __init__(self, delay: float, outcome: str):
        super().__init__(f"{outcome}: {delay:.0f} s")
        self.delay = max(0, min(MAX_VISIBILITY_SECONDS, int(-(-delay // 1))))
        self.outcome = outcome


@dataclasses.dataclass(frozen=True)
class FifoRecord:
    """What the egress needs of a FIFO queue's record besides its body."""

    queue_url: str
    marker: str | None = None  # the `held_release` attribute: a message a held key released


class Batch:
    """What the records of one invocation share: the deadline, the in-flight slots and lanes,
    and the bound on attempts running at once."""

    def __init__(self, *, lambda_context=None, slots=None, concurrency: int = BATCH_CONCURRENCY):
        self.lambda_context = lambda_context
        self.slots = slots if slots is not None else inflight.Slots()
        self.permits = threading.Semaphore(concurrency)

    def ms_left(self) -> float | None:
        """Milliseconds left in the invocation; None outside Lambda (no deadline)."""
        if self.lambda_context is None:
            return None
        return self.lambda_context.get_remaining_time_in_millis()

    def enter(self, lane: threading.Semaphore | None, need_ms: int) -> bool:
        """Waits for a permit of the consumer's lane, then of the batch, as long as an attempt
        needing `need_ms` could still start after; False (holding nothing) when it cannot."""
        held = []
        for sem in (lane, self.permits):
            if sem is None:
                continue
            left = self.ms_left()
            if left is None:
                sem.acquire()
            elif left < need_ms or not sem.acquire(timeout=(left - need_ms) / 1000):
                self.leave(*held)
                return False
            held.append(sem)
        left = self.ms_left()
        if left is not None and left < need_ms:
            self.leave(*held)
            return False
        return True

    @staticmethod
    def leave(*sems) -> None:
        for sem in sems:
            if sem is not None:
                sem.release()


def _now() -> datetime:
    return datetime.now(UTC)


def _iso(ts: datetime) -> str:
    return ts.isoformat(timespec="milliseconds")


@functools.lru_cache(maxsize=64)
def _queue_url_from_arn(queue_arn: str, endpoint_url: str | None) -> str:
    return arn.queue_url_from_arn(queue_arn, endpoint_url)


def queue_url(queue_arn: str) -> str:
    return _queue_url_from_arn(queue_arn, settings.get().endpoint_url)


_dlq_urls: dict[tuple, str] = {}


def central_dlq_url() -> str:
    s = settings.get()
    key = (s.central_dlq_name, s.endpoint_url, s.region)
    if key not in _dlq_urls:
        _dlq_urls[key] = aws.sqs().get_queue_url(QueueName=s.central_dlq_name)["QueueUrl"]
    return _dlq_urls[key]


def _send(url: str, message: messages.Message, *, delay: int = 0) -> None:
    aws.sqs().send_message(
        QueueUrl=url,
        MessageBody=message.body(),
        MessageAttributes=message.attributes(),
        DelaySeconds=max(0, min(policy.MAX_SQS_DELAY, int(delay))),
    )


# --- idempotency ------------------------------------------------------------------------


class _LocalContext:
    def get_remaining_time_in_millis(self) -> int:
        return LOCAL_IN_PROGRESS_MS


_stores_lock = threading.Lock()
_stores: dict[tuple, idempotency.Store] = {}


def _idempotency_store() -> idempotency.Store:
    """The claims and marks on this process's table and client (idempotency.py)."""
    s = settings.get()
    client = aws.dynamodb()
    key = (s.idempotency_table, id(client))
    with _stores_lock:
        store = _stores.get(key)
        if store is None:
            store = _stores[key] = idempotency.Store(
                s.idempotency_table, client, expires_after_seconds=IDEMPOTENCY_EXPIRY_SECONDS
            )
    return store


# --- the egress for one record ----------------------------------------------------------


def parse(body: str) -> messages.Message | None:
    """The delivery message of a body, None when it is not one (planning only)."""
    try:
        message = messages.parse(body)
    except messages.MessageError:
        return None
    return message if message.kind == messages.DELIVERY else None


def process_body(
    body: str,
    *,
    source_arn: str,
    slots: inflight.Slots | None = None,
    lambda_context=None,
    receive_count: int = 1,
    batch: Batch | None = None,
    message: messages.Message | None = None,
    fifo: FifoRecord | None = None,
) -> str:
    """The egress for one SQS record body from the queue `source_arn`; returns an outcome, or
    raises `HandedBack` (no time left to try it), `PutBack` (a FIFO record to wait in place)
    or a platform error. `receive_count`: the record's ApproximateReceiveCount. `batch`: what
    the records of one invocation share (one of its own when absent, its in-flight slots given
    back before returning, unless `slots` says whose they are); `message`: the body already
    parsed; `fifo`: the record comes from a FIFO queue (an ordered delivery)."""
    kwargs = {"receive_count": receive_count, "message": message, "fifo": fifo}
    if batch is not None:
        return _process(body, source_arn, batch, **kwargs)
    own = Batch(lambda_context=lambda_context, slots=slots, concurrency=1)
    try:
        return _process(body, source_arn, own, **kwargs)
    finally:
        if slots is None:
            own.slots.release_all()


def _process(
    body: str,
    source_arn: str,
    batch: Batch,
    *,
    receive_count: int,
    message: messages.Message | None,
    fifo: FifoRecord | None = None,
) -> str:
    message = _delivery_or_forward(body, message)
    if message is None:
        return MALFORMED
    if fifo is not None:
        verdict = _admit(message, fifo)
        if verdict is not None:
            return verdict
        message = _ordered_attempt(message, receive_count)
    d = message.delivery
    wait = _not_due_for(d)
    if wait > 1:
        return _put_back(message, source_arn, wait, WAITING, fifo)
    consumer = config.consumer(d.tenant_id, d.consumer_id)
    tenant = config.tenant(d.tenant_id) or {}
    usable = bool(consumer) and consumer.get("enabled", True)
    lane, entered = None, False
    if usable:
        lane = _lane(batch.slots, d, consumer, tenant)
        if fifo is None and _to_slow_lane(message, source_arn, batch.slots, tenant):
            return SLOW_LANE
        if lane is _AT_CAP:
            return _put_back(message, source_arn, inflight.defer_delay(), DEFERRED, fifo)
        need_ms = int(consumer.get("timeout_ms") or DEFAULT_TIMEOUT_MS) + DEADLINE_MARGIN_MS
        if not batch.enter(lane, need_ms):
            if fifo is not None:
                # Never sent back as a new message: the key's later events would pass it.
                raise HandedBack(d.delivery_id)
            return _hand_back(body, message, source_arn=source_arn, receive_count=receive_count)
        entered = True
    try:
        result = _attempt_once(
            message, consumer if usable else None, tenant, source_arn, batch, ordered=fifo
        )
    finally:
        if entered:
            batch.leave(lane, batch.permits)
    if fifo is None:
        return result[0]
    return _after_ordered(message, fifo, *result)


def _delivery_or_forward(body: str, message: messages.Message | None) -> messages.Message | None:
    """The delivery message of the body; None when it is none (forwarded to the DLQ as is)."""
    try:
        message = message or messages.parse(body)
        if message.kind != messages.DELIVERY:
            raise messages.MessageError(f"a {message.kind} message on a delivery queue")
    except messages.MessageError as exc:
        # Nothing to deliver or retry: the DLQ ingest quarantines it for an operator.
        logger.warning("Malformed delivery message forwarded to the DLQ", extra={"error": str(exc)})
        aws.sqs().send_message(QueueUrl=central_dlq_url(), MessageBody=body)
        return None
    return message


def _not_due_for(d: messages.Delivery) -> float:
    """Seconds until a retry carrying `not_before` is due (0 when it is, or has none)."""
    if not d.not_before:
        return 0
    try:
        return (datetime.fromisoformat(d.not_before) - _now()).total_seconds()
    except (TypeError, ValueError):
        return 0  # unreadable: due now rather than stuck


_AT_CAP = object()  # `_lane`: the pool consumer is at its in-flight cap


def _lane(slots: inflight.Slots, d: messages.Delivery, consumer: dict, tenant: dict):
    """The consumer's lane in this invocation (None: no bound), or _AT_CAP."""
    if tenant.get("deployment_model") != "pool":
        return slots.silo_lane(d.tenant_id, d.consumer_id)
    if not consumer.get("concurrency"):
        return None
    lane = slots.lane(d.tenant_id, d.consumer_id, int(consumer["concurrency"]))
    return _AT_CAP if lane is None else lane


def _put_back(message, source_arn: str, wait: float, outcome: str, fifo) -> str:
    """Not tried now, not an attempt: back on its queue with a delay, or, a FIFO record, kept
    in place for `wait` (PutBack: FIFO queues take no per-message delay, and a new message
    would go behind its key's later events)."""
    if fifo is not None:
        raise PutBack(wait, outcome)
    _send(queue_url(source_arn), message, delay=wait)
    d = message.delivery
    logger.info(
        "Put back" if outcome != WAITING else "Retry not due yet, put back",
        extra={
            "tenant_id": d.tenant_id,
            "consumer_id": d.consumer_id,
            "delivery_id": d.delivery_id,
            "outcome": outcome,
            "wait_s": round(wait),
        },
    )
    return outcome


def _to_slow_lane(message, source_arn: str, slots: inflight.Slots, tenant: dict) -> bool:
    """A pool consumer flagged slow (slowlane.py): its record, received from a shared queue, is
    moved to the slow lane untried (True). Never an ordered record: its key's order is its
    FIFO queue's."""
    if tenant.get("deployment_model") != "pool":
        return False
    d = message.delivery
    if not slowlane.moves(slots.slow(d.tenant_id, d.consumer_id), source_arn):
        return False
    _send(queue_url(slowlane.queue_arn(source_arn)), message)
    logger.info(
        "Consumer on the slow lane, message moved there",
        extra={
            "tenant_id": d.tenant_id,
            "consumer_id": d.consumer_id,
            "delivery_id": d.delivery_id,
        },
    )
    return True


def _throttle(
    message, consumer: dict | None, source_arn: str, fifo=None, *, wait: float = 0.0
) -> bool:
    """Over the consumer's rate limit (egress/ratelimit.py): put back with the wait, True. A
    FIFO record waits in place (PutBack: visibility, never DelaySeconds; its body cannot grow
    `throttled_ms`, so only the consumer's `throttled` counter shows it)."""
    if not wait and consumer:
        wait = ratelimit.admit(message, consumer)
    if not wait:
        return False
    later, delay = ratelimit.throttled(message, wait)
    if fifo is not None:
        raise PutBack(delay, THROTTLED)
    _send(queue_url(source_arn), later, delay=delay)
    d = message.delivery
    logger.info(
        "Over the consumer's rate limit, put back",
        extra={"tenant_id": d.tenant_id, "consumer_id": d.consumer_id, "wait_s": delay},
    )
    return True


def _admit(message: messages.Message, fifo: FifoRecord) -> str | None:
    """None: deliver it. Otherwise the outcome of a record of a held key (held.admit)."""
    d = message.delivery
    if not d.group_id or not d.subscription_id:
        return None
    verdict = held.admit(message, group=d.group_id, marker_=fifo.marker)
    if verdict == "held":
        logger.info("Key held: the event is kept behind its head", extra={"group_id": d.group_id})
        return HELD_BEHIND
    if verdict == "stale":
        return STALE
    return None


def _ordered_attempt(message: messages.Message, receive_count: int) -> messages.Message:
    """The message with its attempt number and first attempt time as the data-plane table
    counts them (a FIFO message is never re-sent for a retry); read only when the message was
    received before: a first receive is its first attempt."""
    d = message.delivery
    if receive_count <= 1:
        return message
    pk, sk = records.ordered_attempt_key(d.tenant_id, d.delivery_id, d.replay)
    raw = aws.dynamodb().get_item(
        TableName=settings.get().dataplane_table,
        Key={"PK": {"S": pk}, "SK": {"S": sk}},
        ConsistentRead=True,
    )
    item = raw.get("Item")
    if not item:
        return message
    done = int(item["attempt"]["N"])
    first = item.get("first_attempt_at", {}).get("S") or d.first_attempt_at
    nxt = dataclasses.replace(d, attempt=max(d.attempt, done + 1), first_attempt_at=first)
    return messages.delivery_message(nxt, message.event)


def _count_ordered_attempt(d: messages.Delivery, first: str) -> None:
    pk, sk = records.ordered_attempt_key(d.tenant_id, d.delivery_id, d.replay)
    aws.dynamodb().put_item(
        TableName=settings.get().dataplane_table,
        Item={
            "PK": {"S": pk},
            "SK": {"S": sk},
            "attempt": {"N": str(d.attempt)},
            "first_attempt_at": {"S": first},
            "ttl": {"N": str(int(time.time()) + ORDERED_ATTEMPT_TTL_SECONDS)},
        },
    )


def _after_ordered(message, fifo: FifoRecord, outcome: str, result: dict) -> str:
    """What an ordered record's attempt leaves: a retry waits in place; a message a held key
    released, once done, releases the next."""
    d = message.delivery
    stored = result.get("outcome")
    if stored == RETRYING:
        # Also for a duplicate of a failed attempt: the message itself is the retry.
        raise PutBack(float(result.get("delay") or 0), RETRYING)
    if fifo.marker and stored in (DELIVERED, DEAD):
        held.advance(d.tenant_id, d.subscription_id, d.group_id, fifo.marker)
    return outcome


def _hand_back(body: str, message: messages.Message, *, source_arn: str, receive_count: int):
    d = message.delivery
    ids = {"tenant_id": d.tenant_id, "consumer_id": d.consumer_id, "delivery_id": d.delivery_id}
    if receive_count >= HANDBACK_REQUEUE_AT:
        aws.sqs().send_message(
            QueueUrl=queue_url(source_arn),
            MessageBody=body,
            MessageAttributes=message.attributes(),
        )
        logger.info("No time left to try it; sent back as a new message", extra=ids)
        return REQUEUED
    logger.info("No time left to try it; handed back", extra=ids)
    raise HandedBack(d.delivery_id)


def _attempt_once(
    message, consumer, tenant, source_arn, batch: Batch, *, ordered: FifoRecord | None = None
) -> tuple[str, dict]:
    """(outcome, the attempt's stored result): DUPLICATE with the first copy's result when
    idempotency absorbed this one."""
    d = message.delivery
    ids = {"tenant_id": d.tenant_id, "consumer_id": d.consumer_id, "delivery_id": d.delivery_id}
    if _throttle(message, consumer, source_arn, ordered):
        return THROTTLED, {}
    token = uuid.uuid4().hex
    try:
        result = _idempotency_store().run(
            attempt,
            remaining_ms=(batch.lambda_context or _LocalContext()).get_remaining_time_in_millis(),
            key={
                "tenant_id": d.tenant_id,
                "delivery_id": d.delivery_id,
                "replay": d.replay,
                "attempt": d.attempt,
            },
            message=message,
            consumer=consumer,
            tenant=tenant,
            source_arn=source_arn,
            token=token,
            ordered_queue=ordered.queue_url if ordered is not None else None,
        )
    except ratelimit.Throttled as exc:  # no token for it: put back, not an attempt
        _throttle(message, consumer, source_arn, ordered, wait=exc.wait)
        return THROTTLED, {}
    if result.get("token") != token:
        logger.info("Duplicate SQS message absorbed", extra=ids)
        return DUPLICATE, result
    return result["outcome"], result


def attempt(
    *,
    key: dict,
    message: messages.Message,
    consumer: dict | None,
    tenant: dict,
    source_arn: str,
    token: str,
    ordered_queue: str | None = None,
) -> dict:
    """One attempt and its consequence (retry re-enqueued, or dead letter), recorded.
    `ordered_queue`: the FIFO queue of an ordered delivery (module docstring: its retry waits
    in place, its last failure is skipped or held)."""
    d = message.delivery
    now = _now()
    first = d.first_attempt_at or _iso(now)
    ids = {"tenant_id": d.tenant_id, "consumer_id": d.consumer_id, "delivery_id": d.delivery_id}
    final = False
    body = None  # the event JSON the consumer receives, also what the delivery log keeps
    if consumer is None:
        outcome = transport.Outcome(
            ok=False,
            error="The consumer is disabled or deleted.",
            error_kind=messages.ERROR_CONSUMER_GONE,
        )
        final = True  # dead-lettered now, so it can be replayed once the consumer is back
    else:
        body = message_event_json(message)
        ratelimit.take(message, consumer)  # its token; Throttled: no attempt, claim dropped
        with slowlane.watching(d, tenant, consumer) as watch:
            outcome = send(consumer, message, body=body)
        if ordered_queue is None and slowlane.observe(watch, outcome, source_arn):
            source_arn = slowlane.queue_arn(source_arn)  # the retry waits on the slow lane
    if outcome.ok:
        RECORDER.attempt(
            delivery=d,
            event=message.event,
            event_json=body,
            status=records.OK,
            outcome=outcome,
            at=now,
        )
        logger.info("Delivered", extra={**ids, "attempt": d.attempt, "status": outcome.status})
        return {"outcome": DELIVERED, "token": token}
    retry = (consumer or {}).get("retry")
    cap = (tenant.get("quotas") or {}).get("max_delivery_attempts")
    if not final and d.attempt < policy.max_attempts(retry, tenant_cap=cap):
        delay = policy.delay_after(retry, d.attempt)
        if ordered_queue is not None:
            _count_ordered_attempt(d, first)
            RECORDER.attempt(
                delivery=d,
                event=message.event,
                event_json=body,
                status=records.RETRYING,
                outcome=outcome,
                at=now,
            )
            logger.info(
                "Ordered attempt failed, retry waits in place",
                extra={**ids, "attempt": d.attempt, "delay_s": delay},
            )
            return {"outcome": RETRYING, "token": token, "delay": delay}
        due = now + timedelta(seconds=delay)
        nxt = dataclasses.replace(
            d,
            attempt=d.attempt + 1,
            first_attempt_at=first,
            not_before=_iso(due) if delay > policy.MAX_SQS_DELAY else None,
            throttled_ms=None,  # the throttling of this attempt is in its record
        )
        _send(queue_url(source_arn), messages.delivery_message(nxt, message.event), delay=delay)
        RECORDER.attempt(
            delivery=d,
            event=message.event,
            event_json=body,
            status=records.RETRYING,
            outcome=outcome,
            at=now,
        )
        logger.info(
            "Attempt failed, retry scheduled",
            extra={**ids, "attempt": d.attempt, "delay_s": delay, "error_kind": outcome.error_kind},
        )
        return {"outcome": RETRYING, "token": token}
    failure = messages.Failure(
        attempts=d.attempt if consumer is not None else d.attempt - 1,
        last_status=outcome.status,
        last_error=outcome.error,
        error_kind=outcome.error_kind,
        first_attempt_at=first,
        last_attempt_at=_iso(now),
    )
    letter = messages.dead_letter_message(
        dataclasses.replace(d, first_attempt_at=first, not_before=None, throttled_ms=None),
        message.event,
        failure,
    )
    if ordered_queue is not None and d.group_id:
        if _head_failure_mode(d) == ordering.HOLD:
            held.hold(
                messages.delivery_message(letter.delivery, message.event),
                key=d.ordering_key or "",
                group=d.group_id,
                queue_url=ordered_queue,
                failure=failure,
            )
            RECORDER.attempt(
                delivery=d,
                event=message.event,
                event_json=body,
                status=records.HELD,
                outcome=outcome,
                at=now,
            )
            logger.warning(
                "Ordered key held: its head failed for good",
                extra={**ids, "attempt": d.attempt, "group_id": d.group_id},
            )
            return {"outcome": HELD, "token": token}
        # skip: dead-lettered in its key's group of the FIFO DLQ; the key's next event flows.
        held.send_dead_letter(letter, group=d.group_id)
    else:
        _send(central_dlq_url(), letter)
    RECORDER.attempt(
        delivery=d,
        event=message.event,
        event_json=body,
        status=records.DEAD,
        outcome=outcome,
        at=now,
    )
    logger.warning(
        "Delivery dead-lettered",
        extra={**ids, "attempt": d.attempt, "error_kind": outcome.error_kind},
    )
    return {"outcome": DEAD, "token": token}


def _head_failure_mode(d: messages.Delivery) -> str:
    """The subscription's `on_head_failure` (its ROUTE item; `skip` when it is gone)."""
    for route in config.routes(d.tenant_id):
        if route.get("subscription_id") == d.subscription_id:
            return ordering.on_head_failure(route)
    return ordering.SKIP


def send(
    consumer: dict, message: messages.Message, *, body: str | None = None
) -> transport.Outcome:
    """The attempt itself: an HTTPS POST or an SQS send, per the consumer's kind. `body`: the
    event JSON when the caller already has it (`message_event_json`)."""
    d = message.delivery
    body = message_event_json(message) if body is None else body
    try:
        if consumer.get("kind") == "sqs":
            return transport.send_sqs(
                (consumer.get("target") or {}).get("queue_arn", ""), body=body, delivery=d
            )
        headers = {
            **signing.auth_headers(consumer),
            **signing.webhook_headers(
                delivery_id=d.delivery_id, body=body, secrets_=signing.signing_secrets(consumer)
            ),
        }
    except secrets.SecretError:
        # A reference this tenant cannot decrypt: a configuration problem, retried (a new
        # secret saved in the portal fixes it); never the secret or the token in the error.
        return transport.Outcome(
            ok=False,
            error="A secret of the consumer cannot be decrypted.",
            error_kind=messages.ERROR_CONSUMER_GONE,
        )
    timeout_s = max(0.1, int(consumer.get("timeout_ms") or DEFAULT_TIMEOUT_MS) / 1000)
    return transport.post(
        (consumer.get("target") or {}).get("url", ""),
        body=body.encode(),
        headers=headers,
        timeout_s=timeout_s,
    )


def message_event_json(message: messages.Message) -> str:
    """The bytes a consumer receives (and that are signed): the event, compact JSON. Lone
    surrogates in content queued before the ingress refused them are sent escaped
    (`jsontext.dumps`), where `.encode()` would have raised."""
    return jsontext.dumps(message.event)
