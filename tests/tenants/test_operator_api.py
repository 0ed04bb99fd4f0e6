import pytest

from tenants.models import Domain, Invitation, Tenant, TenantEvent

pytestmark = pytest.mark.django_db


def counts():
    return (
        Tenant.objects.count(),
        Domain.objects.count(),
        TenantEvent.objects.count(),
        Invitation.objects.count(),
    )


def test_an_operator_onboards_a_tenant_through_the_api(
    world, api, mailoutbox, django_capture_on_commit_callbacks
):
    client = api(world.operator)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            "/api/v1/tenants/",
            {
                "name": "Globex",
                "slug": "globex",
                "tier": "premium",
                "admin_email": "hank@globex.test",
            },
            format="json",
        )
    assert response.status_code == 202, response.json()
    body = response.json()
    assert body["status"] == "provisioning" and body["tier"] == "premium"
    assert body["domains"] == ["globex.localhost"]
    detail = client.get(f"/api/v1/tenants/{body['id']}/").json()
    assert detail["status"] == "active"
    assert detail["deployment_model"] == "pool"
    assert len(detail["delivery_queues"]) == 2
    assert detail["effective_quotas"]["max_producers"] == 100
    assert detail["in_sync"] is True
    assert mailoutbox[-1].to == ["hank@globex.test"]


def test_onboarding_a_taken_slug_is_a_409_conflict_naming_the_field(world, api):
    client = api(world.operator)
    before = counts()
    response = client.post(
        "/api/v1/tenants/",
        {"name": "X", "slug": "tenant-a", "tier": "basic", "admin_email": "a@x.test"},
        format="json",
    )
    assert response.status_code == 409
    error = response.json()["error"]
    assert error["code"] == "conflict" and "slug" in error["fields"]
    assert counts() == before


@pytest.mark.parametrize(
    "body, field",
    [
        ({"name": "X", "slug": "Bad_Slug", "tier": "basic", "admin_email": "a@x.test"}, "slug"),
        ({"name": "X", "slug": "-x", "tier": "basic", "admin_email": "a@x.test"}, "slug"),
        ({"name": "X", "slug": "www", "tier": "basic", "admin_email": "a@x.test"}, "slug"),
        ({"name": "X", "slug": "admin", "tier": "basic", "admin_email": "a@x.test"}, "slug"),
        ({"name": "X", "slug": "fine", "tier": "gold", "admin_email": "a@x.test"}, "tier"),
        ({"name": "X", "slug": "fine", "tier": "basic", "admin_email": "nope"}, "admin_email"),
        (
            {
                "name": "X",
                "slug": "fine",
                "tier": "basic",
                "admin_email": "a@x.test",
                "quota_overrides": {"max_unicorns": 1},
            },
            "quota_overrides",
        ),
        (
            {
                "name": "X",
                "slug": "fine",
                "tier": "basic",
                "admin_email": "a@x.test",
                "tenant_id": "spoof",
            },
            "tenant_id",
        ),
        ({"slug": "fine", "tier": "basic", "admin_email": "a@x.test"}, "name"),
    ],
)
def test_bad_onboarding_input_is_a_400_naming_the_field_and_creates_nothing(
    world, api, body, field
):
    client = api(world.operator)
    before = counts()
    response = client.post("/api/v1/tenants/", body, format="json")
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "invalid"
    assert field in error["fields"]
    assert counts() == before


