"""The operator's page of one tenant: members, configuration counts, sync, DLQ, events, quota
use and actions, in a constant number of SQL queries; support reads it, operators act (each
destructive action after a confirmation page), tenant users never see it; long jobs report
their progress as JSON for the page's progress bars."""

import uuid

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django_tenants.utils import tenant_context

from broker import services as broker_services
from broker.deadletters.models import DeadLetter
from broker.sync.models import SyncJob, SyncState
from tenants import services
from tenants.models import Membership, Tenant, TenantEvent, TenantStatus
from tests import dataplane_items as dp
from tests.helpers import make_user, onboard

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("empty_dataplane")]


def console(user):
    client = Client(HTTP_HOST="localhost")
    client.force_login(user)
    return client


def page_of(user, tenant) -> str:
    response = console(user).get(f"/console/tenants/{tenant.pk}/")
    assert response.status_code == 200
    return response.content.decode()


def section(page: str, testid: str) -> str:
    """The page from the element with that data-testid to the next one."""
    start = page.index(f'data-testid="{testid}"')
    end = page.find('data-testid="', start + 1)
    return page[start : end if end != -1 else None]


def dead_letter(consumer_id, event_type="order.created"):
    return DeadLetter.objects.create(
        delivery_id="msg_" + uuid.uuid4().hex,
        consumer_id=str(consumer_id),
        event_id="evt_" + uuid.uuid4().hex[:12],
        event_type=event_type,
        payload_encrypted="x",
        last_status=503,
    )


def test_the_page_shows_members_counts_quota_use_and_recent_events(world):
    with tenant_context(world.a):
        broker_services.event_type_create(actor=world.admin_a, name="page.shown")
    dp.events_today(world.a, 1234)
    page = page_of(world.support, world.a)
    members = section(page, "members")
    assert "admin@a.test" in members and "dev@a.test" in members and "viewer" in members
    counts = section(page, "counts")
    assert "event types" in counts
    quota = section(page, "quota-use")
    limit = world.a.effective_quotas()["daily_event_quota"]
    # Numbers grouped as the reader's language writes them (en-us here), labels in words.
    assert "Daily event quota" in quota and "1,234" in quota and f"{limit:,}" in quota
    assert "Max producers" in quota  # words, not snake_case
    assert "DLQ retention days" in page and "API requests per minute" in page
    assert "Onboard" in section(page, "events")  # the tenant's lifecycle
    audit = section(page, "audit")
    assert "event_type.create" in audit and "admin@a.test" in audit


def test_support_reads_the_page_without_action_buttons(world):
    page = page_of(world.support, world.a)
    assert 'data-testid="tenant-actions"' not in page
    assert "an operator acts" in page


def test_the_console_links_each_row_to_its_tenant_page(world):
    page = console(world.support).get("/").content.decode()
    assert f'href="/console/tenants/{world.a.pk}/"' in page


@pytest.mark.parametrize("who", ["admin_a", "developer_a", "viewer_a", "outsider"])
def test_tenant_users_get_a_404_for_the_page_and_its_actions(world, who):
    client = console(getattr(world, who))
    assert client.get(f"/console/tenants/{world.a.pk}/").status_code == 404
    assert client.get(f"/console/tenants/{world.a.pk}/jobs/").status_code == 404
    response = client.post(f"/console/tenants/{world.a.pk}/suspend/", {"confirm": "yes"})
    assert response.status_code == 404
    assert Tenant.objects.get(pk=world.a.pk).status == TenantStatus.ACTIVE


def test_the_page_is_not_on_a_tenant_host(world):
    client = Client(HTTP_HOST=f"{world.a.slug}.localhost")
    client.force_login(world.admin_a)
    assert client.get(f"/console/tenants/{world.a.pk}/").status_code == 404


def test_anonymous_visitors_are_sent_to_sign_in(world):
    response = Client(HTTP_HOST="localhost").get(f"/console/tenants/{world.a.pk}/")
    assert response.status_code == 302 and response["Location"].startswith("/login/")


def test_support_cannot_act(world):
    response = console(world.support).post(
        f"/console/tenants/{world.a.pk}/suspend/", {"confirm": "yes"}
    )
    assert response.status_code == 404
    assert Tenant.objects.get(pk=world.a.pk).status == TenantStatus.ACTIVE


def test_an_unknown_tenant_is_a_404(world):
    assert console(world.operator).get(f"/console/tenants/{uuid.uuid4()}/").status_code == 404


def test_suspending_asks_for_confirmation_then_suspends(world):
    client = console(world.operator)
    page = page_of(world.operator, world.a)
    assert 'data-action="suspend"' in page and 'data-action="offboard"' in page
    response = client.post(f"/console/tenants/{world.a.pk}/suspend/", {"next": "tenant"})
    assert response.status_code == 200
    text = response.content.decode()
    assert "Suspend tenant-a?" in text and 'name="confirm" value="yes"' in text
    assert Tenant.objects.get(pk=world.a.pk).status == TenantStatus.ACTIVE
    response = client.post(
        f"/console/tenants/{world.a.pk}/suspend/", {"next": "tenant", "confirm": "yes"}
    )
    assert response.status_code == 302
    assert response["Location"] == f"/console/tenants/{world.a.pk}/"
    assert Tenant.objects.get(pk=world.a.pk).status == TenantStatus.SUSPENDED


def test_offboarding_asks_for_confirmation_and_says_it_cannot_be_undone(world):
    response = console(world.operator).post(f"/console/tenants/{world.b.pk}/offboard/")
    assert "cannot be undone" in response.content.decode()
    assert Tenant.objects.get(pk=world.b.pk).status == TenantStatus.ACTIVE


