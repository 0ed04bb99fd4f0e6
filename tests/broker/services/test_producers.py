import hashlib
from datetime import timedelta

import pytest
from django.utils import timezone

from broker import services
from broker.models import ApiKey, AuditEvent, Producer
from broker.sync.models import OutboxEntry
from core.errors import ApplicationError
from tests.helpers.broker import audit_rows, outbox_rows

pytestmark = pytest.mark.django_db

ARN = "arn:aws:sqs:eu-west-1:123456789012:orders-in"


def test_an_https_producer_gets_an_api_key_stored_only_as_its_hash(world, in_a):
    producer, key = services.producer_create(actor=world.admin_a, name="shop", kind="https")

    assert key.startswith("ebk_") and len(key) >= 40
    stored = ApiKey.objects.get(producer=producer)
    assert stored.key_hash == hashlib.sha256(key.encode()).hexdigest()
    assert stored.prefix == key[:12]
    assert key not in str(ApiKey.objects.values_list().get())


def test_creating_a_producer_writes_one_audit_event_and_outbox_rows_with_the_version(world, in_a):
    producer, _ = services.producer_create(
        actor=world.developer_a, name="shop", kind="https", allowed_event_types=["order.*"]
    )

    (audit,) = audit_rows(object_id=str(producer.pk))
    assert audit.action == "producer.create" and audit.actor_email == "dev@a.test"
    assert audit.diff["allowed_event_types"] == [None, ["order.*"]]
    rows = outbox_rows(world.a)
    assert [(r.object_type, r.version) for r in rows] == [("producer", 1), ("apikey", 1)]
    assert rows[0].object_id == str(producer.pk)


def test_an_sqs_producer_needs_a_valid_queue_arn_and_has_no_key(world, in_a):
    with pytest.raises(ApplicationError) as exc:
        services.producer_create(actor=world.admin_a, name="q", kind="sqs")
    assert "source_queue_arn" in exc.value.fields
    with pytest.raises(ApplicationError) as exc:
        services.producer_create(
            actor=world.admin_a, name="q", kind="sqs", source_queue_arn="arn:aws:sqs:nowhere"
        )
    assert "source_queue_arn" in exc.value.fields

    producer, key = services.producer_create(
        actor=world.admin_a, name="q", kind="sqs", source_queue_arn=ARN
    )
    assert key is None and not producer.api_keys.exists()


def test_a_refused_producer_leaves_no_row_audit_or_outbox(world, in_a):
    with pytest.raises(ApplicationError) as exc:
        services.producer_create(
            actor=world.admin_a,
            name="shop",
            kind="https",
            allowed_event_types=["Order Created!"],
            ingest_rate_per_second=10_000,
        )
    assert set(exc.value.fields) == {"allowed_event_types", "ingest_rate_per_second"}
    assert "ingest_rate_per_second" in exc.value.fields["ingest_rate_per_second"][0]
    assert not Producer.objects.exists()
    assert not AuditEvent.objects.exists()
    assert not OutboxEntry.objects.exists()


def test_the_tiers_producer_limit_is_enforced_with_a_clear_error(world, in_a):
    limit = world.a.effective_quotas()["max_producers"]
    for i in range(limit):
        services.producer_create(actor=world.admin_a, name=f"p{i}", kind="https")

    with pytest.raises(ApplicationError) as exc:
        services.producer_create(actor=world.admin_a, name="one-more", kind="https")
    assert exc.value.code == "limit_exceeded"
    assert "max_producers" in exc.value.message
    assert Producer.objects.count() == limit


def test_names_are_unique_within_a_tenant(world, in_a):
    services.producer_create(actor=world.admin_a, name="shop", kind="https")
    with pytest.raises(ApplicationError) as exc:
        services.producer_create(actor=world.admin_a, name="shop", kind="https")
    assert "name" in exc.value.fields


