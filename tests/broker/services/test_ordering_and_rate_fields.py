"""Issue 18's configuration: a subscription's ordered delivery (`ordered`, `ordering_key_path`,
`on_head_failure`) and a consumer's `rate_limit_per_second`, bounded by the tier's
`max_consumer_rate_per_second`; through the services and the API."""

import pytest
from django_tenants.utils import tenant_context

from broker import services
from broker.models import Consumer, Subscription
from core.errors import ApplicationError
from tenants.models import Tenant, Tier
from tests.helpers.broker import audit_rows

pytestmark = pytest.mark.django_db

QUEUE = "arn:aws:sqs:eu-west-1:123456789012:sink"


@pytest.fixture
def consumer(world, in_a):
    consumer, _ = services.consumer_create(
        actor=world.admin_a, name="sink", kind="sqs", queue_arn=QUEUE
    )
    return consumer


def _rate_quota(tenant, value):
    t = Tenant.objects.get(pk=tenant.pk)
    t.quota_overrides = {**t.quota_overrides, "max_consumer_rate_per_second": value}
    t.save(update_fields=["quota_overrides"])


# --- the tier quota ------------------------------------------------------------------------


def test_every_seeded_tier_bounds_a_consumers_rate():
    rates = dict(Tier.objects.values_list("name", "max_consumer_rate_per_second"))
    assert rates == {"basic": 10, "standard": 100, "premium": 1_000, "dedicated": 5_000}


def test_the_rate_quota_is_an_effective_quota_a_tenant_may_override(world):
    tenant = Tenant.objects.select_related("tier").get(pk=world.a.pk)
    assert (
        tenant.effective_quotas()["max_consumer_rate_per_second"]
        == tenant.tier.max_consumer_rate_per_second
    )
    _rate_quota(world.a, 7)
    assert Tenant.objects.get(pk=world.a.pk).effective_quotas()["max_consumer_rate_per_second"] == 7


# --- ordered subscriptions -----------------------------------------------------------------


def test_a_subscription_is_unordered_and_skips_a_failed_head_by_default(world, consumer):
    sub = services.subscription_create(actor=world.admin_a, consumer=consumer, event_type="a.*")
    assert (sub.ordered, sub.ordering_key_path, sub.on_head_failure) == (False, "", "skip")


def test_an_ordered_subscription_stores_its_key_path_and_head_policy_and_audits_them(
    world, consumer
):
    sub = services.subscription_create(
        actor=world.admin_a,
        consumer=consumer,
        event_type="order.*",
        ordered=True,
        ordering_key_path=" data.order_id ",
        on_head_failure="hold",
    )
    stored = Subscription.objects.get(pk=sub.pk)
    assert (stored.ordered, stored.ordering_key_path, stored.on_head_failure) == (
        True,
        "data.order_id",
        "hold",
    )
    services.subscription_update(actor=world.admin_a, subscription=stored, on_head_failure="skip")
    (update,) = audit_rows(object_type="subscription", action="subscription.update")
    assert update.diff["on_head_failure"] == ["hold", "skip"]


@pytest.mark.parametrize(
    "path",
    ["data.", ".data", "data..id", "data.order id", "data.items[0]", "data/id", "a" * 201],
)
def test_a_malformed_ordering_key_path_is_refused(world, consumer, path):
    with pytest.raises(ApplicationError) as caught:
        services.subscription_create(
            actor=world.admin_a,
            consumer=consumer,
            event_type="order.*",
            ordered=True,
            ordering_key_path=path,
        )
    assert list(caught.value.fields) == ["ordering_key_path"]
    assert not Subscription.objects.exists()


@pytest.mark.parametrize("path", ["", "subject", "data.order_id", "data.customer-ref.id_2"])
def test_a_well_formed_ordering_key_path_is_accepted(world, consumer, path):
    sub = services.subscription_create(
        actor=world.admin_a,
        consumer=consumer,
        event_type="order.*",
        ordered=True,
        ordering_key_path=path,
    )
    assert sub.ordering_key_path == path


