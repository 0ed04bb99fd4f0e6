"""Issue 18 on the tenant's pages: the subscription form's ordering, the consumer form's rate
limit (a form error above the plan), and the consumer page's rate, ordered subscriptions and
deliveries throttled in the last hour."""

from datetime import UTC, datetime, timedelta

import pytest
from django.test import Client
from django_tenants.utils import tenant_context

from broker import services
from broker.functions.shared import records
from broker.models import Consumer, Subscription
from tenants.models import Tenant
from tests import dataplane_items as dp
from tests.helpers import host_of

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("empty_dataplane")]
QUEUE = "arn:aws:sqs:eu-west-1:123456789012:warehouse"


@pytest.fixture(autouse=True)
def _dns(fake_dns):
    return fake_dns


@pytest.fixture
def consumer(world):
    with tenant_context(world.a):
        consumer, _ = services.consumer_create(
            actor=world.admin_a, name="warehouse", kind="sqs", queue_arn=QUEUE
        )
    return consumer


def page(user, tenant):
    client = Client(HTTP_HOST=host_of(tenant))
    client.force_login(user)
    return client


def plan_rate(tenant) -> int:
    return Tenant.objects.get(pk=tenant.pk).effective_quotas()["max_consumer_rate_per_second"]


def test_the_subscription_form_makes_an_ordered_subscription_that_holds_failed_keys(
    world, consumer
):
    response = page(world.developer_a, world.a).post(
        "/config/",
        {
            "form": "subscription",
            "subscription-consumer": str(consumer.pk),
            "subscription-event_type": "order.*",
            "subscription-ordered": "on",
            "subscription-ordering_key_path": "data.order_id",
            "subscription-on_head_failure": "hold",
        },
        follow=True,
    )
    assert response.status_code == 200
    with tenant_context(world.a):
        sub = Subscription.objects.get()
    assert (sub.ordered, sub.ordering_key_path, sub.on_head_failure) == (
        True,
        "data.order_id",
        "hold",
    )
    table = response.content.decode()
    table = table[table.index('data-testid="subscriptions"') :]
    assert ">ordered</span>" in table


def test_a_malformed_key_path_is_a_form_error_and_nothing_is_stored(world, consumer):
    response = page(world.developer_a, world.a).post(
        "/config/",
        {
            "form": "subscription",
            "subscription-consumer": str(consumer.pk),
            "subscription-event_type": "order.*",
            "subscription-ordered": "on",
            "subscription-ordering_key_path": "data..id",
            "subscription-on_head_failure": "skip",
        },
    )
    assert response.status_code == 400
    form = response.content.decode()
    form = form[form.index('data-testid="subscription-form"') :]
    field = form[form.index('data-field="ordering_key_path"') :]
    assert "A dotted path" in field[: field.index("</div>")]
    with tenant_context(world.a):
        assert not Subscription.objects.exists()


def test_the_subscription_edit_form_turns_ordering_on_and_off(world, consumer):
    with tenant_context(world.a):
        sub = services.subscription_create(
            actor=world.admin_a, consumer=consumer, event_type="order.*"
        )
    client = page(world.developer_a, world.a)
    edit = client.get(f"/config/subscription/{sub.pk}/edit/").content.decode()
    assert 'name="ordered"' in edit and 'name="on_head_failure"' in edit
    saved = client.post(
        f"/config/subscription/{sub.pk}/edit/",
        {
            "event_type": "order.*",
            "filter": "{}",
            "ordered": "on",
            "ordering_key_path": "subject",
            "on_head_failure": "hold",
        },
    )
    assert saved.status_code == 302
    with tenant_context(world.a):
        sub.refresh_from_db()
    assert (sub.ordered, sub.ordering_key_path, sub.on_head_failure) == (True, "subject", "hold")
    client.post(
        f"/config/subscription/{sub.pk}/edit/",
        # The checkbox unticked: a browser sends no `ordered`; the other fields as shown.
        {
            "event_type": "order.*",
            "filter": "{}",
            "ordering_key_path": "subject",
            "on_head_failure": "hold",
        },
    )
    with tenant_context(world.a):
        sub.refresh_from_db()
    assert sub.ordered is False and sub.ordering_key_path == "subject"


