"""The relay mirrors every kind of change into DynamoDB (in-process moto)."""

import json

import pytest
from botocore.exceptions import EndpointConnectionError
from django_tenants.utils import tenant_context

from broker import services
from broker.sync import dynamo, relay
from broker.sync.models import OutboxEntry, SyncState
from tests.helpers import PUBLIC_URL, source_queue

pytestmark = pytest.mark.django_db

QUEUE = "arn:aws:sqs:eu-west-1:123456789012:sink"


def item(pk, sk):
    return dynamo.get_item(pk, sk)


def test_every_kind_of_change_produces_the_right_item(world):
    t = world.a
    with tenant_context(t):
        producer, key = services.producer_create(
            actor=world.admin_a,
            name="shop",
            kind="https",
            allowed_event_types=["order.*"],
            ingest_rate_per_second=5,
        )
        consumer, signing = services.consumer_create(
            actor=world.admin_a,
            name="hook",
            kind="https",
            url=PUBLIC_URL,
            auth_type="bearer",
            auth_secret="bearer-in-clear",
        )
        sub = services.subscription_create(
            actor=world.admin_a,
            consumer=consumer,
            event_type="order.*",
            producer=producer,
            filter={"data": {"amount": [{"numeric": [">", 9.5]}]}},
        )
        event_type = services.event_type_create(
            actor=world.admin_a, name="order.created", schema={"type": "object"}
        )
        api_key = producer.api_keys.get()
    counts = relay.drain()
    assert counts["synced"] == 5 and not OutboxEntry.objects.exists()

    pk = f"TENANT#{t.pk}"
    p = item(pk, f"PRODUCER#{producer.pk}")
    assert p["kind"] == "https" and p["enabled"] is True and p["version"] == 1
    assert p["allowed_event_types"] == ["order.*"] and p["rate_per_second"] == 5
    assert p["burst"] == t.effective_quotas()["ingest_burst"]

    k = item(f"APIKEY#{api_key.key_hash}", "APIKEY")
    assert k["producer_id"] == str(producer.pk) and k["tenant_id"] == str(t.pk)
    assert k["prefix"] == key[:12] and "expires_at" not in k

    c = item(pk, f"CONSUMER#{consumer.pk}")
    assert c["target"] == {"url": PUBLIC_URL} and c["auth"]["type"] == "bearer"
    assert c["auth"]["secret_ref"] == consumer.auth_secret_encrypted
    assert len(c["signing_secrets"]) == 1
    text = json.dumps(c, default=str)
    assert "bearer-in-clear" not in text and signing not in text  # references only

    r = item(pk, f"ROUTE#order.*#{sub.pk}")
    assert r["consumer_id"] == str(consumer.pk) and r["producer_id"] == str(producer.pk)
    assert json.loads(r["filter_json"]) == {"data": {"amount": [{"numeric": [">", 9.5]}]}}
    assert r["enabled"] is True

    e = item(pk, "EVENTTYPE#order.created")
    assert json.loads(e["schema_json"]) == {"type": "object"} and e["version"] == event_type.version

    states = SyncState.objects.filter(tenant=t).exclude(object_type="tenant")
    assert states.count() == 5 and all(s.synced_version == s.version == 1 for s in states)


def test_disabling_is_reflected_and_deleting_leaves_tombstones(world):
    t = world.a
    pk = f"TENANT#{t.pk}"
    with tenant_context(t):
        producer, _ = services.producer_create(actor=world.admin_a, name="p", kind="https")
        consumer, _ = services.consumer_create(
            actor=world.admin_a, name="c", kind="sqs", queue_arn=QUEUE
        )
        sub = services.subscription_create(actor=world.admin_a, consumer=consumer, event_type="a.b")
    relay.drain()
    with tenant_context(t):
        services.producer_update(actor=world.admin_a, producer=producer, enabled=False)
        services.consumer_update(actor=world.admin_a, consumer=consumer, enabled=False)
        services.subscription_update(actor=world.admin_a, subscription=sub, enabled=False)
    relay.drain()
    assert item(pk, f"PRODUCER#{producer.pk}")["enabled"] is False
    assert item(pk, f"CONSUMER#{consumer.pk}")["enabled"] is False
    assert item(pk, f"ROUTE#a.b#{sub.pk}")["enabled"] is False

    with tenant_context(t):
        key = producer.api_keys.get()
        services.producer_delete(actor=world.admin_a, producer=producer)
        services.consumer_delete(actor=world.admin_a, consumer=consumer)
    relay.drain()
    for pk_, sk in [
        (pk, f"PRODUCER#{producer.pk}"),
        (f"APIKEY#{key.key_hash}", "APIKEY"),
        (pk, f"CONSUMER#{consumer.pk}"),
        (pk, f"ROUTE#a.b#{sub.pk}"),
    ]:
        stored = item(pk_, sk)
        assert stored["deleted"] is True and stored["ttl"] > 0, sk
    assert item(pk, f"PRODUCER#{producer.pk}")["version"] == 3


