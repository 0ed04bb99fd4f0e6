"""Invitations: accepting one as an existing account goes through the sign-in lockout, and
their tokens stay out of the logs."""

import io
import logging

import pytest

from tenants import services
from tests.helpers import PASSWORD, HostClient, host_of

pytestmark = pytest.mark.django_db


def _invite(world, mailoutbox, django_capture_on_commit_callbacks, email):
    with django_capture_on_commit_callbacks(execute=True):
        services.member_invite(tenant=world.a, email=email, role="viewer")
    return mailoutbox[-1].body.split("/invitations/")[1].split("/")[0]


def test_accepting_as_an_existing_account_is_locked_out_like_a_sign_in(
    world, settings, mailoutbox, django_capture_on_commit_callbacks
):
    token = _invite(world, mailoutbox, django_capture_on_commit_callbacks, world.admin_b.email)
    page = HostClient(host_of(world.a))
    path = f"/invitations/{token}/"
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        wrong = page.post(path, {"password": "wrong-guess-1"})
        assert wrong.status_code == 200 and b"Wrong password" in wrong.content
    assert page.post(path, {"password": "wrong-guess-2"}).status_code == 429
    # locked: the right password no longer helps, here or at the token endpoint
    assert page.post(path, {"password": PASSWORD}).status_code == 429
    api = HostClient(host_of(world.b)).post(
        "/api/v1/auth/token/", {"email": world.admin_b.email, "password": PASSWORD}, format="json"
    )
    assert api.status_code == 429
    assert not world.a.memberships.filter(user=world.admin_b).exists()


def test_accepting_as_an_existing_account_with_its_password_still_works(
    world, mailoutbox, django_capture_on_commit_callbacks
):
    token = _invite(world, mailoutbox, django_capture_on_commit_callbacks, world.admin_b.email)
    accepted = HostClient(host_of(world.a)).post(f"/invitations/{token}/", {"password": PASSWORD})
    assert accepted.status_code == 302
    assert world.a.memberships.filter(user=world.admin_b, role="viewer").exists()


@pytest.fixture
def console_output():
    """What the configured console handler writes (its stream swapped for a buffer)."""
    handler = next(h for h in logging.getLogger().handlers if getattr(h, "name", "") == "console")
    buffer = io.StringIO()
    previous = handler.setStream(buffer)
    try:
        yield buffer
    finally:
        handler.setStream(previous)


def test_invitation_tokens_never_reach_the_logs(world, console_output):
    token = "a-secret-invitation-token-123"
    response = HostClient(host_of(world.a)).get(f"/invitations/{token}/")
    assert response.status_code == 404
    logging.getLogger("django.server").info('"GET /invitations/%s/ HTTP/1.1" 200 10', token)
    written = console_output.getvalue()
    assert "/invitations/[redacted]/" in written
    assert token not in written
