"""A subscription's edit page tests its filter against a pasted sample (as typed, unsaved:
which paths match and why) and sends a test event through the subscription."""

import html
import json
import re

import pytest
from django.test import Client
from django_tenants.utils import tenant_context

from broker import services
from broker.models import AuditEvent, Subscription
from tests.broker.deliveries.test_api import queued
from tests.helpers import host_of

pytestmark = pytest.mark.django_db
QUEUE = "arn:aws:sqs:eu-west-1:123456789012:warehouse"
FILTER = {"data": {"total": [{"numeric": [">", 100]}], "country": ["FR", "DE"]}}


@pytest.fixture
def subscription(world):
    with tenant_context(world.a):
        consumer, _ = services.consumer_create(
            actor=world.admin_a, name="warehouse", kind="sqs", queue_arn=QUEUE
        )
        return services.subscription_create(
            actor=world.admin_a, consumer=consumer, event_type="order.created", filter=FILTER
        )


def page(user, tenant):
    client = Client(HTTP_HOST=host_of(tenant))
    client.force_login(user)
    return client


def run_tester(user, tenant, sub, sample, *, filter_=FILTER, event_type="order.created"):
    response = page(user, tenant).post(
        f"/config/subscription/{sub.pk}/test-filter/",
        {"event_type": event_type, "filter": json.dumps(filter_), "sample": json.dumps(sample)},
    )
    assert response.status_code == 200
    text = response.content.decode()
    return text[text.index('data-testid="filter-result"') :]


def test_the_edit_page_offers_a_filter_tester_with_a_sample_of_its_type(world, subscription):
    text = (
        page(world.developer_a, world.a)
        .get(f"/config/subscription/{subscription.pk}/edit/")
        .content.decode()
    )
    assert 'formaction="/config/subscription/' in text
    assert '{"type": "order.created", "data": {}}' in text
    assert 'aria-live="polite" data-testid="filter-result"' in text


def test_a_matching_sample_says_so_path_by_path(world, subscription):
    sample = {"type": "order.created", "data": {"total": 120, "country": "FR"}}
    result = run_tester(world.developer_a, world.a, subscription, sample)
    assert "The sample matches" in result
    assert "data.total" in result and "data.country" in result
    assert "no match" not in result[: result.index("</table>")]


def test_a_sample_failing_one_path_names_that_path(world, subscription):
    sample = {"type": "order.created", "data": {"total": 80, "country": "FR"}}
    result = run_tester(world.developer_a, world.a, subscription, sample)
    assert "does not match" in result
    row = result[result.index("<code>data.total</code>") :]
    assert "no match" in row[: row.index("</tr>")] and "80" in row[: row.index("</tr>")]


def test_the_why_column_shows_values_and_matchers_as_json(world, subscription):
    sample = {"type": "order.created", "data": {"total": None, "country": ["fr", True]}}
    result = run_tester(world.developer_a, world.a, subscription, sample)
    why = [
        html.unescape(re.sub(r"<[^>]+>", "", cell))
        for cell in re.findall(r'<td data-label="Why">(.*?)</td>', result)
    ]
    assert why == [
        'null does not match any of [{"numeric":[">",100]}]',
        '["fr",true] does not match any of ["FR","DE"]',
    ]


def test_the_filter_is_tested_as_typed_and_not_saved(world, subscription):
    sample = {"type": "order.created", "data": {"total": 5}}
    result = run_tester(world.developer_a, world.a, subscription, sample, filter_={})
    assert "The sample matches" in result and "filter is empty" in result
    with tenant_context(world.a):
        assert Subscription.objects.get(pk=subscription.pk).filter == FILTER


def test_a_sample_of_another_type_does_not_match(world, subscription):
    sample = {"type": "order.cancelled", "data": {"total": 500, "country": "DE"}}
    result = run_tester(world.developer_a, world.a, subscription, sample)
    assert "does not match" in result and "type does not match" in result


def test_a_sample_that_is_not_json_is_explained(world, subscription):
    response = page(world.developer_a, world.a).post(
        f"/config/subscription/{subscription.pk}/test-filter/",
        {"event_type": "order.created", "filter": "{}", "sample": "{not json"},
    )
    text = response.content.decode()
    assert "The sample event is not valid JSON" in text


def test_an_invalid_filter_is_named(world, subscription):
    result = run_tester(
        world.developer_a,
        world.a,
        subscription,
        {"type": "order.created"},
        filter_={"data": {"total": [{"numeric": [">"]}]}},
    )
    assert "filter:" in result


def test_viewers_and_other_tenants_cannot_use_the_tools(world, subscription):
    url = f"/config/subscription/{subscription.pk}/test-filter/"
    assert page(world.viewer_a, world.a).post(url, {"sample": "{}"}).status_code == 404
    assert page(world.admin_b, world.b).post(url, {"sample": "{}"}).status_code == 404
    url = f"/config/subscription/{subscription.pk}/test-event/"
    assert page(world.viewer_a, world.a).post(url).status_code == 404
    assert page(world.admin_b, world.b).post(url).status_code == 404


def test_send_test_event_goes_through_the_subscription_marked_as_a_test(world, subscription):
    queued(world.a)
    response = page(world.developer_a, world.a).post(
        f"/config/subscription/{subscription.pk}/test-event/", follow=True
    )
    assert "Test event order.created sent to warehouse through this subscription" in (
        response.content.decode()
    )
    (message,) = queued(world.a)
    assert message.delivery.test is True
    assert message.delivery.subscription_id == str(subscription.pk)
    assert message.delivery.consumer_id == str(subscription.consumer_id)
    assert message.event["type"] == "order.created"
    with tenant_context(world.a):
        assert AuditEvent.objects.filter(
            action="subscription.test_event", object_id=str(subscription.pk)
        ).exists()
