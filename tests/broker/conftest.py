import socket

import pytest
from django.core.cache import cache
from django_tenants.utils import schema_context, tenant_context

# What the fake resolver answers: hooks.example.com is public, the others are not.
DNS = {
    "hooks.example.com": ["93.184.215.14"],
    "receiver.example.net": ["2606:4700::1111"],
    "intranet.example.com": ["10.0.0.5"],
    "mixed.example.com": ["93.184.215.14", "192.168.1.7"],
}
PUBLIC_URL = "https://hooks.example.com/events"


@pytest.fixture(autouse=True)
def fake_dns(monkeypatch):
    """No network here: consumer hosts resolve from DNS above; IP literals resolve as usual."""
    real = socket.getaddrinfo

    def getaddrinfo(host, port, *args, **kwargs):
        name = host.decode() if isinstance(host, bytes) else host
        if name in DNS:
            out = []
            for addr in DNS[name]:
                family = socket.AF_INET6 if ":" in addr else socket.AF_INET
                sockaddr = (addr, port or 443, 0, 0) if ":" in addr else (addr, port or 443)
                out.append((family, socket.SOCK_STREAM, 6, "", sockaddr))
            return out
        if name and any(c.isalpha() for c in name.replace("0x", "")) and "." in name:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return DNS


@pytest.fixture(autouse=True)
def _fresh_api_budget(world):
    """The per-tenant API throttle counts in Redis across tests; each test starts afresh."""
    for tenant in (world.a, world.b):
        with schema_context(tenant.schema_name):
            cache.delete(f"throttle:tenant-api:{tenant.pk}")


@pytest.fixture
def in_a(world, db):
    """Runs the test inside tenant a's schema (services act on the active tenant)."""
    with tenant_context(world.a):
        yield world.a


@pytest.fixture
def in_b(world, db):
    with tenant_context(world.b):
        yield world.b


def outbox_rows(tenant=None, **filters):
    from broker.sync.models import OutboxEntry

    rows = OutboxEntry.objects.all()
    if tenant is not None:
        rows = rows.filter(tenant=tenant)
    return list(rows.filter(**filters).order_by("id"))


def audit_rows(**filters):
    from broker.models import AuditEvent

    return list(AuditEvent.objects.filter(**filters).order_by("id"))
