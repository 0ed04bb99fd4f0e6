"""The rate limit per consumer (broker/functions/egress/ratelimit.py): a token bucket per
consumer and second in the data-plane table that holds across egress instances; a delivery
over it is put back with a delay, is not an attempt, is counted as throttled, and its attempt
record shows how long it was held."""

import threading
from collections import Counter
from types import SimpleNamespace

import pytest

from broker.functions import aws, config, settings
from broker.functions.egress import ratelimit
from broker.functions.shared import messages, records
from tests.functions import egress_fixtures

egress, receiver = egress_fixtures.egress, egress_fixtures.receiver

T0 = 3_000_000_000  # a whole epoch second, far from any real one


@pytest.fixture
def clock(monkeypatch):
    """The limiter's clock, stopped (no test depends on timing); sleeping moves it on."""
    now = SimpleNamespace(value=T0 + 0.1)

    def sleep(seconds):
        now.value += seconds

    monkeypatch.setattr(ratelimit, "time", SimpleNamespace(time=lambda: now.value, sleep=sleep))
    return now


@pytest.fixture
def rate_writes(dataplane):
    """UpdateItem calls on the consumers' rate items."""
    writes = Counter()

    def hook(params, **kwargs):
        key = params.get("Key", {})
        if key.get("PK", {}).get("S", "").startswith("CRATE#"):
            writes["QUEUE" if key["SK"]["S"] == "QUEUE" else "CRATE"] += 1

    events = aws.dynamodb().meta.events
    events.register("provide-client-params.dynamodb.UpdateItem", hook)
    yield writes
    events.unregister("provide-client-params.dynamodb.UpdateItem", hook)


def _limit(tenant_id: str, consumer_id: str, rate: int) -> None:
    """The consumer's `rate_limit_per_second`, as the relay writes it on the CONSUMER item."""
    aws.dynamodb().update_item(
        TableName=settings.get().config_table,
        Key={"PK": {"S": f"TENANT#{tenant_id}"}, "SK": {"S": f"CONSUMER#{consumer_id}"}},
        UpdateExpression="SET rate_limit_per_second = :r",
        ExpressionAttributeValues={":r": {"N": str(rate)}},
    )
    config.clear()


def _tokens(key: tuple[str, str]) -> int:
    item = (
        aws.dynamodb()
        .get_item(
            TableName=settings.get().dataplane_table, Key={"PK": {"S": key[0]}, "SK": {"S": key[1]}}
        )
        .get("Item", {})
    )
    return int(item.get("c", {}).get("N", "0"))


def test_instances_sharing_the_table_give_no_more_than_the_rate_in_any_second(dataplane):
    instances = [ratelimit.Limiter() for _ in range(3)]
    granted = Counter()
    for second in range(T0, T0 + 3):
        for step in range(40):  # 40 asks per instance spread over the usable part of it
            now = second + step * 0.018
            for limiter in instances:
                if limiter.acquire("t1", "c1", 5, now=now) == 0.0:
                    granted[second] += 1

    assert granted == {T0: 5, T0 + 1: 5, T0 + 2: 5}


def test_a_higher_rate_is_taken_in_leases_and_still_never_passed(dataplane, rate_writes):
    instances = [ratelimit.Limiter() for _ in range(4)]
    granted = 0
    for step in range(400):
        limiter = instances[step % 4]
        granted += limiter.acquire("t1", "c2", 200, now=T0 + 0.1 + step * 0.001) == 0.0

    # 200 tokens, in leases of 10 (200 / 20): about one write per lease, not one per token.
    assert granted <= 200
    assert granted >= 200 - 4 * 9  # at most a lease's rest stranded per instance
    assert rate_writes["CRATE"] <= 200 // 10 + 2 * 4


