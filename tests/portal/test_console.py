"""The operator console: one row per tenant saying whether it is in trouble, found by search,
filters, sort and pages, in a constant number of SQL queries."""

from datetime import timedelta

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from broker.dlq.models import TenantDlqState
from broker.sync.models import SyncState
from core import aws
from tenants.models import Tenant, TenantStatus, Tier
from tests import dataplane_items as dp

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _empty_dataplane():
    dp.clear()
    yield
    dp.clear()


def console(user):
    client = Client(HTTP_HOST="localhost")
    client.force_login(user)
    return client


def row_of(page: str, slug: str) -> str:
    start = page.index(f'data-tenant="{slug}"')
    return page[start : page.index("</tr>", start)]


def extra_tenants(n, tier, *, status=TenantStatus.ACTIVE, prefix="extra"):
    """Rows only (no schema): the console reads nothing inside a tenant's schema."""
    return [
        Tenant.objects.create(
            name=f"{prefix} {i}",
            slug=f"{prefix}-{i}",
            schema_name=f"{prefix}_{i}",
            tier=tier,
            status=status,
        )
        for i in range(n)
    ]


def test_each_row_shows_last_hour_deliveries_success_rate_and_events_against_the_quota(world):
    for minute in (1, 5, 59):
        dp.tenant_minute(world.a, dp.minutes_ago(minute), delivered=30, failed=10, dead=1)
    dp.tenant_minute(world.a, dp.minutes_ago(61), delivered=1000)  # older than an hour
    dp.events_today(world.a, 1234)
    page = console(world.support).get("/").content.decode()
    row = row_of(page, "tenant-a")
    quota = world.a.effective_quotas()["daily_event_quota"]
    assert "90 ok, 30 failed" in row
    assert "75 % succeeded" in row and "3 dead-lettered" in row
    assert f"1234 of {quota}" in row
    assert "deliveries failing" in row  # below 95 %: flagged
    assert "no deliveries" in row_of(page, "tenant-b")


def test_a_tenant_without_deliveries_does_not_read_as_a_perfect_success_rate(world):
    row = row_of(console(world.support).get("/").content.decode(), "tenant-b")
    assert "no deliveries" in row and "succeeded" not in row


def test_sync_reads_in_sync_only_when_nothing_is_failing(world):
    page = console(world.support).get("/").content.decode()
    assert "in sync" in row_of(page, "tenant-b")
    SyncState.objects.create(
        tenant=world.b,
        object_type="producer",
        object_id="x",
        version=2,
        synced_version=1,
        last_error="ProvisionedThroughputExceeded",
    )
    row = row_of(console(world.support).get("/").content.decode(), "tenant-b")
    assert "1 failing" in row and "in sync" not in row


def test_failed_provisioning_and_offboarding_come_first_with_their_reason(world):
    tier = world.a.tier
    failed = extra_tenants(1, tier, status=TenantStatus.FAILED, prefix="zz-failed")[0]
    failed.provisioning_error = "the silo queue could not be created"
    failed.save()
    stuck = extra_tenants(1, tier, status=TenantStatus.OFFBOARDING, prefix="zz-stuck")[0]
    stuck.offboarding_report = {"error": "the schema could not be dropped"}
    stuck.save()
    page = console(world.support).get("/").content.decode()
    order = [page.index(f'data-tenant="{s}"') for s in ("zz-failed-0", "zz-stuck-0", "tenant-a")]
    assert order == sorted(order)
    assert "provisioning failed" in row_of(page, "zz-failed-0")
    assert "the silo queue could not be created" in row_of(page, "zz-failed-0")
    assert "offboarding failed" in row_of(page, "zz-stuck-0")


def test_deleted_tenants_are_hidden_unless_asked(world):
    extra_tenants(1, world.a.tier, status=TenantStatus.DELETED, prefix="gone")
    client = console(world.support)
    assert 'data-tenant="gone-0"' not in client.get("/").content.decode()
    assert 'data-tenant="gone-0"' in client.get("/?deleted=1").content.decode()
    assert 'data-tenant="gone-0"' in client.get("/?status=deleted").content.decode()


def test_search_and_filters_narrow_the_list(world):
    other_tier = Tier.objects.exclude(pk=world.a.tier_id).first()
    extra_tenants(2, other_tier, prefix="premium-co")
    client = console(world.support)
    page = client.get("/?q=tenant-a").content.decode()
    assert 'data-tenant="tenant-a"' in page and 'data-tenant="tenant-b"' not in page
    page = client.get(f"/?tier={other_tier.name}").content.decode()
    assert 'data-tenant="premium-co-0"' in page and 'data-tenant="tenant-a"' not in page
    page = client.get("/?status=suspended").content.decode()
    assert "No tenant matches these filters." in page


def test_pages_split_a_long_list(world):
    extra_tenants(30, world.a.tier, prefix="many")
    client = console(world.support)
    first = client.get("/?sort=slug&per_page=25").content.decode()
    second = client.get("/?sort=slug&per_page=25&page=2").content.decode()
    assert "Page 1 of 2" in first and "Next page" in first
    assert first.count("data-tenant=") == 25 and second.count("data-tenant=") == 7


def test_the_console_runs_the_same_number_of_queries_for_3_or_100_tenants(
    world, django_assert_num_queries
):
    client = console(world.support)
    client.get("/")  # session and user loaded once, as on every page
    extra_tenants(1, world.a.tier, prefix="few")
    with CaptureQueriesContext(connection) as small:
        assert client.get("/?per_page=100").status_code == 200
    extra_tenants(97, world.a.tier, prefix="lots")
    with django_assert_num_queries(len(small.captured_queries)):
        page = client.get("/?per_page=100").content.decode()
    assert page.count("data-tenant=") == 100


def test_delivery_counters_of_a_page_are_read_in_batches_not_per_row(world):
    extra_tenants(40, world.a.tier, prefix="batch")
    calls = []

    def count(model, **kwargs):
        calls.append(model.name)

    events = aws.dynamodb().meta.events
    events.register("before-call.dynamodb.*", count)
    try:
        console(world.support).get("/?per_page=50")
    finally:
        events.unregister("before-call.dynamodb.*", count)
    # 42 tenants x 61 keys = 2562 keys: 26 BatchGetItem calls, nothing else.
    assert set(calls) == {"BatchGetItem"}
    assert len(calls) == 26
    calls.clear()
    events.register("before-call.dynamodb.*", count)
    try:
        console(world.support).get("/?per_page=50")
    finally:
        events.unregister("before-call.dynamodb.*", count)
    assert calls == []  # the page's figures were kept for ACTIVITY_CACHE_SECONDS


def test_the_dlq_column_shows_backlog_and_age_and_flags_an_alert(world):
    TenantDlqState.objects.update_or_create(
        tenant=world.a,
        defaults={
            "backlog": 42,
            "oldest_at": timezone.now() - timedelta(minutes=30),
            "alerting": True,
        },
    )
    row = row_of(console(world.support).get("/").content.decode(), "tenant-a")
    assert "42 pending" in row and "oldest 30 min" in row and "dead letters piling up" in row
