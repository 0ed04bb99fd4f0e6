"""The portal's reads of the data plane's table: counters summed into chart buckets, latency
percentiles from the histograms, the delivery log and a delivery's history."""

from datetime import UTC, datetime, timedelta

import pytest

from broker.deliveries import selectors
from broker.functions.shared import records
from tests import dataplane_items as dp

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("empty_dataplane")]
NOW = datetime(2026, 11, 30, 12, 0, 30, tzinfo=UTC)
CONSUMER = "11111111-1111-1111-1111-111111111111"


def test_percentiles_are_the_upper_bound_of_the_bucket_holding_that_share():
    histogram = {"lat_10": 50, "lat_100": 45, "lat_1000": 5}
    assert selectors.percentile(histogram, 0.5) == 10
    assert selectors.percentile(histogram, 0.95) == 100
    assert selectors.percentile({"lat_inf": 3}, 0.5) == records.LATENCY_BUCKETS_MS[-1]
    assert selectors.percentile({}, 0.5) is None


def test_no_attempts_is_no_success_rate_not_a_perfect_one():
    assert selectors.success_rate(0, 0) is None
    assert selectors.success_rate(3, 1) == 0.75


def test_tenant_counters_are_summed_into_the_windows_buckets(world):
    dp.tenant_minute(world.a, NOW - timedelta(minutes=1), delivered=3, failed=1)
    dp.tenant_minute(world.a, NOW - timedelta(minutes=2), delivered=2, dead=1)
    dp.tenant_minute(world.a, NOW - timedelta(hours=2), delivered=100)  # outside the window
    dp.tenant_minute(world.b, NOW - timedelta(minutes=1), delivered=50)  # another tenant
    series = selectors.tenant_series(world.a.pk, selectors.Window.last(1, now=NOW))
    assert sum(series["delivered"]) == 5 and sum(series["failed"]) == 1
    assert sum(series["dead"]) == 1
    assert len(series["t"]) == 61 and series["t"] == sorted(series["t"])


def test_latency_percentiles_are_read_from_the_consumers_histograms(world):
    dp.consumer_minute(
        world.a, CONSUMER, NOW - timedelta(minutes=3), ok=10, latencies=[5] * 9 + [800]
    )
    data = selectors.consumer_series(world.a.pk, [CONSUMER], selectors.Window.last(1, now=NOW))
    assert data["totals"]["p50"] == 10 and data["totals"]["p95"] == 1000
    assert data["totals"]["ok"] == 10 and data["totals"]["success_rate"] == 1.0


def test_the_dashboard_counts_events_today_against_the_quota(world):
    dp.tenant_minute(world.a, NOW - timedelta(minutes=10), ingested=7)
    dp.tenant_minute(world.a, NOW - timedelta(hours=13), ingested=5)  # yesterday (UTC)
    data = selectors.tenant_dashboard(
        world.a.pk, consumer_ids=[], daily_quota=1000, hours=24, now=NOW
    )
    assert data["totals"]["events_today"] == 7
    assert data["today"]["ingested"][-1] == 7 and set(data["today"]["quota"]) == {1000}
    assert data["totals"]["success_rate"] is None


def test_the_delivery_log_is_newest_first_filtered_and_paged(world):
    for i in range(5):
        dp.attempt(
            world.a,
            CONSUMER,
            delivery_id=f"msg_{i}",
            at=NOW - timedelta(minutes=10 - i),
            status=records.OK if i % 2 == 0 else records.RETRYING,
            http_status=200 if i % 2 == 0 else 503,
        )
    log = selectors.consumer_log(world.a.pk, CONSUMER)
    assert [a["delivery_id"] for a in log] == ["msg_4", "msg_3", "msg_2", "msg_1", "msg_0"]
    failed = selectors.consumer_log(world.a.pk, CONSUMER, status=records.RETRYING)
    assert [a["http_status"] for a in failed] == [503, 503]
    first = selectors.consumer_log(world.a.pk, CONSUMER, limit=2)
    second = selectors.consumer_log(world.a.pk, CONSUMER, limit=2, before=first[-1]["cursor"])
    assert [a["delivery_id"] for a in first + second] == ["msg_4", "msg_3", "msg_2", "msg_1"]
    since = (NOW - timedelta(minutes=7)).isoformat(timespec="milliseconds")
    assert len(selectors.consumer_log(world.a.pk, CONSUMER, since=since)) == 2
    assert selectors.consumer_log(world.b.pk, CONSUMER) == []


def test_a_deliverys_history_holds_its_event_and_every_attempt_oldest_first(world):
    dp.attempt(
        world.a,
        CONSUMER,
        delivery_id="msg_x",
        at=NOW,
        status=records.RETRYING,
        http_status=500,
        attempt_no=1,
    )
    dp.attempt(
        world.a,
        CONSUMER,
        delivery_id="msg_x",
        at=NOW + timedelta(seconds=30),
        status=records.OK,
        attempt_no=2,
    )
    history = selectors.delivery_history(world.a.pk, "msg_x")
    assert [a["attempt"] for a in history["attempts"]] == [1, 2]
    assert history["event"]["type"] == "order.created"
    assert selectors.delivery_history(world.b.pk, "msg_x") is None


def test_endpoint_health_names_the_last_success_and_the_last_error(world):
    dp.attempt(world.a, CONSUMER, delivery_id="msg_ok", at=NOW - timedelta(minutes=5))
    dp.attempt(
        world.a,
        CONSUMER,
        delivery_id="msg_bad",
        at=NOW - timedelta(minutes=1),
        status=records.DEAD,
        http_status=410,
        error="Gone",
    )
    dp.consumer_minute(world.a, CONSUMER, NOW - timedelta(minutes=1), ok=1, failed=1)
    health = selectors.consumer_health(world.a.pk, CONSUMER, now=NOW)
    assert health["last_success"]["delivery_id"] == "msg_ok"
    assert health["last_failure"]["error"] == "Gone"
    assert health["success_rate"] == 0.5
