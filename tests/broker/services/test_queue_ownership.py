"""An SQS producer's source queue and an SQS consumer's queue must be the tenant's own."""

import pytest
from django_tenants.utils import tenant_context

from broker import services
from broker.sync.models import QueueClaim
from core.errors import ApplicationError

pytestmark = pytest.mark.django_db

MINE = "arn:aws:sqs:eu-west-1:210987654321:shop-orders"
OTHER = "arn:aws:sqs:eu-west-1:210987654321:shop-orders-2"


def sqs_producer(world, tenant, queue, name="in"):
    admin = world.admin_a if tenant == world.a else world.admin_b
    with tenant_context(tenant):
        return services.producer_create(actor=admin, name=name, kind="sqs", source_queue_arn=queue)[
            0
        ]


def sqs_consumer(world, tenant, queue, name="out"):
    admin = world.admin_a if tenant == world.a else world.admin_b
    with tenant_context(tenant):
        return services.consumer_create(actor=admin, name=name, kind="sqs", queue_arn=queue)[0]


def refused(call, field):
    with pytest.raises(ApplicationError) as exc:
        call()
    return " ".join(exc.value.fields[field])


@pytest.mark.parametrize(
    "name", ["broker-delivery-00", "broker-dlq", "broker-silo-1234", "broker-dataplane-x"]
)
def test_a_platform_queue_is_refused_for_producers_and_consumers(world, name):
    queue = f"arn:aws:sqs:eu-west-1:123456789012:{name}"
    assert "platform" in refused(lambda: sqs_producer(world, world.a, queue), "source_queue_arn")
    assert "platform" in refused(lambda: sqs_consumer(world, world.a, queue), "queue_arn")


def test_a_queue_another_tenant_uses_is_refused(world):
    sqs_producer(world, world.a, MINE)
    sqs_consumer(world, world.a, OTHER)
    assert "Another tenant" in refused(
        lambda: sqs_producer(world, world.b, MINE), "source_queue_arn"
    )
    assert "Another tenant" in refused(lambda: sqs_consumer(world, world.b, MINE), "queue_arn")
    assert "Another tenant" in refused(lambda: sqs_consumer(world, world.b, OTHER), "queue_arn")


def test_a_source_queue_has_one_producer_and_never_feeds_a_consumer(world):
    sqs_producer(world, world.a, MINE)
    assert "Another producer" in refused(
        lambda: sqs_producer(world, world.a, MINE, name="in-2"), "source_queue_arn"
    )
    assert "loop" in refused(lambda: sqs_consumer(world, world.a, MINE), "queue_arn")


def test_consumers_of_one_tenant_may_share_a_queue(world):
    sqs_consumer(world, world.a, MINE, name="one")
    sqs_consumer(world, world.a, MINE, name="two")
    assert QueueClaim.objects.filter(queue_arn=MINE, tenant=world.a).count() == 2


def test_a_queue_is_free_again_once_its_producer_moves_or_is_deleted(world):
    producer = sqs_producer(world, world.a, MINE)
    with tenant_context(world.a):
        producer = services.producer_update(
            actor=world.admin_a, producer=producer, source_queue_arn=OTHER
        )
    sqs_producer(world, world.b, MINE)  # free: tenant a moved to OTHER
    with tenant_context(world.a):
        services.producer_delete(actor=world.admin_a, producer=producer)
    sqs_consumer(world, world.b, OTHER)


def test_a_deleted_consumer_frees_its_queue(world):
    consumer = sqs_consumer(world, world.a, MINE)
    with tenant_context(world.a):
        services.consumer_delete(actor=world.admin_a, consumer=consumer)
    sqs_producer(world, world.b, MINE)


def test_updating_an_object_keeps_its_own_queue(world):
    producer = sqs_producer(world, world.a, MINE)
    with tenant_context(world.a):
        services.producer_update(actor=world.admin_a, producer=producer, description="x")
        services.producer_update(actor=world.admin_a, producer=producer, enabled=False)
    assert QueueClaim.objects.get(queue_arn=MINE).object_id == str(producer.pk)
