"""Tenant pages about deliveries: the dashboard's charts and their data, a consumer's
endpoint health and delivery log, a delivery with its event."""

from datetime import UTC, datetime, timedelta

import pytest
from django.test import Client
from django_tenants.utils import tenant_context

from broker import services
from broker.functions.shared import records
from tests import dataplane_items as dp
from tests.helpers import host_of

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("empty_dataplane")]
QUEUE = "arn:aws:sqs:eu-west-1:123456789012:warehouse"


@pytest.fixture
def consumer(world):
    with tenant_context(world.a):
        consumer, _ = services.consumer_create(
            actor=world.admin_a, name="warehouse", kind="sqs", queue_arn=QUEUE
        )
    return consumer


def page(user, tenant):
    client = Client(HTTP_HOST=host_of(tenant))
    client.force_login(user)
    return client


def ago(minutes):
    return datetime.now(UTC) - timedelta(minutes=minutes)


def test_the_dashboard_draws_its_charts_with_the_vendored_uplot(world):
    body = page(world.viewer_a, world.a).get("/").content.decode()
    assert "/static/vendor/uplot/uPlot.iife.min.js" in body and "//cdn" not in body
    assert 'data-testid="delivery-charts"' in body and 'aria-live="polite"' in body


def test_the_chart_data_holds_deliveries_latency_quota_and_dead_letters(world, consumer):
    dp.tenant_minute(world.a, ago(2), delivered=8, failed=2, dead=1, ingested=10)
    dp.consumer_minute(world.a, consumer.pk, ago(2), ok=8, failed=2, latencies=[20] * 10)
    data = page(world.viewer_a, world.a).get("/dashboard/data/?hours=6").json()
    assert data["hours"] == 6 and data["step_minutes"] == 5
    assert sum(data["deliveries"]["ok"]) == 8 and sum(data["deliveries"]["failed"]) == 2
    assert sum(data["dead"]["dead"]) == 1
    assert data["totals"]["p50"] == 25 and data["totals"]["success_rate"] == 0.8
    quota = world.a.effective_quotas()["daily_event_quota"]
    assert data["totals"]["daily_quota"] == quota and data["today"]["quota"][0] == quota


def test_chart_data_is_for_members_only(world):
    assert page(world.admin_b, world.a).get("/dashboard/data/").status_code == 404


def test_the_consumer_page_shows_endpoint_health_and_every_attempt(world, consumer):
    dp.attempt(world.a, consumer.pk, delivery_id="msg_ok", at=ago(5), latency_ms=31)
    dp.attempt(
        world.a,
        consumer.pk,
        delivery_id="msg_bad",
        at=ago(1),
        status=records.RETRYING,
        http_status=503,
        error="Service Unavailable",
    )
    dp.consumer_minute(world.a, consumer.pk, ago(1), ok=1, failed=1)
    client = page(world.viewer_a, world.a)
    body = client.get(f"/consumers/{consumer.pk}/").content.decode()
    health = body[body.index('data-testid="endpoint-health"') :]
    assert "50 %" in health and "HTTP 503" in health and "Service Unavailable" in health
    log = body[body.index('data-testid="delivery-log"') :]
    assert log.index("msg_bad") < log.index("msg_ok") and "31 ms" in log
    assert 'href="/deliveries/msg_ok/"' in log
    only_ok = client.get(f"/consumers/{consumer.pk}/?status=ok").content.decode()
    only_ok = only_ok[only_ok.index('data-testid="delivery-log"') :]
    assert "msg_ok" in only_ok and "msg_bad" not in only_ok


def test_a_delivery_page_shows_its_payload_as_formatted_json(world, consumer):
    dp.attempt(world.a, consumer.pk, delivery_id="msg_p", at=ago(1))
    body = page(world.viewer_a, world.a).get("/deliveries/msg_p/").content.decode()
    assert "&quot;total&quot;: 12" in body and "Resend" not in body  # viewers read only
    dev = page(world.developer_a, world.a).get("/deliveries/msg_p/").content.decode()
    assert "Resend" in dev
    assert page(world.admin_b, world.b).get("/deliveries/msg_p/").status_code == 404


def test_a_delivery_page_shows_how_long_an_attempt_was_held_by_the_rate_limit(world, consumer):
    dp.attempt(world.a, consumer.pk, delivery_id="msg_h", at=ago(1), throttled_ms=3000)
    body = page(world.viewer_a, world.a).get("/deliveries/msg_h/").content.decode()
    assert "held 3,000 ms by the rate limit" in body


def test_send_test_event_from_the_consumer_page(world, consumer):
    response = page(world.developer_a, world.a).post(
        f"/consumers/{consumer.pk}/test-event/", follow=True
    )
    assert "Test event sent to warehouse" in response.content.decode()
