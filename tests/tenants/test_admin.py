"""Django admin writes go through the services: membership role changes and removals (last
admin guard, the tenant's audit log), users (platform role, admin access, tokens ended,
platform audit log), tier quotas (platform audit log); request ids reach the audit logs."""

import pytest
from django_tenants.utils import tenant_context

from broker.models import AuditEvent
from tenants.models import Membership, PlatformEvent, Tier, User
from tests.helpers import HostClient, host_of, make_user, onboard, token_for

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_site(client, world):
    client.force_login(world.operator)
    return client


def post(client, path, data, request_id="req-admin-0001"):
    return client.post(path, data, HTTP_HOST=host_of(), HTTP_X_REQUEST_ID=request_id)


def test_a_role_change_in_the_admin_is_audited_in_the_tenants_log_and_ends_tokens(
    admin_site, world
):
    member = make_user("member@admin-role.test")
    membership = Membership.objects.create(user=member, tenant=world.a, role="viewer")
    generation = member.token_generation
    response = post(
        admin_site, f"/admin/tenants/membership/{membership.pk}/change/", {"role": "developer"}
    )
    assert response.status_code == 302, response.content[:2000]
    membership.refresh_from_db()
    assert membership.role == "developer"
    assert User.objects.get(pk=member.pk).token_generation > generation
    with tenant_context(world.a):
        event = AuditEvent.objects.get(action="member.change_role", object_id=str(membership.pk))
    assert event.diff == {"role": ["viewer", "developer"]}
    assert event.actor_email == world.operator.email
    assert event.request_id == "req-admin-0001"


def test_the_admin_refuses_to_demote_the_last_admin_of_a_tenant(admin_site):
    tenant = onboard("admin-last")
    boss = make_user("boss@admin-last.test")
    membership = Membership.objects.create(user=boss, tenant=tenant, role="admin")
    response = post(
        admin_site, f"/admin/tenants/membership/{membership.pk}/change/", {"role": "viewer"}
    )
    assert response.status_code == 200  # the form again, with the error
    assert b"at least one admin" in response.content
    membership.refresh_from_db()
    assert membership.role == "admin"


def test_removing_a_member_in_the_admin_is_audited_and_keeps_the_last_admin(admin_site):
    tenant = onboard("admin-remove")
    boss = make_user("boss@admin-remove.test")
    helper = make_user("helper@admin-remove.test")
    last = Membership.objects.create(user=boss, tenant=tenant, role="admin")
    other = Membership.objects.create(user=helper, tenant=tenant, role="developer")
    for membership in (other, last):
        post(admin_site, f"/admin/tenants/membership/{membership.pk}/delete/", {"post": "yes"})
    assert not Membership.objects.filter(pk=other.pk).exists()
    assert Membership.objects.filter(pk=last.pk).exists()  # refused: the last admin
    with tenant_context(tenant):
        removed = AuditEvent.objects.get(action="member.remove")
    assert removed.object_id == str(other.pk)


def test_the_admin_cannot_add_a_membership_members_join_by_invitation(admin_site):
    response = admin_site.get("/admin/tenants/membership/add/", HTTP_HOST=host_of())
    assert response.status_code == 403


def user_form(user, **changes):
    data = {
        "email": user.email,
        "full_name": user.full_name,
        "platform_role": user.platform_role,
        "is_active": "on" if user.is_active else "",
    }
    data.update(changes)
    return {k: v for k, v in data.items() if v != ""}


def test_a_platform_role_change_in_the_admin_keeps_admin_access_in_step_and_is_audited(
    admin_site, world
):
    user = make_user("promoted@platform.test", platform_role="support")
    token = token_for(user)
    response = post(
        admin_site,
        f"/admin/tenants/user/{user.pk}/change/",
        user_form(user, platform_role="operator"),
        request_id="req-admin-0002",
    )
    assert response.status_code == 302, response.content[:2000]
    user.refresh_from_db()
    assert user.platform_role == "operator" and user.is_staff and user.is_superuser
    event = PlatformEvent.objects.get(action="user.update", object_id=str(user.pk))
    assert event.diff == {"platform_role": ["support", "operator"]}
    assert event.request_id == "req-admin-0002" and event.actor_email == world.operator.email
    # The old token carried the old role: it no longer works.
    assert HostClient(host_of(), token).get("/api/v1/tenants/").status_code == 401

    post(admin_site, f"/admin/tenants/user/{user.pk}/change/", user_form(user, platform_role=""))
    user.refresh_from_db()
    assert user.platform_role == "" and not user.is_staff and not user.is_superuser


def test_the_admin_refuses_to_demote_or_deactivate_the_last_active_operator(admin_site, world):
    User.objects.filter(platform_role="operator").exclude(pk=world.operator.pk).update(
        is_active=False
    )
    response = post(
        admin_site,
        f"/admin/tenants/user/{world.operator.pk}/change/",
        user_form(world.operator, platform_role="support"),
    )
    assert response.status_code == 200
    assert b"at least one active operator" in response.content
    assert User.objects.get(pk=world.operator.pk).platform_role == "operator"


def test_a_user_added_in_the_admin_is_created_by_the_service_and_audited(admin_site):
    response = post(
        admin_site,
        "/admin/tenants/user/add/",
        {
            "email": "New.Support@Platform.test",
            "password1": "Another-Long-Pass-2026",
            "password2": "Another-Long-Pass-2026",
            "platform_role": "support",
        },
    )
    assert response.status_code == 302, response.content[:2000]
    user = User.objects.get(email="new.support@platform.test")
    assert user.platform_role == "support" and not user.is_staff
    assert PlatformEvent.objects.filter(action="user.create", object_id=str(user.pk)).exists()


def test_a_tier_quota_change_in_the_admin_is_in_the_platform_audit_log(admin_site):
    tier = Tier.objects.get(name="basic")
    quotas = tier.quotas()
    response = post(
        admin_site,
        f"/admin/tenants/tier/{tier.pk}/change/",
        {**quotas, "max_producers": quotas["max_producers"] + 1},
        request_id="req-admin-0003",
    )
    assert response.status_code == 302, response.content[:2000]
    event = PlatformEvent.objects.get(action="tier.update", object_id="basic")
    assert event.diff == {"max_producers": [quotas["max_producers"], quotas["max_producers"] + 1]}
    assert event.request_id == "req-admin-0003"


def test_the_request_id_of_an_api_write_reaches_the_tenants_audit_log(world):
    api = HostClient(host_of(world.a), token_for(world.admin_a, world.a))
    response = api.post(
        "/api/v1/event-types/",
        {"name": "audit.request.id"},
        format="json",
        HTTP_X_REQUEST_ID="req-api-0004",
    )
    assert response.status_code == 201, response.content
    assert response["X-Request-ID"] == "req-api-0004"
    with tenant_context(world.a):
        event = AuditEvent.objects.get(object_id=response.json()["id"])
    assert event.request_id == "req-api-0004"