def test_an_unknown_head_failure_policy_is_refused_on_create_and_update(world, consumer):
    with pytest.raises(ApplicationError) as caught:
        services.subscription_create(
            actor=world.admin_a, consumer=consumer, event_type="a.*", on_head_failure="retry"
        )
    assert "skip, hold" in caught.value.fields["on_head_failure"][0]
    sub = services.subscription_create(actor=world.admin_a, consumer=consumer, event_type="a.*")
    with pytest.raises(ApplicationError):
        services.subscription_update(actor=world.admin_a, subscription=sub, on_head_failure="x")
    assert Subscription.objects.get(pk=sub.pk).on_head_failure == "skip"


def test_the_key_path_and_head_policy_are_kept_while_ordering_is_off(world, consumer):
    sub = services.subscription_create(
        actor=world.admin_a,
        consumer=consumer,
        event_type="a.*",
        ordered=True,
        ordering_key_path="data.id",
        on_head_failure="hold",
    )
    sub = services.subscription_update(actor=world.admin_a, subscription=sub, ordered=False)
    sub = services.subscription_update(actor=world.admin_a, subscription=sub, ordered=True)
    assert (sub.ordering_key_path, sub.on_head_failure) == ("data.id", "hold")


# --- consumer rate limit -------------------------------------------------------------------


def test_a_consumer_has_no_rate_limit_by_default(world, consumer):
    assert consumer.rate_limit_per_second is None


def test_a_consumer_rate_up_to_the_tier_quota_is_accepted_and_above_it_refused(world, in_a):
    _rate_quota(world.a, 20)
    consumer, _ = services.consumer_create(
        actor=world.admin_a, name="c", kind="sqs", queue_arn=QUEUE, rate_limit_per_second=20
    )
    assert consumer.rate_limit_per_second == 20
    with pytest.raises(ApplicationError) as caught:
        services.consumer_update(actor=world.admin_a, consumer=consumer, rate_limit_per_second=21)
    assert caught.value.fields == {
        "rate_limit_per_second": ["At most 20 on your plan (max_consumer_rate_per_second)."]
    }
    assert Consumer.objects.get(pk=consumer.pk).rate_limit_per_second == 20


@pytest.mark.parametrize("rate", [0, -1, 2.5, "5", True])
def test_a_rate_that_is_not_a_positive_whole_number_is_refused(world, in_a, rate):
    with pytest.raises(ApplicationError) as caught:
        services.consumer_create(
            actor=world.admin_a, name="c", kind="sqs", queue_arn=QUEUE, rate_limit_per_second=rate
        )
    assert list(caught.value.fields) == ["rate_limit_per_second"]
    assert not Consumer.objects.exists()


def test_a_rate_stored_above_a_since_lowered_quota_may_be_lowered_not_raised(world, in_a):
    _rate_quota(world.a, 50)
    consumer, _ = services.consumer_create(
        actor=world.admin_a, name="c", kind="sqs", queue_arn=QUEUE, rate_limit_per_second=40
    )
    _rate_quota(world.a, 10)
    with pytest.raises(ApplicationError):
        services.consumer_update(actor=world.admin_a, consumer=consumer, rate_limit_per_second=45)
    lowered = services.consumer_update(
        actor=world.admin_a, consumer=consumer, rate_limit_per_second=30
    )
    assert lowered.rate_limit_per_second == 30
    unlimited = services.consumer_update(
        actor=world.admin_a, consumer=lowered, rate_limit_per_second=None
    )
    assert unlimited.rate_limit_per_second is None


# --- the API -------------------------------------------------------------------------------


