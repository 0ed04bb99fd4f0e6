"""The operator console: one row per tenant saying whether it is in trouble, found by search,
filters, sort and pages, in a constant number of SQL queries and without an AWS call (the
delivery figures are the activity job's snapshots, shown with their age)."""

from datetime import timedelta

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from broker.activity.models import TenantActivity
from broker.activity.services import activity_refresh
from broker.dlq.models import TenantDlqState
from broker.sync.models import SyncState
from core import aws
from tenants.models import Tenant, TenantStatus, Tier
from tests import dataplane_items as dp

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("empty_dataplane")]


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
    activity_refresh()
    page = console(world.support).get("/").content.decode()
    row = row_of(page, "tenant-a")
    quota = world.a.effective_quotas()["daily_event_quota"]
    assert "90 ok, 30 failed" in row
    assert "75 % succeeded" in row and "3 dead-lettered" in row
    assert f"1,234 of {quota:,}" in row  # grouped as the reader's language writes them
    assert "deliveries failing" in row  # below 95 %: flagged
    assert "as of " in row and "out of date" not in row and "failed" not in row.split("as of")[1]
    assert "no deliveries" in row_of(page, "tenant-b")


def test_a_tenant_without_deliveries_does_not_read_as_a_perfect_success_rate(world):
    activity_refresh()
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


def snapshots(tenants, **figures):
    TenantActivity.objects.bulk_create(
        [
            TenantActivity(
                tenant=t, measured_at=timezone.now(), day=timezone.now().date(), **figures
            )
            for t in tenants
        ]
    )


def test_the_console_runs_the_same_number_of_queries_for_3_or_100_tenants(
    world, django_assert_num_queries
):
    client = console(world.support)
    client.get("/")  # session and user loaded once, as on every page
    snapshots(extra_tenants(1, world.a.tier, prefix="few"), delivered_1h=5)
    with CaptureQueriesContext(connection) as small:
        assert client.get("/?per_page=100").status_code == 200
    snapshots(extra_tenants(97, world.a.tier, prefix="lots"), delivered_1h=7, failed_1h=1)
    with django_assert_num_queries(len(small.captured_queries)):
        page = client.get("/?per_page=100").content.decode()
    assert page.count("data-tenant=") == 100
    assert "7 ok, 1 failed" in row_of(page, "lots-0")


def test_a_page_view_makes_no_aws_call(world):
    extra_tenants(40, world.a.tier, prefix="batch")
    activity_refresh()
    calls = []

    def count(model, **kwargs):
        calls.append(model.name)

    events = aws.dynamodb().meta.events
    events.register("before-call.*", count)
    try:
        page = console(world.support).get("/?per_page=50").content.decode()
    finally:
        events.unregister("before-call.*", count)
    assert calls == []
    assert "no deliveries" in row_of(page, "batch-0")


def test_before_the_first_run_the_page_says_there_are_no_figures_yet(world):
    page = console(world.support).get("/").content.decode()
    assert "No delivery figures yet" in page
    row = row_of(page, "tenant-a")
    assert "not measured yet" in row and "no deliveries" not in row


def test_when_reading_the_counters_fails_the_page_says_so_with_the_last_figures_age(world):
    TenantActivity.objects.create(
        tenant=world.a,
        delivered_1h=12,
        measured_at=timezone.now() - timedelta(minutes=7),
        day=timezone.now().date(),
        last_error="ClientError: DynamoDB is down",
        failed_at=timezone.now() - timedelta(seconds=20),
    )
    TenantActivity.objects.create(
        tenant=world.b, last_error="ClientError: DynamoDB is down", failed_at=timezone.now()
    )
    page = console(world.support).get("/").content.decode()
    assert "Reading the data plane&#x27;s counters failed for 2 tenant(s)" in page
    assert "DynamoDB is down" in page
    a = row_of(page, "tenant-a")
    assert "12 ok" in a and "as of 7 min ago; the last read failed 20 s ago" in a
    b = row_of(page, "tenant-b")  # never read: no zeros
    assert "unknown: reading the counters failed" in b and "no deliveries" not in b


def test_figures_the_job_has_not_refreshed_for_a_while_are_called_out_of_date(world):
    old = timezone.now() - timedelta(minutes=30)
    snapshots([world.a, world.b], delivered_1h=3)
    TenantActivity.objects.filter(tenant=world.a).update(measured_at=old)
    page = console(world.support).get("/").content.decode()
    assert "The delivery figures of 1 tenant(s) are out of date (up to 30 min old)" in page
    assert "as of 30 min ago (out of date)" in row_of(page, "tenant-a")
    assert "out of date" not in row_of(page, "tenant-b")


def test_events_today_are_not_shown_from_yesterdays_snapshot(world):
    snapshots([world.a], events_today=900)
    TenantActivity.objects.filter(tenant=world.a).update(
        day=timezone.now().date() - timedelta(days=1)
    )
    row = row_of(console(world.support).get("/").content.decode(), "tenant-a")
    assert "not measured today" in row and "900" not in row


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


def test_numbers_are_grouped_in_the_readers_language(world):
    dp.events_today(world.a, 1234567)
    activity_refresh()
    client = console(world.support)
    row = row_of(client.get("/").content.decode(), "tenant-a")
    assert "1,234,567 of " in row
    german = client.get("/", HTTP_ACCEPT_LANGUAGE="de").content.decode()
    assert "1.234.567 of " in row_of(german, "tenant-a")


def test_the_console_opens_with_a_platform_summary_each_item_linked_to_its_list(world):
    tier = Tier.objects.get(name="basic")
    failed = extra_tenants(2, tier, status=TenantStatus.FAILED, prefix="broken")
    for minute in (1, 5):
        dp.tenant_minute(world.a, dp.minutes_ago(minute), delivered=10, failed=10)
    dp.tenant_minute(world.b, dp.minutes_ago(2), delivered=80)
    activity_refresh()
    oldest = timezone.now() - timedelta(hours=3)
    TenantDlqState.objects.update_or_create(
        tenant=world.b, defaults={"backlog": 1500, "oldest_at": oldest}
    )
    client = console(world.support)
    page = client.get("/").content.decode()
    summary = page[page.index('data-testid="platform-summary"') : page.index("</section>")]
    assert '<a href="/?status=failed">2 failed</a>' in summary
    assert "100 ok, 20 failed (83.3 % succeeded)" in summary
    assert "1 tenant below 95 %" in summary
    assert "1,500 waiting, oldest 3.0 h old" in summary
    assert 'href="/?problem=sync"' in summary and "failing," in summary
    assert "2 tenants</a>" in summary  # failed provisioning

    # Each link narrows the list to the tenants behind the figure.
    def slugs(path):
        body = client.get(path).content.decode()
        return {t.slug for t in Tenant.objects.all() if f'data-tenant="{t.slug}"' in body}

    assert slugs("/?status=failed") == {t.slug for t in failed}
    assert slugs("/?problem=deliveries") == {"tenant-a"}
    assert slugs("/?problem=dlq") == {"tenant-b"}
    SyncState.objects.filter(tenant=world.a).update(last_error="ValidationException: boom")
    assert "tenant-a" in slugs("/?problem=sync")
