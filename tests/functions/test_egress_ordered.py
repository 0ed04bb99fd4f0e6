"""The egress on FIFO queues (ordered delivery per key): one attempt at a time per key, keys
side by side; a retry waits in place (visibility, never DelaySeconds); a failure stops only its
key's records in the batch; after the last attempt, `skip` dead-letters to the FIFO DLQ and
`hold` keeps the key in the data-plane table."""

import json
import time
import uuid

import pytest

from broker.functions import aws, settings
from broker.functions.egress import flush_records, handler
from broker.functions.local import events
from broker.functions.shared import held, messages, ordering, records
from tests.functions import egress_fixtures
from tests.functions.egress_fixtures import Answer
from tests.helpers.functions import fifo_dlq_url, new_fifo_queue, receive_fifo

egress, receiver = egress_fixtures.egress, egress_fixtures.receiver


class Ordered:
    """A silo tenant's FIFO queue, one consumer and one ordered subscription, and a poller that
    hands the queue's batches to the egress handler as Lambda's FIFO mapping does."""

    def __init__(self, egress, *, on_head_failure="skip", schedule=(1,), max_attempts=2):
        self.egress = egress
        self.url = new_fifo_queue()
        self.arn = aws.sqs().get_queue_attributes(QueueUrl=self.url, AttributeNames=["QueueArn"])[
            "Attributes"
        ]["QueueArn"]
        retry = {"strategy": "schedule", "schedule": list(schedule), "max_attempts": max_attempts}
        self.consumer = egress.consumer(retry=retry)
        self.sub = egress.tenant.route(
            "order.paid", self.consumer, ordered=True, on_head_failure=on_head_failure
        )
        self.tenant_id = egress.tenant.tenant_id
        self.sent = {}
        self.own = set()

    def send(self, key: str, seq: int) -> messages.Message:
        event_id = "evt_" + uuid.uuid4().hex
        group = ordering.group_id(self.tenant_id, self.sub.pk, key)
        d = messages.Delivery(
            delivery_id=messages.delivery_id_for(self.tenant_id, event_id, self.sub.pk),
            tenant_id=self.tenant_id,
            consumer_id=self.consumer.pk,
            subscription_id=self.sub.pk,
            producer_id="p",
            event_id=event_id,
            event_type="order.paid",
            ordering_key=key,
            group_id=group,
        )
        event = messages.event_body(
            event_id=event_id,
            type_="order.paid",
            time=messages.now_iso(),
            data={"key": key, "seq": seq},
            source_id=None,
        )
        message = messages.delivery_message(d, event)
        aws.sqs().send_message(
            QueueUrl=self.url,
            MessageBody=message.body(),
            MessageAttributes=message.attributes(),
            MessageGroupId=group,
            MessageDeduplicationId=ordering.dedup_id(d.delivery_id, d.replay),
        )
        self.sent[(key, seq)] = message
        self.own.add(ordering.dedup_id(d.delivery_id, d.replay))
        return message

    def resent(self) -> list[dict]:
        """What the egress sent to the FIFO queue (not this test's own sends)."""
        return [
            p
            for p in self.egress.sent
            if p["QueueUrl"] == self.url and p.get("MessageDeduplicationId") not in self.own
        ]

    def poll(self) -> set[str] | None:
        """One batch: received, handed to the egress, what succeeded deleted. The failed
        message ids; None when nothing was received."""
        got = (
            aws.sqs()
            .receive_message(
                QueueUrl=self.url,
                MaxNumberOfMessages=10,
                AttributeNames=["All"],
                MessageAttributeNames=["All"],
            )
            .get("Messages", [])
        )
        if not got:
            return None
        result = handler(events.sqs_event(got, queue_arn=self.arn, region="eu-west-1"), None)
        failed = events.failed_ids(result) or set()
        for m in got:
            if m["MessageId"] not in failed:
                aws.sqs().delete_message(QueueUrl=self.url, ReceiptHandle=m["ReceiptHandle"])
        flush_records()
        return failed

    def drain(self, *, polls=50, wait=0.0):
        for _ in range(polls):
            if self.poll() is None:
                if wait <= 0:
                    return
                time.sleep(wait)
                wait = 0.0

    def received(self) -> list[tuple[str, int]]:
        out = []
        for r in self.egress.receiver.received:
            data = json.loads(r.body)["data"]
            out.append((data["key"], data["seq"]))
        return out

    def by_key(self) -> dict[str, list[int]]:
        out = {}
        for key, seq in self.received():
            out.setdefault(key, []).append(seq)
        return out

    def history(self, message) -> list[dict]:
        pk, _ = records.delivery_attempt_key(self.tenant_id, message.delivery.delivery_id, 0, 1)
        items = self.egress.record_items(pk)
        return sorted(
            (i for i in items if i.get("type") == "attempt"),
            key=lambda i: (int(i["replay"]), int(i["attempt"])),
        )


def _fail_key(receiver, key):
    """The receiver answers 500 to the events of `key` (or of a (key, seq)) while the returned
    set holds it."""
    failing = {key}

    def decide(path, body):
        data = json.loads(body)["data"]
        hit = data["key"] in failing or (data["key"], data["seq"]) in failing
        return Answer(status=500) if hit else None

    receiver.decide = decide
    return failing


def test_each_keys_events_reach_the_consumer_in_order_with_keys_side_by_side(egress):
    o = Ordered(egress)
    for seq in range(4):
        for key in ("a", "b", "c"):
            o.send(key, seq)
    o.drain()
    assert o.by_key() == {k: [0, 1, 2, 3] for k in "abc"}
    assert o.resent() == []