def test_malformed_json_is_a_400_with_the_error_shape(world, api):
    client = api(world.operator)
    before = counts()
    response = client.generic(
        "POST", "/api/v1/tenants/", '{"name": ', content_type="application/json"
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "parse_error"
    assert counts() == before


def test_the_tenant_list_filters_by_status_and_tier(world, api):
    client = api(world.support)
    slugs = {
        t["slug"]
        for t in client.get("/api/v1/tenants/?status=active&tier=standard").json()["results"]
    }
    assert {"tenant-a", "tenant-b"} <= slugs
    assert client.get("/api/v1/tenants/?status=suspended&slug=tenant-a").json()["count"] == 0
    assert client.get("/api/v1/tenants/?tier=dedicated&slug=tenant-").json()["count"] == 0


def test_lifecycle_actions_through_the_api_and_illegal_ones_are_400(
    world, api, django_capture_on_commit_callbacks
):
    from tests.helpers import onboard

    tenant = onboard("api-cycle")
    client = api(world.operator)
    url = f"/api/v1/tenants/{tenant.pk}"
    with django_capture_on_commit_callbacks(execute=True):
        assert client.post(f"{url}/suspend/").json()["status"] == "suspended"
    response = client.post(f"{url}/suspend/")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_transition"
    response = client.post(f"{url}/retry-provisioning/")
    assert response.status_code == 400
    with django_capture_on_commit_callbacks(execute=True):
        assert client.post(f"{url}/resume/").json()["status"] == "active"
        assert (
            client.post(f"{url}/offboard/", {"confirm": "api-cycle"}, format="json").status_code
            == 202
        )
    assert client.get(f"{url}/").json()["status"] == "deleted"


def test_quota_overrides_and_tier_updates_through_the_api(
    world, api, django_capture_on_commit_callbacks
):
    from tests.helpers import onboard

    tenant = onboard("api-quota")
    client = api(world.operator)
    response = client.patch(
        f"/api/v1/tenants/{tenant.pk}/", {"quota_overrides": {"max_consumers": 9}}, format="json"
    )
    assert response.status_code == 200
    assert response.json()["effective_quotas"]["max_consumers"] == 9
    response = client.patch(
        f"/api/v1/tenants/{tenant.pk}/", {"quota_overrides": {"nope": 9}}, format="json"
    )
    assert (
        response.status_code == 400
        and "nope" in response.json()["error"]["fields"]["quota_overrides"]
    )
    response = client.patch("/api/v1/tiers/basic/", {"max_producers": 6}, format="json")
    assert response.status_code == 200 and response.json()["max_producers"] == 6
    response = client.patch("/api/v1/tiers/basic/", {"max_producers": 0}, format="json")
    assert response.status_code == 400 and "max_producers" in response.json()["error"]["fields"]
    response = client.patch("/api/v1/tiers/basic/", {"deployment_model": "silo"}, format="json")
    assert response.status_code == 400


def test_operators_see_and_invite_members_of_a_tenant(world, api):
    client = api(world.operator)
    members = client.get(f"/api/v1/tenants/{world.a.pk}/members/").json()["results"]
    assert {m["email"] for m in members} == {"admin@a.test", "dev@a.test", "viewer@a.test"}
    response = client.post(
        f"/api/v1/tenants/{world.a.pk}/members/",
        {"email": "new@a.test", "role": "viewer"},
        format="json",
    )
    assert response.status_code == 201 and response.json()["email"] == "new@a.test"


def test_an_unknown_or_malformed_tenant_id_is_404(world, api):
    client = api(world.operator)
    assert client.get("/api/v1/tenants/00000000-0000-0000-0000-000000000000/").status_code == 404
    response = client.get("/api/v1/tenants/not-a-uuid/")
    assert response.status_code == 404 and response.json()["error"]["code"] == "not_found"


def test_the_public_schema_row_is_never_listed(world, api):
    results = api(world.operator).get("/api/v1/tenants/?page_size=200").json()["results"]
    assert "public" not in {t["slug"] for t in results}


@pytest.mark.parametrize(
    "body", [None, {}, {"confirm": "tenant-a"}, {"confirm": ""}, {"confirm": 1}]
)
def test_an_offboarding_without_the_tenants_slug_is_a_400_and_the_tenant_stays_active(
    world, api, django_capture_on_commit_callbacks, body
):
    from tests.helpers import onboard

    tenant = onboard("api-keep")
    client = api(world.operator)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(f"/api/v1/tenants/{tenant.pk}/offboard/", body, format="json")
    assert response.status_code == 400
    assert "confirm" in response.json()["error"]["fields"]
    assert client.get(f"/api/v1/tenants/{tenant.pk}/").json()["status"] == "active"


def test_an_offboarded_tenants_report_names_its_export_file_not_the_server_path(
    world, api, django_capture_on_commit_callbacks
):
    from django.conf import settings

    from tests.helpers import onboard

    tenant = onboard("api-export")
    client = api(world.operator)
    with django_capture_on_commit_callbacks(execute=True):
        client.post(
            f"/api/v1/tenants/{tenant.pk}/offboard/", {"confirm": "api-export"}, format="json"
        )
    body = client.get(f"/api/v1/tenants/{tenant.pk}/")
    report = body.json()["offboarding_report"]
    assert report["export_file"] == f"api-export-{tenant.pk}.json"
    assert "export_path" not in report
    assert str(settings.OFFBOARD_EXPORT_DIR) not in body.content.decode()
