"""Held keys on the pages: the consumer page lists the keys its subscriptions hold, with
retry and skip buttons (POST forms with CSRF, asking first) for developers and admins; the
operator's tenant page counts them per subscription. Held state is planted with the data
plane's own functions (broker.functions.shared.held)."""

import pytest
from django.test import Client
from django_tenants.utils import tenant_context

from broker import services
from broker.models import AuditEvent
from tests.helpers import host_of
from tests.helpers.held import dead_letters, hold_key

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("empty_dataplane")]
QUEUE = "arn:aws:sqs:eu-west-1:123456789012:warehouse"
OTHER = "arn:aws:sqs:eu-west-1:123456789012:elsewhere"


@pytest.fixture
def setup(world):
    """Consumer `warehouse` with a hold-subscription; consumer `elsewhere` with another."""
    with tenant_context(world.a):
        consumer, _ = services.consumer_create(
            actor=world.admin_a, name="warehouse", kind="sqs", queue_arn=QUEUE
        )
        other, _ = services.consumer_create(
            actor=world.admin_a, name="elsewhere", kind="sqs", queue_arn=OTHER
        )
        ordered = dict(ordered=True, ordering_key_path="data.order_id", on_head_failure="hold")
        sub = services.subscription_create(
            actor=world.admin_a, consumer=consumer, event_type="order.*", name="orders", **ordered
        )
        other_sub = services.subscription_create(
            actor=world.admin_a, consumer=other, event_type="order.*", name="audit", **ordered
        )
    return consumer, sub, other_sub


def page(user, tenant, **kwargs):
    client = Client(HTTP_HOST=host_of(tenant), **kwargs)
    client.force_login(user)
    return client


def held_section(body: str) -> str:
    start = body.index('data-testid="held-keys"')
    return body[start : body.index("</table>", start)]


def test_the_consumer_page_lists_its_held_keys_with_their_failing_event(world, setup):
    consumer, sub, other_sub = setup
    key = hold_key(world.a, sub, "order-7", n=3, error="HTTP 500 Internal Server Error")
    hold_key(world.a, other_sub, "order-9", n=1)
    body = page(world.viewer_a, world.a).get(f"/consumers/{consumer.pk}/").content.decode()
    held = held_section(body)
    assert "order-7" in held and "orders" in held and "HTTP 500 Internal Server Error" in held
    assert f'href="/deliveries/{key.sent[0].delivery.delivery_id}/"' in held
    assert "order-9" not in held  # another consumer's subscription
    assert "<form" not in held  # viewers release nothing


def test_a_consumer_without_held_keys_says_so(world, setup):
    consumer, _, _ = setup
    body = page(world.viewer_a, world.a).get(f"/consumers/{consumer.pk}/").content.decode()
    assert "No key is held." in held_section(body)


def test_a_developer_retries_a_key_after_confirming_and_the_head_goes_again(world, setup):
    consumer, sub, _ = setup
    key = hold_key(world.a, sub, "order-7", n=2)
    client = page(world.developer_a, world.a, enforce_csrf_checks=True)
    body = client.get(f"/consumers/{consumer.pk}/").content.decode()
    held = held_section(body)
    action = f"/consumers/{consumer.pk}/held-keys/{sub.pk}/retry/"
    form = held[held.index(f'action="{action}"') :]
    assert 'data-confirm="Retry the head of key order-7?' in held[: held.index(action) + 400]
    assert 'name="csrfmiddlewaretoken"' in form[: form.index("</form>")]
    assert client.post(action, {"key": "order-7"}).status_code == 403  # no CSRF token

    token = client.cookies["csrftoken"].value
    done = client.post(action, {"key": "order-7", "csrfmiddlewaretoken": token}, follow=True)
    assert "Key &#x27;order-7&#x27; of orders: its head is sent again" in done.content.decode()
    (again,) = key.released()
    assert again.delivery.delivery_id == key.sent[0].delivery.delivery_id
    with tenant_context(world.a):
        assert AuditEvent.objects.filter(
            action="subscription.held_key_retried", object_id=str(sub.pk)
        ).exists()


def test_an_admin_skips_a_head_which_is_dead_lettered(world, setup):
    consumer, sub, _ = setup
    key = hold_key(world.a, sub, "order-7", n=2)
    dead_letters()
    done = page(world.admin_a, world.a).post(
        f"/consumers/{consumer.pk}/held-keys/{sub.pk}/skip/", {"key": "order-7"}, follow=True
    )
    assert "its head is dead-lettered; 1 held event(s) follow" in done.content.decode()
    (letter,) = dead_letters()
    assert letter.delivery.delivery_id == key.sent[0].delivery.delivery_id


def test_a_key_no_longer_held_is_an_error_message_not_a_crash(world, setup):
    consumer, sub, _ = setup
    done = page(world.admin_a, world.a).post(
        f"/consumers/{consumer.pk}/held-keys/{sub.pk}/retry/", {"key": "order-1"}, follow=True
    )
    assert done.status_code == 200
    assert "is not held" in done.content.decode()


def test_viewers_and_other_consumers_subscriptions_release_nothing(world, setup):
    consumer, sub, other_sub = setup
    hold_key(world.a, sub, "order-7", n=1)
    hold_key(world.a, other_sub, "order-9", n=1)
    viewer = page(world.viewer_a, world.a)
    retry = f"/consumers/{consumer.pk}/held-keys/{sub.pk}/retry/"
    assert viewer.post(retry, {"key": "order-7"}).status_code == 404
    # A subscription of another consumer, through this consumer's address.
    admin = page(world.admin_a, world.a)
    wrong = f"/consumers/{consumer.pk}/held-keys/{other_sub.pk}/retry/"
    assert admin.post(wrong, {"key": "order-9"}).status_code == 404
    assert page(world.admin_b, world.b).post(retry, {"key": "order-7"}).status_code == 404
    with tenant_context(world.a):
        assert not AuditEvent.objects.filter(action__startswith="subscription.held_key").exists()


def test_the_operators_tenant_page_counts_held_keys_per_subscription(world, setup):
    _, sub, other_sub = setup
    hold_key(world.a, sub, "order-1", n=3)
    hold_key(world.a, sub, "order-2", n=1)
    hold_key(world.a, other_sub, "order-9", n=2)
    client = Client(HTTP_HOST="localhost")
    client.force_login(world.support)
    body = client.get(f"/console/tenants/{world.a.pk}/").content.decode()
    summary = body[body.index('data-testid="held-summary"') :]
    assert summary[summary.index(">") + 1 :].startswith("3 keys held, 6 events waiting")
    rows = held_section(body)
    assert rows.index("orders") < rows.index("audit")  # most events held first
    orders = rows[rows.index("orders") :]
    assert '<td data-label="Keys">2</td><td data-label="Events held">4</td>' in orders


def test_a_consumer_whose_subscriptions_hold_nothing_shows_no_held_keys_section(world):
    with tenant_context(world.a):
        consumer, _ = services.consumer_create(
            actor=world.admin_a, name="plain", kind="sqs", queue_arn=QUEUE
        )
        services.subscription_create(
            actor=world.admin_a,
            consumer=consumer,
            event_type="order.*",
            ordered=True,
            on_head_failure="skip",
        )
    body = page(world.viewer_a, world.a).get(f"/consumers/{consumer.pk}/").content.decode()
    assert 'data-testid="held-keys"' not in body and 'data-testid="flow-control"' in body