def test_threads_of_several_instances_race_for_the_tokens_of_a_second(dataplane):
    instances = [ratelimit.Limiter() for _ in range(3)]
    granted = []

    def ask(limiter):
        for _ in range(10):
            if limiter.acquire("t1", "c3", 7, now=T0 + 0.2) == 0.0:
                granted.append(1)

    threads = [threading.Thread(target=ask, args=(inst,)) for inst in instances for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len(granted) == 7 == _tokens(records.consumer_rate_key("t1", "c3", T0))


def test_no_token_is_given_at_the_end_of_a_second(dataplane):
    limiter = ratelimit.Limiter()

    wait = limiter.acquire("t1", "c4", 5, now=T0 + 0.9)

    assert wait == pytest.approx(0.1)
    assert limiter.acquire("t1", "c4", 5, now=T0 + 1.0) == 0.0


def test_deliveries_refused_get_turns_at_the_rate_from_the_next_second(dataplane):
    limiter = ratelimit.Limiter()
    assert [limiter.acquire("t1", "c5", 2, now=T0) for _ in range(2)] == [0.0, 0.0]

    waits = [limiter.acquire("t1", "c5", 2, now=T0 + 0.25) for _ in range(6)]

    # Two turns a second from the next second on: they come back two a second.
    assert waits == [0.75, 1.25, 1.75, 2.25, 2.75, 3.25]


def test_instances_share_one_queue_of_turns(dataplane):
    instances = [ratelimit.Limiter() for _ in range(3)]
    for _ in range(4):  # the second's tokens
        assert instances[0].acquire("t1", "c7", 4, now=T0 + 0.1) == 0.0

    turns = [T0 + 0.2 + inst.acquire("t1", "c7", 4, now=T0 + 0.2) for inst in instances * 4]

    # Twelve deliveries refused by three instances: twelve distinct turns, four a second.
    assert len({round(t, 3) for t in turns}) == 12
    assert Counter(int(round(t, 3)) for t in turns) == {T0 + 1: 4, T0 + 2: 4, T0 + 3: 4}


def test_a_full_second_is_refused_without_another_token_write(dataplane, rate_writes):
    limiter = ratelimit.Limiter()
    for _ in range(3):
        limiter.acquire("t1", "c6", 3, now=T0 + 0.1)
    writes = rate_writes["CRATE"]

    for _ in range(20):
        assert limiter.acquire("t1", "c6", 3, now=T0 + 0.2) > 0

    assert rate_writes["CRATE"] == writes + 1  # the one refusal that told it the item is full
    assert rate_writes["QUEUE"] == 21  # each refused delivery's turn (one at a time below 40/s)


# --- through the egress -------------------------------------------------------------------


def test_a_delivery_over_the_rate_is_put_back_not_attempted_and_counted(egress, clock):
    consumer = egress.consumer()
    tid = egress.tenant.tenant_id
    _limit(tid, consumer.pk, 2)
    batch = [egress.message(consumer) for _ in range(5)]

    assert egress.run(*batch) == {"batchItemFailures": []}

    assert len(egress.receiver.received) == 2
    put_back = egress.requeued()
    assert len(put_back) == 3
    for message, delay in put_back:
        assert message.delivery.attempt == 1  # not an attempt
        assert delay >= 1
        assert message.delivery.throttled_ms == delay * 1000
    throttled_ids = {m.delivery.delivery_id for m, _ in put_back}
    for delivery_id in throttled_ids:
        assert egress.history(delivery_id) == []  # no attempt recorded
    (stats,) = egress.record_items(
        records.consumer_stats_key(tid, consumer.pk, records.minute())[0]
    )
    assert stats["throttled"] == 3 and stats["ok"] == 2


def test_a_throttled_delivery_attempted_later_shows_its_delay_in_its_record(egress, clock):
    consumer = egress.consumer()
    _limit(egress.tenant.tenant_id, consumer.pk, 1)
    first, second = egress.message(consumer), egress.message(consumer)
    egress.run(first, second)
    ((later, delay),) = egress.requeued()

    clock.value += delay  # it comes back when its delay is over
    egress.run(later)

    assert len(egress.receiver.received) == 2
    (attempt,) = [i for i in egress.history(later.delivery.delivery_id) if i["type"] == "attempt"]
    assert attempt["status"] == records.OK
    assert attempt["throttled_ms"] == delay * 1000
    (went,) = {first.delivery.delivery_id, second.delivery.delivery_id} - {
        later.delivery.delivery_id
    }
    (plain,) = [i for i in egress.history(went) if i["type"] == "attempt"]
    assert "throttled_ms" not in plain  # the one that went at once


def test_a_wait_within_the_guard_is_slept_through_and_recorded(egress, clock):
    consumer = egress.consumer()
    _limit(egress.tenant.tenant_id, consumer.pk, 5)
    clock.value = T0 + 0.9  # in the guard: no token until the next second
    message = egress.message(consumer)

    egress.run(message)

    assert egress.requeued() == []
    (attempt,) = [i for i in egress.history(message.delivery.delivery_id) if i["type"] == "attempt"]
    assert attempt["throttled_ms"] == 100


def test_a_retry_after_a_throttled_attempt_starts_with_no_throttled_time(egress, clock):
    consumer = egress.consumer(url=egress.receiver.url("/fails"))
    egress.receiver.answers["/fails"] = egress_fixtures.Answer(status=500)
    _limit(egress.tenant.tenant_id, consumer.pk, 5)
    message = egress.message(consumer, throttled_ms=3000)

    egress.run(message)

    ((retry, _),) = egress.requeued()
    assert retry.delivery.attempt == 2 and retry.delivery.throttled_ms is None
    assert '"throttled_ms"' not in retry.body()  # absent, as for a delivery never throttled


def test_a_consumer_without_a_limit_takes_no_token(egress, rate_writes):
    consumer = egress.consumer()

    egress.run(*[egress.message(consumer) for _ in range(5)])

    assert len(egress.receiver.received) == 5
    assert rate_writes["CRATE"] == 0


def test_the_throttled_time_travels_in_the_delivery_message():
    d = messages.Delivery(
        delivery_id="msg_1",
        tenant_id="t",
        consumer_id="c",
        subscription_id=None,
        producer_id=None,
        event_id="evt_1",
        event_type="a.b",
        throttled_ms=4000,
    )
    body = messages.delivery_message(d, {"id": "evt_1", "type": "a.b"}).body()

    assert messages.parse(body).delivery.throttled_ms == 4000
    with pytest.raises(messages.MessageError):
        messages.parse(body.replace("4000", '"4000"'))


@pytest.fixture
def slow_claim(dataplane, clock):
    """The idempotency claim (PutItem) takes `seconds.value` of the limiter's clock."""
    seconds = SimpleNamespace(value=0.0)
    table = settings.get().idempotency_table

    def hook(params, **kwargs):
        if params.get("TableName") == table:
            clock.value += seconds.value

    events = aws.dynamodb().meta.events
    events.register("provide-client-params.dynamodb.PutItem", hook)
    yield seconds
    events.unregister("provide-client-params.dynamodb.PutItem", hook)


def test_the_token_is_taken_after_the_idempotency_claim_in_the_requests_own_second(
    egress, clock, slow_claim
):
    consumer = egress.consumer()
    tid = egress.tenant.tenant_id
    _limit(tid, consumer.pk, 1)
    slow_claim.value = 0.8  # received at T0 + 0.1, request ready at T0 + 0.9: in the guard
    message = egress.message(consumer)

    egress.run(message)

    assert len(egress.receiver.received) == 1 and egress.requeued() == []
    taken = {
        second: _tokens(records.consumer_rate_key(tid, consumer.pk, second))
        for second in (T0, T0 + 1)
    }
    assert taken == {T0: 0, T0 + 1: 1}  # none taken before the claim: no token lost
    (attempt,) = [i for i in egress.history(message.delivery.delivery_id) if i["type"] == "attempt"]
    assert attempt["throttled_ms"] == 100  # it waited for the next second


def test_no_token_left_after_the_claim_puts_the_delivery_back_unattempted(
    egress, clock, slow_claim
):
    consumer = egress.consumer()
    tid = egress.tenant.tenant_id
    _limit(tid, consumer.pk, 1)
    assert ratelimit.Limiter().acquire(tid, consumer.pk, 1, now=T0 + 1.0) == 0.0  # elsewhere
    slow_claim.value = 1.0  # the request would go in the next second, whose token is taken
    message = egress.message(consumer)

    egress.run(message)

    assert egress.receiver.received == []
    ((later, delay),) = egress.requeued()
    assert later.delivery.attempt == 1 and egress.history(message.delivery.delivery_id) == []
    slow_claim.value = 0.0
    clock.value += delay + 1

    egress.run(later)  # its idempotency claim was dropped: attempted now, not a duplicate

    assert len(egress.receiver.received) == 1


def test_a_token_whose_write_outlasted_its_seconds_first_half_is_not_used(egress, clock):
    consumer = egress.consumer()
    tid = egress.tenant.tenant_id
    _limit(tid, consumer.pk, 5)
    slow = {"left": 1}

    def hook(params, **kwargs):  # the first token write takes 0.6 s (a loaded machine)
        if params.get("Key", {}).get("SK", {}).get("S", "").startswith("S#") and slow["left"]:
            slow["left"] -= 1
            clock.value += 0.6

    events = aws.dynamodb().meta.events
    events.register("provide-client-params.dynamodb.UpdateItem", hook)
    try:
        message = egress.message(consumer)
        egress.run(message)
    finally:
        events.unregister("provide-client-params.dynamodb.UpdateItem", hook)

    assert len(egress.receiver.received) == 1
    taken = {s: _tokens(records.consumer_rate_key(tid, consumer.pk, s)) for s in (T0, T0 + 1)}
    assert taken == {T0: 1, T0 + 1: 1}  # the late one lost; the request went on the next
    (attempt,) = [i for i in egress.history(message.delivery.delivery_id) if i["type"] == "attempt"]
    assert 300 <= attempt["throttled_ms"] <= 301  # the sleep to the next second
