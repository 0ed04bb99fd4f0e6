"""Held keys planted as the data plane holds them (broker.functions.shared.held's own
functions, on the in-process moto): for the portal's API, page and console tests."""

from dataclasses import dataclass

from broker.functions.shared import held, messages, ordering
from tests.helpers.functions import fifo_dlq_url, new_fifo_queue, receive_fifo


@dataclass
class HeldKey:
    key: str
    group: str
    queue_url: str
    sent: list  # the key's messages, the head first

    def released(self) -> list[messages.Message]:
        """What the key's FIFO queue holds now (received and deleted)."""
        return [r["message"] for r in receive_fifo(self.queue_url)]


def _message(tenant_id: str, subscription, key: str, n: int, attempt: int) -> messages.Message:
    return messages.delivery_message(
        messages.Delivery(
            delivery_id=messages.new_delivery_id(),
            tenant_id=tenant_id,
            consumer_id=str(subscription.consumer_id),
            subscription_id=str(subscription.pk),
            producer_id=None,
            event_id=f"evt_{key}_{n}",
            event_type="order.paid",
            attempt=attempt,
        ),
        {
            "id": f"evt_{key}_{n}",
            "type": "order.paid",
            "time": "2026-12-06T00:00:00Z",
            "data": {"order_id": key, "n": n},
        },
    )


def hold_key(
    tenant, subscription, key: str, *, n: int = 3, error: str = "HTTP 500", queue_url=None
) -> HeldKey:
    """Holds `key` of the subscription: its head failed for good with `error`, `n - 1` later
    events held behind it, as the egress leaves them. `queue_url`: the key's FIFO queue (a
    fresh one by default)."""
    tenant_id = str(tenant.pk)
    group = ordering.group_id(tenant_id, str(subscription.pk), key)
    queue = queue_url or new_fifo_queue()
    sent = [_message(tenant_id, subscription, key, i, 3 if i == 0 else 1) for i in range(n)]
    held.hold(
        sent[0],
        key=key,
        group=group,
        queue_url=queue,
        failure=messages.Failure(
            attempts=3,
            last_status=500,
            last_error=error,
            error_kind=messages.ERROR_HTTP,
            first_attempt_at="2026-12-06T00:00:00.000+00:00",
            last_attempt_at="2026-12-06T00:01:00.000+00:00",
        ),
    )
    for later in sent[1:]:
        assert held.admit(later, group=group, marker_=None) == "held"
    return HeldKey(key=key, group=group, queue_url=queue, sent=sent)


def dead_letters() -> list[messages.Message]:
    """What the central FIFO DLQ holds now (received and deleted); made if missing."""
    return [r["message"] for r in receive_fifo(fifo_dlq_url())]
