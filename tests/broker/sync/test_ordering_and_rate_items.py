"""What the data plane reads of issue 18's configuration: ROUTE items carry a subscription's
ordering, CONSUMER items its rate limit, the TENANT item the rate quota
(docs/dynamodb-contract.md)."""

import pytest
from django_tenants.utils import tenant_context

from broker import services
from broker.sync import contract, dynamo, relay
from tenants.models import Tenant

pytestmark = pytest.mark.django_db

QUEUE = "arn:aws:sqs:eu-west-1:123456789012:sink"


def test_route_and_consumer_items_carry_ordering_and_the_rate_limit(world):
    with tenant_context(world.a):
        consumer, _ = services.consumer_create(
            actor=world.admin_a, name="sink", kind="sqs", queue_arn=QUEUE, rate_limit_per_second=5
        )
        ordered = services.subscription_create(
            actor=world.admin_a,
            consumer=consumer,
            event_type="order.*",
            ordered=True,
            ordering_key_path="data.order_id",
            on_head_failure="hold",
        )
        plain = services.subscription_create(
            actor=world.admin_a, consumer=consumer, event_type="invoice.*"
        )
    relay.drain()
    pk = f"TENANT#{world.a.pk}"

    c = dynamo.get_item(pk, f"CONSUMER#{consumer.pk}")
    assert c["rate_limit_per_second"] == 5
    r = dynamo.get_item(pk, f"ROUTE#order.*#{ordered.pk}")
    assert (r["ordered"], r["ordering_key_path"], r["on_head_failure"]) == (
        True,
        "data.order_id",
        "hold",
    )
    # Unordered, the envelope's key: the defaults, an empty path absent.
    p = dynamo.get_item(pk, f"ROUTE#invoice.*#{plain.pk}")
    assert p["ordered"] is False and p["on_head_failure"] == "skip"
    assert "ordering_key_path" not in p

    with tenant_context(world.a):
        services.consumer_update(actor=world.admin_a, consumer=consumer, rate_limit_per_second=None)
        services.subscription_update(actor=world.admin_a, subscription=ordered, ordered=False)
    relay.drain()
    assert "rate_limit_per_second" not in dynamo.get_item(pk, f"CONSUMER#{consumer.pk}")
    assert dynamo.get_item(pk, f"ROUTE#order.*#{ordered.pk}")["ordered"] is False


def test_the_tenant_item_carries_the_rate_quota(world):
    tenant = Tenant.objects.select_related("tier").get(pk=world.a.pk)
    assert (
        contract.tenant_item(tenant)["quotas"]["max_consumer_rate_per_second"]
        == tenant.tier.max_consumer_rate_per_second
    )
    tenant.quota_overrides = {"max_consumer_rate_per_second": 42}
    # Provisioning gave it the shared FIFO queues (a pool tenant).
    assert contract.tenant_item(tenant)["ordered_queues"] == tenant.ordered_queues != []
    tenant.ordered_queues = []  # as before provisioning
    item = contract.tenant_item(tenant)
    assert item["quotas"]["max_consumer_rate_per_second"] == 42
    assert item["ordered_queues"] is None  # not provisioned: absent once serialized
    assert "ordered_queues" not in dynamo.serialize(item)

    tenant.ordered_queues = ["https://sqs.example/1/p-ordered-00.fifo"]
    assert contract.tenant_item(tenant)["ordered_queues"] == tenant.ordered_queues
