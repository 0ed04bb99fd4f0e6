"""Every list endpoint runs the same number of SQL queries for 1 and for 100 objects."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django_tenants.utils import tenant_context

from broker import services
from tests.helpers import PUBLIC_URL

pytestmark = pytest.mark.django_db

QUEUE = "arn:aws:sqs:eu-west-1:123456789012:sink"
ENDPOINTS = [
    "/api/v1/producers/",
    "/api/v1/consumers/",
    "/api/v1/subscriptions/",
    "/api/v1/event-types/",
    "/api/v1/audit-events/",
]


def _fill(world, n, start):
    from tenants.models import Tenant

    tenant = Tenant.objects.get(pk=world.a.pk)
    tenant.quota_overrides = {"max_producers": 500, "max_consumers": 500}
    tenant.save(update_fields=["quota_overrides"])
    with tenant_context(tenant):
        for i in range(start, start + n):
            producer, _ = services.producer_create(actor=world.admin_a, name=f"p{i}", kind="https")
            services.producer_rotate_key(actor=world.admin_a, producer=producer)
            consumer, _ = services.consumer_create(
                actor=world.admin_a,
                name=f"c{i}",
                kind="https" if i % 2 else "sqs",
                url=PUBLIC_URL if i % 2 else "",
                queue_arn="" if i % 2 else QUEUE,
            )
            services.subscription_create(actor=world.admin_a, consumer=consumer, event_type=f"t{i}")
            services.event_type_create(actor=world.admin_a, name=f"type.n{i}")


def _count(client, path):
    with CaptureQueriesContext(connection) as queries:
        response = client.get(path, {"page_size": 200})
    assert response.status_code == 200
    return len(queries), response.json()["count"]


def test_list_endpoints_run_a_constant_number_of_queries(world, api):
    client = api(world.admin_a, world.a)
    _fill(world, 1, 0)
    small = {path: _count(client, path) for path in ENDPOINTS}
    _fill(world, 99, 1)
    large = {path: _count(client, path) for path in ENDPOINTS}
    for path in ENDPOINTS:
        assert large[path][1] >= 100 * small[path][1] or large[path][1] >= 100, path
        assert large[path][0] == small[path][0], (path, small[path], large[path])
