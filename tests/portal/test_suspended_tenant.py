"""A suspended tenant reads its configuration but cannot change it (403 tenant_suspended)."""

import pytest

from tenants.models import Tenant

pytestmark = pytest.mark.django_db


@pytest.fixture
def suspended_a(world):
    Tenant.objects.filter(pk=world.a.pk).update(status="suspended")
    return world.a


def _refused(response):
    assert response.status_code == 403, response.content
    assert response.json()["error"]["code"] == "tenant_suspended"


def test_a_suspended_tenant_reads_but_does_not_write_its_configuration(world, api, suspended_a):
    developer = api(world.developer_a, world.a)
    assert developer.get("/api/v1/producers/").status_code == 200
    assert developer.get("/api/v1/me/").status_code == 200
    _refused(developer.post("/api/v1/producers/", {"name": "p", "kind": "https"}, format="json"))
    _refused(developer.post("/api/v1/event-types/", {"name": "a.b"}, format="json"))


def test_a_suspended_tenants_admin_cannot_manage_members(world, api, suspended_a):
    admin = api(world.admin_a, world.a)
    assert admin.get("/api/v1/members/").status_code == 200
    _refused(admin.post("/api/v1/members/", {"email": "x@a.test", "role": "viewer"}, format="json"))


def test_a_viewer_of_a_suspended_tenant_still_gets_a_plain_403(world, api, suspended_a):
    viewer = api(world.viewer_a, world.a)
    response = viewer.post("/api/v1/producers/", {"name": "p", "kind": "https"}, format="json")
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "permission_denied"


def test_an_active_tenant_writes_as_before(world, api):
    developer = api(world.developer_a, world.a)
    response = developer.post("/api/v1/producers/", {"name": "p", "kind": "https"}, format="json")
    assert response.status_code == 201


def test_a_suspended_tenants_pages_read_but_do_not_write(world, suspended_a):
    from django.test import Client

    from broker.models import Producer
    from tests.helpers import host_of

    client = Client(HTTP_HOST=host_of(world.a))
    client.force_login(world.developer_a)
    assert client.get("/config/").status_code == 200
    response = client.post(
        "/config/", {"form": "producer", "producer-name": "p", "producer-kind": "https"}
    )
    assert response.status_code == 403 and b"suspended" in response.content
    from django_tenants.utils import tenant_context

    with tenant_context(world.a):
        assert not Producer.objects.filter(name="p").exists()
