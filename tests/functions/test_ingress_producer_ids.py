"""Producer ids when the ingress dies mid-request: the claim is pending until the deliveries are
sent, so a crash never turns the producer's retry into a "duplicate" of an event that was not
routed (docs/data-plane.md, "Producer ids")."""

import pytest
from botocore.exceptions import ClientError

from broker.functions import aws, settings
from broker.functions.ingress import limits, routing
from broker.functions.shared import records
from tests.helpers.functions import post

ORDER = {"type": "order.created", "data": {"total": 12}, "id": "order-77"}


class Crash(BaseException):
    """The process dying (a Lambda timeout, an out-of-memory kill): no handler runs."""


@pytest.fixture
def shop(dataplane):
    t = dataplane.tenant()
    t.prod = t.producer()
    t.key = t.api_key(t.prod)
    t.route("order.created", t.consumer())
    return t


def _crash_in(monkeypatch, module, name):
    real = getattr(module, name)
    calls = []

    def crashing(*args, **kwargs):
        calls.append(args)
        raise Crash

    monkeypatch.setattr(module, name, crashing)
    return real, calls


def test_a_crash_before_the_deliveries_are_sent_leaves_the_event_to_the_producers_retry(
    shop, monkeypatch
):
    real_send, calls = _crash_in(monkeypatch, routing, "send")
    with pytest.raises(Crash):
        post(body=ORDER, key=shop.key)
    (_, outgoing) = calls[0]
    crashed_event_id = outgoing[0].message.event["id"]
    monkeypatch.setattr(routing, "send", real_send)

    # Within the lease the dead request may still be at work: not routed, not "duplicate".
    status, body, headers = post(body=ORDER, key=shop.key)
    assert (status, body["error"]["code"], headers["retry-after"]) == (503, "unavailable", "1")
    assert shop.deliveries() == []

    _expire_claim(shop)
    status, first, _ = post(body=ORDER, key=shop.key)
    assert status == 202 and "duplicate" not in first
    assert first["id"] == crashed_event_id  # the event keeps the id the crashed request chose
    (message,) = shop.deliveries()
    assert message.event["id"] == crashed_event_id

    status, again, _ = post(body=ORDER, key=shop.key)
    assert (status, again) == (202, {**first, "duplicate": True})
    assert shop.deliveries() == []


def test_a_crash_after_the_deliveries_are_sent_delivers_again_with_the_same_event_id(
    shop, monkeypatch
):
    real_complete, _ = _crash_in(monkeypatch, limits, "complete_event_ids")
    with pytest.raises(Crash):
        post(body=ORDER, key=shop.key)
    (sent,) = shop.deliveries()
    monkeypatch.setattr(limits, "complete_event_ids", real_complete)

    _expire_claim(shop)
    status, body, _ = post(body=ORDER, key=shop.key)

    # At least once: the retry routes it again, under the same event id.
    assert status == 202 and "duplicate" not in body
    (again,) = shop.deliveries()
    assert again.event["id"] == sent.event["id"] == body["id"]


def test_an_aws_failure_mid_request_forgets_the_claims_so_the_retry_is_routed(shop, monkeypatch):
    real_send = routing.send

    def failing(*args, **kwargs):
        raise ClientError({"Error": {"Code": "InternalError"}}, "SendMessageBatch")

    monkeypatch.setattr(routing, "send", failing)
    status, body, _ = post("/v1/events/batch", body=[ORDER, {**ORDER, "id": "o-2"}], key=shop.key)
    assert status == 503
    monkeypatch.setattr(routing, "send", real_send)

    status, body, _ = post("/v1/events/batch", body=[ORDER, {**ORDER, "id": "o-2"}], key=shop.key)
    assert status == 202
    assert [("duplicate" in r, r["deliveries"]) for r in body["results"]] == [(False, 1)] * 2
    assert len(shop.deliveries()) == 2


def _expire_claim(shop):
    """Moves the pending claim's lease into the past, as the clock would after 90 s."""
    pk, sk = records.event_id_key(shop.tenant_id, shop.prod.pk, ORDER["id"])
    aws.dynamodb().update_item(
        TableName=settings.get().dataplane_table,
        Key={"PK": {"S": pk}, "SK": {"S": sk}},
        UpdateExpression="SET lease = :past",
        ExpressionAttributeValues={":past": {"N": "0"}},
    )
