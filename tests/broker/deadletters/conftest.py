import pytest
from django_tenants.utils import tenant_context

from broker import services as broker_services
from tests.helpers import PUBLIC_URL
from tests.helpers.deadletters import dlq_url, purge


@pytest.fixture
def dlq(world, db):
    url = dlq_url()
    purge(url)
    yield url
    purge(url)


@pytest.fixture
def consumer_a(world, db):
    with tenant_context(world.a):
        consumer, _ = broker_services.consumer_create(
            actor=world.admin_a, name="orders-hook", kind="https", url=PUBLIC_URL
        )
    return consumer


@pytest.fixture
def consumer_b(world, db):
    with tenant_context(world.b):
        consumer, _ = broker_services.consumer_create(
            actor=world.admin_b, name="b-hook", kind="https", url=PUBLIC_URL
        )
    return consumer
