"""Dead-letter pages (server-rendered): roles, isolation, replay and discard with confirmation,
the operator's DLQ page."""

import pytest
from django.test import Client
from django_tenants.utils import tenant_context

from broker.deadletters.models import DeadLetter, ReplayJob
from broker.dlq.models import QuarantinedMessage, TenantDlqState
from tests.helpers import PASSWORD, host_of
from tests.helpers.deadletters import dead_letter, ingest_all, send_to_dlq

pytestmark = pytest.mark.django_db


def _client(user, tenant=None):
    client = Client(HTTP_HOST=host_of(tenant))
    assert client.post("/login/", {"email": user.email, "password": PASSWORD}).status_code == 302
    return client


def _fill(tenant, consumer, n, **kwargs):
    send_to_dlq(*[dead_letter(tenant, consumer.pk, **kwargs) for _ in range(n)])
    ingest_all()


def _ids(tenant):
    with tenant_context(tenant):
        return [str(i) for i in DeadLetter.objects.values_list("pk", flat=True)]


def test_members_see_groups_letters_and_the_detail_with_its_payload(world, dlq, consumer_a):
    _fill(world.a, consumer_a, 3, data={"sku": "RED-SHOE"})
    viewer = _client(world.viewer_a, world.a)
    page = viewer.get("/dead-letters/").content.decode()
    assert "orders-hook" in page and "order.created" in page and 'data-testid="groups"' in page
    assert 'formaction="/dead-letters/replay/"' not in page  # viewers do not act
    [first, *_] = _ids(world.a)
    detail = viewer.get(f"/dead-letters/{first}/").content.decode()
    assert "RED-SHOE" in detail and "dead_lettered" in detail
    assert viewer.post("/dead-letters/replay/", {"ids": [first]}).status_code == 404


def test_another_tenants_letter_page_is_a_404(world, dlq, consumer_b):
    _fill(world.b, consumer_b, 1)
    [theirs] = _ids(world.b)
    admin = _client(world.admin_a, world.a)
    assert admin.get(f"/dead-letters/{theirs}/").status_code == 404


def test_replay_shows_the_count_then_starts_jobs_once_confirmed(
    world, dlq, consumer_a, django_capture_on_commit_callbacks
):
    _fill(world.a, consumer_a, 4)
    developer = _client(world.developer_a, world.a)
    preview = developer.post("/dead-letters/replay/", {"status": "pending"})
    assert preview.status_code == 200
    assert 'data-testid="confirm-count">4<' in preview.content.decode()
    with tenant_context(world.a):
        assert not ReplayJob.objects.exists()
    with django_capture_on_commit_callbacks(execute=False):
        done = developer.post("/dead-letters/replay/", {"status": "pending", "confirm": "yes"})
    assert done.status_code == 302 and done["Location"] == "/replay-jobs/"
    jobs = developer.get("/replay-jobs/").content.decode()
    assert "orders-hook" in jobs and "data-poll=" in jobs and "<progress" in jobs


def test_discard_of_selected_letters_needs_a_confirmation(world, dlq, consumer_a):
    _fill(world.a, consumer_a, 3)
    ids = _ids(world.a)
    admin = _client(world.admin_a, world.a)
    preview = admin.post("/dead-letters/discard/", {"ids": ids[:2]})
    assert 'data-testid="confirm-count">2<' in preview.content.decode()
    admin.post("/dead-letters/discard/", {"ids": ids[:2], "confirm": "yes"})
    with tenant_context(world.a):
        assert DeadLetter.objects.filter(status="discarded").count() == 2


def test_the_alert_banner_shows_on_tenant_pages(world, dlq, consumer_a):
    TenantDlqState.objects.create(tenant=world.a, alerting=True, alert_reason="150 pending")
    page = _client(world.viewer_a, world.a).get("/dead-letters/").content.decode()
    assert 'data-testid="dlq-banner"' in page and "150 pending" in page
    other = _client(world.admin_b, world.b).get("/dead-letters/").content.decode()
    assert 'data-testid="dlq-banner"' not in other


def test_operators_see_backlogs_and_the_quarantine_and_support_only_reads(world, dlq):
    TenantDlqState.objects.create(tenant=world.a, backlog=7)
    send_to_dlq("not a dead letter")
    ingest_all()
    entry = QuarantinedMessage.objects.get()
    support = _client(world.support)
    page = support.get("/console/dlq/").content.decode()
    assert "tenant-a" in page and "not a dead letter" in page and "Discard" not in page
    assert support.post(f"/console/quarantine/{entry.pk}/discard/").status_code == 404
    operator = _client(world.operator)
    assert "Discard" in operator.get("/console/dlq/").content.decode()
    operator.post(f"/console/quarantine/{entry.pk}/discard/")
    entry.refresh_from_db()
    assert entry.status == "discarded"
    assert _client(world.admin_a, world.a).get("/console/dlq/").status_code == 404
