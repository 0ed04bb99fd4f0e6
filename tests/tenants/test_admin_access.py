"""Who may open the Django admin: operators; a signed-in support user or tenant member gets a
403 page (not a login form); anonymous visitors are sent to sign in. Adding a tenant there
needs its first admin's e-mail and goes through onboarding; quotas read as words."""

import pytest
from django.test import Client

from tenants.models import Tenant
from tests.helpers import host_of

pytestmark = pytest.mark.django_db


def signed_in(user):
    client = Client(HTTP_HOST=host_of())
    client.force_login(user)
    return client


@pytest.mark.parametrize("who", ["support", "admin_a", "outsider"])
def test_a_signed_in_non_operator_gets_a_403_page_not_a_login_form(world, who):
    user = getattr(world, who)
    for path in ("/admin/", "/admin/tenants/tenant/", "/admin/tenants/tenant/add/"):
        response = signed_in(user).get(path)
        assert response.status_code == 403, path
        text = response.content.decode()
        assert "Not allowed" in text and user.email in text
        assert 'name="password"' not in text


def test_anonymous_visitors_are_sent_to_sign_in(world):
    response = Client(HTTP_HOST=host_of()).get("/admin/")
    assert response.status_code == 302 and "login" in response["Location"]


def test_operators_open_the_admin(world):
    assert signed_in(world.operator).get("/admin/").status_code == 200


def test_adding_a_tenant_requires_its_first_admins_email(world):
    client = signed_in(world.operator)
    page = client.get("/admin/tenants/tenant/add/").content.decode()
    assert "First admin" in page
    tier = world.a.tier
    response = client.post(
        "/admin/tenants/tenant/add/",
        {"name": "No Admin", "slug": "no-admin", "tier": tier.pk, "admin_email": ""},
    )
    assert response.status_code == 200
    assert "This field is required." in response.content.decode()
    assert not Tenant.objects.filter(slug="no-admin").exists()


def test_a_tenant_added_in_the_admin_is_onboarded_with_an_invitation(
    world, mailoutbox, django_capture_on_commit_callbacks
):
    client = signed_in(world.operator)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            "/admin/tenants/tenant/add/",
            {
                "name": "With Admin",
                "slug": "with-admin",
                "tier": world.a.tier.pk,
                "admin_email": "first@with-admin.test",
            },
        )
    assert response.status_code == 302
    tenant = Tenant.objects.get(slug="with-admin")
    assert tenant.status == "active" and tenant.admin_email == "first@with-admin.test"
    assert tenant.invitations.filter(email="first@with-admin.test", role="admin").exists()


def test_the_tenant_page_shows_quotas_as_words(world):
    page = signed_in(world.operator).get(f"/admin/tenants/tenant/{world.a.pk}/change/")
    text = page.content.decode()
    assert "Daily event quota" in text and "Max delivery attempts" in text
    tier_page = signed_in(world.operator).get("/admin/tenants/tier/").content.decode()
    assert ">Daily event quota</a>" in tier_page and ">Max producers</a>" in tier_page
