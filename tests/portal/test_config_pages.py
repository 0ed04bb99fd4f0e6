"""Tenant configuration pages: the same services as the API, with form errors and roles."""

import pytest
from django.test import Client
from django_tenants.utils import tenant_context

from broker import services
from broker.models import Consumer, Producer, Subscription
from broker.sync.models import OutboxEntry
from tests.helpers import PUBLIC_URL, host_of

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _dns(fake_dns):
    return fake_dns


def page(user, tenant):
    client = Client(HTTP_HOST=host_of(tenant))
    client.force_login(user)
    return client


def test_a_developer_adds_a_producer_and_sees_its_key_once(world):
    client = page(world.developer_a, world.a)
    response = client.post(
        "/config/",
        {
            "form": "producer",
            "producer-name": "shop",
            "producer-kind": "https",
            "producer-allowed_event_types": "order.*, invoice.paid",
        },
        follow=True,
    )
    body = response.content.decode()
    assert "Producer shop created." in body and 'data-testid="one-time-secret"' in body
    with tenant_context(world.a):
        producer = Producer.objects.get(name="shop")
        assert producer.allowed_event_types == ["order.*", "invoice.paid"]
        key_prefix = producer.api_keys.get().prefix
    assert key_prefix in body
    again = client.get("/config/").content.decode()
    assert 'data-testid="one-time-secret"' not in again  # shown once


def test_an_unsafe_consumer_url_is_a_form_error_and_nothing_is_stored(world):
    response = page(world.admin_a, world.a).post(
        "/config/",
        {
            "form": "consumer",
            "consumer-name": "c",
            "consumer-kind": "https",
            "consumer-url": "https://169.254.169.254/",
            "consumer-auth_type": "none",
        },
    )
    assert response.status_code == 400
    assert "not a public address" in response.content.decode()
    with tenant_context(world.a):
        assert not Consumer.objects.exists()
    assert not OutboxEntry.objects.exists()


def test_a_bad_filter_is_a_form_error(world):
    with tenant_context(world.a):
        consumer, _ = services.consumer_create(
            actor=world.admin_a, name="c", kind="https", url=PUBLIC_URL
        )
    response = page(world.admin_a, world.a).post(
        "/config/",
        {
            "form": "subscription",
            "subscription-consumer": str(consumer.pk),
            "subscription-event_type": "order.*",
            "subscription-filter": "{not json",
        },
    )
    assert response.status_code == 400 and "Not valid JSON" in response.content.decode()
    with tenant_context(world.a):
        assert not Subscription.objects.exists()


def test_actions_disable_rotate_and_delete(world):
    with tenant_context(world.a):
        consumer, _ = services.consumer_create(
            actor=world.admin_a, name="c", kind="https", url=PUBLIC_URL
        )
    client = page(world.admin_a, world.a)
    client.post(f"/config/consumer/{consumer.pk}/disable/")
    rotated = client.post(f"/config/consumer/{consumer.pk}/rotate-signing-secret/", follow=True)
    assert "whsec_" in rotated.content.decode()
    with tenant_context(world.a):
        consumer.refresh_from_db()
        assert not consumer.enabled and consumer.version == 3
    client.post(f"/config/consumer/{consumer.pk}/delete/")
    with tenant_context(world.a):
        assert not Consumer.objects.exists()


def test_viewers_see_but_cannot_change_and_other_tenants_ids_are_404(world):
    with tenant_context(world.b):
        other, _ = services.producer_create(actor=world.admin_b, name="b", kind="https")
    viewer = page(world.viewer_a, world.a)
    assert viewer.get("/config/").status_code == 200
    assert "Add producer" not in viewer.get("/config/").content.decode()
    assert viewer.post("/config/", {"form": "producer"}).status_code == 404
    assert viewer.post(f"/config/producer/{other.pk}/disable/").status_code == 404
    admin = page(world.admin_a, world.a)
    assert admin.post(f"/config/producer/{other.pk}/disable/").status_code == 404
    with tenant_context(world.b):
        other.refresh_from_db()
        assert other.enabled and other.version == 1


