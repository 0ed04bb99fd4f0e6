"""A deleted subscription's held events go with it: when the relay syncs the deletion (its
ROUTE item tombstoned), every item of its `HELD#<tenant>#<sub>` partition and its
`HELDSUM#<tenant>` / `SUB#<sub>` row are deleted from the data-plane table; another
subscription's held keys stay. A repeated sync, or one after a discard that stopped halfway,
finishes without error. Offboarding a tenant deletes the held events of all its subscriptions.
Held keys planted with the data plane's own functions (tests/helpers/held.py), in-process moto."""

import boto3
import pytest
from django.conf import settings
from django.db import connection
from django_tenants.utils import tenant_context

from broker import services
from broker.deliveries import held_keys
from broker.functions.shared import held
from broker.sync import relay
from broker.sync.models import OutboxEntry
from tests.helpers.held import hold_key

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("empty_dataplane")]

QUEUE = "arn:aws:sqs:eu-west-1:123456789012:sink"


def _hold_subscription(tenant, actor, name: str):
    with tenant_context(tenant):
        consumer, _ = services.consumer_create(
            actor=actor, name=name, kind="sqs", queue_arn=f"{QUEUE}-{tenant.slug}"
        )
        return services.subscription_create(
            actor=actor,
            consumer=consumer,
            event_type="order.*",
            ordered=True,
            ordering_key_path="data.order_id",
            on_head_failure="hold",
        )


def _dataplane():
    return boto3.client("dynamodb", region_name=settings.AWS_REGION)


def held_items(tenant, sub) -> list[str]:
    """The SKs of the subscription's HELD# partition."""
    pages = (
        _dataplane()
        .get_paginator("query")
        .paginate(
            TableName=settings.DATAPLANE_TABLE,
            KeyConditionExpression="PK = :pk",
            ExpressionAttributeValues={":pk": {"S": held.pk(tenant.pk, sub.pk)}},
            ConsistentRead=True,
        )
    )
    return [i["SK"]["S"] for page in pages for i in page["Items"]]


def summary_row(tenant, sub) -> dict | None:
    spk, ssk = held.summary_key(tenant.pk, sub.pk)
    return (
        _dataplane()
        .get_item(
            TableName=settings.DATAPLANE_TABLE,
            Key={"PK": {"S": spk}, "SK": {"S": ssk}},
            ConsistentRead=True,
        )
        .get("Item")
    )


def _delete(world, sub):
    with tenant_context(world.a):
        services.subscription_delete(actor=world.admin_a, subscription=sub)
    return list(
        OutboxEntry.objects.filter(object_type="subscription", object_id=str(sub.pk)).values(
            "tenant_id", "object_type", "object_id", "version", "deleted", "stale_keys"
        )
    )


@pytest.fixture
def two_holding(world):
    """Two hold subscriptions of tenant a, synced, holding keys: `gone` 12 keys of 3 events
    (48 items: more than one BatchWriteItem), `kept` one key."""
    gone = _hold_subscription(world.a, world.admin_a, "gone")
    kept = _hold_subscription(world.a, world.admin_a, "kept")
    relay.drain()
    for n in range(12):
        hold_key(world.a, gone, f"order-{n}", n=3, queue_url="https://q/gone.fifo")
    hold_key(world.a, kept, "order-x", n=2, queue_url="https://q/kept.fifo")
    assert len(held_items(world.a, gone)) == 12 * 4
    return gone, kept


def test_syncing_a_deleted_subscription_deletes_its_held_items_and_summary_only(world, two_holding):
    gone, kept = two_holding
    kept_before = held_items(world.a, kept)
    with tenant_context(world.a):
        listed = held_keys.tenant_held_summary(world.a)["subscriptions"]
    assert {r["subscription_id"] for r in listed} == {str(gone.pk), str(kept.pk)}

    _delete(world, gone)
    with tenant_context(world.a):  # synced in the same drain: a live route keeps its keys
        services.subscription_update(actor=world.admin_a, subscription=kept, enabled=False)
    counts = relay.drain()

    assert counts["failed"] == 0 and counts["synced"] >= 1
    assert held_items(world.a, gone) == []
    assert summary_row(world.a, gone) is None
    assert held_items(world.a, kept) == kept_before
    assert int(summary_row(world.a, kept)["held"]["N"]) == 2
    # The console's held summary (portal/console/tenant.py `_held`) no longer lists it.
    with tenant_context(world.a):
        summary = held_keys.tenant_held_summary(world.a)
    assert [(r["subscription_id"], r["name"]) for r in summary["subscriptions"]] == [
        (str(kept.pk), kept.name)
    ]
    assert (summary["keys"], summary["held"]) == (1, 2)


