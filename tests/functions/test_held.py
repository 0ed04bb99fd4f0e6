"""Held keys in the data-plane table (shared/held.py): hold, append, retry, skip, in order."""

import uuid

import pytest

from broker.functions.shared import held, messages, ordering
from tests.helpers.functions import fifo_dlq_url, new_fifo_queue, receive_fifo, valid_sqs_id

pytestmark = pytest.mark.usefixtures("dataplane")


def _message(tenant_id, sub, n, *, attempt=1):
    return messages.delivery_message(
        messages.Delivery(
            delivery_id=messages.new_delivery_id(),
            tenant_id=tenant_id,
            consumer_id="c1",
            subscription_id=sub,
            producer_id="p1",
            event_id=f"evt_{n}",
            event_type="order.paid",
            attempt=attempt,
        ),
        {"id": f"evt_{n}", "type": "order.paid", "time": "2026-12-06T00:00:00Z", "data": {"n": n}},
    )


def _failure(error="HTTP 500"):
    return messages.Failure(
        attempts=3,
        last_status=500,
        last_error=error,
        error_kind=messages.ERROR_HTTP,
        first_attempt_at="2026-12-06T00:00:00.000+00:00",
        last_attempt_at="2026-12-06T00:01:00.000+00:00",
    )


class Key:
    """One key of one subscription, held with a head and `n - 1` later messages."""

    def __init__(self, n=3, key="order-7"):
        self.tenant_id, self.sub, self.key = str(uuid.uuid4()), str(uuid.uuid4()), key
        self.group = ordering.group_id(self.tenant_id, self.sub, key)
        self.queue = new_fifo_queue()
        self.sent = [
            _message(self.tenant_id, self.sub, i, attempt=3 if i == 0 else 1) for i in range(n)
        ]
        held.hold(self.sent[0], key=key, group=self.group, queue_url=self.queue, failure=_failure())
        for later in self.sent[1:]:
            assert held.admit(later, group=self.group, marker_=None) == "held"

    def drain(self) -> list[messages.Message]:
        """Delivers what the key releases, one at a time as the egress does: the ids in order."""
        out = []
        while True:
            got = receive_fifo(self.queue)
            if not got:
                return out
            assert len(got) == 1  # one released message of the key in SQS at a time
            one = got[0]
            assert one["group"] == self.group and valid_sqs_id(one["dedup"])
            marker = one["attributes"][held.MARKER_ATTRIBUTE]
            assert held.admit(one["message"], group=self.group, marker_=marker) == "deliver"
            out.append(one["message"])
            held.advance(self.tenant_id, self.sub, self.group, marker)


def test_a_held_key_lists_its_head_count_and_error_and_counts_in_the_summary():
    k = Key(n=3)
    [listed] = held.list_keys(k.tenant_id, k.sub)
    assert listed["key"] == "order-7" and listed["held"] == 3 and listed["oldest"]
    assert listed["head"] == {
        "delivery_id": k.sent[0].delivery.delivery_id,
        "event_id": "evt_0",
        "last_error": "HTTP 500",
    }
    assert held.tenant_summary(k.tenant_id) == {
        "keys": 1,
        "held": 3,
        "by_subscription": {k.sub: {"keys": 1, "held": 3}},
    }
    assert receive_fifo(k.queue) == []  # nothing left in SQS: held in the table


def test_retry_releases_the_head_as_a_new_life_then_the_rest_in_order_and_forgets_the_key():
    k = Key(n=4)
    assert held.retry(k.tenant_id, k.sub, "order-7") == 4
    out = k.drain()
    assert [m.delivery.event_id for m in out] == ["evt_0", "evt_1", "evt_2", "evt_3"]
    head = out[0].delivery
    assert (head.replay, head.attempt) == (1, 1)  # a new attempt cycle, not a duplicate
    assert [(m.delivery.replay, m.delivery.attempt) for m in out[1:]] == [(0, 1)] * 3
    assert held.list_keys(k.tenant_id, k.sub) == []
    assert held.tenant_summary(k.tenant_id)["keys"] == 0
    with pytest.raises(held.NotHeld):
        held.retry(k.tenant_id, k.sub, "order-7")


def test_events_arriving_while_a_key_is_released_queue_up_behind_the_held_ones():
    k = Key(n=2)
    held.retry(k.tenant_id, k.sub, "order-7")
    newer = _message(k.tenant_id, k.sub, 2)
    # Newer events of the key reach the egress from SQS while the release is under way.
    assert held.admit(newer, group=k.group, marker_=None) == "held"
    assert [m.delivery.event_id for m in k.drain()] == ["evt_0", "evt_1", "evt_2"]
    # Released: the next event of the key is delivered as usual.
    assert held.admit(_message(k.tenant_id, k.sub, 3), group=k.group, marker_=None) == "deliver"


def test_skip_dead_letters_the_head_on_the_fifo_dlq_and_releases_the_rest():
    k = Key(n=3)
    dlq = fifo_dlq_url()
    receive_fifo(dlq)
    assert held.skip(k.tenant_id, k.sub, "order-7") == 2
    [letter] = [x for x in receive_fifo(dlq) if x["group"] == k.group]
    assert letter["message"].kind == messages.DEAD_LETTER
    assert letter["message"].delivery.event_id == "evt_0"
    assert letter["message"].failure.last_error == "HTTP 500"
    assert letter["message"].failure.attempts == 3
    assert [m.delivery.event_id for m in k.drain()] == ["evt_1", "evt_2"]
    assert held.list_keys(k.tenant_id, k.sub) == []


def test_skipping_a_key_holding_only_its_head_ends_the_hold():
    k = Key(n=1)
    assert held.skip(k.tenant_id, k.sub, "order-7") == 0
    assert held.list_keys(k.tenant_id, k.sub) == [] and receive_fifo(k.queue) == []


def test_a_released_head_failing_for_good_again_is_held_again_in_front_of_the_rest():
    k = Key(n=3)
    held.retry(k.tenant_id, k.sub, "order-7")
    [first] = receive_fifo(k.queue)
    marker = first["attributes"][held.MARKER_ATTRIBUTE]
    assert held.admit(first["message"], group=k.group, marker_=marker) == "deliver"
    held.hold(
        first["message"], key="order-7", group=k.group, queue_url=k.queue, failure=_failure("again")
    )
    [listed] = held.list_keys(k.tenant_id, k.sub)
    assert listed["held"] == 3 and listed["head"]["last_error"] == "again"
    held.retry(k.tenant_id, k.sub, "order-7")
    assert [m.delivery.event_id for m in k.drain()] == ["evt_0", "evt_1", "evt_2"]


def test_a_released_message_seen_again_after_a_new_retry_is_dropped_not_delivered_twice():
    k = Key(n=2)
    held.retry(k.tenant_id, k.sub, "order-7")
    [old] = receive_fifo(k.queue)
    held.retry(k.tenant_id, k.sub, "order-7")  # the admin retries again meanwhile
    stale = old["attributes"][held.MARKER_ATTRIBUTE]
    assert held.admit(old["message"], group=k.group, marker_=stale) == "stale"
    assert [m.delivery.event_id for m in k.drain()] == ["evt_0", "evt_1"]


def test_unknown_keys_are_not_held():
    with pytest.raises(held.NotHeld):
        held.retry("t", "s", "nope")
    with pytest.raises(held.NotHeld):
        held.skip("t", "s", "nope")
    assert held.list_keys("t", "s") == []
    assert held.tenant_summary(str(uuid.uuid4())) == {"keys": 0, "held": 0, "by_subscription": {}}
