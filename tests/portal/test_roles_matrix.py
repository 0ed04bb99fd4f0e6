"""Every endpoint × every role: who may call it, and what everyone else gets."""

import pytest

from tests.helpers import HostClient, host_of, token_for

pytestmark = pytest.mark.django_db

ONBOARD = {"name": "M", "slug": "matrix-x", "tier": "basic", "admin_email": "m@x.test"}


def public_endpoints(w):
    a = w.a.pk
    return [
        ("GET", "/api/v1/tiers/", None, {"operator", "support"}),
        ("GET", "/api/v1/tiers/basic/", None, {"operator", "support"}),
        ("PATCH", "/api/v1/tiers/basic/", {"max_producers": 7}, {"operator"}),
        ("GET", "/api/v1/tenants/", None, {"operator", "support"}),
        ("POST", "/api/v1/tenants/", ONBOARD, {"operator"}),
        ("GET", f"/api/v1/tenants/{a}/", None, {"operator", "support"}),
        ("PATCH", f"/api/v1/tenants/{a}/", {"quota_overrides": {"max_producers": 3}}, {"operator"}),
        ("POST", f"/api/v1/tenants/{a}/suspend/", None, {"operator"}),
        ("POST", f"/api/v1/tenants/{a}/resume/", None, {"operator"}),
        ("POST", f"/api/v1/tenants/{a}/offboard/", {"confirm": "nope"}, {"operator"}),
        ("POST", f"/api/v1/tenants/{a}/retry-provisioning/", None, {"operator"}),
        ("GET", f"/api/v1/tenants/{a}/members/", None, {"operator", "support"}),
        (
            "POST",
            f"/api/v1/tenants/{a}/members/",
            {"email": "z@a.test", "role": "viewer"},
            {"operator"},
        ),
        ("GET", "/tenants", None, {"operator", "support"}),
        ("POST", "/onboarding", {"tenantName": "matrix_y", "deploymentType": "pool"}, {"operator"}),
        ("POST", "/delete", {"tenantName": w.a.name, "tenantId": str(a)}, {"operator"}),
        ("POST", "/tenant-info", {"tenantId": str(a)}, {"operator", "support"}),
    ]


def tenant_endpoints(w, viewer_membership_id):
    m = viewer_membership_id
    return [
        ("GET", "/api/v1/me/", None, {"admin", "developer", "viewer"}),
        ("GET", "/api/v1/members/", None, {"admin", "developer", "viewer"}),
        ("GET", f"/api/v1/members/{m}/", None, {"admin", "developer", "viewer"}),
        ("POST", "/api/v1/members/", {"email": "q@a.test", "role": "viewer"}, {"admin"}),
        ("PATCH", f"/api/v1/members/{m}/", {"role": "developer"}, {"admin"}),
        ("DELETE", f"/api/v1/members/{m}/", None, {"admin"}),
    ]


def call(client, method, path, body):
    return client.generic(
        method,
        path,
        "" if body is None else __import__("json").dumps(body),
        content_type="application/json",
    )


@pytest.mark.parametrize("role", ["operator", "support", None])
def test_public_endpoints_answer_only_the_roles_allowed(world, role):
    users = {"operator": world.operator, "support": world.support}
    client = HostClient(host_of(), token_for(users[role]) if role else None)
    for method, path, body, allowed in public_endpoints(world):
        status = call(client, method, path, body).status_code
        if role in allowed:
            assert status not in (401, 403, 404), (role, method, path, status)
        else:
            assert status == (403 if role else 401), (role, method, path, status)


@pytest.mark.parametrize("role", ["admin", "developer", "viewer", None])
def test_tenant_endpoints_answer_only_the_roles_allowed(world, role):
    from tenants.models import Membership

    users = {"admin": world.admin_a, "developer": world.developer_a, "viewer": world.viewer_a}
    viewer_id = Membership.objects.get(user=world.viewer_a, tenant=world.a).pk
    client = HostClient(host_of(world.a), token_for(users[role], world.a) if role else None)
    for method, path, body, allowed in tenant_endpoints(world, viewer_id):
        status = call(client, method, path, body).status_code
        if role in allowed:
            assert status not in (401, 403, 404), (role, method, path, status)
        else:
            assert status == (403 if role else 401), (role, method, path, status)


@pytest.mark.parametrize("who", ["admin_a", "outsider"])
def test_people_without_a_platform_role_get_no_token_on_the_public_host(world, who):
    response = HostClient(host_of()).post(
        "/api/v1/auth/token/",
        {"email": getattr(world, who).email, "password": "Correct-Horse-2026!"},
        format="json",
    )
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "no_access"


@pytest.mark.parametrize("who", ["operator", "admin_b", "outsider"])
def test_non_members_get_no_token_on_a_tenant_host(world, who):
    response = HostClient(host_of(world.a)).post(
        "/api/v1/auth/token/",
        {"email": getattr(world, who).email, "password": "Correct-Horse-2026!"},
        format="json",
    )
    assert response.status_code == 401
