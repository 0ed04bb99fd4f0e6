"""The delivery and dead-letter formats read back what they wrote."""

import json

from broker.functions.shared import messages


def _delivery(**extra):
    return messages.Delivery(
        delivery_id=messages.new_delivery_id(),
        tenant_id="t",
        consumer_id="c",
        subscription_id="s",
        producer_id="p",
        event_id="evt_1",
        event_type="order.created",
        **extra,
    )


EVENT = messages.event_body(
    event_id="evt_1",
    type_="order.created",
    time="2026-11-30T10:00:00Z",
    data={"a": [1]},
    source_id="o-1",
)


def test_a_delivery_message_reads_back_as_written_without_an_unset_not_before():
    message = messages.delivery_message(_delivery(), EVENT)
    body = message.body()
    assert "not_before" not in json.loads(body)["delivery"]
    back = messages.parse(body)
    assert (back.kind, back.delivery, back.event) == ("delivery", message.delivery, EVENT)


def test_a_dead_letter_reads_back_with_its_failure_and_a_truncated_error():
    failure = messages.Failure(
        attempts=3,
        last_status=503,
        last_error="x" * 5000,
        error_kind=messages.ERROR_HTTP,
        first_attempt_at="2026-11-30T10:00:00Z",
        last_attempt_at="2026-11-30T10:05:00Z",
    )
    message = messages.dead_letter_message(_delivery(not_before=None, attempt=3), EVENT, failure)
    back = messages.parse(message.body())
    assert back.failure.last_error == "x" * messages.LAST_ERROR_MAX_CHARS
    assert back.failure.attempts == 3 and back.delivery.attempt == 3
    assert failure.last_error == "x" * 5000  # the message's own copy was not changed
