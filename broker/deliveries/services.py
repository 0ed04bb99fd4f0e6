"""Actions on deliveries from the portal: send one delivery again, send a test event.

The portal holds no producer API key, so neither goes through the ingress's HTTP front: both
build their delivery message with the data plane's own routing code
(`broker.functions.ingress.routing`: message per route, queue choice), and send it to the
tenant's delivery queue with the control plane's SQS client. Each is audited. A resend takes
its replay number from the allocator the replay jobs use (`broker.deadletters.numbers`).
"""

import logging
import uuid
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.core.mail import send_mail
from django.db import transaction

from broker import services as config_services
from broker.audit import audit_record
from broker.deadletters.models import DeadLetter
from broker.deadletters.numbers import replay_number_allocate
from broker.functions.ingress import routing
from broker.functions.shared import messages, ordering
from broker.models import Consumer, Subscription
from core import aws
from core.audit_actions import AuditAction
from core.errors import ApplicationError
from core.handled import handled
from tenants.models import Membership, TenantRole

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
    d = message.delivery
    if d.group_id and tenant.ordered_queues:
        # An ordered delivery: behind its key's events, in its key's group of its FIFO queue.
        answer = aws.sqs().send_message(
            QueueUrl=ordering.queue_for({"ordered_queues": tenant.ordered_queues}, d.group_id),
            MessageBody=message.body(),
            MessageAttributes=message.attributes(),
            MessageGroupId=d.group_id,
            MessageDeduplicationId=ordering.dedup_id(d.delivery_id, d.replay),
        )
        return answer["MessageId"]
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


def _next_replay(delivery_id: str, attempts: list[dict]) -> int:
    """The resend's replay number, from the allocator replay jobs share, committed before the
    send: two resends, or a resend and a replay of the same delivery, never share a number
    (the egress would drop the second send as a duplicate). The floor is the highest number
    the records and the delivery's dead letter know of."""
    floor = max(int(a.get("replay") or 0) for a in attempts)
    letter = DeadLetter.objects.filter(delivery_id=delivery_id).first()
    if letter is not None:
        floor = max(floor, letter.replay_floor())
    with transaction.atomic():
        return replay_number_allocate(delivery_id=delivery_id, floor=floor)


