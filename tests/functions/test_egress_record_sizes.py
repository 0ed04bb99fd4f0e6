"""Delivery records in the units DynamoDB counts: events stored as UTF-8 (not six-byte
escapes), an item over DynamoDB's 400 KB stored cut with a flag, and an item DynamoDB refuses
never holding up the records behind it. And content queued before the ingress refused lone
surrogates and NaN is delivered, recorded and dead-lettered without a crash."""

from broker.functions.egress import RECORDER, flush_records
from broker.functions.shared import jsontext, messages, records
from tests.functions import egress_fixtures

egress, receiver = egress_fixtures.egress, egress_fixtures.receiver


def _event_item(egress, message) -> dict:
    (item,) = [i for i in egress.history(message.delivery.delivery_id) if i["SK"] == "EVENT"]
    return item


def test_an_event_record_too_large_for_dynamodb_is_stored_cut_with_a_flag(egress):
    consumer = egress.consumer()
    message = egress.message(consumer, data={"blob": "注" * 150_000})  # 450,000 bytes
    assert egress.run(message) == {"batchItemFailures": []}
    assert len(egress.receiver.received) == 1

    item = _event_item(egress, message)
    assert item["truncated"] is True
    assert item["event_bytes"] == jsontext.size(message.event)
    assert len(item["event"].encode()) < records.MAX_ITEM_BYTES
    assert item["event"].startswith('{"id":')
    (attempt,) = [i for i in egress.history(message.delivery.delivery_id) if i["SK"] != "EVENT"]
    assert attempt["status"] == "ok"


def test_an_item_dynamodb_refuses_does_not_hold_up_the_records_behind_it(egress):
    # Stands for any item the recorder could not make fit: DynamoDB refuses the whole
    # BatchWriteItem for it (ValidationException).
    RECORDER._put(("DLOG#poison", "poison"), {"blob": {"S": "x" * 500_000}})
    consumer = egress.consumer()
    first = egress.message(consumer)
    egress.run(first)
    flush_records()
    assert RECORDER.pending() == 0
    assert {i["SK"] for i in egress.history(first.delivery.delivery_id)} == {
        "EVENT",
        "ATTEMPT#0000#0001",
    }

    later = egress.message(consumer)
    egress.run(later)
    assert len(egress.history(later.delivery.delivery_id)) == 2


def test_the_event_of_a_delivery_to_a_consumer_gone_is_recorded_in_utf_8(egress):
    gone = egress.consumer(enabled=False)
    message = egress.message(gone, data={"note": "注文" * 1000})
    egress.run(message)

    (letter,) = egress.dead_letters()
    assert letter.failure.error_kind == messages.ERROR_CONSUMER_GONE
    item = _event_item(egress, message)
    assert "注文" in item["event"] and "\\u" not in item["event"]
    assert len(item["event"].encode()) < 6_200  # 6,000 bytes of data, not 12,000 escaped


def test_content_queued_before_the_ingress_refused_it_is_delivered_without_a_crash(egress):
    """A lone surrogate (and NaN) in a message queued by an older ingress: sent escaped, as the
    producer sent it, recorded, and dead-lettered readable."""
    consumer = egress.consumer()
    body = egress.message(consumer, data={"s": "a\ud800b", "n": float("nan")}).body()
    assert "\\ud800" in body  # a body as any writer makes it: SQS would refuse the raw form
    assert egress.run(body) == {"batchItemFailures": []}

    (got,) = egress.receiver.received
    assert b"a\\ud800b" in got.body and b"NaN" in got.body
    message = messages.parse(body)
    assert "\\ud800" in _event_item(egress, message)["event"]

    gone = egress.consumer(enabled=False)
    egress.run(egress.message(gone, data={"s": "\udfff"}))
    (letter,) = egress.dead_letters()
    assert letter.event["data"] == {"s": "\udfff"}
