"""An operator action whose DynamoDB write fails is accepted, then reads as failing (with the
error) in the operator API and the console, not as done; fixed and resynced, it reads ok."""

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from broker.sync import contract, dynamo
from tenants.models import Tenant, TenantStatus
from tests.helpers import onboard

pytestmark = pytest.mark.django_db


@pytest.fixture
def tenant(world):
    return onboard("sync-refused")


@pytest.fixture
def dynamodb_down(settings):
    """DynamoDB refuses every write (moto: the table is not there) until the test restores it."""
    table = settings.DYNAMODB_CONFIG_TABLE
    settings.DYNAMODB_CONFIG_TABLE = "no-such-table"
    return lambda: setattr(settings, "DYNAMODB_CONFIG_TABLE", table)


def console_row(user, slug) -> str:
    client = Client(HTTP_HOST="localhost")
    client.force_login(user)
    page = client.get(f"/?q={slug}").content.decode()
    start = page.index(f'data-tenant="{slug}"')
    return page[start : page.index("</tr>", start)]


def test_a_suspension_dynamodb_refuses_is_accepted_then_reads_as_failing_until_a_resync(
    world, tenant, api, dynamodb_down, django_capture_on_commit_callbacks
):
    client = api(world.operator)
    with django_capture_on_commit_callbacks(execute=True):  # the relay runs, and fails
        response = client.post(f"/api/v1/tenants/{tenant.pk}/suspend/")
    assert response.status_code == 200 and response.json()["status"] == "suspended"

    detail = client.get(f"/api/v1/tenants/{tenant.pk}/").json()
    sync = detail["sync"]
    assert sync["status"] == "failing" and sync["failing_objects"] == 1
    assert "ResourceNotFoundException" in sync["last_error"]
    assert sync["attempts"] == 1 and sync["last_error_at"] and sync["since"]
    assert detail["in_sync"] is False
    [listed] = client.get("/api/v1/tenants/", {"slug": "sync-refused"}).json()["results"]
    assert listed["sync"] == sync

    dynamodb_down()  # fixed
    with django_capture_on_commit_callbacks(execute=True):
        job = client.post("/api/v1/sync/resync/", {"tenant": str(tenant.pk)}, format="json")
    assert job.status_code == 202

    detail = client.get(f"/api/v1/tenants/{tenant.pk}/").json()
    assert detail["sync"]["status"] == "ok" and detail["in_sync"] is True
    assert detail["sync"]["failing_objects"] == 0 and detail["sync"]["last_error"] == ""
    assert dynamo.get_item(contract.tenant_pk(tenant.pk), "TENANT")["status"] == "suspended"


def test_the_console_says_failing_where_the_api_does(
    world, tenant, api, dynamodb_down, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        api(world.operator).post(f"/api/v1/tenants/{tenant.pk}/suspend/")
    sync = api(world.operator).get(f"/api/v1/tenants/{tenant.pk}/").json()["sync"]
    row = console_row(world.support, "sync-refused")
    assert sync["status"] == "failing" and sync["failing_objects"] == 1
    # one refused write: one failing object (not its sync state and its outbox row as two)
    assert f"{sync['failing_objects']} failing" in row and "in sync" not in row


def test_a_change_the_relay_has_not_written_yet_reads_as_pending_not_failing(world, tenant, api):
    client = api(world.operator)
    # no commit callbacks run here: the relay is never kicked
    response = client.post(f"/api/v1/tenants/{tenant.pk}/suspend/")
    sync = response.json()["sync"]
    assert sync["status"] == "pending" and sync["pending_changes"] == 1
    assert sync["failing_objects"] == 0 and sync["last_error"] == "" and sync["since"]


def test_an_offboarded_tenant_is_not_mirrored_rather_than_failing_forever(world, api):
    gone = Tenant.objects.create(
        name="Gone", slug="gone", schema_name="gone", tier=world.a.tier, status=TenantStatus.DELETED
    )
    detail = api(world.operator).get(f"/api/v1/tenants/{gone.pk}/").json()
    assert detail["sync"]["status"] == "not_mirrored"


def test_the_tenant_list_reads_every_sync_summary_in_a_constant_number_of_queries(world, api):
    client = api(world.operator)

    def queries(page_size):
        with CaptureQueriesContext(connection) as captured:
            response = client.get("/api/v1/tenants/", {"page_size": page_size})
        assert response.status_code == 200
        assert len(response.json()["results"]) == min(page_size, response.json()["count"])
        return len(captured)

    for i in range(4):
        Tenant.objects.create(
            name=f"L{i}", slug=f"list-{i}", schema_name=f"list_{i}", tier=world.a.tier
        )
    assert queries(2) == queries(6)
