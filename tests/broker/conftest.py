import pytest
from django_tenants.utils import tenant_context

from core import throttling


@pytest.fixture(autouse=True)
def _dns(fake_dns):
    """No network here: consumer hosts resolve from tests.helpers.DNS."""
    return fake_dns


@pytest.fixture(autouse=True)
def _fresh_api_budget(world):
    """The per-tenant API throttle counts in Redis across tests; each test starts afresh."""
    for tenant in (world.a, world.b):
        throttling.reset(tenant.pk)


@pytest.fixture
def in_a(world, db):
    """Runs the test inside tenant a's schema (services act on the active tenant)."""
    with tenant_context(world.a):
        yield world.a


@pytest.fixture
def in_b(world, db):
    with tenant_context(world.b):
        yield world.b
