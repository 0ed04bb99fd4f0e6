"""The operator console shows each tenant's sync lag and resyncs a tenant on request."""

import pytest
from django.test import Client
from django_tenants.utils import tenant_context

from broker import services
from broker.sync.models import SyncJob

pytestmark = pytest.mark.django_db


def console(user):
    client = Client(HTTP_HOST="localhost")
    client.force_login(user)
    return client


def test_the_console_shows_queued_changes(world):
    with tenant_context(world.a):
        services.event_type_create(actor=world.admin_a, name="queued.change")
    page = console(world.support).get("/").content.decode()
    row = page[page.index("tenant-a") :][:1500]
    assert "1 queued" in row


def test_an_operator_resyncs_a_tenant_from_the_console(world, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        response = console(world.operator).post(
            f"/console/tenants/{world.a.pk}/resync/", {"confirm": "yes"}, follow=True
        )
    assert "tenant-a: resync requested." in response.content.decode()
    job = SyncJob.objects.get()
    assert (job.kind, job.tenant_id, job.status) == ("resync", world.a.pk, "done")
    assert job.requested_by == world.operator


def test_support_cannot_resync(world):
    response = console(world.support).post(f"/console/tenants/{world.a.pk}/resync/")
    assert response.status_code in (403, 404)
    assert not SyncJob.objects.exists()
