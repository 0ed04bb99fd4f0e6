"""API tokens end with a password change, a sign-out, a removal or a role change; a refresh
mints an access token with the claims as they are now."""

import pytest
from rest_framework_simplejwt.tokens import AccessToken

from tenants import services
from tenants.models import Membership
from tests.helpers import PASSWORD, HostClient, host_of, make_user

pytestmark = pytest.mark.django_db


def _pair(user, tenant=None):
    response = HostClient(host_of(tenant)).post(
        "/api/v1/auth/token/", {"email": user.email, "password": PASSWORD}, format="json"
    )
    assert response.status_code == 200, response.content
    return response.json()


def _refresh(tenant, refresh):
    return HostClient(host_of(tenant)).post(
        "/api/v1/auth/token/refresh/", {"refresh": refresh}, format="json"
    )


def _me(tenant, access):
    return HostClient(host_of(tenant), access).get("/api/v1/me/")


@pytest.fixture
def member(world):
    user = make_user("temp@a.test")
    membership = Membership.objects.create(user=user, tenant=world.a, role="developer")
    return user, membership


def _assert_ended(tenant, pair):
    refreshed = _refresh(tenant, pair["refresh"])
    assert refreshed.status_code == 401, refreshed.content
    assert refreshed.json()["error"]["code"] == "token_revoked"
    assert _me(tenant, pair["access"]).status_code == 401


def test_a_removed_members_refresh_token_mints_nothing(world, member):
    user, membership = member
    pair = _pair(user, world.a)
    assert _refresh(world.a, pair["refresh"]).status_code == 200

    services.membership_remove(membership=membership, actor=world.admin_a)

    _assert_ended(world.a, pair)


def test_a_role_change_ends_the_tokens_and_the_next_sign_in_carries_the_new_role(world, member):
    user, membership = member
    pair = _pair(user, world.a)

    services.membership_change_role(membership=membership, role="viewer", actor=world.admin_a)

    _assert_ended(world.a, pair)
    assert AccessToken(_pair(user, world.a)["access"])["role"] == "viewer"


def test_a_password_change_ends_the_tokens(world, member):
    user, _ = member
    pair = _pair(user, world.a)

    user.refresh_from_db()
    user.set_password("Another-Horse-2027!")
    user.save()

    _assert_ended(world.a, pair)


def test_signing_out_ends_the_tokens_on_every_host(world, member):
    user, _ = member
    user.platform_role = "support"
    user.save()
    tenant_pair, public_pair = _pair(user, world.a), _pair(user)

    signed_out = HostClient(host_of(world.a), tenant_pair["access"]).post("/api/v1/auth/sign-out/")
    assert signed_out.status_code == 204

    _assert_ended(world.a, tenant_pair)
    assert _refresh(None, public_pair["refresh"]).status_code == 401


def test_signing_out_of_the_pages_ends_the_api_tokens(world, member):
    user, _ = member
    pair = _pair(user, world.a)
    browser = HostClient(host_of(world.a))
    browser.force_login(user)
    browser.post("/logout/")
    _assert_ended(world.a, pair)


def test_a_refresh_reads_the_claims_again(world, member):
    user, _ = member
    pair = _pair(user, world.a)
    services.tenant_update_quotas(tenant=world.a, overrides={"max_producers": 7})

    refreshed = _refresh(world.a, pair["refresh"])

    assert refreshed.status_code == 200, refreshed.content
    assert AccessToken(refreshed.json()["access"])["quotas"]["max_producers"] == 7
    assert _me(world.a, refreshed.json()["access"]).status_code == 200


def test_other_users_keep_their_tokens(world, member):
    user, membership = member
    other = _pair(world.developer_a, world.a)
    services.membership_remove(membership=membership, actor=world.admin_a)
    assert _refresh(world.a, other["refresh"]).status_code == 200
    assert _me(world.a, other["access"]).status_code == 200