def test_a_second_sync_of_the_deletion_and_one_after_a_halfway_discard_finish_quietly(
    world, two_holding
):
    gone, kept = two_holding
    rows = _delete(world, gone)
    assert rows
    # A discard that stopped halfway: some of the partition gone, the rest and the summary left.
    client = _dataplane()
    for sk in held_items(world.a, gone)[:20]:
        client.delete_item(
            TableName=settings.DATAPLANE_TABLE,
            Key={"PK": {"S": held.pk(world.a.pk, gone.pk)}, "SK": {"S": sk}},
        )
    assert summary_row(world.a, gone) is not None

    assert relay.drain()["failed"] == 0
    assert held_items(world.a, gone) == [] and summary_row(world.a, gone) is None

    # The same deletion synced again (a relay that re-reads the row, a requeue): nothing left
    # to delete, no error, the other subscription untouched.
    OutboxEntry.objects.bulk_create(OutboxEntry(**row) for row in rows)
    counts = relay.drain()
    assert (counts["synced"], counts["failed"]) == (1, 0)
    assert not OutboxEntry.objects.filter(object_id=str(gone.pk)).exists()
    assert held_items(world.a, gone) == [] and summary_row(world.a, gone) is None
    assert len(held_items(world.a, kept)) == 3


def test_deleting_the_consumer_discards_its_subscriptions_held_events(world, two_holding):
    gone, kept = two_holding
    with tenant_context(world.a):
        services.consumer_delete(actor=world.admin_a, consumer=gone.consumer)
    assert relay.drain()["failed"] == 0
    assert held_items(world.a, gone) == [] and summary_row(world.a, gone) is None
    assert len(held_items(world.a, kept)) == 3


def test_the_discard_reads_in_pages_and_sends_again_what_dynamodb_left_unprocessed(
    world, two_holding, monkeypatch
):
    """DynamoDB answers a Query in pages (1 MB each) and may leave part of a BatchWriteItem
    unprocessed: here pages of 10 keys and every call leaving its last 5 requests."""
    from broker.functions import aws as dataplane_aws

    gone, kept = two_holding
    client = dataplane_aws.dynamodb()
    query, batch_write = client.query, client.batch_write_item
    pages, calls = [], []

    def paged_query(**params):
        page = query(**{**params, "Limit": 10})
        pages.append(len(page["Items"]))
        return page

    def stingy_batch_write(RequestItems):
        ((table, requests),) = RequestItems.items()
        calls.append(len(requests))
        done, left = (requests[:-5], requests[-5:]) if len(requests) > 5 else (requests, [])
        batch_write(RequestItems={table: done})
        return {"UnprocessedItems": {table: left} if left else {}}

    monkeypatch.setattr(client, "query", paged_query)
    monkeypatch.setattr(client, "batch_write_item", stingy_batch_write)
    _delete(world, gone)
    assert relay.drain()["failed"] == 0
    monkeypatch.undo()

    assert held_items(world.a, gone) == [] and summary_row(world.a, gone) is None
    assert len(held_items(world.a, kept)) == 3
    assert pages == [10, 10, 10, 10, 8]  # 48 items, a page at a time
    assert calls == [10, 5] * 4 + [8, 5]  # each page, then its 5 left unprocessed


def test_offboarding_deletes_the_held_items_of_every_subscription_of_the_tenant(
    world, settings, tmp_path, django_capture_on_commit_callbacks
):
    from tenants import services as tenant_services
    from tests.helpers import onboard

    settings.OFFBOARD_EXPORT_DIR = str(tmp_path)
    tenant = onboard("held-leaving")
    subs = [_hold_subscription(tenant, None, f"s{i}") for i in range(2)]
    other = _hold_subscription(world.a, world.admin_a, "stays")
    relay.drain()
    for sub in subs:
        hold_key(tenant, sub, "order-1", n=2, queue_url="https://q/leaving.fifo")
    hold_key(world.a, other, "order-1", n=2, queue_url="https://q/stays.fifo")
    with connection.cursor() as cursor:
        # The test's one transaction holds the deferred foreign key checks of the rows made
        # above; PostgreSQL refuses to drop tables with pending ones. Check them now.
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")

    with django_capture_on_commit_callbacks(execute=True):
        tenant_services.tenant_offboard(tenant=tenant)

    tenant.refresh_from_db()
    assert tenant.status == "deleted", tenant.offboarding_report
    for sub in subs:
        assert held_items(tenant, sub) == [] and summary_row(tenant, sub) is None
    assert held.tenant_summary(str(tenant.pk))["by_subscription"] == {}
    assert len(held_items(world.a, other)) == 3 and summary_row(world.a, other) is not None
