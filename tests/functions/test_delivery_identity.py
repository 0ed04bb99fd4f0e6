"""The same event keeps the same identity across a producer's retries: the event id comes from
the producer's id (or an SQS producer's messageId), the delivery id from tenant, event id and
subscription. So the deliveries sent twice by a crash, a partial SendMessageBatch failure or a
redelivered SQS record carry the same `webhook-id`, and the egress's idempotency on (delivery
id, replay, attempt) lets each reach the receiver once."""

import json
from collections import Counter

import pytest

from broker.functions import aws, settings
from broker.functions.ingress import envelope, limits, sqs_source_handler
from broker.functions.shared import messages, records
from tests.functions import egress_fixtures
from tests.functions.egress_fixtures import sqs_record
from tests.helpers.functions import new_queue, post, receive_all

egress, receiver = egress_fixtures.egress, egress_fixtures.receiver

ORDER = {"type": "order.created", "data": {"total": 12}, "id": "order-900"}


class Crash(BaseException):
    """The process dying between two steps: no handler runs."""


@pytest.fixture
def shop(egress):
    """A tenant whose two subscriptions go to the egress's receiver."""
    t = egress.tenant
    t.prod = t.producer()
    t.key = t.api_key(t.prod)
    t.subs = [t.route("order.*", egress.consumer()) for _ in range(2)]
    return t


def _deliver_all(egress, shop) -> list[messages.Message]:
    """Every delivery message now queued for the tenant, run through the egress."""
    queued = shop.deliveries()
    if queued:
        egress.run(*queued)
    return queued


def _webhook_ids(receiver) -> Counter:
    return Counter(r.headers["webhook-id"] for r in receiver.received)


def _expire_claim(tenant_id, producer_id, source_id):
    """The pending claim's lease in the past, as after 90 s."""
    pk, sk = records.event_id_key(tenant_id, producer_id, source_id)
    aws.dynamodb().update_item(
        TableName=settings.get().dataplane_table,
        Key={"PK": {"S": pk}, "SK": {"S": sk}},
        UpdateExpression="SET lease = :past",
        ExpressionAttributeValues={":past": {"N": "1"}},
    )


def test_delivery_ids_are_derived_from_tenant_event_and_subscription(shop):
    status, body, _ = post(body=ORDER, key=shop.key)
    assert status == 202
    sent = shop.deliveries()
    assert {m.delivery.delivery_id for m in sent} == {
        messages.delivery_id_for(shop.tenant_id, body["id"], sub.pk) for sub in shop.subs
    }
    for m in sent:  # the format of every delivery id so far
        assert m.delivery.delivery_id.startswith("msg_") and len(m.delivery.delivery_id) == 36
    assert body["id"] == envelope.new_event_id(shop.tenant_id, shop.prod.pk, ORDER["id"])


def test_a_crash_between_send_and_mark_reaches_the_receiver_once_per_webhook_id(
    egress, receiver, shop, monkeypatch
):
    real_complete = limits.complete_event_ids

    def crash(*args, **kwargs):
        raise Crash

    monkeypatch.setattr(limits, "complete_event_ids", crash)
    with pytest.raises(Crash):
        post(body=ORDER, key=shop.key)
    first = _deliver_all(egress, shop)
    monkeypatch.setattr(limits, "complete_event_ids", real_complete)

    _expire_claim(shop.tenant_id, shop.prod.pk, ORDER["id"])
    status, body, _ = post(body=ORDER, key=shop.key)
    assert status == 202 and "duplicate" not in body  # routed again: at least once
    again = _deliver_all(egress, shop)

    assert {m.delivery.delivery_id for m in again} == {m.delivery.delivery_id for m in first}
    assert _webhook_ids(receiver) == {m.delivery.delivery_id: 1 for m in first}


def test_a_partial_send_failure_and_the_producers_retry_reach_the_receiver_once_per_webhook_id(
    egress, receiver, shop, monkeypatch
):
    client = aws.sqs()
    real = client.send_message_batch

    def refuse_the_second(**kwargs):
        # SQS refuses the second subscription's delivery, and again when it is sent once more.
        entries = kwargs["Entries"]
        refused = [e for e in entries if shop.subs[1].pk in e["MessageBody"]]
        out = real(QueueUrl=kwargs["QueueUrl"], Entries=[e for e in entries if e not in refused])
        out["Failed"] = [
            {"Id": e["Id"], "SenderFault": False, "Code": "InternalError"} for e in refused
        ]
        return out

    monkeypatch.setattr(client, "send_message_batch", refuse_the_second)
    status, body, _ = post(body=ORDER, key=shop.key)
    assert (status, body["error"]["code"]) == (503, "unavailable")  # one delivery went out
    first = _deliver_all(egress, shop)
    assert len(first) == 1
    monkeypatch.setattr(client, "send_message_batch", real)

    status, body, _ = post(body=ORDER, key=shop.key)  # the producer's retry: both sent
    assert status == 202 and body["deliveries"] == 2
    again = _deliver_all(egress, shop)
    assert first[0].delivery.delivery_id in {m.delivery.delivery_id for m in again}
    assert _webhook_ids(receiver) == {m.delivery.delivery_id: 1 for m in again}


def test_a_released_claim_keeps_the_event_id(shop, monkeypatch):
    client = aws.sqs()
    real = client.send_message_batch

    def refuse_all(**kwargs):
        return {
            "Successful": [],
            "Failed": [
                {"Id": e["Id"], "SenderFault": False, "Code": "InternalError"}
                for e in kwargs["Entries"]
            ],
        }

    monkeypatch.setattr(client, "send_message_batch", refuse_all)
    assert post(body=ORDER, key=shop.key)[0] == 503  # the claim is released
    monkeypatch.setattr(client, "send_message_batch", real)
    status, body, _ = post(body=ORDER, key=shop.key)
    assert status == 202
    assert body["id"] == envelope.new_event_id(shop.tenant_id, shop.prod.pk, ORDER["id"])


def test_a_redelivered_sqs_producer_record_reaches_the_receiver_once_per_webhook_id(
    egress, receiver, monkeypatch
):
    t = egress.tenant
    _, queue_arn = new_queue()
    prod = t.producer(kind="sqs", source_queue_arn=queue_arn)
    t.route("order.*", egress.consumer())
    body = json.dumps({"type": "order.created", "data": {"total": 1}})  # no `id`
    rec = sqs_record(body, queue_arn, message_id="0f6b2c1e-5c1a-4d7e-9a55-3b9a0c1d2e3f")

    # A crash after the send (the record is not deleted): SQS hands it out again.
    real_complete = limits.complete_event_ids

    def crash(*args, **kwargs):
        raise Crash

    monkeypatch.setattr(limits, "complete_event_ids", crash)
    with pytest.raises(Crash):
        sqs_source_handler({"Records": [rec]}, None)
    monkeypatch.setattr(limits, "complete_event_ids", real_complete)
    first = _deliver_all(egress, t)
    _expire_claim(t.tenant_id, prod.pk, rec["messageId"])
    assert sqs_source_handler({"Records": [rec]}, None) == {"batchItemFailures": []}
    again = _deliver_all(egress, t)
    # And once more after it was marked done: a duplicate, nothing routed.
    assert sqs_source_handler({"Records": [rec]}, None) == {"batchItemFailures": []}
    assert receive_all(t.queue_urls[0]) == []

    assert len(first) == len(again) == 1
    assert first[0].delivery.delivery_id == again[0].delivery.delivery_id
    assert first[0].event["source_id"] == rec["messageId"]
    assert _webhook_ids(receiver) == {first[0].delivery.delivery_id: 1}
