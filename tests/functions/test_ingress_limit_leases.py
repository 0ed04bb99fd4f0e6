"""Rate and quota in leases (broker/functions/ingress/limits.py): a busy producer's requests
do not each write the one item that holds its rate or its tenant's quota (DynamoDB takes
about 1,000 writes/s on one partition), and the limits still hold across instances."""

from collections import Counter
from types import SimpleNamespace

import pytest

from broker.functions import aws, config
from broker.functions.ingress import limits
from tests.helpers.functions import post

ORDER = {"type": "order.created", "data": {"total": 12}}


@pytest.fixture
def clock(monkeypatch):
    """The rate limiter's clock, stopped early in a window (no test depends on timing)."""
    now = SimpleNamespace(value=3_000_000_000.1)
    monkeypatch.setattr(limits, "time", SimpleNamespace(time=lambda: now.value))
    return now


@pytest.fixture
def counter_writes(dataplane):
    """Write calls on the rate and quota items, by kind of key."""
    writes: Counter = Counter()

    def hook(params, **kwargs):
        pk = params.get("Key", {}).get("PK", {}).get("S", "")
        writes[pk.split("#", 1)[0]] += 1

    events = aws.dynamodb().meta.events
    events.register("provide-client-params.dynamodb.UpdateItem", hook)
    yield writes
    events.unregister("provide-client-params.dynamodb.UpdateItem", hook)


def _fresh_instance():
    """What a new function instance knows: nothing (same table)."""
    limits.reset()
    config.clear()


def test_a_busy_producer_writes_its_rate_and_quota_items_once_a_lease(
    dataplane, clock, counter_writes
):
    t = dataplane.tenant(quotas={"daily_event_quota": 1_000_000})
    key = t.api_key(t.producer(rate=100, burst=200))  # leases of 200 / 20 = 10 events

    answers = [post(body=ORDER, key=key)[0] for _ in range(50)]

    assert answers == [202] * 50
    assert counter_writes["RATE"] == 5  # 50 events, 10 a lease (was: 50 writes)
    assert counter_writes["QUOTA"] == 1  # a lease of 1,000 events (was: 50)


def test_the_rate_holds_across_instances_within_one_unspent_lease(dataplane, clock):
    t = dataplane.tenant()
    key = t.api_key(t.producer(rate=50, burst=100))  # 100 per 2-s window, leases of 5
    accepted = 0
    for i in range(150):
        if i % 7 == 0:
            _fresh_instance()  # another instance: the old one's lease is stranded
        accepted += post(body=ORDER, key=key)[0] == 202

    assert accepted <= 100  # never more than the limit
    assert accepted >= 100 - 5 * (150 // 7 + 1)  # early only by stranded leases


def test_near_the_quota_the_last_events_are_granted_exactly(dataplane, clock):
    t = dataplane.tenant(quotas={"daily_event_quota": 100})  # leases of 5
    key = t.api_key(t.producer(rate=10_000, burst=10_000))
    assert post("/v1/events/batch", body=[ORDER] * 97, key=key)[0] == 202
    _fresh_instance()  # 97 counted: a lease of 5 would not fit, 3 single events do

    assert [post(body=ORDER, key=key)[0] for _ in range(4)] == [202, 202, 202, 429]