def test_the_api_creates_and_reads_an_ordered_subscription(world, api):
    with tenant_context(world.a):
        consumer, _ = services.consumer_create(
            actor=world.admin_a, name="sink", kind="sqs", queue_arn=QUEUE
        )
    client = api(world.developer_a, world.a)
    body = {
        "consumer": str(consumer.pk),
        "event_type": "order.*",
        "ordered": True,
        "ordering_key_path": "data.order_id",
        "on_head_failure": "hold",
    }
    created = client.post("/api/v1/subscriptions/", body, format="json")
    assert created.status_code == 201, created.content
    got = client.get(f"/api/v1/subscriptions/{created.json()['id']}/").json()
    assert (got["ordered"], got["ordering_key_path"], got["on_head_failure"]) == (
        True,
        "data.order_id",
        "hold",
    )
    plain = client.post(
        "/api/v1/subscriptions/",
        {"consumer": str(consumer.pk), "event_type": "invoice.*"},
        format="json",
    ).json()
    assert (plain["ordered"], plain["ordering_key_path"], plain["on_head_failure"]) == (
        False,
        "",
        "skip",
    )


@pytest.mark.parametrize(
    "field, value, message",
    [
        ("ordered", "true", "Expected true or false."),
        ("ordered", 1, "Expected true or false."),
        ("ordering_key_path", 5, "Expected a string."),
        ("on_head_failure", "retry", None),
        ("on_head_failure", 1, "Expected a string."),
        ("ordering_key_path", "data..id", None),
    ],
)
def test_the_api_refuses_wrong_ordering_fields_with_a_400_naming_them(
    world, api, field, value, message
):
    with tenant_context(world.a):
        consumer, _ = services.consumer_create(
            actor=world.admin_a, name="sink", kind="sqs", queue_arn=QUEUE
        )
    client = api(world.developer_a, world.a)
    answer = client.post(
        "/api/v1/subscriptions/",
        {"consumer": str(consumer.pk), "event_type": "order.*", field: value},
        format="json",
    )
    assert answer.status_code == 400, answer.content
    fields = answer.json()["error"]["fields"]
    assert list(fields) == [field]
    if message:
        assert fields[field] == [message]
    with tenant_context(world.a):
        assert not Subscription.objects.exists()


def test_the_api_sets_and_clears_a_consumers_rate_limit(world, api):
    client = api(world.admin_a, world.a)
    created = client.post(
        "/api/v1/consumers/",
        {"name": "sink", "kind": "sqs", "queue_arn": QUEUE, "rate_limit_per_second": 5},
        format="json",
    )
    assert created.status_code == 201, created.content
    cid = created.json()["id"]
    assert created.json()["rate_limit_per_second"] == 5
    cleared = client.patch(
        f"/api/v1/consumers/{cid}/", {"rate_limit_per_second": None}, format="json"
    )
    assert cleared.status_code == 200 and cleared.json()["rate_limit_per_second"] is None


@pytest.mark.parametrize("value", ["5", 2.5, True, 0])
def test_the_api_refuses_a_rate_that_is_not_a_positive_integer(world, api, value):
    client = api(world.admin_a, world.a)
    answer = client.post(
        "/api/v1/consumers/",
        {"name": "sink", "kind": "sqs", "queue_arn": QUEUE, "rate_limit_per_second": value},
        format="json",
    )
    assert answer.status_code == 400
    assert list(answer.json()["error"]["fields"]) == ["rate_limit_per_second"]


def test_the_api_refuses_a_rate_above_the_tier_quota_with_a_stable_error_body(world, api):
    tier_rate = Tenant.objects.get(pk=world.a.pk).effective_quotas()["max_consumer_rate_per_second"]
    client = api(world.admin_a, world.a)
    answer = client.post(
        "/api/v1/consumers/",
        {"name": "sink", "kind": "sqs", "queue_arn": QUEUE, "rate_limit_per_second": tier_rate + 1},
        format="json",
    )
    assert answer.status_code == 400
    body = answer.json()["error"]
    assert body["code"] == "invalid" and body["message"] == "Invalid input."
    assert body["fields"] == {
        "rate_limit_per_second": [
            f"At most {tier_rate} on your plan (max_consumer_rate_per_second)."
        ]
    }
