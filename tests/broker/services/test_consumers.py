import pytest

from broker import secrets, services
from broker.models import AuditEvent, Consumer, Subscription
from broker.sync.models import OutboxEntry
from core.errors import ApplicationError
from tests.helpers import PUBLIC_URL
from tests.helpers.broker import audit_rows, outbox_rows

pytestmark = pytest.mark.django_db

QUEUE = "arn:aws:sqs:eu-west-1:123456789012:sink"


def test_an_https_consumer_gets_a_signing_secret_stored_encrypted(world, in_a):
    consumer, signing = services.consumer_create(
        actor=world.admin_a, name="shop", kind="https", url=PUBLIC_URL
    )

    assert signing.startswith("whsec_")
    assert signing not in consumer.signing_secret_encrypted
    assert (
        secrets.decrypt(tenant_id=str(world.a.pk), token=consumer.signing_secret_encrypted)
        == signing
    )
    assert (
        consumer.retry_policy["max_attempts"] == world.a.effective_quotas()["max_delivery_attempts"]
    )


def test_credentials_are_encrypted_and_never_in_the_audit_trail(world, in_a):
    consumer, _ = services.consumer_create(
        actor=world.admin_a,
        name="shop",
        kind="https",
        url=PUBLIC_URL,
        auth_type="header",
        auth_username="X-Api-Token",
        auth_secret="s3cr3t-header-value",
    )

    assert "s3cr3t-header-value" not in consumer.auth_secret_encrypted
    assert (
        secrets.decrypt(tenant_id=str(world.a.pk), token=consumer.auth_secret_encrypted)
        == "s3cr3t-header-value"
    )
    services.consumer_update(actor=world.admin_a, consumer=consumer, auth_secret="rotated-value")
    for event in AuditEvent.objects.all():
        assert "s3cr3t" not in str(event.diff) and "rotated-value" not in str(event.diff)
        assert consumer.auth_secret_encrypted not in str(event.diff)


@pytest.mark.parametrize(
    "url",
    [
        "https://intranet.example.com/hook",  # resolves to 10.0.0.5
        "https://mixed.example.com/hook",  # one public, one private address
        "https://127.0.0.1/hook",
        "http://hooks.example.com/hook",  # plain http
        "https://unknown-host.example.org/",  # does not resolve
    ],
)
def test_unsafe_consumer_urls_are_refused_and_nothing_is_written(world, in_a, url):
    with pytest.raises(ApplicationError) as exc:
        services.consumer_create(actor=world.admin_a, name="shop", kind="https", url=url)
    assert list(exc.value.fields) == ["url"]
    assert not Consumer.objects.exists()
    assert not AuditEvent.objects.exists() and not OutboxEntry.objects.exists()


def test_http_is_allowed_for_listed_development_hosts(world, in_a, settings):
    settings.CONSUMER_HTTP_ALLOWED_HOSTS = frozenset({"hooks.example.com"})
    consumer, _ = services.consumer_create(
        actor=world.admin_a, name="dev", kind="https", url="http://hooks.example.com/hook"
    )
    assert consumer.url.startswith("http://")


def test_auth_schemes_need_their_parts(world, in_a):
    cases = [
        ({"auth_type": "header", "auth_secret": "v"}, "auth_username"),
        (
            {"auth_type": "header", "auth_username": "Content-Type", "auth_secret": "v"},
            "auth_username",
        ),
        ({"auth_type": "basic", "auth_username": "u"}, "auth_secret"),
        ({"auth_type": "bearer"}, "auth_secret"),
        ({"auth_type": "none", "auth_secret": "v"}, "auth_type"),
    ]
    for extra, field in cases:
        with pytest.raises(ApplicationError) as exc:
            services.consumer_create(
                actor=world.admin_a, name="c", kind="https", url=PUBLIC_URL, **extra
            )
        assert field in exc.value.fields, (extra, exc.value.fields)


def test_retry_policies_are_bounded_by_the_tier(world, in_a):
    cap = world.a.effective_quotas()["max_delivery_attempts"]
    bad = [
        {"strategy": "exponential", "max_attempts": cap + 1},
        {"strategy": "exponential", "base_seconds": 0},
        {"strategy": "exponential", "base_seconds": 60, "cap_seconds": 10},
        {"strategy": "schedule", "schedule": []},
        {"strategy": "schedule", "schedule": [1] * cap},  # cap + 1 attempts
        {"strategy": "linear"},
        {"strategy": "exponential", "surprise": 1},
    ]
    for policy in bad:
        with pytest.raises(ApplicationError) as exc:
            services.consumer_create(
                actor=world.admin_a, name="c", kind="sqs", queue_arn=QUEUE, retry_policy=policy
            )
        assert "retry_policy" in exc.value.fields, policy

    consumer, _ = services.consumer_create(
        actor=world.admin_a,
        name="c",
        kind="sqs",
        queue_arn=QUEUE,
        retry_policy={"strategy": "schedule", "schedule": [5, 30, 300]},
    )
    assert consumer.retry_policy == {
        "strategy": "schedule",
        "schedule": [5, 30, 300],
        "max_attempts": 4,
    }


def test_concurrency_above_the_tier_is_refused(world, in_a):
    limit = world.a.effective_quotas()["delivery_concurrency"]
    with pytest.raises(ApplicationError) as exc:
        services.consumer_create(
            actor=world.admin_a,
            name="c",
            kind="sqs",
            queue_arn=QUEUE,
            delivery_concurrency=limit + 1,
        )
    assert "delivery_concurrency" in exc.value.fields


def test_rotating_the_signing_secret_keeps_the_previous_one_for_the_grace_period(world, in_a):
    consumer, first = services.consumer_create(
        actor=world.admin_a, name="shop", kind="https", url=PUBLIC_URL
    )
    old_blob = consumer.signing_secret_encrypted

    consumer, second = services.consumer_rotate_signing_secret(
        actor=world.admin_a, consumer=consumer, grace_seconds=600
    )

    assert second != first and consumer.version == 2
    assert consumer.previous_signing_secret_encrypted == old_blob
    assert consumer.previous_signing_secret_expires_at is not None
    assert outbox_rows(world.a)[-1].version == 2


def test_deleting_a_consumer_deletes_its_subscriptions_with_tombstones(world, in_a):
    consumer, _ = services.consumer_create(
        actor=world.admin_a, name="c", kind="sqs", queue_arn=QUEUE
    )
    sub = services.subscription_create(actor=world.admin_a, consumer=consumer, event_type="a.b")
    OutboxEntry.objects.all().delete()

    services.consumer_delete(actor=world.admin_a, consumer=consumer)

    assert not Subscription.objects.exists()
    rows = {r.object_type: r for r in outbox_rows(world.a)}
    assert rows["subscription"].deleted and rows["subscription"].stale_keys == [
        [f"TENANT#{world.a.pk}", f"ROUTE#a.b#{sub.pk}"]
    ]
    assert rows["consumer"].deleted and rows["consumer"].version == 2
    assert {a.action for a in audit_rows()} >= {"subscription.delete", "consumer.delete"}