def test_a_failed_attempt_waits_in_place_and_stops_only_its_keys_records(egress, receiver):
    o = Ordered(egress, schedule=(1,))
    for seq in range(3):
        o.send("a", seq)
        o.send("b", seq)
    failing = _fail_key(receiver, "a")
    failed = o.poll()
    # a0 failed, a1 and a2 behind it in the batch reported failed too; b went through.
    assert len(failed) == 3
    assert o.by_key() == {"a": [0], "b": [0, 1, 2]}
    assert o.poll() is None  # the key waits: its head is invisible for the retry's delay
    # No message sent back (a FIFO queue takes no DelaySeconds, and a new one would go last).
    assert o.resent() == []
    failing.clear()
    time.sleep(1.2)
    o.drain()
    assert o.by_key() == {"a": [0, 0, 1, 2], "b": [0, 1, 2]}
    # The head's two attempts, counted in the table: attempt 1 retrying, attempt 2 ok.
    history = o.history(o.sent[("a", 0)])
    assert [(int(i["attempt"]), i["status"]) for i in history] == [(1, "retrying"), (2, "ok")]
    assert history[0]["ordering_key"] == "a"


def test_skip_dead_letters_the_head_in_its_keys_group_and_the_key_flows_on(egress, receiver):
    o = Ordered(egress, on_head_failure="skip", max_attempts=1)
    dlq = fifo_dlq_url()
    receive_fifo(dlq)
    for seq in range(3):
        o.send("a", seq)
    _fail_key(receiver, ("a", 0))
    o.drain()
    assert o.by_key() == {"a": [0, 1, 2]}  # a0's one attempt, then a1, a2
    letters = [x for x in receive_fifo(dlq) if x["message"].delivery.tenant_id == o.tenant_id]
    assert [x["message"].event["data"]["seq"] for x in letters] == [0]
    assert letters[0]["group"] == ordering.group_id(o.tenant_id, o.sub.pk, "a")
    assert letters[0]["message"].failure.attempts == 1
    assert held.list_keys(o.tenant_id, o.sub.pk) == []


def test_hold_keeps_the_key_off_sqs_in_order_and_retry_releases_it_in_order(egress, receiver):
    o = Ordered(egress, on_head_failure="hold", max_attempts=1)
    for seq in range(3):
        o.send("a", seq)
        o.send("b", seq)
    failing = _fail_key(receiver, "a")
    o.drain()
    assert o.by_key() == {"a": [0], "b": [0, 1, 2]}
    [key] = held.list_keys(o.tenant_id, o.sub.pk)
    assert (key["key"], key["held"]) == ("a", 3)
    assert key["head"]["event_id"] == o.sent[("a", 0)].delivery.event_id
    assert "500" in key["head"]["last_error"]
    assert (
        aws.sqs().get_queue_attributes(
            QueueUrl=o.url, AttributeNames=["ApproximateNumberOfMessages"]
        )["Attributes"]["ApproximateNumberOfMessages"]
        == "0"
    )  # deleted from SQS: no polling
    # A later event of the held key joins it, in order; another key flows meanwhile.
    o.send("a", 3)
    o.send("b", 3)
    o.drain()
    assert o.by_key()["b"] == [0, 1, 2, 3]
    assert held.list_keys(o.tenant_id, o.sub.pk)[0]["held"] == 4
    history = o.history(o.sent[("a", 0)])
    assert [i["status"] for i in history] == ["held"]

    failing.clear()
    assert held.retry(o.tenant_id, o.sub.pk, "a") == 4
    o.drain(polls=100)
    assert o.by_key()["a"] == [0, 0, 1, 2, 3]
    assert held.list_keys(o.tenant_id, o.sub.pk) == []
    assert held.tenant_summary(o.tenant_id)["keys"] == 0
    # Released: the key's next event is delivered as usual.
    o.send("a", 4)
    o.drain()
    assert o.by_key()["a"][-1] == 4


def test_a_held_keys_released_head_failing_again_is_held_again(egress, receiver):
    o = Ordered(egress, on_head_failure="hold", max_attempts=1)
    o.send("a", 0)
    o.send("a", 1)
    _fail_key(receiver, "a")
    o.drain()
    held.retry(o.tenant_id, o.sub.pk, "a")
    o.drain()
    [key] = held.list_keys(o.tenant_id, o.sub.pk)
    assert key["held"] == 2
    assert o.by_key() == {"a": [0, 0]}


def test_ordered_messages_never_carry_a_delay(egress, receiver):
    """FIFO queues refuse DelaySeconds: every egress send to one is without."""
    o = Ordered(egress, on_head_failure="skip", schedule=(1,), max_attempts=2)
    o.send("a", 0)
    _fail_key(receiver, "a")
    o.poll()
    fifo_sends = [p for p in egress.sent if p["QueueUrl"].endswith(".fifo")]
    assert all("DelaySeconds" not in p for p in fifo_sends)


@pytest.fixture(autouse=True)
def _fifo_dlq(dataplane):
    fifo_dlq_url()
    assert settings.get().central_fifo_dlq_name.endswith(".fifo")


def test_a_head_failing_every_attempt_is_held_after_its_last(egress, receiver):
    o = Ordered(egress, on_head_failure="hold", schedule=(1, 1), max_attempts=3)
    for seq in range(3):
        o.send("a", seq)
    _fail_key(receiver, "a")
    for _ in range(3):
        o.drain()
        time.sleep(1.2)
    o.drain()
    [key] = held.list_keys(o.tenant_id, o.sub.pk)
    assert key["held"] == 3
    assert [i["status"] for i in o.history(o.sent[("a", 0)])] == ["retrying", "retrying", "held"]
