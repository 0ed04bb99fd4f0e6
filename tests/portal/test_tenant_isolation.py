import pytest

from tenants.models import Membership
from tests.helpers import PASSWORD, HostClient, host_of, token_for

pytestmark = pytest.mark.django_db


def test_a_token_for_tenant_a_is_rejected_on_tenant_b_host(world):
    token_a = token_for(world.admin_a, world.a)
    response = HostClient(host_of(world.b), token_a).get("/api/v1/me/")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "token_not_valid_for_host"


def test_a_tenant_token_is_rejected_on_the_public_host_and_an_operator_token_on_tenant_hosts(world):
    assert (
        HostClient(host_of(), token_for(world.admin_a, world.a)).get("/api/v1/tenants/").status_code
        == 401
    )
    assert (
        HostClient(host_of(world.a), token_for(world.operator)).get("/api/v1/me/").status_code
        == 401
    )


def test_a_refresh_token_only_refreshes_on_its_own_host(world):
    pair = (
        HostClient(host_of(world.a))
        .post(
            "/api/v1/auth/token/",
            {"email": world.admin_a.email, "password": PASSWORD},
            format="json",
        )
        .json()
    )
    other = HostClient(host_of(world.b)).post(
        "/api/v1/auth/token/refresh/", {"refresh": pair["refresh"]}, format="json"
    )
    assert other.status_code == 401
    same = HostClient(host_of(world.a)).post(
        "/api/v1/auth/token/refresh/", {"refresh": pair["refresh"]}, format="json"
    )
    assert same.status_code == 200
    assert HostClient(host_of(world.a), same.json()["access"]).get("/api/v1/me/").status_code == 200


def test_a_spoofed_tenant_header_or_body_field_never_selects_a_tenant(world):
    client = HostClient(host_of(world.a), token_for(world.admin_a, world.a))
    me = client.get(
        "/api/v1/me/", HTTP_X_TENANT_ID=str(world.b.pk), HTTP_X_TENANT=world.b.slug
    ).json()
    assert me["tenant"]["id"] == str(world.a.pk)
    members = client.get("/api/v1/members/", HTTP_X_TENANT_ID=str(world.b.pk)).json()["results"]
    assert "admin@b.test" not in {m["email"] for m in members}
    response = client.post(
        "/api/v1/members/",
        {"email": "x@y.test", "role": "viewer", "tenant": str(world.b.pk)},
        format="json",
    )
    assert response.status_code == 400 and "tenant" in response.json()["error"]["fields"]


def test_another_tenants_member_id_is_404_and_nothing_changes(world):
    a_viewer = Membership.objects.get(user=world.viewer_a, tenant=world.a)
    client = HostClient(host_of(world.b), token_for(world.admin_b, world.b))
    assert client.get(f"/api/v1/members/{a_viewer.pk}/").status_code == 404
    assert (
        client.patch(
            f"/api/v1/members/{a_viewer.pk}/", {"role": "admin"}, format="json"
        ).status_code
        == 404
    )
    assert client.delete(f"/api/v1/members/{a_viewer.pk}/").status_code == 404
    a_viewer.refresh_from_db()
    assert a_viewer.role == "viewer"


def test_the_token_carries_the_tenant_claims(world):
    import jwt

    claims = jwt.decode(token_for(world.developer_a, world.a), options={"verify_signature": False})
    assert claims["tenant_id"] == str(world.a.pk)
    assert claims["tenant_slug"] == "tenant-a"
    assert claims["role"] == "developer"
    assert claims["tier"] == "standard"
    assert claims["quotas"]["max_producers"] == world.a.effective_quotas()["max_producers"]
    assert claims["scope"] == f"tenant:{world.a.pk}"


def test_a_removed_member_loses_access_at_once_whatever_the_token_says(world):
    token = token_for(world.viewer_a, world.a)
    Membership.objects.filter(user=world.viewer_a, tenant=world.a).delete()
    assert HostClient(host_of(world.a), token).get("/api/v1/me/").status_code == 403


def test_an_unknown_host_is_a_404_page_not_a_500(client):
    response = client.get("/", HTTP_HOST="nobody.localhost")
    assert response.status_code == 404
    assert b"Not found" in response.content


def test_repeated_failed_logins_lock_the_account_out(world, settings):
    client = HostClient(host_of(world.a))
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        bad = client.post(
            "/api/v1/auth/token/",
            {"email": world.admin_a.email, "password": "wrong"},
            format="json",
        )
        assert bad.status_code == 401
    last = client.post(
        "/api/v1/auth/token/", {"email": world.admin_a.email, "password": "wrong"}, format="json"
    )
    assert last.status_code == 429
    locked = client.post(
        "/api/v1/auth/token/", {"email": world.admin_a.email, "password": PASSWORD}, format="json"
    )
    assert locked.status_code == 429
    assert locked.json()["error"]["code"] == "locked_out"


def test_a_tenant_api_is_throttled_at_its_requests_per_minute_quota(
    world, django_capture_on_commit_callbacks
):
    from core import throttling
    from tenants import services
    from tests.helpers import make_user, onboard

    tenant = onboard("throttled")
    services.tenant_update_quotas(tenant=tenant, overrides={"api_requests_per_minute": 4})
    clients = []
    for name in ("dev", "ops"):
        user = make_user(f"{name}@throttled.test")
        Membership.objects.create(user=user, tenant=tenant, role="developer")
        clients.append(HostClient(host_of(tenant), token_for(user, tenant)))
    dev, ops = clients
    throttling.reset(tenant.pk)
    try:
        # One caller gets its share (half), the tenant's whole budget is shared by all.
        assert [dev.get("/api/v1/me/").status_code for _ in range(3)] == [200, 200, 429]
        assert [ops.get("/api/v1/me/").status_code for _ in range(3)] == [200, 200, 429]
        limited = dev.get("/api/v1/me/")
        assert limited.status_code == 429 and limited.json()["error"]["code"] == "throttled"
        assert 0 < int(limited["Retry-After"]) <= 60
        # Other tenants keep their own budget.
        assert (
            HostClient(host_of(world.a), token_for(world.admin_a, world.a))
            .get("/api/v1/me/")
            .status_code
            == 200
        )
    finally:
        throttling.reset(tenant.pk)
