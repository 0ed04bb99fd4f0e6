"""Size limits at save time (nothing that could never reach DynamoDB is stored), URLs stored
normalised, and partial updates that validate what changes plus the object's invariants."""

import pytest

from broker import services
from broker.models import Consumer, EventType, Subscription
from broker.services.event_types import MAX_SCHEMA_BYTES, MAX_SCHEMA_DEPTH
from broker.services.producers import MAX_ALLOWED_EVENT_TYPES
from broker.services.subscriptions import MAX_FILTER_BYTES
from core.errors import ApplicationError
from tests.helpers import PUBLIC_URL

pytestmark = pytest.mark.django_db

QUEUE = "arn:aws:sqs:eu-west-1:123456789012:sink"


def _fields(exc_info) -> dict:
    return exc_info.value.fields


# --- sizes ---------------------------------------------------------------------------------


def test_an_event_type_schema_above_the_size_limit_is_refused_with_a_clear_message(world, in_a):
    schema = {"type": "object", "description": "x" * (MAX_SCHEMA_BYTES + 1)}
    with pytest.raises(ApplicationError) as caught:
        services.event_type_create(actor=world.admin_a, name="order.big", schema=schema)
    assert "bytes" in _fields(caught)["schema"][0]
    assert not EventType.objects.filter(name="order.big").exists()


def test_an_event_type_schema_nested_too_deep_is_refused(world, in_a):
    schema = {"type": "object"}
    for _ in range(MAX_SCHEMA_DEPTH):
        schema = {"type": "object", "properties": {"x": schema}}
    with pytest.raises(ApplicationError) as caught:
        services.event_type_create(actor=world.admin_a, name="order.deep", schema=schema)
    assert "nested" in _fields(caught)["schema"][0]


def test_an_ordinary_schema_is_accepted(world, in_a):
    schema = {"type": "object", "properties": {"id": {"type": "string"}}}
    assert services.event_type_create(actor=world.admin_a, name="order.ok", schema=schema).schema


def test_a_subscription_filter_above_the_size_limit_is_refused_on_create_and_update(world, in_a):
    consumer, _ = services.consumer_create(
        actor=world.admin_a, name="q", kind="sqs", queue_arn=QUEUE
    )
    big = {"data": {"note": ["x" * MAX_FILTER_BYTES]}}
    with pytest.raises(ApplicationError) as caught:
        services.subscription_create(
            actor=world.admin_a, consumer=consumer, event_type="order.*", filter=big
        )
    assert "bytes" in _fields(caught)["filter"][0]
    sub = services.subscription_create(actor=world.admin_a, consumer=consumer, event_type="order.*")
    with pytest.raises(ApplicationError):
        services.subscription_update(actor=world.admin_a, subscription=sub, filter=big)
    assert Subscription.objects.get(pk=sub.pk).filter == {}


def test_a_producer_allows_a_bounded_number_of_event_type_patterns(world, in_a):
    many = [f"type{i}.*" for i in range(MAX_ALLOWED_EVENT_TYPES + 1)]
    with pytest.raises(ApplicationError) as caught:
        services.producer_create(
            actor=world.admin_a, name="p", kind="https", allowed_event_types=many
        )
    assert "allowed_event_types" in _fields(caught)


def test_the_size_limits_sit_below_dynamodbs_item_size():
    assert MAX_SCHEMA_BYTES * 2 < 400 * 1024
    assert MAX_FILTER_BYTES * 2 < 400 * 1024


# --- consumer URLs -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "given,stored",
    [
        ("HTTPS://Hooks.Example.COM/events", "https://hooks.example.com/events"),
        ("https://hooks.example.com:443/events", "https://hooks.example.com/events"),
        ("https://hooks.example.com", "https://hooks.example.com/"),
        ("https://hooks.example.com./events#frag", "https://hooks.example.com/events"),
        ("https://hooks.example.com:8443/a?b=1", "https://hooks.example.com:8443/a?b=1"),
    ],
)
def test_consumer_urls_are_stored_normalised(world, in_a, given, stored):
    consumer, _ = services.consumer_create(actor=world.admin_a, name="n", kind="https", url=given)
    assert Consumer.objects.get(pk=consumer.pk).url == stored
    services.consumer_update(actor=world.admin_a, consumer=consumer, url=given.upper())
    assert Consumer.objects.get(pk=consumer.pk).url.lower() == stored.lower()


def test_a_url_differing_only_in_case_is_no_change(world, in_a):
    consumer, _ = services.consumer_create(
        actor=world.admin_a, name="n", kind="https", url=PUBLIC_URL
    )
    same = services.consumer_update(
        actor=world.admin_a, consumer=consumer, url=PUBLIC_URL.replace("hooks", "HOOKS")
    )
    assert same.version == consumer.version


# --- partial updates -----------------------------------------------------------------------


