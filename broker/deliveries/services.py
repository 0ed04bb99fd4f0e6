"""Actions on deliveries from the portal: send one delivery again, send a test event.

The portal holds no producer API key, so neither goes through the ingress's HTTP front: both
build their delivery message with the data plane's own routing code
(`broker.functions.ingress.routing`: message per route, queue choice), and send it to the
tenant's delivery queue with the control plane's SQS client. Each is audited.
"""

import logging
import uuid

from django.db import transaction

from broker.audit import audit_record
from broker.functions.ingress import routing
from broker.functions.shared import messages
from broker.models import Consumer
from core import aws
from core.errors import ApplicationError

from . import selectors

logger = logging.getLogger(__name__)

TEST_EVENT_TYPE = "broker.test"


def _queue(tenant) -> str:
    try:
        return routing.choose_queue(
            {
                "tenant_id": str(tenant.pk),
                "delivery_queues": tenant.delivery_queues
                or ([tenant.silo_queue_url] if tenant.silo_queue_url else []),
                "deployment_model": tenant.deployment_model,
            }
        )
    except routing.NoQueue:
        raise ApplicationError(
            "This tenant has no delivery queue yet (provisioning has not finished).",
            code="no_delivery_queue",
            status_code=409,
        ) from None


def _send(tenant, message: messages.Message) -> str:
    answer = aws.sqs().send_message(
        QueueUrl=_queue(tenant),
        MessageBody=message.body(),
        MessageAttributes=message.attributes(),
    )
    return answer["MessageId"]


def _live_consumer(consumer_id) -> Consumer:
    consumer = Consumer.objects.filter(pk=consumer_id).first() if consumer_id else None
    if consumer is None:
        raise ApplicationError(
            "The consumer of this delivery no longer exists.", code="consumer_gone", status_code=409
        )
    if not consumer.enabled:
        raise ApplicationError(
            f"Consumer {consumer.name} is disabled: enable it first.",
            code="consumer_disabled",
            status_code=409,
        )
    return consumer


def delivery_resend(*, tenant, actor, delivery_id: str) -> dict:
    """Sends one delivery again, as a replay: the same delivery id (the consumer's
    `webhook-id`), the next replay number, attempt 1, the recorded event."""
    history = selectors.delivery_history(tenant.pk, delivery_id)
    if history is None or not history["attempts"]:
        raise ApplicationError("No such delivery.", code="not_found", status_code=404)
    if history["event"] is None:
        raise ApplicationError(
            "The event of this delivery is no longer kept; it cannot be sent again.",
            code="event_expired",
            status_code=409,
        )
    last = history["attempts"][-1]
    consumer = _live_consumer(last.get("consumer_id"))
    replay = max(int(a.get("replay", 0)) for a in history["attempts"]) + 1
    event = history["event"]
    message = messages.delivery_message(
        messages.Delivery(
            delivery_id=delivery_id,
            tenant_id=str(tenant.pk),
            consumer_id=str(consumer.pk),
            subscription_id=last.get("subscription_id"),
            producer_id=last.get("producer_id"),
            event_id=str(last.get("event_id") or event.get("id")),
            event_type=str(last.get("event_type") or event.get("type")),
            replay=replay,
            attempt=1,
        ),
        event,
    )
    with transaction.atomic():
        audit_record(
            actor=actor,
            action="delivery.resend",
            object_type="delivery",
            object_id=delivery_id,
            after={"consumer_id": str(consumer.pk), "replay": replay},
        )
        message_id = _send(tenant, message)
    return {
        "delivery_id": delivery_id,
        "replay": replay,
        "consumer": str(consumer.pk),
        "message_id": message_id,
    }


def consumer_test_event(*, tenant, actor, consumer: Consumer, data=None) -> dict:
    """A test event (`broker.test`, marked `test` in its delivery) to one consumer, through
    the routing code's message builder and queue choice."""
    _live_consumer(consumer.pk)
    event = messages.event_body(
        event_id="evt_" + uuid.uuid4().hex,
        type_=TEST_EVENT_TYPE,
        time=messages.now_iso(),
        data=data if data is not None else {"message": "Test event sent from the portal."},
        source_id=None,
    )
    (outgoing,) = routing.deliveries(
        tenant_id=str(tenant.pk),
        producer_id="",
        event=event,
        routes=[{"consumer_id": str(consumer.pk), "subscription_id": None}],
        event_index=0,
    )
    outgoing.message.delivery.producer_id = None
    outgoing.message.delivery.test = True
    with transaction.atomic():
        audit_record(
            actor=actor,
            action="consumer.test_event",
            object_type="consumer",
            object_id=consumer.pk,
            after={"delivery_id": outgoing.message.delivery.delivery_id},
        )
        _send(tenant, outgoing.message)
    return {
        "delivery_id": outgoing.message.delivery.delivery_id,
        "event_id": event["id"],
        "event_type": TEST_EVENT_TYPE,
        "consumer": str(consumer.pk),
    }
