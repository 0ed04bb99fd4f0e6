"""The ingress's side of ordered delivery: the envelope's `ordering_key`, FIFO queues per key,
group and deduplication ids SQS takes (moto checks neither), and each key's order kept when
SQS refuses entries."""

import pytest

from broker.functions import aws
from broker.functions.shared import ordering
from tests.helpers.functions import new_fifo_queue, post, receive_fifo, valid_sqs_id

ORDER = {"type": "order.paid", "data": {"order": {"id": 7}}}


@pytest.fixture
def shop(dataplane):
    """A pool tenant with two FIFO queues, one producer, and one ordered route keyed by the
    envelope's ordering_key."""
    fifo = [new_fifo_queue() for _ in range(2)]
    t = dataplane.tenant(model="pool", ordered_queues=fifo)
    t.fifo = fifo
    t.key = t.api_key(t.producer())
    t.cons = t.consumer()
    t.sub = t.route("order.paid", t.cons, ordered=True)
    return t


def _fifo_messages(shop):
    out = []
    for url in shop.fifo:
        out += [{**m, "queue": url} for m in receive_fifo(url)]
    return out


def test_an_ordering_key_must_be_a_short_non_empty_string(shop):
    for bad in (7, "", "k" * 129, ["a"], {"a": 1}):
        status, body, _ = post(body={**ORDER, "ordering_key": bad}, key=shop.key)
        assert status == 400, bad
        assert "ordering_key" in body["error"]["fields"]
    status, _, _ = post(body={**ORDER, "ordering_key": "k" * 128}, key=shop.key)
    assert status == 202


def test_an_ordered_delivery_goes_to_its_keys_fifo_queue_with_valid_group_and_dedup_ids(shop):
    status, body, _ = post(body={**ORDER, "ordering_key": "order-7"}, key=shop.key)
    assert status == 202
    [got] = _fifo_messages(shop)
    d = got["message"].delivery
    group = ordering.group_id(shop.tenant_id, shop.sub.pk, "order-7")
    assert (d.ordering_key, d.group_id, got["group"]) == ("order-7", group, group)
    assert got["dedup"] == f"{d.delivery_id}-0"
    assert valid_sqs_id(got["group"]) and valid_sqs_id(got["dedup"])
    assert got["queue"] == ordering.queue_for({"ordered_queues": shop.fifo}, group)
    assert "ordering_key" not in got["message"].event  # not part of what the consumer gets
    assert shop.deliveries() == []  # nothing on the unordered queues


def test_a_key_at_the_routes_path_into_the_event_is_used(shop):
    sub = shop.route("order.paid", shop.consumer(), ordered=True, ordering_key_path="data.order.id")
    post(body=ORDER, key=shop.key)
    by_sub = {m["message"].delivery.subscription_id: m for m in _fifo_messages(shop)}
    assert by_sub[sub.pk]["message"].delivery.ordering_key == "7"
    # The envelope-keyed route had no key: delivered unordered, and says so.
    [plain] = shop.deliveries()
    assert plain.delivery.subscription_id == shop.sub.pk
    assert plain.delivery.unordered_reason == "no_ordering_key"
    assert plain.delivery.group_id is None


def test_an_ordered_route_of_a_tenant_without_fifo_queues_is_delivered_unordered(dataplane):
    t = dataplane.tenant()  # no ordered_queues: provisioning unfinished
    key = t.api_key(t.producer())
    t.route("order.paid", t.consumer(), ordered=True)
    assert post(body={**ORDER, "ordering_key": "k"}, key=key)[0] == 202
    [message] = t.deliveries()
    assert message.delivery.unordered_reason == "no_ordered_queue"


def test_unordered_routes_carry_no_ordering_fields(shop):
    shop.route("order.paid", shop.consumer())
    post(body={**ORDER, "ordering_key": "k"}, key=shop.key)
    [plain] = shop.deliveries()
    assert (plain.delivery.ordering_key, plain.delivery.unordered_reason) == (None, None)


def _batch(keys, per_key):
    return [{**ORDER, "ordering_key": k, "data": {"seq": n}} for n in range(per_key) for k in keys]


def _sequences(messages):
    out = {}
    for m in messages:
        out.setdefault(m["message"].delivery.ordering_key, []).append(
            m["message"].event["data"]["seq"]
        )
    return out


def test_a_batch_keeps_every_keys_order_in_its_queue(shop):
    status, _, _ = post("/v1/events/batch", body=_batch(["a", "b", "c"], 20), key=shop.key)
    assert status == 202
    assert _sequences(_fifo_messages(shop)) == {k: list(range(20)) for k in "abc"}


@pytest.fixture
def refuse(monkeypatch):
    """SQS refuses the entries whose (key, seq) are listed, once each or always."""
    client = aws.sqs()
    real = client.send_message_batch
    plan = {"once": set(), "always": set(), "calls": []}

    def send_message_batch(**kwargs):
        import json

        refused, kept = [], []
        for entry in kwargs["Entries"]:
            body = json.loads(entry["MessageBody"])
            mark = (body["delivery"].get("ordering_key"), body["event"]["data"].get("seq"))
            if mark in plan["always"] or mark in plan["once"]:
                plan["once"].discard(mark)
                refused.append(entry)
            else:
                kept.append(entry)
        plan["calls"].append([e.get("MessageGroupId") for e in kwargs["Entries"]])
        out = real(QueueUrl=kwargs["QueueUrl"], Entries=kept) if kept else {"Successful": []}
        out["Failed"] = [
            {"Id": e["Id"], "SenderFault": False, "Code": "InternalError"} for e in refused
        ]
        return out

    monkeypatch.setattr(client, "send_message_batch", send_message_batch)
    return plan


def test_a_refused_entry_is_sent_again_before_the_rest_of_its_key(shop, refuse):
    refuse["once"].add(("a", 3))
    status, body, _ = post("/v1/events/batch", body=_batch(["a", "b"], 8), key=shop.key)
    assert status == 202 and all("error" not in r for r in body["results"])
    assert _sequences(_fifo_messages(shop)) == {"a": list(range(8)), "b": list(range(8))}
    # Never two messages of one group in one call: a refusal leaves nothing of it sent after.
    for groups in refuse["calls"]:
        named = [g for g in groups if g]
        assert len(named) == len(set(named))


def test_an_entry_refused_twice_holds_back_its_key_and_only_its_key(shop, refuse):
    refuse["always"].add(("a", 3))
    status, body, _ = post("/v1/events/batch", body=_batch(["a", "b"], 6), key=shop.key)
    assert status == 202  # a batch answers per event
    failed = {i for i, r in enumerate(body["results"]) if "error" in r}
    # Events are interleaved a0 b0 a1 b1 …: a3 and every later a are refused (503), so the
    # producer's retry sends them again in order; b is all through.
    assert failed == {2 * n for n in range(3, 6)}
    assert _sequences(_fifo_messages(shop)) == {"a": [0, 1, 2], "b": list(range(6))}