def test_a_consumer_with_a_schedule_retry_policy_can_be_disabled_and_edited(world, in_a):
    consumer, _ = services.consumer_create(
        actor=world.admin_a,
        name="sched",
        kind="sqs",
        queue_arn=QUEUE,
        retry_policy={"strategy": "schedule", "schedule": [5, 60]},
    )
    disabled = services.consumer_update(actor=world.admin_a, consumer=consumer, enabled=False)
    assert disabled.enabled is False
    assert disabled.retry_policy["schedule"] == [5, 60]
    services.consumer_update(actor=world.admin_a, consumer=consumer, timeout_ms=2000)
    # the stored policy (with its computed max_attempts) can be sent back as it was read
    services.consumer_update(
        actor=world.admin_a, consumer=consumer, retry_policy=disabled.retry_policy
    )


def _lower_quota(tenant, **values):
    tenant.quota_overrides = {**(tenant.quota_overrides or {}), **values}
    tenant.save(update_fields=["quota_overrides"])


@pytest.fixture
def restore_quotas(world):
    saved = dict(world.a.quota_overrides or {})
    yield
    world.a.quota_overrides = saved
    world.a.save(update_fields=["quota_overrides"])


def test_a_consumer_above_a_lowered_limit_can_still_be_edited_but_not_raised(
    world, in_a, restore_quotas
):
    consumer, _ = services.consumer_create(
        actor=world.admin_a, name="c", kind="sqs", queue_arn=QUEUE, delivery_concurrency=4
    )
    _lower_quota(world.a, delivery_concurrency=2, max_delivery_attempts=2)

    edited = services.consumer_update(actor=world.admin_a, consumer=consumer, description="still")
    assert edited.description == "still" and edited.delivery_concurrency == 4
    disabled = services.consumer_update(actor=world.admin_a, consumer=consumer, enabled=False)
    assert disabled.enabled is False

    with pytest.raises(ApplicationError) as caught:
        services.consumer_update(actor=world.admin_a, consumer=consumer, delivery_concurrency=5)
    assert "delivery_concurrency" in _fields(caught)
    lowered = services.consumer_update(
        actor=world.admin_a, consumer=consumer, delivery_concurrency=3
    )
    assert lowered.delivery_concurrency == 3


def test_a_producer_above_a_lowered_rate_can_still_be_edited_but_not_raised(
    world, in_a, restore_quotas
):
    producer, _ = services.producer_create(
        actor=world.admin_a, name="p", kind="https", ingest_rate_per_second=50
    )
    _lower_quota(world.a, ingest_rate_per_second=10)

    assert services.producer_update(actor=world.admin_a, producer=producer, description="d")
    with pytest.raises(ApplicationError) as caught:
        services.producer_update(actor=world.admin_a, producer=producer, ingest_rate_per_second=60)
    assert "ingest_rate_per_second" in _fields(caught)


def test_creation_still_applies_the_plan_limits(world, in_a, restore_quotas):
    _lower_quota(world.a, delivery_concurrency=2)
    with pytest.raises(ApplicationError) as caught:
        services.consumer_create(
            actor=world.admin_a, name="c", kind="sqs", queue_arn=QUEUE, delivery_concurrency=3
        )
    assert "delivery_concurrency" in _fields(caught)


def test_an_update_still_checks_the_objects_invariants(world, in_a):
    consumer, _ = services.consumer_create(
        actor=world.admin_a, name="c", kind="https", url=PUBLIC_URL
    )
    with pytest.raises(ApplicationError) as caught:
        services.consumer_update(actor=world.admin_a, consumer=consumer, auth_type="bearer")
    assert "auth_secret" in _fields(caught)


# --- caps ----------------------------------------------------------------------------------


def test_rotating_in_a_loop_stops_at_the_api_key_cap_until_a_key_is_revoked(world, in_a):
    from broker.services.producers import MAX_API_KEYS_PER_PRODUCER

    producer, _ = services.producer_create(actor=world.admin_a, name="loop", kind="https")
    for _ in range(MAX_API_KEYS_PER_PRODUCER - 1):
        services.producer_rotate_key(actor=world.admin_a, producer=producer, grace_seconds=3600)
    with pytest.raises(ApplicationError) as caught:
        services.producer_rotate_key(actor=world.admin_a, producer=producer, grace_seconds=3600)
    assert caught.value.code == "limit_exceeded"
    oldest = producer.api_keys.order_by("created_at").first()
    services.producer_revoke_key(actor=world.admin_a, producer=producer, key_id=oldest.pk)
    services.producer_rotate_key(actor=world.admin_a, producer=producer, grace_seconds=3600)


def test_event_types_per_tenant_are_capped(world, in_a, monkeypatch):
    from broker.services import event_types

    monkeypatch.setattr(event_types, "MAX_EVENT_TYPES", 2)
    services.event_type_create(actor=world.admin_a, name="a.one")
    services.event_type_create(actor=world.admin_a, name="a.two")
    with pytest.raises(ApplicationError) as caught:
        services.event_type_create(actor=world.admin_a, name="a.three")
    assert caught.value.code == "limit_exceeded"
