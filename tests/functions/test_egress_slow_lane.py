"""The slow lane (egress/slowlane.py): a pool consumer that times out is moved to a queue of its
own, so that its deliveries stop holding the shared queues' invocations; a fast answer there
brings it back."""

import threading
import time
import uuid

import pytest

from broker.functions import settings
from broker.functions.egress import deliver, handler, inflight, slowlane
from broker.functions.shared import messages
from tests.functions import egress_fixtures
from tests.functions.egress_fixtures import Answer, sqs_record
from tests.helpers.functions import new_queue

egress, receiver = egress_fixtures.egress, egress_fixtures.receiver


@pytest.fixture
def slow_queue(egress, monkeypatch):
    name = f"test-slow-{uuid.uuid4().hex[:12]}"
    url, arn = new_queue(name)
    monkeypatch.setenv("EGRESS_SLOW_QUEUE", name)
    settings.reload()
    return url, arn


def _run(egress, message, source_arn) -> dict:
    event = {"Records": [sqs_record(message.body(), source_arn)]}
    return handler(event, None)


def test_a_consumer_that_times_out_moves_to_the_slow_lane_and_back_when_fast(
    egress, dataplane, receiver, slow_queue
):
    slow_url, slow_arn = slow_queue
    pool = dataplane.tenant(model="pool")
    consumer = egress.consumer(
        tenant=pool, url=receiver.url("/slow"), timeout_ms=300, concurrency=5
    )
    receiver.answers["/slow"] = Answer(delay=1.0)

    # Times out on the shared queue: tried once, its retry sent to the slow lane.
    first = egress.message(consumer, tenant=pool)
    assert _run(egress, first, egress.queue_arn) == {"batchItemFailures": []}
    slowlane.written()
    assert len(receiver.received) == 1
    (retry,) = [messages.parse(p["MessageBody"]) for p in egress.sent_to(slow_url)]
    assert (retry.delivery.delivery_id, retry.delivery.attempt) == (first.delivery.delivery_id, 2)
    assert egress.requeued() == []

    # Its next delivery from a shared queue is moved there untried, as it is.
    second = egress.message(consumer, tenant=pool)
    assert deliver.process_body(second.body(), source_arn=egress.queue_arn) == deliver.SLOW_LANE
    assert len(receiver.received) == 1
    assert egress.sent_to(slow_url)[-1]["MessageBody"] == second.body()

    # On the slow lane it is tried; a fast answer takes the consumer off it.
    receiver.answers["/slow"] = Answer()
    assert deliver.process_body(second.body(), source_arn=slow_arn) == deliver.DELIVERED
    assert len(receiver.received) == 2
    slowlane.written()
    third = egress.message(consumer, tenant=pool)
    assert deliver.process_body(third.body(), source_arn=egress.queue_arn) == deliver.DELIVERED
    assert len(receiver.received) == 3


def test_a_fast_consumer_beside_it_is_never_moved(egress, dataplane, receiver, slow_queue):
    slow_url, _ = slow_queue
    pool = dataplane.tenant(model="pool")
    slow = egress.consumer(tenant=pool, url=receiver.url("/slow"), timeout_ms=300, concurrency=5)
    fast = egress.consumer(tenant=pool, url=receiver.url("/fast"), concurrency=5)
    receiver.answers["/slow"] = Answer(delay=1.0)

    _run(egress, egress.message(slow, tenant=pool), egress.queue_arn)
    slowlane.written()
    outcome = deliver.process_body(
        egress.message(fast, tenant=pool).body(), source_arn=egress.queue_arn
    )

    assert outcome == deliver.DELIVERED
    assert [r.path for r in receiver.received] == ["/slow", "/fast"]
    assert all(
        messages.parse(p["MessageBody"]).delivery.consumer_id == slow.pk
        for p in egress.sent_to(slow_url)
    )


def test_without_a_slow_lane_nothing_moves_and_nothing_is_written(egress, dataplane, receiver):
    pool = dataplane.tenant(model="pool")
    consumer = egress.consumer(
        tenant=pool, url=receiver.url("/slow"), timeout_ms=300, concurrency=5
    )
    receiver.answers["/slow"] = Answer(delay=1.0)

    _run(egress, egress.message(consumer, tenant=pool), egress.queue_arn)
    slots = inflight.Slots()
    assert slots.acquire(pool.tenant_id, consumer.pk, 5)
    flagged = slots.slow(pool.tenant_id, consumer.pk)
    slots.release_all()

    assert not flagged
    assert [m.delivery.attempt for m, _ in egress.requeued()] == [2]


def test_a_consumer_is_moved_while_its_first_slow_attempt_runs_and_back_once_it_answers(
    egress, dataplane, receiver, slow_queue, monkeypatch
):
    monkeypatch.setattr(slowlane, "SLOW_ATTEMPT_MS", 300)
    slow_url, _ = slow_queue
    pool = dataplane.tenant(model="pool")
    consumer = egress.consumer(
        tenant=pool, url=receiver.url("/slow"), timeout_ms=5000, concurrency=5
    )
    receiver.answers["/slow"] = Answer(delay=2.0)
    first = threading.Thread(
        target=_run, args=(egress, egress.message(consumer, tenant=pool), egress.queue_arn)
    )
    first.start()
    time.sleep(1.0)  # the first attempt has run past SLOW_ATTEMPT_MS, not to its end
    slowlane.written()

    second = egress.message(consumer, tenant=pool)
    moved = deliver.process_body(second.body(), source_arn=egress.queue_arn)
    first.join()  # answered within its timeout: the flag is taken back
    slowlane.written()
    receiver.answers["/slow"] = Answer()
    third = egress.message(consumer, tenant=pool)
    tried = deliver.process_body(third.body(), source_arn=egress.queue_arn)

    assert (moved, tried) == (deliver.SLOW_LANE, deliver.DELIVERED)
    assert [p["MessageBody"] for p in egress.sent_to(slow_url)] == [second.body()]
    assert len(receiver.received) == 2