def test_a_late_write_of_an_older_version_never_brings_a_deleted_object_back(world):
    t = world.a
    with tenant_context(t):
        producer, _ = services.producer_create(
            actor=world.admin_a, name="p", kind="sqs", source_queue_arn=QUEUE
        )
        from broker.sync import contract

        stale_item = contract.producer_item(producer, tenant=t)  # version 1, built early
        services.producer_delete(actor=world.admin_a, producer=producer)
    relay.drain()

    assert dynamo.put_versioned(stale_item) is False
    stored = item(f"TENANT#{t.pk}", f"PRODUCER#{producer.pk}")
    assert stored["deleted"] is True and stored["version"] == 2


def test_a_late_relay_writes_the_current_state_not_the_queued_one(world):
    t = world.a
    with tenant_context(t):
        producer, _ = services.producer_create(actor=world.admin_a, name="p", kind="https")
        for name in ("p2", "p3", "p4"):
            producer = services.producer_update(actor=world.admin_a, producer=producer, name=name)
    relay.drain()
    stored = item(f"TENANT#{t.pk}", f"PRODUCER#{producer.pk}")
    assert stored["name"] == "p4" and stored["version"] == 4


def test_changing_a_routes_event_type_tombstones_the_old_route(world):
    t = world.a
    with tenant_context(t):
        consumer, _ = services.consumer_create(
            actor=world.admin_a, name="c", kind="sqs", queue_arn=QUEUE
        )
        sub = services.subscription_create(actor=world.admin_a, consumer=consumer, event_type="a.b")
    relay.drain()
    with tenant_context(t):
        services.subscription_update(actor=world.admin_a, subscription=sub, event_type="a.c")
    relay.drain()
    assert item(f"TENANT#{t.pk}", f"ROUTE#a.b#{sub.pk}")["deleted"] is True
    assert item(f"TENANT#{t.pk}", f"ROUTE#a.c#{sub.pk}")["version"] == 2


def test_a_failing_tenant_does_not_hold_up_another(world, monkeypatch):
    source_queue("sink")
    source_queue("sink-b")  # the SQS producers' queues exist, so both can be mapped
    with tenant_context(world.a):
        pa, _ = services.producer_create(
            actor=world.admin_a, name="p", kind="sqs", source_queue_arn=QUEUE
        )
    with tenant_context(world.b):
        pb, _ = services.producer_create(
            actor=world.admin_b, name="p", kind="sqs", source_queue_arn=QUEUE + "-b"
        )
    real = dynamo.put_versioned

    def flaky(item):
        if item["PK"] == f"TENANT#{world.a.pk}":
            raise EndpointConnectionError(endpoint_url="https://dynamodb.invalid")
        return real(item)

    monkeypatch.setattr(dynamo, "put_versioned", flaky)
    counts = relay.drain()

    assert counts["synced"] == 1 and counts["failed"] == 1
    assert item(f"TENANT#{world.b.pk}", f"PRODUCER#{pb.pk}")["version"] == 1
    (waiting,) = OutboxEntry.objects.all()
    assert waiting.tenant_id == world.a.pk and waiting.attempts == 1
    assert "EndpointConnectionError" in waiting.last_error
    assert waiting.available_at > waiting.created_at  # backing off, not blocking
    state = SyncState.objects.get(tenant=world.a, object_id=str(pa.pk))
    assert state.status == "failing" and state.attempts == 1

    monkeypatch.setattr(dynamo, "put_versioned", real)
    OutboxEntry.objects.update(available_at=waiting.created_at)  # the backoff has passed
    relay.drain()
    assert item(f"TENANT#{world.a.pk}", f"PRODUCER#{pa.pk}")["version"] == 1
    state.refresh_from_db()
    assert state.status == "in_sync" and state.last_error == ""


def test_offboarding_tombstones_every_item_of_the_tenant_api_keys_included(
    settings, tmp_path, django_capture_on_commit_callbacks
):
    from tenants import services as tenant_services
    from tests.helpers import onboard

    settings.OFFBOARD_EXPORT_DIR = str(tmp_path)
    tenant = onboard("sync-leaving")
    with tenant_context(tenant):
        producer, _ = services.producer_create(actor=None, name="p", kind="https")
        consumer, _ = services.consumer_create(actor=None, name="c", kind="sqs", queue_arn=QUEUE)
        key = producer.api_keys.get()
    relay.drain()
    assert item(f"APIKEY#{key.key_hash}", "APIKEY")["producer_id"] == str(producer.pk)
    with tenant_context(tenant):
        services.producer_update(actor=None, producer=producer, enabled=False)  # still queued

    from django.db import connection

    with connection.cursor() as cursor:
        # The test's one transaction holds the deferred foreign key checks of the rows made
        # above; PostgreSQL refuses to drop tables with pending ones. Check them now.
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
    with django_capture_on_commit_callbacks(execute=True):
        tenant_services.tenant_offboard(tenant=tenant)

    for pk, sk in [
        (f"TENANT#{tenant.pk}", "TENANT"),
        (f"TENANT#{tenant.pk}", f"PRODUCER#{producer.pk}"),
        (f"TENANT#{tenant.pk}", f"CONSUMER#{consumer.pk}"),
        (f"APIKEY#{key.key_hash}", "APIKEY"),
    ]:
        assert item(pk, sk)["deleted"] is True, sk
    # The change still queued for the gone tenant is dropped, not written back.
    assert not OutboxEntry.objects.filter(tenant=tenant).exists()
    relay.drain()
    assert item(f"TENANT#{tenant.pk}", f"PRODUCER#{producer.pk}")["deleted"] is True
