import pytest

from core.errors import ApplicationError
from tenants import services
from tenants.models import Invitation, Membership, User
from tests.helpers import HostClient, host_of, onboard, token_for

pytestmark = pytest.mark.django_db


def invitation_token(mail) -> str:
    return mail.body.split("/invitations/")[1].split("/")[0]


def test_a_tenant_admin_invites_a_member_who_accepts_and_signs_in(
    world, mailoutbox, django_capture_on_commit_callbacks
):
    admin = HostClient(host_of(world.a), token_for(world.admin_a, world.a))
    with django_capture_on_commit_callbacks(execute=True):
        response = admin.post(
            "/api/v1/members/", {"email": "New.Person@A.test", "role": "developer"}, format="json"
        )
    assert response.status_code == 201
    assert mailoutbox[-1].to == ["new.person@a.test"]
    token = invitation_token(mailoutbox[-1])
    assert not Invitation.objects.filter(token_hash=token).exists()  # only the hash is stored

    page = HostClient(host_of(world.a)).get(f"/invitations/{token}/")
    assert page.status_code == 200 and b"new.person@a.test" in page.content
    accept = HostClient(host_of(world.a)).post(
        f"/invitations/{token}/", {"full_name": "New Person", "password": "Another-Horse-77"}
    )
    assert accept.status_code == 302
    user = User.objects.get(email="new.person@a.test")
    assert Membership.objects.get(user=user, tenant=world.a).role == "developer"
    assert HostClient(host_of(world.a)).get(f"/invitations/{token}/").status_code == 404  # used

    me = HostClient(host_of(world.a)).post(
        "/api/v1/auth/token/",
        {"email": "new.person@a.test", "password": "Another-Horse-77"},
        format="json",
    )
    assert me.status_code == 200


def test_an_invitation_link_does_not_work_on_another_tenants_host(
    world, mailoutbox, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        services.member_invite(tenant=world.a, email="x@a.test", role="viewer")
    token = invitation_token(mailoutbox[-1])
    assert HostClient(host_of(world.b)).get(f"/invitations/{token}/").status_code == 404


def test_an_existing_user_joins_another_tenant_with_their_own_password(
    world, mailoutbox, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        services.member_invite(tenant=world.b, email=world.viewer_a.email, role="viewer")
    token = invitation_token(mailoutbox[-1])
    with pytest.raises(ApplicationError):
        services.invitation_accept(tenant=world.b, token=token, password="not-their-password")
    membership = services.invitation_accept(
        tenant=world.b, token=token, password="Correct-Horse-2026!"
    )
    assert membership.user == world.viewer_a and membership.tenant == world.b


def test_inviting_an_existing_member_or_with_a_bad_role_is_a_400(world):
    admin = HostClient(host_of(world.a), token_for(world.admin_a, world.a))
    dup = admin.post("/api/v1/members/", {"email": "dev@a.test", "role": "viewer"}, format="json")
    assert dup.status_code == 400 and dup.json()["error"]["code"] == "already_member"
    bad = admin.post("/api/v1/members/", {"email": "n@a.test", "role": "owner"}, format="json")
    assert bad.status_code == 400 and "role" in bad.json()["error"]["fields"]


def test_the_last_admin_can_be_neither_demoted_nor_removed(world):
    tenant = onboard("one-admin")
    user = User.objects.create_user("solo@one.test", "Correct-Horse-2026!")
    only = Membership.objects.create(user=user, tenant=tenant, role="admin")
    with pytest.raises(ApplicationError) as exc:
        services.membership_change_role(membership=only, role="viewer")
    assert exc.value.code == "last_admin"
    with pytest.raises(ApplicationError):
        services.membership_remove(membership=only)
    assert Membership.objects.get(pk=only.pk).role == "admin"


def test_role_changes_and_removals_are_audited_in_the_tenant_schema(world):
    from django_tenants.utils import schema_context

    from broker.models import AuditEvent

    viewer = Membership.objects.get(user=world.viewer_a, tenant=world.a)
    admin = HostClient(host_of(world.a), token_for(world.admin_a, world.a))
    assert (
        admin.patch(f"/api/v1/members/{viewer.pk}/", {"role": "developer"}, format="json").json()[
            "role"
        ]
        == "developer"
    )
    assert admin.delete(f"/api/v1/members/{viewer.pk}/").status_code == 204
    with schema_context(world.a.schema_name):
        actions = list(
            AuditEvent.objects.filter(object_id=str(viewer.pk)).values_list("action", "actor_email")
        )
    assert ("member.change_role", "admin@a.test") in actions
    assert ("member.remove", "admin@a.test") in actions
    with schema_context(world.b.schema_name):
        assert not AuditEvent.objects.filter(object_id=str(viewer.pk)).exists()
