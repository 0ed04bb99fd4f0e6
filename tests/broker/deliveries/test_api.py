"""The deliveries API: the log with its filters, a delivery with its attempts, resend through
the replay path, and a consumer's test event through the ingress's routing code."""

from datetime import UTC, datetime, timedelta

import pytest
from django_tenants.utils import tenant_context

from broker import services
from broker.functions.shared import messages, records
from broker.models import AuditEvent
from core import aws
from tests import dataplane_items as dp

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("empty_dataplane")]
QUEUE = "arn:aws:sqs:eu-west-1:123456789012:warehouse"


@pytest.fixture
def consumer(world):
    with tenant_context(world.a):
        consumer, _ = services.consumer_create(
            actor=world.admin_a, name="warehouse", kind="sqs", queue_arn=QUEUE
        )
    return consumer


def queued(tenant) -> list[messages.Message]:
    """Every message waiting on the tenant's delivery queues (received, so taken off)."""
    out = []
    for url in tenant.delivery_queues:
        while True:
            got = aws.sqs().receive_message(QueueUrl=url, MaxNumberOfMessages=10)
            if not got.get("Messages"):
                break
            for m in got["Messages"]:
                out.append(messages.parse(m["Body"]))
                aws.sqs().delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
    return out


def at(minutes_ago):
    return datetime.now(UTC) - timedelta(minutes=minutes_ago)


def test_the_log_lists_attempts_newest_first_with_filters(world, api, consumer):
    dp.attempt(world.a, consumer.pk, delivery_id="msg_1", at=at(3), event_type="order.created")
    dp.attempt(
        world.a,
        consumer.pk,
        delivery_id="msg_2",
        at=at(2),
        status=records.RETRYING,
        http_status=502,
        event_type="invoice.paid",
    )
    client = api(world.viewer_a, world.a)
    body = client.get("/api/v1/deliveries/").json()
    assert [a["delivery_id"] for a in body["results"]] == ["msg_2", "msg_1"]
    assert body["results"][0]["http_status"] == 502
    only = client.get(f"/api/v1/deliveries/?consumer={consumer.pk}&status=ok").json()
    assert [a["delivery_id"] for a in only["results"]] == ["msg_1"]
    typed = client.get("/api/v1/deliveries/?event_type=invoice.paid").json()
    assert [a["delivery_id"] for a in typed["results"]] == ["msg_2"]
    since = at(2.5).isoformat().replace("+00:00", "Z")
    recent = client.get(f"/api/v1/deliveries/?since={since}").json()
    assert [a["delivery_id"] for a in recent["results"]] == ["msg_2"]


def test_bad_filters_are_400s_and_another_tenants_consumer_is_a_404(world, api, consumer):
    client = api(world.admin_b, world.b)
    assert client.get(f"/api/v1/deliveries/?consumer={consumer.pk}").status_code == 404
    assert client.get("/api/v1/deliveries/?consumer=not-a-uuid").status_code == 404
    assert client.get("/api/v1/deliveries/?status=lost").status_code == 400
    response = client.get("/api/v1/deliveries/?since=yesterday")
    assert response.status_code == 400 and "since" in response.json()["error"]["fields"]


def test_a_delivery_shows_its_event_and_attempts_to_its_own_tenant_only(world, api, consumer):
    dp.attempt(
        world.a,
        consumer.pk,
        delivery_id="msg_h",
        at=at(2),
        status=records.RETRYING,
        http_status=500,
        attempt_no=1,
    )
    dp.attempt(world.a, consumer.pk, delivery_id="msg_h", at=at(1), attempt_no=2)
    body = api(world.viewer_a, world.a).get("/api/v1/deliveries/msg_h/").json()
    assert [a["attempt"] for a in body["attempts"]] == [1, 2]
    assert body["event"]["data"] == {"total": 12}
    assert api(world.admin_b, world.b).get("/api/v1/deliveries/msg_h/").status_code == 404


def test_an_attempt_held_back_by_the_rate_limit_shows_how_long(world, api, consumer):
    dp.attempt(world.a, consumer.pk, delivery_id="msg_t", at=at(1), throttled_ms=4000)
    dp.attempt(world.a, consumer.pk, delivery_id="msg_u", at=at(1))
    client = api(world.viewer_a, world.a)

    (held,) = client.get("/api/v1/deliveries/msg_t/").json()["attempts"]
    (plain,) = client.get("/api/v1/deliveries/msg_u/").json()["attempts"]
    listed = {a["delivery_id"]: a for a in client.get("/api/v1/deliveries/").json()["results"]}

    assert held["throttled_ms"] == 4000 and listed["msg_t"]["throttled_ms"] == 4000
    assert "throttled_ms" not in plain
    schema = client.get("/api/schema/?format=json").json()
    assert "throttled_ms" in schema["components"]["schemas"]["Attempt"]["properties"]


def test_resend_queues_the_same_delivery_id_with_the_next_replay_number(world, api, consumer):
    queued(world.a)
    dp.attempt(
        world.a,
        consumer.pk,
        delivery_id="msg_r",
        at=at(2),
        status=records.DEAD,
        http_status=500,
        event_id="evt_r",
        attempt_no=3,
    )
    response = api(world.developer_a, world.a).post("/api/v1/deliveries/msg_r/resend/")
    assert response.status_code == 202, response.content
    assert response.json()["replay"] == 1
    (message,) = queued(world.a)
    d = message.delivery
    assert (d.delivery_id, d.replay, d.attempt, d.consumer_id, d.event_id) == (
        "msg_r",
        1,
        1,
        str(consumer.pk),
        "evt_r",
    )
    assert message.event["data"] == {"total": 12}
    with tenant_context(world.a):
        assert AuditEvent.objects.filter(action="delivery.resend", object_id="msg_r").exists()


def test_viewers_cannot_resend_and_a_disabled_consumer_is_refused(world, api, consumer):
    dp.attempt(world.a, consumer.pk, delivery_id="msg_v", at=at(1))
    assert api(world.viewer_a, world.a).post("/api/v1/deliveries/msg_v/resend/").status_code == 403
    with tenant_context(world.a):
        services.consumer_update(actor=world.admin_a, consumer=consumer, enabled=False)
    response = api(world.admin_a, world.a).post("/api/v1/deliveries/msg_v/resend/")
    assert response.status_code == 409 and "disabled" in response.json()["error"]["message"]


def test_a_test_event_reaches_the_tenants_delivery_queue_marked_as_a_test(world, api, consumer):
    queued(world.a)
    response = api(world.developer_a, world.a).post(f"/api/v1/consumers/{consumer.pk}/test-event/")
    assert response.status_code == 202, response.content
    (message,) = queued(world.a)
    assert message.delivery.test is True
    assert message.delivery.consumer_id == str(consumer.pk)
    assert message.delivery.delivery_id == response.json()["delivery_id"]
    assert message.event["type"] == "broker.test"
    other = api(world.admin_b, world.b).post(f"/api/v1/consumers/{consumer.pk}/test-event/")
    assert other.status_code == 404