def test_editing_a_consumer_keeps_the_stored_secret_unless_a_new_one_is_given(world):
    with tenant_context(world.a):
        consumer, _ = services.consumer_create(
            actor=world.admin_a,
            name="c",
            kind="https",
            url=PUBLIC_URL,
            auth_type="bearer",
            auth_secret="first-token",
        )
        stored = consumer.auth_secret_encrypted
    client = page(world.developer_a, world.a)
    form = client.get(f"/config/consumer/{consumer.pk}/edit/").content.decode()
    assert PUBLIC_URL in form and "first-token" not in form and stored not in form

    fields = {
        "url": "https://hooks.example.com/v2",
        "queue_arn": "",
        "auth_type": "bearer",
        "auth_username": "",
        "auth_secret": "",
        "timeout_ms": "5000",
        "delivery_concurrency": "",
    }
    assert client.post(f"/config/consumer/{consumer.pk}/edit/", fields).status_code == 302
    with tenant_context(world.a):
        consumer.refresh_from_db()
    assert consumer.url.endswith("/v2") and consumer.timeout_ms == 5000
    assert consumer.auth_secret_encrypted == stored and consumer.version == 2

    refused = client.post(
        f"/config/consumer/{consumer.pk}/edit/", {**fields, "url": "https://127.0.0.1/"}
    )
    assert refused.status_code == 400 and "not a public address" in refused.content.decode()
    with tenant_context(world.a):
        consumer.refresh_from_db()
    assert consumer.url.endswith("/v2") and consumer.version == 2


def test_editing_a_subscription_filter(world):
    with tenant_context(world.a):
        consumer, _ = services.consumer_create(
            actor=world.admin_a, name="c", kind="https", url=PUBLIC_URL
        )
        sub = services.subscription_create(actor=world.admin_a, consumer=consumer, event_type="a.b")
    client = page(world.admin_a, world.a)
    ok = client.post(
        f"/config/subscription/{sub.pk}/edit/",
        {"event_type": "a.*", "filter": '{"data": {"n": [{"numeric": [">", 1]}]}}'},
    )
    assert ok.status_code == 302
    bad = client.post(
        f"/config/subscription/{sub.pk}/edit/", {"event_type": "a.*", "filter": '{"data": 1}'}
    )
    assert bad.status_code == 400
    with tenant_context(world.a):
        sub.refresh_from_db()
    assert sub.event_type == "a.*" and sub.filter == {"data": {"n": [{"numeric": [">", 1]}]}}
    assert (
        page(world.viewer_a, world.a).get(f"/config/subscription/{sub.pk}/edit/").status_code == 404
    )


def test_deleting_a_hold_subscription_is_confirmed_with_its_held_events_discarded(world):
    """Deleting a subscription discards its held events (docs/data-plane.md, "Holding a key"):
    the confirmation of a hold-subscription says so, that of an unordered one does not."""
    with tenant_context(world.a):
        consumer, _ = services.consumer_create(
            actor=world.admin_a, name="held-sink", kind="https", url=PUBLIC_URL
        )
        services.subscription_create(
            actor=world.admin_a,
            consumer=consumer,
            event_type="order.paid",
            ordered=True,
            on_head_failure="hold",
        )
        services.subscription_create(actor=world.admin_a, consumer=consumer, event_type="x.y")
    body = page(world.admin_a, world.a).get("/config/").content.decode()
    assert (
        'data-confirm="Delete the subscription of held-sink to order.paid? Its held events, if '
        'any, are discarded."' in body
    )
    assert 'data-confirm="Delete the subscription of held-sink to x.y?"' in body
    assert "Delete consumer held-sink and its subscriptions? Their held events" in body
