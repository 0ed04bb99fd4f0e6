"""Every write: exactly one audit event, and one outbox row per DynamoDB object it changes,
carrying the object's new version — all in the write's transaction."""

import pytest

from broker import services
from broker.models import AuditEvent, Consumer, EventType, Producer, Subscription
from broker.sync.models import OutboxEntry
from tests.helpers import PUBLIC_URL

pytestmark = pytest.mark.django_db

QUEUE = "arn:aws:sqs:eu-west-1:123456789012:sink"


@pytest.fixture
def objects(world, in_a):
    actor = world.admin_a
    producer, _ = services.producer_create(actor=actor, name="p", kind="https")
    consumer, _ = services.consumer_create(actor=actor, name="c", kind="https", url=PUBLIC_URL)
    sub = services.subscription_create(actor=actor, consumer=consumer, event_type="a.b")
    event_type = services.event_type_create(actor=actor, name="a.b")
    AuditEvent.objects.all().delete()
    OutboxEntry.objects.all().delete()
    return {"p": producer, "c": consumer, "s": sub, "e": event_type, "actor": actor}


WRITES = {
    "producer_create": lambda o: services.producer_create(
        actor=o["actor"], name="p2", kind="sqs", source_queue_arn=QUEUE
    ),
    "producer_update": lambda o: services.producer_update(
        actor=o["actor"], producer=o["p"], allowed_event_types=["x.*"]
    ),
    "producer_disable": lambda o: services.producer_update(
        actor=o["actor"], producer=o["p"], enabled=False
    ),
    "producer_rotate_key": lambda o: services.producer_rotate_key(
        actor=o["actor"], producer=o["p"]
    ),
    "producer_revoke_key": lambda o: services.producer_revoke_key(
        actor=o["actor"], producer=o["p"], key_id=o["p"].api_keys.get().pk
    ),
    "producer_delete": lambda o: services.producer_delete(actor=o["actor"], producer=o["p"]),
    "consumer_create": lambda o: services.consumer_create(
        actor=o["actor"], name="c2", kind="sqs", queue_arn=QUEUE
    ),
    "consumer_update": lambda o: services.consumer_update(
        actor=o["actor"], consumer=o["c"], timeout_ms=2000
    ),
    "consumer_rotate_signing_secret": lambda o: services.consumer_rotate_signing_secret(
        actor=o["actor"], consumer=o["c"]
    ),
    "subscription_create": lambda o: services.subscription_create(
        actor=o["actor"], consumer=o["c"], event_type="x.y"
    ),
    "subscription_update": lambda o: services.subscription_update(
        actor=o["actor"], subscription=o["s"], filter={"a": ["b"]}
    ),
    "subscription_delete": lambda o: services.subscription_delete(
        actor=o["actor"], subscription=o["s"]
    ),
    "event_type_create": lambda o: services.event_type_create(actor=o["actor"], name="x.y"),
    "event_type_update": lambda o: services.event_type_update(
        actor=o["actor"], event_type=o["e"], description="d"
    ),
    "event_type_delete": lambda o: services.event_type_delete(actor=o["actor"], event_type=o["e"]),
}
# Objects whose items a write changes besides its own: the key a rotation replaces, the keys
# of a deleted producer.
# (A consumer's delete also deletes its subscriptions, each with its own audit event and
# tombstone: tests/broker/services/test_consumers.py.)
EXTRA_ROWS = {"producer_rotate_key": 1, "producer_delete": 1}


@pytest.mark.parametrize("write", sorted(WRITES))
def test_each_write_leaves_one_audit_event_and_outbox_rows_with_new_versions(objects, write):
    WRITES[write](objects)

    assert AuditEvent.objects.count() == 1
    rows = list(OutboxEntry.objects.all())
    assert len(rows) == 1 + EXTRA_ROWS.get(write, 0)
    models = {
        "producer": Producer,
        "consumer": Consumer,
        "subscription": Subscription,
        "event_type": EventType,
    }
    for row in rows:
        if row.object_type in models and not row.deleted:
            current = models[row.object_type].objects.get(pk=row.object_id)
            assert row.version == current.version
        if row.deleted:
            assert row.stale_keys  # a delete names what to tombstone


@pytest.mark.parametrize(
    "write",
    [
        lambda o: services.producer_create(actor=o["actor"], name="p", kind="https"),  # dup
        lambda o: services.producer_update(actor=o["actor"], producer=o["p"], kind="sqs"),
        lambda o: services.consumer_update(
            actor=o["actor"], consumer=o["c"], url="https://10.1.2.3/"
        ),
        lambda o: services.subscription_update(
            actor=o["actor"], subscription=o["s"], event_type="Bad Type"
        ),
        lambda o: services.event_type_update(
            actor=o["actor"], event_type=o["e"], schema={"type": 5}
        ),
    ],
)
def test_a_refused_write_leaves_no_audit_event_no_outbox_row_and_no_change(objects, write):
    from core.errors import ApplicationError

    before = {
        "p": Producer.objects.get(pk=objects["p"].pk).version,
        "c": Consumer.objects.get(pk=objects["c"].pk).version,
        "s": Subscription.objects.get(pk=objects["s"].pk).version,
        "e": EventType.objects.get(pk=objects["e"].pk).version,
    }
    with pytest.raises(ApplicationError):
        write(objects)
    assert not AuditEvent.objects.exists() and not OutboxEntry.objects.exists()
    assert Producer.objects.get(pk=objects["p"].pk).version == before["p"]
    assert Consumer.objects.get(pk=objects["c"].pk).url == PUBLIC_URL
    assert Subscription.objects.get(pk=objects["s"].pk).event_type == "a.b"
    assert EventType.objects.get(pk=objects["e"].pk).schema is None
