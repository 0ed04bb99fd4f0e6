"""Test helpers (formerly in tests/broker/deadletters/conftest.py): tests import them from here, and the fixtures of
tests/broker/deadletters/conftest.py use them."""

import json
import uuid

from broker.functions.shared import messages
from core import aws


def dlq_url() -> str:
    return aws.queue_url(aws.central_dlq_name())


def purge(url: str) -> None:
    sqs = aws.sqs()
    while True:
        got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=0)
        if not got.get("Messages"):
            return
        sqs.delete_message_batch(
            QueueUrl=url,
            Entries=[
                {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]}
                for i, m in enumerate(got["Messages"])
            ],
        )


def receive_all(url: str) -> list[dict]:
    sqs, out = aws.sqs(), []
    while True:
        got = sqs.receive_message(
            QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=0, MessageAttributeNames=["All"]
        )
        batch = got.get("Messages", [])
        if not batch:
            return out
        out.extend(batch)
        sqs.delete_message_batch(
            QueueUrl=url,
            Entries=[
                {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(batch)
            ],
        )


def dead_letter(
    tenant,
    consumer_id,
    *,
    delivery_id=None,
    replay=0,
    status=503,
    error_kind=messages.ERROR_HTTP,
    event_type="order.created",
    data=None,
    subscription_id=None,
) -> messages.Message:
    delivery = messages.Delivery(
        delivery_id=delivery_id or messages.new_delivery_id(),
        tenant_id=str(tenant.pk),
        consumer_id=str(consumer_id),
        subscription_id=subscription_id,
        producer_id=str(uuid.uuid4()),
        event_id="evt_" + uuid.uuid4().hex[:12],
        event_type=event_type,
        replay=replay,
        attempt=5,
        first_attempt_at=messages.now_iso(),
    )
    event = messages.event_body(
        event_id=delivery.event_id,
        type_=event_type,
        time=messages.now_iso(),
        data=data if data is not None else {"order": 42, "card_last4": "4242"},
        source_id=None,
    )
    failure = messages.Failure(
        attempts=5,
        last_status=status if error_kind == messages.ERROR_HTTP else None,
        last_error=f"HTTP {status}" if error_kind == messages.ERROR_HTTP else "timed out",
        error_kind=error_kind,
        first_attempt_at=messages.now_iso(),
        last_attempt_at=messages.now_iso(),
    )
    return messages.dead_letter_message(delivery, event, failure)


def send_to_dlq(*bodies, attributes=None) -> None:
    url = dlq_url()
    sqs = aws.sqs()
    for body in bodies:
        if isinstance(body, messages.Message):
            attrs, text = body.attributes(), body.body()
        else:
            attrs, text = attributes or {}, body if isinstance(body, str) else json.dumps(body)
        sqs.send_message(QueueUrl=url, MessageBody=text, MessageAttributes=attrs)


def ingest_all():
    from broker.deadletters import ingest

    return ingest.run(max_batches=100, wait_seconds=0)
