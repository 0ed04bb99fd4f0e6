"""Ordering keys, group and deduplication ids, and a key's queue (shared/ordering.py)."""

from decimal import Decimal

from broker.functions.shared import ordering
from tests.helpers.functions import SQS_ID_CHARS, valid_sqs_id


def test_a_group_id_is_the_same_for_the_same_key_and_within_sqs_rules_for_any_key():
    keys = ["order-1", "ü" * 128, "a\x1fb", "", " spaces and\nnewlines ", "😀" * 64]
    for key in keys:
        group = ordering.group_id("t1", "s1", key)
        assert group == ordering.group_id("t1", "s1", key)
        assert valid_sqs_id(group) and ordering.is_valid_id(group)
    assert ordering.group_id("t1", "s1", "k") != ordering.group_id("t1", "s2", "k")
    assert ordering.group_id("t1", "s1", "k") != ordering.group_id("t2", "s1", "k")
    # The separator keeps ("a", "bc") and ("ab", "c") apart.
    assert ordering.group_id("a", "bc", "d") != ordering.group_id("a", "b", "cd")


def test_a_dedup_id_differs_per_replay_and_is_within_sqs_rules():
    a, b = ordering.dedup_id("msg_" + "f" * 32, 0), ordering.dedup_id("msg_" + "f" * 32, 1)
    assert a != b and valid_sqs_id(a) and valid_sqs_id(b)


def test_the_id_check_refuses_what_sqs_refuses():
    assert not ordering.is_valid_id("x" * 129)
    assert not ordering.is_valid_id("")
    assert not ordering.is_valid_id("has space")
    assert not ordering.is_valid_id("é")
    assert ordering.is_valid_id("".join(sorted(SQS_ID_CHARS))[:128])


EVENT = {
    "id": "evt_1",
    "type": "order.paid",
    "data": {"order": {"id": 42, "ref": "A-1", "paid": True, "items": [{"sku": "x"}], "n": None}},
    "ordering_key": "from-envelope",
}


def test_the_key_is_the_value_at_the_path_as_a_string_or_the_envelopes_key():
    assert ordering.key_of({"ordering_key_path": "data.order.ref"}, EVENT) == "A-1"
    assert ordering.key_of({"ordering_key_path": "data.order.id"}, EVENT) == "42"
    assert ordering.key_of({"ordering_key_path": "data.order.paid"}, EVENT) == "true"
    assert ordering.key_of({"ordering_key_path": "data.order.items.0.sku"}, EVENT) == "x"
    assert ordering.key_of({"ordering_key_path": "data.x"}, {"data": {"x": Decimal("7")}}) == "7"
    assert ordering.key_of({"ordering_key_path": ""}, EVENT) == "from-envelope"
    assert ordering.key_of({}, EVENT) == "from-envelope"


def test_no_key_when_missing_null_an_object_or_an_array():
    for path in ("data.order.n", "data.order", "data.order.items", "data.none", "data.order.id.x"):
        assert ordering.key_of({"ordering_key_path": path}, EVENT) is None
    assert ordering.key_of({}, {"id": "e"}) is None


def test_a_key_always_maps_to_the_same_queue_of_the_tenant_and_spreads_over_them():
    tenant = {"ordered_queues": [f"https://q/broker-ordered-{i:02d}.fifo" for i in range(4)]}
    seen = set()
    for n in range(200):
        group = ordering.group_id("t", "s", f"k{n}")
        queue = ordering.queue_for(tenant, group)
        assert queue == ordering.queue_for(tenant, group)
        assert queue == tenant["ordered_queues"][int(group[:8], 16) % 4]
        seen.add(queue)
    assert seen == set(tenant["ordered_queues"])


def test_the_head_failure_mode_is_skip_unless_hold():
    assert ordering.on_head_failure({}) == "skip"
    assert ordering.on_head_failure({"on_head_failure": "hold"}) == "hold"
    assert ordering.on_head_failure({"on_head_failure": "other"}) == "skip"
