"""Held keys over the tenant API: list a hold-subscription's held keys, retry a key's head
(then its held events follow in order) or skip it (dead-lettered, the rest released); the
roles of dead-letter replay, an audit row each, another tenant's subscription a 404. The held
state is planted with the data plane's own functions (broker.functions.shared.held)."""

import pytest
from django_tenants.utils import tenant_context

from broker import services
from broker.models import AuditEvent
from tests.helpers.held import dead_letters, hold_key

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("empty_dataplane")]

QUEUE = "arn:aws:sqs:eu-west-1:123456789012:sink"


@pytest.fixture
def sub(world):
    with tenant_context(world.a):
        consumer, _ = services.consumer_create(
            actor=world.admin_a, name="sink", kind="sqs", queue_arn=QUEUE
        )
        return services.subscription_create(
            actor=world.admin_a,
            consumer=consumer,
            event_type="order.*",
            ordered=True,
            ordering_key_path="data.order_id",
            on_head_failure="hold",
        )


def url(sub, tail=""):
    return f"/api/v1/subscriptions/{sub.pk}/held-keys/{tail}"


def audit(action):
    return list(AuditEvent.objects.filter(action=action).values("object_id", "diff", "actor_email"))


def test_the_held_keys_are_listed_oldest_first_with_their_head_and_error(world, api, sub):
    first = hold_key(world.a, sub, "order-1", n=3, error="HTTP 503 Service Unavailable")
    hold_key(world.a, sub, "order-2", n=1, error="timeout")
    answer = api(world.viewer_a, world.a).get(url(sub))
    assert answer.status_code == 200, answer.content
    results = answer.json()["results"]
    assert [(r["key"], r["held"]) for r in results] == [("order-1", 3), ("order-2", 1)]
    assert results[0]["head"] == {
        "delivery_id": first.sent[0].delivery.delivery_id,
        "event_id": "evt_order-1_0",
        "last_error": "HTTP 503 Service Unavailable",
    }
    assert results[0]["oldest"] <= results[1]["oldest"]


def test_a_subscription_holding_nothing_lists_no_keys(world, api, sub):
    assert api(world.viewer_a, world.a).get(url(sub)).json() == {"results": []}


def test_retry_sends_the_head_again_as_a_new_life_and_is_audited(world, api, sub):
    key = hold_key(world.a, sub, "order-1", n=3)
    answer = api(world.developer_a, world.a).post(
        url(sub, "retry/"), {"key": "order-1"}, format="json"
    )
    assert answer.status_code == 200, answer.content
    assert answer.json() == {"key": "order-1", "released": 3, "dead_lettered": 0}
    (again,) = key.released()  # one at a time: the head first, the rest as it is delivered
    head = key.sent[0].delivery
    assert again.delivery.delivery_id == head.delivery_id
    assert (again.delivery.replay, again.delivery.attempt) == (head.replay + 1, 1)
    with tenant_context(world.a):
        (row,) = audit("subscription.held_key_retried")
    assert row["object_id"] == str(sub.pk) and row["actor_email"] == "dev@a.test"
    assert row["diff"] == {"key": [None, "order-1"]}


def test_skip_dead_letters_the_head_releases_the_next_and_is_audited(world, api, sub):
    key = hold_key(world.a, sub, "order-1", n=3)
    dead_letters()  # the FIFO DLQ exists and is empty
    answer = api(world.admin_a, world.a).post(url(sub, "skip/"), {"key": "order-1"}, format="json")
    assert answer.status_code == 200, answer.content
    assert answer.json() == {"key": "order-1", "released": 2, "dead_lettered": 1}
    (letter,) = dead_letters()
    assert letter.delivery.delivery_id == key.sent[0].delivery.delivery_id
    (nxt,) = key.released()
    assert nxt.delivery.delivery_id == key.sent[1].delivery.delivery_id
    with tenant_context(world.a):
        (row,) = audit("subscription.held_key_skipped")
    assert row["diff"] == {"key": [None, "order-1"]}
    listed = api(world.viewer_a, world.a).get(url(sub)).json()["results"]
    assert [(r["key"], r["held"]) for r in listed] == [("order-1", 2)]


@pytest.mark.parametrize("action", ["retry/", "skip/"])
def test_a_key_that_is_not_held_is_a_404_and_nothing_is_audited(world, api, sub, action):
    hold_key(world.a, sub, "order-1", n=1)
    answer = api(world.admin_a, world.a).post(url(sub, action), {"key": "order-9"}, format="json")
    assert answer.status_code == 404, answer.content
    assert answer.json()["error"]["code"] == "not_held"
    with tenant_context(world.a):
        assert not AuditEvent.objects.filter(action__startswith="subscription.held_key").exists()


@pytest.mark.parametrize(
    "body, field",
    [({}, "key"), ({"key": 7}, "key"), ({"key": None}, "key"), ({"key": "a", "x": 1}, "x")],
)
def test_a_body_without_a_string_key_is_a_400_naming_the_field(world, api, sub, body, field):
    answer = api(world.admin_a, world.a).post(url(sub, "retry/"), body, format="json")
    assert answer.status_code == 400, answer.content
    assert field in answer.json()["error"]["fields"]


def test_viewers_list_held_keys_but_release_none(world, api, sub):
    hold_key(world.a, sub, "order-1", n=1)
    viewer = api(world.viewer_a, world.a)
    assert viewer.get(url(sub)).status_code == 200
    for action in ("retry/", "skip/"):
        assert viewer.post(url(sub, action), {"key": "order-1"}, format="json").status_code == 403
    listed = viewer.get(url(sub)).json()["results"]
    assert [(r["key"], r["held"]) for r in listed] == [("order-1", 1)]


def test_another_tenants_subscription_is_a_404_and_its_keys_stay_held(world, api, sub):
    hold_key(world.a, sub, "order-1", n=2)
    other = api(world.admin_b, world.b)
    assert other.get(url(sub)).status_code == 404
    for action in ("retry/", "skip/"):
        answer = other.post(url(sub, action), {"key": "order-1"}, format="json")
        assert answer.status_code == 404
    listed = api(world.viewer_a, world.a).get(url(sub)).json()["results"]
    assert [(r["key"], r["held"]) for r in listed] == [("order-1", 2)]