def delivery_resend(*, tenant, actor, delivery_id: str) -> dict:
    """Sends one delivery again, as a replay: the same delivery id (the consumer's
    `webhook-id`), the next replay number, attempt 1, the recorded event. An ordered delivery
    (its records carry its key) goes to its key's FIFO queue, in its key's group."""
    history = selectors.delivery_history(tenant.pk, delivery_id, for_display=False)
    if history is None or not history["attempts"]:
        raise ApplicationError("No such delivery.", code="not_found", status_code=404)
    if history["event"] is None:
        raise ApplicationError(
            "The event of this delivery is no longer kept; it cannot be sent again.",
            code="event_expired",
            status_code=409,
        )
    if history["event_truncated"]:
        raise ApplicationError(
            "Only the start of this delivery's event was kept (it was too large for the "
            "delivery log); it cannot be sent again.",
            code="event_truncated",
            status_code=409,
        )
    last = history["attempts"][-1]
    consumer = _live_consumer(last.get("consumer_id"))
    replay = _next_replay(delivery_id, history["attempts"])
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
    key = last.get("ordering_key")
    if key and last.get("subscription_id"):
        message.delivery.ordering_key = key
        message.delivery.group_id = ordering.group_id(tenant.pk, last["subscription_id"], key)
    with transaction.atomic():
        audit_record(
            actor=actor,
            action=AuditAction.DELIVERY_RESEND,
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


def _test_event(*, tenant, actor, consumer: Consumer, subscription=None, data=None) -> dict:
    """A test event (marked `test` in its delivery) to one consumer, through the routing
    code's message builder and queue choice; audited on the object it was sent from."""
    _live_consumer(consumer.pk)
    event_type = TEST_EVENT_TYPE
    if subscription is not None and "*" not in subscription.event_type:
        event_type = subscription.event_type  # what the subscription really receives
    event = messages.event_body(
        event_id="evt_" + uuid.uuid4().hex,
        type_=event_type,
        time=messages.now_iso(),
        data=data if data is not None else {"message": "Test event sent from the portal."},
        source_id=None,
    )
    (outgoing,) = routing.deliveries(
        tenant_id=str(tenant.pk),
        producer_id="",
        event=event,
        routes=[
            {
                "consumer_id": str(consumer.pk),
                "subscription_id": str(subscription.pk) if subscription else None,
            }
        ],
        event_index=0,
    )
    outgoing.message.delivery.producer_id = None
    outgoing.message.delivery.test = True
    source = subscription or consumer
    with transaction.atomic():
        audit_record(
            actor=actor,
            action=(
                AuditAction.SUBSCRIPTION_TEST_EVENT
                if subscription
                else AuditAction.CONSUMER_TEST_EVENT
            ),
            object_type="subscription" if subscription else "consumer",
            object_id=source.pk,
            after={"delivery_id": outgoing.message.delivery.delivery_id},
        )
        _send(tenant, outgoing.message)
    return {
        "delivery_id": outgoing.message.delivery.delivery_id,
        "event_id": event["id"],
        "event_type": event_type,
        "consumer": str(consumer.pk),
    }


def consumer_test_event(*, tenant, actor, consumer: Consumer, data=None) -> dict:
    """A test event (`broker.test`) to one consumer."""
    return _test_event(tenant=tenant, actor=actor, consumer=consumer, data=data)


def subscription_test_event(*, tenant, actor, subscription: Subscription, data=None) -> dict:
    """A test event to the subscription's consumer, as the subscription delivers it: its event
    type when the subscription names one (`broker.test` for a pattern), its subscription id."""
    return _test_event(
        tenant=tenant,
        actor=actor,
        consumer=subscription.consumer,
        subscription=subscription,
        data=data,
    )


# --- endpoint auto-disable ---------------------------------------------------------------


def auto_disable_after_hours() -> float:
    return float(getattr(settings, "CONSUMER_AUTO_DISABLE_AFTER_HOURS", 120))


def _notify_admins(tenant, consumer_name: str, reason: str) -> None:
    emails = list(
        Membership.objects.filter(tenant=tenant, role=TenantRole.ADMIN).values_list(
            "user__email", flat=True
        )
    )
    if not emails:
        return
    try:
        send_mail(
            subject=f"[{tenant.slug}] Consumer {consumer_name} was disabled",
            message=f"{reason}\n\nRe-enable it on its page once the endpoint answers again.",
            from_email=None,
            recipient_list=emails,
        )
    except Exception:  # the consumer is disabled either way; the page says why
        handled(
            logger,
            "auto_disable_email",
            "auto-disable: could not e-mail the admins of %s",
            tenant.slug,
        )


def auto_disable_failing_consumers(*, tenant, now: datetime | None = None) -> list[str]:
    """Disables (through the consumer service: audit, version, sync) every enabled consumer of
    the active tenant schema that has failed without a success for
    CONSUMER_AUTO_DISABLE_AFTER_HOURS, and e-mails the tenant's admins. A consumer changed
    within that time (re-enabled, URL fixed) gets the full time again. Returns the names."""
    now = now or datetime.now(UTC)
    hours = auto_disable_after_hours()
    disabled = []
    candidates = Consumer.objects.filter(enabled=True, updated_at__lte=now - timedelta(hours=hours))
    for consumer in candidates:
        since = selectors.failing_since(tenant.pk, consumer.pk, hours=hours, now=now)
        if since is None:
            continue
        reason = (
            f"Disabled automatically on {now:%Y-%m-%d %H:%M} UTC: every delivery has failed "
            f"since {since:%Y-%m-%d %H:%M} UTC ({hours:g} hours or more) without a success. "
            "Fix the endpoint, then re-enable the consumer."
        )
        with transaction.atomic():
            done = config_services.consumer_auto_disable(consumer=consumer, reason=reason)
            if done is not None:
                name = done.name
                transaction.on_commit(
                    lambda name=name, reason=reason: _notify_admins(tenant, name, reason)
                )
        if done is not None:
            logger.warning("auto-disabled consumer %s of %s", consumer.pk, tenant.slug)
            disabled.append(done.name)
    return disabled
