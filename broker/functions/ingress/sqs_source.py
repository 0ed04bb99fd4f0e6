"""SQS producers: the records of a producer's source queue, through the same checks and
routing as HTTP events.

The producer is found by the queue's ARN (`config.source_queue`, one GetItem, cached). A
record whose event can never be accepted (not JSON, invalid, a type the producer may not
send, a schema mismatch, too large) is dropped and logged: sending it again cannot help. A
record refused for a reason that may pass (rate, quota, a disabled producer or suspended
tenant, a queue no producer reads yet, a failed send) is reported as a batch item failure, so
SQS delivers it again after its visibility timeout and, past the queue's maxReceiveCount, to
the producer's own dead-letter queue. A record without the producer's `id` takes its SQS
messageId as one (`_parse`).
"""

import json
from collections import defaultdict

from aws_lambda_powertools import Logger
from botocore.exceptions import BotoCoreError, ClientError

from . import auth, envelope, service
from .errors import IngressError

logger = Logger(service="broker-ingress", child=True)


def _parse(record: dict):
    """The record's event. One without its own `id` takes the record's SQS messageId, which
    SQS keeps when it hands the message out again: a redelivered record is then the same
    event (a duplicate, or the same event and delivery ids if it was not marked done), not a
    new one."""
    raw = envelope.parse_json(record.get("body") or "")
    if isinstance(raw, dict) and raw.get("id") is None and record.get("messageId"):
        raw = {**raw, "id": record["messageId"]}
    return raw


def failed_message_ids(records: list[dict]) -> set[str]:
    """The messageIds of the records to keep in the queue (a partial batch response)."""
    failed: set[str] = set()
    by_queue: dict[str, list[dict]] = defaultdict(list)
    for record in records:
        by_queue[record.get("eventSourceARN", "")].append(record)
    for queue_arn, group in by_queue.items():
        try:
            tenant, producer = auth.source_producer(queue_arn)
        except (BotoCoreError, ClientError):
            failed.update(r["messageId"] for r in group)
            continue
        except IngressError as exc:
            logger.warning("source queue refused", extra={"queue_arn": queue_arn, "code": exc.code})
            failed.update(r["messageId"] for r in group)
            continue
        ids = {"tenant_id": tenant["tenant_id"], "producer_id": producer["producer_id"]}
        items, kept = [], []
        for record in group:
            try:
                items.append(_parse(record))
                kept.append(record)
            except IngressError as exc:
                logger.info(
                    "record dropped",
                    extra={**ids, "message_id": record["messageId"], "code": exc.code},
                )
        if not items:
            continue
        try:
            results = service.ingest(tenant, producer, items)
        except IngressError as exc:  # rate or quota: the whole batch waits
            logger.info("batch deferred", extra={**ids, "code": exc.code})
            failed.update(r["messageId"] for r in kept)
            continue
        except (BotoCoreError, ClientError) as exc:  # DynamoDB or SQS failed: try again later
            logger.warning(
                "aws error", extra={**ids, "error": f"{type(exc).__name__}: {exc}"[:500]}
            )
            failed.update(r["messageId"] for r in kept)
            continue
        for record, result in zip(kept, results, strict=True):
            if isinstance(result, IngressError):
                if result.retryable:
                    failed.add(record["messageId"])
                else:
                    logger.info(
                        "record dropped",
                        extra={
                            **ids,
                            "message_id": record["messageId"],
                            "code": result.code,
                            "error": json.dumps(result.fields)[:500],
                        },
                    )
    return failed