def test_a_consumer_rate_above_the_plan_is_a_form_error_saying_the_bound(world):
    most = plan_rate(world.a)
    client = page(world.admin_a, world.a)
    form = client.get("/config/").content.decode()
    assert f"At most {most} on your plan." in form
    response = client.post(
        "/config/",
        {
            "form": "consumer",
            "consumer-name": "fast",
            "consumer-kind": "sqs",
            "consumer-queue_arn": QUEUE,
            "consumer-auth_type": "none",
            "consumer-rate_limit_per_second": str(most + 1),
        },
    )
    assert response.status_code == 400
    body = response.content.decode()
    field = body[body.index('data-field="rate_limit_per_second"') :]
    assert f"At most {most} on your plan (max_consumer_rate_per_second)." in field
    with tenant_context(world.a):
        assert not Consumer.objects.filter(name="fast").exists()


def test_the_consumer_edit_form_sets_and_clears_the_rate_limit(world, consumer):
    client = page(world.admin_a, world.a)
    fields = {"queue_arn": QUEUE, "auth_type": "none", "timeout_ms": "10000"}
    saved = client.post(
        f"/config/consumer/{consumer.pk}/edit/", {**fields, "rate_limit_per_second": "3"}
    )
    assert saved.status_code == 302
    with tenant_context(world.a):
        assert Consumer.objects.get(pk=consumer.pk).rate_limit_per_second == 3
    client.post(f"/config/consumer/{consumer.pk}/edit/", {**fields, "rate_limit_per_second": ""})
    with tenant_context(world.a):
        assert Consumer.objects.get(pk=consumer.pk).rate_limit_per_second is None


def test_the_consumer_page_shows_its_rate_its_ordered_subscriptions_and_recent_throttling(
    world, consumer
):
    with tenant_context(world.a):
        services.consumer_update(actor=world.admin_a, consumer=consumer, rate_limit_per_second=5)
        services.subscription_create(
            actor=world.admin_a,
            consumer=consumer,
            event_type="order.*",
            name="orders",
            ordered=True,
            ordering_key_path="data.order_id",
            on_head_failure="hold",
        )
        services.subscription_create(
            actor=world.admin_a, consumer=consumer, event_type="invoice.*", name="invoices"
        )
    now = datetime.now(UTC)
    for minutes, count in ((1, 7), (30, 5), (59, 2), (61, 100), (180, 100)):
        key = records.consumer_stats_key(
            str(world.a.pk), str(consumer.pk), records.minute(now - timedelta(minutes=minutes))
        )
        dp.add(*key, throttled=count)
    body = page(world.viewer_a, world.a).get(f"/consumers/{consumer.pk}/").content.decode()
    flow = body[body.index('data-testid="flow-control"') :]
    assert "5 per second" in flow
    throttled = flow[flow.index('data-testid="throttled"') :]
    assert throttled[throttled.index(">") + 1 :].startswith("14<")
    subs = body[body.index('data-testid="consumer-subscriptions"') :]
    orders = subs[subs.index(">orders<") :]
    assert "data.order_id" in orders[: orders.index("</tr>")]
    assert "holds the key" in orders[: orders.index("</tr>")]
    invoices = subs[subs.index(">invoices<") :]
    assert "unordered" in invoices[: invoices.index("</tr>")]


def test_a_consumer_without_throttling_says_so(world, consumer):
    body = page(world.viewer_a, world.a).get(f"/consumers/{consumer.pk}/").content.decode()
    flow = body[body.index('data-testid="flow-control"') :]
    assert "no limit" in flow and "no delivery was delayed" in flow
