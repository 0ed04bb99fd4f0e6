"""Test helpers (formerly in tests/conftest.py): tests import them from here, and the fixtures of
tests/conftest.py use them."""

from django.conf import settings
from rest_framework.test import APIClient

PASSWORD = "Correct-Horse-2026!"


def make_user(email, *, platform_role="", password=PASSWORD, **extra):
    from tenants.models import User

    return User.objects.create_user(
        email,
        password,
        platform_role=platform_role,
        is_staff=platform_role == "operator",
        is_superuser=platform_role == "operator",
        **extra,
    )


def onboard(slug, tier="standard", admin_email=None):
    """Onboards and provisions a tenant through the services (tasks run eagerly)."""
    from django.test import TestCase

    from tenants import services
    from tenants.models import Tenant

    with TestCase.captureOnCommitCallbacks(execute=True):
        tenant = services.tenant_onboard(
            name=slug.title(), slug=slug, tier=tier, admin_email=admin_email or f"admin@{slug}.test"
        )
    return Tenant.objects.select_related("tier").get(pk=tenant.pk)


class World:
    """Two active tenants (a, b) and one user per role, created once per session."""


def host_of(tenant=None) -> str:
    return f"{tenant.slug}.{settings.PORTAL_BASE_DOMAIN}" if tenant else settings.PORTAL_BASE_DOMAIN


class HostClient(APIClient):
    """An API client pinned to one host (Python's resolver knows no *.localhost)."""

    def __init__(self, host, token=None, **kwargs):
        super().__init__(**kwargs)
        self.host = host
        if token:
            self.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")

    def generic(
        self, method, path, data="", content_type="application/octet-stream", secure=False, **extra
    ):
        extra.setdefault("HTTP_HOST", self.host)
        return super().generic(method, path, data, content_type, secure=secure, **extra)


def token_for(user, tenant=None) -> str:
    response = HostClient(host_of(tenant)).post(
        "/api/v1/auth/token/", {"email": user.email, "password": PASSWORD}, format="json"
    )
    assert response.status_code == 200, response.content
    return response.json()["access"]


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# What the fake resolver answers: hooks.example.com is public, the others are not.
DNS = {
    "hooks.example.com": ["93.184.215.14"],
    "receiver.example.net": ["2606:4700::1111"],
    "intranet.example.com": ["10.0.0.5"],
    "mixed.example.com": ["93.184.215.14", "192.168.1.7"],
}
PUBLIC_URL = "https://hooks.example.com/events"
