"""Events recorded before the ingress refused NaN and lone surrogates, or cut to DynamoDB's
item limit, are shown by `GET /api/v1/deliveries/{id}/` without a 500: escaped, and flagged."""

import math

import pytest

from broker import services
from broker.functions.shared import records
from core import aws
from tests import dataplane_items as dp

from .test_api import at, queued

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("empty_dataplane")]


@pytest.fixture
def consumer(world):
    from django_tenants.utils import tenant_context

    with tenant_context(world.a):
        consumer, _ = services.consumer_create(
            actor=world.admin_a,
            name="warehouse",
            kind="sqs",
            queue_arn="arn:aws:sqs:eu-west-1:123456789012:warehouse",
        )
    return consumer


OLD = {
    "id": "evt_old",
    "type": "order.created",
    "time": "2026-11-30T10:00:00Z",
    "data": {"n": math.nan, "big": math.inf, "s": "a\ud800b", "ok": "注文"},
}


def test_an_event_stored_with_nan_and_a_lone_surrogate_is_shown_escaped_and_flagged(
    world, api, consumer
):
    dp.attempt(world.a, consumer.pk, delivery_id="msg_old", at=at(1), event=OLD)
    response = api(world.viewer_a, world.a).get("/api/v1/deliveries/msg_old/")
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["event_escaped"] is True and body["event_truncated"] is False
    assert body["event"]["data"] == {"n": "NaN", "big": "Infinity", "s": "a\\ud800b", "ok": "注文"}


def test_an_ordinary_event_is_not_flagged(world, api, consumer):
    dp.attempt(world.a, consumer.pk, delivery_id="msg_new", at=at(1))
    body = api(world.viewer_a, world.a).get("/api/v1/deliveries/msg_new/").json()
    assert (body["event_escaped"], body["event_truncated"]) == (False, False)
    assert body["event"]["data"] == {"total": 12}


def test_a_resend_sends_the_event_as_stored_not_as_shown(world, api, consumer):
    queued(world.a)
    dp.attempt(
        world.a, consumer.pk, delivery_id="msg_old", at=at(1), status=records.DEAD, event=OLD
    )
    response = api(world.developer_a, world.a).post("/api/v1/deliveries/msg_old/resend/")
    assert response.status_code == 202, response.content
    (message,) = queued(world.a)
    assert math.isnan(message.event["data"]["n"]) and message.event["data"]["s"] == "a\ud800b"


def test_an_event_cut_to_dynamodbs_limit_is_flagged_and_not_resent(world, api, consumer):
    dp.attempt(world.a, consumer.pk, delivery_id="msg_cut", at=at(1), status=records.DEAD)
    pk, sk = records.delivery_event_key(str(world.a.pk), "msg_cut")
    from django.conf import settings

    aws.dynamodb().update_item(
        TableName=settings.DATAPLANE_TABLE,
        Key={"PK": {"S": pk}, "SK": {"S": sk}},
        UpdateExpression="SET #e = :e, truncated = :t, event_bytes = :n",
        ExpressionAttributeNames={"#e": "event"},
        ExpressionAttributeValues={
            ":e": {"S": '{"id":"evt_1","type":"order.created","data":{"blob":"xxx'},
            ":t": {"BOOL": True},
            ":n": {"N": "500000"},
        },
    )
    body = api(world.viewer_a, world.a).get("/api/v1/deliveries/msg_cut/").json()
    assert body["event_truncated"] is True
    assert body["event"] == {"raw": '{"id":"evt_1","type":"order.created","data":{"blob":"xxx'}
    response = api(world.developer_a, world.a).post("/api/v1/deliveries/msg_cut/resend/")
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "event_truncated"