def test_resuming_a_suspended_tenant_needs_no_confirmation(world):
    Tenant.objects.filter(pk=world.a.pk).update(status=TenantStatus.SUSPENDED)
    page = page_of(world.operator, world.a)
    assert 'data-action="resume"' in page and 'data-action="suspend"' not in page
    response = console(world.operator).post(f"/console/tenants/{world.a.pk}/resume/")
    assert response.status_code == 302
    assert Tenant.objects.get(pk=world.a.pk).status == TenantStatus.ACTIVE


def test_a_confirmed_action_that_no_longer_applies_is_refused_with_a_message(world):
    Tenant.objects.filter(pk=world.a.pk).update(status=TenantStatus.SUSPENDED)
    response = console(world.operator).post(
        f"/console/tenants/{world.a.pk}/suspend/", {"confirm": "yes"}, follow=True
    )
    assert response.status_code == 200
    assert b'class="error"' in response.content


def test_failing_objects_are_listed_with_their_error(world):
    with tenant_context(world.a):
        event_type = broker_services.event_type_create(actor=world.admin_a, name="bad.sync")
    SyncState.objects.update_or_create(
        tenant=world.a,
        object_type="event_type",
        object_id=str(event_type.pk),
        defaults={"version": 9, "synced_version": 0, "last_error": "ValidationException: boom"},
    )
    page = page_of(world.support, world.a)
    failing = section(page, "failing-objects")
    assert "bad.sync" in failing and "ValidationException: boom" in failing
    assert "failing" in section(page, "sync-summary")


def test_the_dead_letter_backlog_is_read_in_the_tenant_schema(world):
    consumer_id = uuid.uuid4()
    with tenant_context(world.a):
        for _ in range(3):
            dead_letter(consumer_id)
    page = page_of(world.support, world.a)
    assert "3 pending" in section(page, "dlq")
    assert str(consumer_id) in section(page, "dlq-groups")


def test_the_page_runs_the_same_number_of_queries_whatever_the_tenant_holds(world):
    client = console(world.support)
    url = f"/console/tenants/{world.a.pk}/"
    client.get(url)
    with CaptureQueriesContext(connection) as small:
        assert client.get(url).status_code == 200
    with tenant_context(world.a):
        for i in range(8):
            broker_services.event_type_create(actor=world.admin_a, name=f"many.t{i}")
            dead_letter(uuid.uuid4(), event_type=f"many.t{i}")
    for i in range(6):
        Membership.objects.create(user=make_user(f"m{i}@a.test"), tenant=world.a, role="viewer")
        TenantEvent.objects.create(tenant=world.a, action="note", actor=world.operator)
    SyncJob.objects.create(
        kind="resync", tenant=world.a, status="done", requested_by=world.operator
    )
    with CaptureQueriesContext(connection) as large:
        page = client.get(url).content.decode()
    assert "m5@a.test" in page and "many.t7" in page
    assert len(large.captured_queries) == len(small.captured_queries), [
        q["sql"][:120] for q in large.captured_queries
    ]


def test_a_running_resync_shows_a_progress_bar_and_its_progress_as_json(world):
    job = SyncJob.objects.create(
        kind="resync",
        tenant=world.a,
        status="running",
        total=40,
        done=10,
        requested_by=world.operator,
    )
    page = page_of(world.support, world.a)
    assert f'data-poll="/console/tenants/{world.a.pk}/jobs/"' in page
    assert f'data-job="{job.pk}"' in page and 'aria-live="polite"' in page
    jobs = console(world.support).get(f"/console/tenants/{world.a.pk}/jobs/").json()["results"]
    assert jobs == [
        {
            "id": str(job.pk),
            "status": "running",
            "done": 10,
            "total": 40,
            "summary": "10 of 40 objects",
        }
    ]


def test_a_finished_resync_is_not_polled(world):
    SyncJob.objects.create(kind="resync", tenant=world.a, status="done", total=4, done=4)
    page = page_of(world.support, world.a)
    assert "data-poll=" not in page
    assert console(world.support).get(f"/console/tenants/{world.a.pk}/jobs/").json() == {
        "results": []
    }


def test_an_offboarding_under_way_reports_its_steps(world):
    Tenant.objects.filter(pk=world.b.pk).update(
        status=TenantStatus.OFFBOARDING,
        offboarding_report={"deleted_queues": [], "tombstoned_items": 3},
    )
    page = page_of(world.support, world.b)
    assert 'data-job="offboarding"' in page and "2 of 6 steps" in page
    jobs = console(world.support).get(f"/console/tenants/{world.b.pk}/jobs/").json()["results"]
    assert jobs == [
        {"id": "offboarding", "status": "running", "done": 2, "total": 6, "summary": "2 of 6 steps"}
    ]


def test_offboarding_saves_its_report_after_each_step(
    monkeypatch, settings, tmp_path, django_capture_on_commit_callbacks
):
    """So the page's progress bar moves while the teardown runs."""
    from tenants.services import offboarding

    settings.OFFBOARD_EXPORT_DIR = str(tmp_path)
    tenant = onboard("leaving-slowly")
    seen = []
    real = offboarding._export_tenant_data

    def export(t):
        seen.append(dict(Tenant.objects.get(pk=t.pk).offboarding_report))
        return real(t)

    monkeypatch.setattr(offboarding, "_export_tenant_data", export)
    with django_capture_on_commit_callbacks(execute=True):
        services.tenant_offboard(tenant=tenant)
    assert {"deleted_queues", "tombstoned_items", "dead_letters_purged"} <= set(seen[0])
    assert Tenant.objects.get(pk=tenant.pk).status == TenantStatus.DELETED
    page = page_of(make_user("s2@platform.test", platform_role="support"), tenant)
    assert "6 of 6 steps" in page