def test_updating_bumps_the_version_and_records_what_changed(world, in_a):
    producer, _ = services.producer_create(actor=world.admin_a, name="shop", kind="https")
    OutboxEntry.objects.all().delete()

    producer = services.producer_update(actor=world.admin_a, producer=producer, enabled=False)

    assert producer.version == 2
    audit = audit_rows(action="producer.update")[0]
    assert audit.diff == {"enabled": [True, False]}
    (row,) = outbox_rows(world.a)
    assert (row.object_type, row.version) == ("producer", 2)


def test_an_update_that_changes_nothing_writes_nothing(world, in_a):
    producer, _ = services.producer_create(actor=world.admin_a, name="shop", kind="https")
    OutboxEntry.objects.all().delete()
    services.producer_update(actor=world.admin_a, producer=producer, name="shop")
    assert producer.version == 1 and not outbox_rows(world.a)


def test_the_kind_of_a_producer_cannot_change(world, in_a):
    producer, _ = services.producer_create(actor=world.admin_a, name="shop", kind="https")
    with pytest.raises(ApplicationError) as exc:
        services.producer_update(actor=world.admin_a, producer=producer, kind="sqs")
    assert "kind" in exc.value.fields


def test_rotating_a_key_keeps_the_old_one_valid_for_the_grace_period(world, in_a):
    producer, first = services.producer_create(actor=world.admin_a, name="shop", kind="https")
    OutboxEntry.objects.all().delete()

    key, second = services.producer_rotate_key(
        actor=world.admin_a, producer=producer, grace_seconds=3600
    )

    assert second != first
    old = ApiKey.objects.get(key_hash=hashlib.sha256(first.encode()).hexdigest())
    assert old.is_valid() and old.status == "expiring"
    assert old.expires_at - timezone.now() > timedelta(minutes=59)
    assert not old.is_valid(now=timezone.now() + timedelta(hours=2))
    assert key.is_valid() and key.status == "active"
    assert sorted((r.object_type, r.version) for r in outbox_rows(world.a)) == [
        ("apikey", 1),
        ("apikey", 2),
    ]
    assert [a.action for a in audit_rows(action__startswith="producer.rotate")] == [
        "producer.rotate_key"
    ]


def test_revoking_a_key_ends_it_at_once(world, in_a):
    producer, _ = services.producer_create(actor=world.admin_a, name="shop", kind="https")
    key = producer.api_keys.get()

    revoked = services.producer_revoke_key(actor=world.admin_a, producer=producer, key_id=key.pk)

    assert revoked.status == "revoked" and not revoked.is_valid()
    assert revoked.version == 2
    assert outbox_rows(world.a, object_type="apikey")[-1].version == 2


def test_deleting_a_producer_queues_tombstones_for_it_and_its_keys(world, in_a):
    producer, _ = services.producer_create(actor=world.admin_a, name="shop", kind="https")
    key = producer.api_keys.get()
    OutboxEntry.objects.all().delete()

    services.producer_delete(actor=world.admin_a, producer=producer)

    assert not Producer.objects.exists() and not ApiKey.objects.exists()
    rows = {r.object_type: r for r in outbox_rows(world.a)}
    assert rows["producer"].deleted and rows["producer"].version == 2
    assert rows["producer"].stale_keys == [[f"TENANT#{world.a.pk}", f"PRODUCER#{producer.pk}"]]
    assert rows["apikey"].stale_keys == [[f"APIKEY#{key.key_hash}", "APIKEY"]]


def test_a_producer_with_restricted_subscriptions_cannot_be_deleted(world, in_a):
    producer, _ = services.producer_create(actor=world.admin_a, name="shop", kind="https")
    consumer, _ = services.consumer_create(
        actor=world.admin_a,
        name="c",
        kind="sqs",
        queue_arn="arn:aws:sqs:eu-west-1:123456789012:sink",
    )
    services.subscription_create(
        actor=world.admin_a, consumer=consumer, event_type="order.*", producer=producer
    )
    with pytest.raises(ApplicationError) as exc:
        services.producer_delete(actor=world.admin_a, producer=producer)
    assert exc.value.code == "in_use"
    assert Producer.objects.filter(pk=producer.pk).exists()
