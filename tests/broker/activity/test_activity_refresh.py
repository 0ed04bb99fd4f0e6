"""The activity job: each tenant's last hour of deliveries and its events today, read from the
data plane's counters into PostgreSQL for the operator console."""

import logging
from datetime import UTC, datetime, timedelta

import pytest
from botocore.exceptions import ClientError
from django.conf import settings

from broker.activity import services, tasks
from broker.activity.models import TenantActivity
from broker.deliveries import selectors as deliveries
from broker.functions.shared import records
from core import aws
from tenants.models import Tenant, TenantStatus
from tests import dataplane_items as dp

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("empty_dataplane")]


class DynamoCalls:
    """Counts BatchGetItem keys per call; `fail_for` makes calls naming that tenant fail."""

    def __init__(self, fail_for=None):
        self.keys, self.partitions, self.fail_for = [], set(), fail_for

    def __call__(self, model, params, **kwargs):
        keys = params["RequestItems"][settings.DATAPLANE_TABLE]["Keys"]
        self.keys.append(len(keys))
        self.partitions.update(k["PK"]["S"] for k in keys)
        if self.fail_for and any(str(self.fail_for.pk) in k["PK"]["S"] for k in keys):
            raise ClientError(
                {"Error": {"Code": "ServiceUnavailable", "Message": "DynamoDB is down"}},
                "BatchGetItem",
            )

    def __enter__(self):
        aws.dynamodb().meta.events.register("provide-client-params.dynamodb.BatchGetItem", self)
        return self

    def __exit__(self, *exc):
        aws.dynamodb().meta.events.unregister("provide-client-params.dynamodb.BatchGetItem", self)


def test_the_snapshot_sums_the_last_hour_and_counts_events_today(world):
    for minute in (1, 5, 59):
        dp.tenant_minute(world.a, dp.minutes_ago(minute), delivered=30, failed=10, dead=1)
    dp.tenant_minute(world.a, dp.minutes_ago(61), delivered=1000)  # older than an hour
    dp.events_today(world.a, 1234)
    result = services.activity_refresh()
    snap = TenantActivity.objects.get(tenant=world.a)
    assert (snap.delivered_1h, snap.failed_1h, snap.dead_1h) == (90, 30, 3)
    assert snap.success_rate_1h == 0.75
    assert snap.events_today == 1234
    assert snap.measured_at is not None and snap.last_error == ""
    assert result.failed == 0 and result.refreshed >= 2


def test_a_tenant_without_counters_is_measured_as_having_done_nothing(world):
    services.activity_refresh()
    snap = TenantActivity.objects.get(tenant=world.b)
    assert (snap.delivered_1h, snap.failed_1h, snap.events_today) == (0, 0, 0)
    assert snap.success_rate_1h is None  # no deliveries, not "100 %"
    assert snap.measured_at is not None and snap.last_error == ""


def test_later_runs_read_only_the_minutes_that_can_still_change(world):
    now = datetime.now(UTC)
    dp.tenant_minute(world.a, now - timedelta(minutes=30), delivered=7)
    tenants = Tenant.objects.exclude(schema_name="public").exclude(status="deleted").count()
    with DynamoCalls() as first:
        services.activity_refresh(now=now)
    assert sum(first.keys) == tenants * 61  # 60 minutes and today's quota counter
    dp.tenant_minute(world.a, now + timedelta(minutes=1), delivered=2)
    later = now + timedelta(minutes=1)
    with DynamoCalls() as second:
        services.activity_refresh(now=later)
    # The unsettled minutes (ACTIVITY_SETTLE_MINUTES and the new one) and the quota counter.
    assert sum(second.keys) == tenants * (settings.ACTIVITY_SETTLE_MINUTES + 2)
    assert TenantActivity.objects.get(tenant=world.a).delivered_1h == 9


def test_minutes_leave_the_snapshot_when_they_leave_the_hour(world):
    now = datetime.now(UTC)
    dp.tenant_minute(world.a, now - timedelta(minutes=50), failed=4)
    dp.tenant_minute(world.a, now - timedelta(minutes=2), failed=1)
    services.activity_refresh(now=now)
    assert TenantActivity.objects.get(tenant=world.a).failed_1h == 5
    services.activity_refresh(now=now + timedelta(minutes=20))
    assert TenantActivity.objects.get(tenant=world.a).failed_1h == 1


def test_when_dynamodb_fails_the_job_logs_keeps_the_figures_and_goes_on(world, caplog):
    dp.tenant_minute(world.a, dp.minutes_ago(3), delivered=5)
    dp.tenant_minute(world.b, dp.minutes_ago(3), delivered=8)
    services.activity_refresh()
    before = TenantActivity.objects.get(tenant=world.a)
    dp.tenant_minute(world.a, dp.minutes_ago(2), delivered=100)
    dp.tenant_minute(world.b, dp.minutes_ago(2), delivered=100)
    with caplog.at_level(logging.WARNING), DynamoCalls(fail_for=world.a):
        result = services.activity_refresh(chunk_size=1)
    assert result.failed == 1 and result.refreshed == result.tenants - 1
    assert "reading the counters of 1 tenant(s) failed" in caplog.text
    a = TenantActivity.objects.get(tenant=world.a)
    assert a.delivered_1h == 5 and a.measured_at == before.measured_at  # the last figures
    assert "ServiceUnavailable" in a.last_error and a.failed_at is not None
    b = TenantActivity.objects.get(tenant=world.b)
    assert b.delivered_1h == 108 and b.last_error == ""  # the run went on
    services.activity_refresh()  # DynamoDB is back
    a.refresh_from_db()
    assert a.delivered_1h == 105 and a.last_error == "" and a.failed_at is None


