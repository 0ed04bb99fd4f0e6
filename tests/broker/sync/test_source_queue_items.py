"""An SQS producer's source queue has its own contract item, keyed by the queue's ARN, so the
ingress finds the producer of a record in one GetItem."""

import pytest
from django.conf import settings
from django_tenants.utils import tenant_context

from broker import services
from broker.sync import dynamo, reconcile, relay

pytestmark = pytest.mark.django_db

QUEUE = "arn:aws:sqs:eu-west-1:210987654321:orders-in"
OTHER = "arn:aws:sqs:eu-west-1:210987654321:orders-in-v2"


def source_item(queue_arn):
    return dynamo.get_item(f"SOURCEQUEUE#{queue_arn}", "SOURCEQUEUE")


def _sqs_producer(world, queue=QUEUE):
    with tenant_context(world.a):
        producer, _ = services.producer_create(
            actor=world.admin_a, name="orders-queue", kind="sqs", source_queue_arn=queue
        )
    relay.drain()
    return producer


def test_syncing_an_sqs_producer_writes_an_item_keyed_by_its_source_queue(world):
    producer = _sqs_producer(world)
    item = source_item(QUEUE)
    assert item["tenant_id"] == str(world.a.pk) and item["producer_id"] == str(producer.pk)
    assert item["type"] == "source_queue" and item["version"] == producer.version
    assert item["apikey_tenant_id"] == str(world.a.pk)  # found by reconcile and offboarding
    assert dynamo.get_item(f"TENANT#{world.a.pk}", f"PRODUCER#{producer.pk}")["kind"] == "sqs"


def test_an_https_producer_has_no_source_queue_item(world):
    with tenant_context(world.a):
        services.producer_create(actor=world.admin_a, name="web", kind="https")
    relay.drain()
    table = dynamo.aws.dynamodb()
    scan = table.scan(TableName=settings.DYNAMODB_CONFIG_TABLE)["Items"]
    assert not [i for i in scan if i["PK"]["S"].startswith("SOURCEQUEUE#")]


def test_moving_the_producer_to_another_queue_tombstones_the_old_item(world):
    producer = _sqs_producer(world)
    with tenant_context(world.a):
        producer = services.producer_update(
            actor=world.admin_a, producer=producer, source_queue_arn=OTHER
        )
    relay.drain()
    assert source_item(QUEUE)["deleted"] is True
    moved = source_item(OTHER)
    assert moved["producer_id"] == str(producer.pk) and moved["version"] == producer.version


def test_deleting_the_producer_tombstones_its_source_queue_item(world):
    producer = _sqs_producer(world)
    with tenant_context(world.a):
        services.producer_delete(actor=world.admin_a, producer=producer)
    relay.drain()
    assert source_item(QUEUE)["deleted"] is True


def test_the_reconciler_repairs_a_missing_source_queue_item_and_then_sees_no_drift(world):
    producer = _sqs_producer(world)
    assert reconcile.sync_tenant(world.a)["drift"] == 0
    dynamo.aws.dynamodb().delete_item(
        TableName=settings.DYNAMODB_CONFIG_TABLE,
        Key={"PK": {"S": f"SOURCEQUEUE#{QUEUE}"}, "SK": {"S": "SOURCEQUEUE"}},
    )
    counts = reconcile.sync_tenant(world.a)
    assert (counts["missing"], counts["drift"]) == (1, 1)
    assert source_item(QUEUE)["producer_id"] == str(producer.pk)
    assert reconcile.sync_tenant(world.a)["drift"] == 0


def test_an_altered_source_queue_item_bumps_the_producer_and_rewrites_both_items(world):
    producer = _sqs_producer(world)
    dynamo.aws.dynamodb().update_item(
        TableName=settings.DYNAMODB_CONFIG_TABLE,
        Key={"PK": {"S": f"SOURCEQUEUE#{QUEUE}"}, "SK": {"S": "SOURCEQUEUE"}},
        UpdateExpression="SET producer_id = :p",
        ExpressionAttributeValues={":p": {"S": "someone-else"}},
    )
    counts = reconcile.sync_tenant(world.a)
    assert counts["altered"] == 1
    with tenant_context(world.a):
        producer.refresh_from_db()
    assert source_item(QUEUE)["producer_id"] == str(producer.pk)
    assert source_item(QUEUE)["version"] == producer.version == 2
    item = dynamo.get_item(f"TENANT#{world.a.pk}", f"PRODUCER#{producer.pk}")
    assert item["version"] == 2
    assert reconcile.sync_tenant(world.a)["drift"] == 0


def test_a_full_resync_writes_the_source_queue_item_too(world):
    producer = _sqs_producer(world)
    dynamo.aws.dynamodb().delete_item(
        TableName=settings.DYNAMODB_CONFIG_TABLE,
        Key={"PK": {"S": f"SOURCEQUEUE#{QUEUE}"}, "SK": {"S": "SOURCEQUEUE"}},
    )
    reconcile.sync_tenant(world.a, resync=True)
    assert source_item(QUEUE)["producer_id"] == str(producer.pk)
