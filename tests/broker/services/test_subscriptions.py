import pytest

from broker import services
from broker.models import Subscription
from broker.sync.models import OutboxEntry
from core.errors import ApplicationError
from tests.helpers.broker import audit_rows, outbox_rows

pytestmark = pytest.mark.django_db

QUEUE = "arn:aws:sqs:eu-west-1:123456789012:sink"


@pytest.fixture
def consumer(world, in_a):
    consumer, _ = services.consumer_create(
        actor=world.admin_a, name="sink", kind="sqs", queue_arn=QUEUE
    )
    return consumer


def test_a_subscription_needs_only_a_consumer_and_an_event_type(world, consumer):
    sub = services.subscription_create(
        actor=world.developer_a, consumer=consumer, event_type="order.*"
    )
    assert sub.filter == {} and sub.enabled and sub.version == 1
    (audit,) = audit_rows(object_type="subscription")
    assert audit.action == "subscription.create"


@pytest.mark.parametrize(
    "event_type, filter_, field",
    [
        ("Order Created", None, "event_type"),
        ("order.*.created", None, "event_type"),
        ("", None, "event_type"),
        ("order.*", {"data": {"amount": "100"}}, "filter"),
        ("order.*", {"data": {"amount": [{"numeric": [">"]}]}}, "filter"),
        ("order.*", {"data": {"kind": [{"wildcard-ish": "x"}]}}, "filter"),
        ("order.*", ["not", "an", "object"], "filter"),
    ],
)
def test_bad_patterns_are_refused_with_field_errors(world, consumer, event_type, filter_, field):
    OutboxEntry.objects.all().delete()
    with pytest.raises(ApplicationError) as exc:
        services.subscription_create(
            actor=world.admin_a, consumer=consumer, event_type=event_type, filter=filter_
        )
    assert field in exc.value.fields
    assert not Subscription.objects.exists() and not outbox_rows(world.a)


def test_the_tiers_subscription_limit_is_enforced(world, consumer, in_a):
    from tenants.models import Tenant

    tenant = Tenant.objects.get(pk=world.a.pk)
    tenant.quota_overrides = {"max_subscriptions": 2}
    tenant.save(update_fields=["quota_overrides"])
    try:
        with pytest.raises(ApplicationError) as exc:
            for i in range(3):
                services.subscription_create(
                    actor=world.admin_a, consumer=consumer, event_type=f"t{i}"
                )
        assert exc.value.code == "limit_exceeded" and "max_subscriptions" in exc.value.message
        assert Subscription.objects.count() == 2
    finally:
        tenant.quota_overrides = {}
        tenant.save(update_fields=["quota_overrides"])


def test_changing_the_event_type_queues_a_tombstone_for_the_old_route(world, consumer):
    sub = services.subscription_create(actor=world.admin_a, consumer=consumer, event_type="a.b")
    OutboxEntry.objects.all().delete()

    sub = services.subscription_update(actor=world.admin_a, subscription=sub, event_type="a.c")

    (row,) = outbox_rows(world.a)
    assert row.version == 2 and not row.deleted
    assert row.stale_keys == [[f"TENANT#{world.a.pk}", f"ROUTE#a.b#{sub.pk}"]]


def test_disabling_a_subscription_is_a_new_version(world, consumer):
    sub = services.subscription_create(actor=world.admin_a, consumer=consumer, event_type="a.b")
    sub = services.subscription_update(actor=world.admin_a, subscription=sub, enabled=False)
    assert sub.version == 2 and outbox_rows(world.a)[-1].version == 2