def test_keys_dynamodb_keeps_holding_back_are_a_failure_not_zeros(world, monkeypatch):
    """A throttled BatchGetItem hands keys back as UnprocessedKeys; if it still does after
    the retries, the figures are not read: the row says so instead of counting nothing."""
    dp.tenant_minute(world.a, dp.minutes_ago(3), delivered=5)
    table = settings.DATAPLANE_TABLE

    def hold_back(parsed, **kwargs):
        parsed["Responses"] = {table: []}
        parsed["UnprocessedKeys"] = {table: {"Keys": [_any_key(world)]}}

    monkeypatch.setattr(deliveries.time, "sleep", lambda seconds: None)
    events = aws.dynamodb().meta.events
    events.register("after-call.dynamodb.BatchGetItem", hold_back)
    try:
        result = services.activity_refresh()
    finally:
        events.unregister("after-call.dynamodb.BatchGetItem", hold_back)
    assert result.failed == result.tenants and result.refreshed == 0
    a = TenantActivity.objects.get(tenant=world.a)
    assert "keys unprocessed" in a.last_error and a.measured_at is None


def _any_key(world) -> dict:
    pk, sk = records.quota_key(str(world.a.pk), records.day(datetime.now(UTC)))
    return {"PK": {"S": pk}, "SK": {"S": sk}}


def test_a_tenant_never_read_successfully_has_no_figures_only_the_error(world):
    with DynamoCalls(fail_for=world.a):
        services.activity_refresh(chunk_size=1)
    snap = TenantActivity.objects.get(tenant=world.a)
    assert snap.measured_at is None and "ServiceUnavailable" in snap.last_error


def test_deleted_tenants_lose_their_snapshot_and_are_not_read(world):
    gone = Tenant.objects.create(
        name="Gone", slug="gone", schema_name="gone", tier=world.a.tier, status="active"
    )
    services.activity_refresh()
    assert TenantActivity.objects.filter(tenant=gone).exists()
    Tenant.objects.filter(pk=gone.pk).update(status=TenantStatus.DELETED)
    with DynamoCalls() as calls:
        services.activity_refresh()
    assert not TenantActivity.objects.filter(tenant=gone).exists()
    assert calls.partitions and not any(str(gone.pk) in pk for pk in calls.partitions)


def test_the_beat_task_refreshes_every_snapshot(world):
    dp.tenant_minute(world.b, dp.minutes_ago(1), delivered=3)
    tasks.activity_refresh_tick.delay(jitter_seconds=0)
    assert TenantActivity.objects.get(tenant=world.b).delivered_1h == 3
    assert "activity-refresh" in settings.CELERY_BEAT_SCHEDULE


def test_the_quota_counter_read_is_today_utc(world):
    yesterday = datetime.now(UTC) - timedelta(days=1)
    dp.add(*records.quota_key(str(world.a.pk), records.day(yesterday)), c=50)
    services.activity_refresh()
    assert TenantActivity.objects.get(tenant=world.a).events_today == 0


def test_shards_split_the_tenants_and_together_refresh_every_one(world, settings):
    """ACTIVITY_SHARDS runs, each a task of its own: each reads only its shard's tenants
    (id modulo the shards), and together they refresh every snapshot."""
    settings.ACTIVITY_SHARDS = 3
    dp.tenant_minute(world.a, dp.minutes_ago(1), delivered=2)
    dp.tenant_minute(world.b, dp.minutes_ago(1), delivered=5)
    TenantActivity.objects.all().delete()
    live = list(
        Tenant.objects.exclude(schema_name="public")
        .exclude(status=TenantStatus.DELETED)
        .values_list("pk", flat=True)
    )
    for shard in range(3):
        with DynamoCalls() as calls:
            result = services.activity_refresh(shard=shard, shards=3)
        mine = {pk for pk in live if pk.int % 3 == shard}
        assert result.tenants == len(mine)
        assert {pk.split("#")[1] for pk in calls.partitions} <= {str(pk) for pk in mine}
    assert set(TenantActivity.objects.values_list("tenant_id", flat=True)) == set(live)
    TenantActivity.objects.all().delete()
    tasks.activity_refresh_tick.delay(jitter_seconds=0)
    assert set(TenantActivity.objects.values_list("tenant_id", flat=True)) == set(live)
    assert TenantActivity.objects.get(tenant=world.b).delivered_1h == 5
