"""One delivery message → one attempt, a retry scheduled or a dead letter (docs/design.md, flow 5).

`process_body` is the whole egress for one SQS record, as a plain function over the body and
the ARN of the queue it came from. It returns what happened (an `OUTCOMES` name) and raises
only for transient errors of the platform itself (DynamoDB, SQS or KMS unavailable): the
handler reports those records as failed, so SQS hands them out again later. What a consumer
does (an error answer, a timeout, a refused connection, a refused queue) is never an
exception: it is a failed attempt, retried per the consumer's policy and, after the last
one, a dead letter on the central DLQ.

A duplicated SQS message is absorbed by Powertools idempotency on (tenant, delivery id,
replay, attempt) in `IDEMPOTENCY_TABLE`: the second copy returns the first one's result
without calling the consumer. A retry (attempt + 1) or a replay (replay + 1) is a new key.
Within a handler's batch the COMPLETED marks are written together at its end
(egress/idempotency.py says what that changes: nothing a consumer sees).
"""

import dataclasses
import functools
import json
import threading
import uuid
from datetime import UTC, datetime, timedelta

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.idempotency import IdempotencyConfig, idempotent_function

from broker.functions import aws, config, settings
from broker.functions.egress import idempotency, inflight, policy, signing, transport
from broker.functions.egress.recorder import RECORDER
from broker.functions.shared import arn, messages, records, secrets

logger = Logger(service="broker-egress", child=True)

DELIVERED, RETRYING, DEAD = "delivered", "retrying", "dead"
DUPLICATE = "duplicate"  # an SQS duplicate absorbed by idempotency
DEFERRED = "deferred"  # over the consumer's in-flight cap: put back, not an attempt
WAITING = "waiting"  # a retry not due yet (delays beyond 900 s): put back for another step
MALFORMED = "malformed"  # not a delivery message: forwarded as it is to the central DLQ
OUTCOMES = (DELIVERED, RETRYING, DEAD, DUPLICATE, DEFERRED, WAITING, MALFORMED)

# How long a duplicate is recognised: far longer than SQS keeps a message invisible.
IDEMPOTENCY_EXPIRY_SECONDS = 24 * 3600
# Outside Lambda (local runner, tests) there is no remaining time to bound an in-progress
# idempotency record: one left by a killed process blocks its message this long.
LOCAL_IN_PROGRESS_MS = 5 * 60 * 1000
DEFAULT_TIMEOUT_MS = 10_000  # a consumer item without `timeout_ms`
# An attempt starting with less than its timeout plus this left may be cut by Lambda's timeout.
DEADLINE_MARGIN_MS = 5_000


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


_idem_lock = threading.Lock()
_idem: dict[tuple, tuple] = {}


def _idempotent_attempt(lambda_context):
    """`attempt` wrapped by Powertools idempotency on this process's table and client."""
    s = settings.get()
    client = aws.dynamodb()
    key = (s.idempotency_table, id(client))
    with _idem_lock:
        if key not in _idem:
            cfg = IdempotencyConfig(
                expires_after_seconds=IDEMPOTENCY_EXPIRY_SECONDS,
                raise_on_no_idempotency_key=True,
            )
            layer = idempotency.BatchedCompletionLayer(
                table_name=s.idempotency_table, boto3_client=client
            )
            wrapped = idempotent_function(
                attempt,
                data_keyword_argument="key",
                persistence_store=layer,
                config=cfg,
                key_prefix="broker-egress",
            )
            _idem[key] = (cfg, wrapped)
        cfg, wrapped = _idem[key]
    cfg.register_lambda_context(lambda_context or _LocalContext())
    return wrapped


def _may_outrun(lambda_context, consumer: dict) -> bool:
    """Could an attempt at this consumer last past the invocation's deadline? (Lambda only.)"""
    if lambda_context is None:
        return False
    timeout_ms = int(consumer.get("timeout_ms") or DEFAULT_TIMEOUT_MS)
    return lambda_context.get_remaining_time_in_millis() < timeout_ms + DEADLINE_MARGIN_MS


# --- the egress for one record ----------------------------------------------------------


def process_body(body: str, *, source_arn: str, slots: inflight.Slots, lambda_context=None) -> str:
    """The egress for one SQS record body from the queue `source_arn`; returns an outcome."""
    try:
        message = messages.parse(body)
        if message.kind != messages.DELIVERY:
            raise messages.MessageError(f"a {message.kind} message on a delivery queue")
    except messages.MessageError as exc:
        # Nothing to deliver or retry: the DLQ ingest quarantines it for an operator.
        logger.warning("Malformed delivery message forwarded to the DLQ", extra={"error": str(exc)})
        aws.sqs().send_message(QueueUrl=central_dlq_url(), MessageBody=body)
        return MALFORMED
    d = message.delivery
    ids = {"tenant_id": d.tenant_id, "consumer_id": d.consumer_id, "delivery_id": d.delivery_id}
    if d.not_before:
        try:
            wait = (datetime.fromisoformat(d.not_before) - _now()).total_seconds()
        except (TypeError, ValueError):
            wait = 0  # unreadable: due now rather than stuck
        if wait > 1:
            _send(queue_url(source_arn), message, delay=wait)
            logger.debug("Retry not due yet, put back", extra={**ids, "wait_s": round(wait)})
            return WAITING
    consumer = config.consumer(d.tenant_id, d.consumer_id)
    tenant = config.tenant(d.tenant_id) or {}
    usable = bool(consumer) and consumer.get("enabled", True)
    if usable and tenant.get("deployment_model") == "pool" and consumer.get("concurrency"):
        if not slots.acquire(d.tenant_id, d.consumer_id, int(consumer["concurrency"])):
            _send(queue_url(source_arn), message, delay=inflight.defer_delay())
            logger.info("Consumer at its in-flight cap, message put back", extra=ids)
            return DEFERRED
    if usable and _may_outrun(lambda_context, consumer):
        # Should the invocation time out during this attempt, the marks of the deliveries
        # already made must not be lost with it (they would be sent again).
        idempotency.write_pending()
    token = uuid.uuid4().hex
    run = _idempotent_attempt(lambda_context)
    result = run(
        key={
            "tenant_id": d.tenant_id,
            "delivery_id": d.delivery_id,
            "replay": d.replay,
            "attempt": d.attempt,
        },
        message=message,
        consumer=consumer if usable else None,
        tenant=tenant,
        source_arn=source_arn,
        token=token,
    )
    if result.get("token") != token:
        logger.info("Duplicate SQS message absorbed", extra=ids)
        return DUPLICATE
    return result["outcome"]


def attempt(
    *,
    key: dict,
    message: messages.Message,
    consumer: dict | None,
    tenant: dict,
    source_arn: str,
    token: str,
) -> dict:
    """One attempt and its consequence (retry re-enqueued, or dead letter), recorded."""
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
        outcome = send(consumer, message, body=body)
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
        due = now + timedelta(seconds=delay)
        nxt = dataclasses.replace(
            d,
            attempt=d.attempt + 1,
            first_attempt_at=first,
            not_before=_iso(due) if delay > policy.MAX_SQS_DELAY else None,
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
        dataclasses.replace(d, first_attempt_at=first, not_before=None), message.event, failure
    )
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
    """The bytes a consumer receives (and that are signed): the event, compact JSON."""
    return json.dumps(message.event, separators=(",", ":"), ensure_ascii=False)
