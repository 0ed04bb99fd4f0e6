"""Replay numbers: the replay jobs and the delivery resend share one allocator, so no two sends
of one delivery carry the same (delivery id, replay, attempt), the key on which the egress
drops a message as an SQS duplicate."""

import threading
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection, transaction
from django_tenants.utils import tenant_context

from broker.deadletters import runner, services
from broker.deadletters.models import DeadLetter, ReplayCounter
from broker.deadletters.numbers import replay_number_allocate
from broker.deliveries.services import delivery_resend
from broker.functions.shared import messages, records
from tests import dataplane_items as dp
from tests.helpers.deadletters import dead_letter, ingest_all, purge, send_to_dlq
from tests.helpers.deadletters import receive_all as _receive_all

pytestmark = pytest.mark.django_db


@pytest.fixture
def queues(world):
    for url in world.a.delivery_queues:
        purge(url)
    dp.clear()
    yield world.a.delivery_queues
    for url in world.a.delivery_queues:
        purge(url)
    dp.clear()


def sent(queues) -> list[messages.Delivery]:
    return [messages.parse(m["Body"]).delivery for url in queues for m in _receive_all(url)]


def _dead_delivery(world, consumer):
    """A delivery that failed for good: its attempts recorded, its letter ingested."""
    body = dead_letter(world.a, consumer.pk)
    d = body.delivery
    dp.attempt(
        world.a,
        consumer.pk,
        delivery_id=d.delivery_id,
        at=datetime.now(UTC) - timedelta(minutes=1),
        status=records.DEAD,
        http_status=503,
        event_id=d.event_id,
        attempt_no=5,
    )
    send_to_dlq(body)
    ingest_all()
    with tenant_context(world.a):
        return DeadLetter.objects.get(delivery_id=d.delivery_id)


def _resend(world, letter):
    with tenant_context(world.a):
        return delivery_resend(tenant=world.a, actor=world.admin_a, delivery_id=letter.delivery_id)


def _replay(world, letter):
    with tenant_context(world.a):
        [job] = services.replay_start(tenant=world.a, actor=world.admin_a, ids=[letter.pk]).jobs
        assert runner.replay_job_run(tenant=world.a, job_id=job.pk, sleep=lambda s: None) == (
            "completed"
        )
        letter.refresh_from_db()
        return letter.replay_count


def test_a_resend_then_a_replay_then_a_resend_of_one_delivery_carry_three_numbers(
    world, dlq, consumer_a, queues
):
    letter = _dead_delivery(world, consumer_a)
    numbers = [
        _resend(world, letter)["replay"],
        _replay(world, letter),
        _resend(world, letter)["replay"],
    ]
    assert numbers == [1, 2, 3]
    got = sent(queues)
    # Three distinct idempotency keys: the egress delivers each send, drops none.
    assert sorted((d.delivery_id, d.replay, d.attempt) for d in got) == [
        (letter.delivery_id, n, 1) for n in (1, 2, 3)
    ]


def test_a_replay_then_a_resend_do_not_share_a_number(world, dlq, consumer_a, queues):
    letter = _dead_delivery(world, consumer_a)
    assert _replay(world, letter) == 1
    assert _resend(world, letter)["replay"] == 2
    assert sorted(d.replay for d in sent(queues)) == [1, 2]


def test_two_resends_before_any_record_of_the_first_take_two_numbers(
    world, dlq, consumer_a, queues
):
    letter = _dead_delivery(world, consumer_a)
    # The records still say replay 0 for both: the numbers come from the allocator.
    assert [_resend(world, letter)["replay"] for _ in range(2)] == [1, 2]
    assert sorted(d.replay for d in sent(queues)) == [1, 2]


def test_a_number_fixed_by_a_cancelled_job_is_not_given_to_a_resend(world, dlq, consumer_a, queues):
    letter = _dead_delivery(world, consumer_a)
    with tenant_context(world.a):
        [job] = services.replay_start(tenant=world.a, actor=world.admin_a, ids=[letter.pk]).jobs
        # The job fixed the letter's number and was stopped before its send was recorded.
        with transaction.atomic():
            runner._fix_numbers([DeadLetter.objects.select_for_update().get(pk=letter.pk)])
        services.replay_job_cancel(actor=world.admin_a, job=job)
        letter.refresh_from_db()
        assert (letter.status, letter.replay_number) == ("pending", 1)
    assert _resend(world, letter)["replay"] == 2


def test_the_allocator_counts_from_the_highest_number_known(world):
    with tenant_context(world.a):
        assert replay_number_allocate(delivery_id="msg_floor", floor=4) == 5
        assert replay_number_allocate(delivery_id="msg_floor", floor=2) == 6
        assert replay_number_allocate(delivery_id="msg_floor", floor=9) == 10


def test_concurrent_allocations_for_one_delivery_never_share_a_number(world):
    """Threads with their own connections and transactions (committed, then cleaned up)."""
    delivery_id = "msg_concurrent_" + messages.new_delivery_id()[-8:]
    threads, per_thread = 4, 15
    start = threading.Barrier(threads)
    got, errors = [], []

    def allocate():
        try:
            with tenant_context(world.a):
                start.wait(timeout=10)
                for _ in range(per_thread):
                    with transaction.atomic():
                        got.append(replay_number_allocate(delivery_id=delivery_id, floor=0))
        except Exception as exc:  # reported below
            errors.append(exc)
        finally:
            connection.close()

    def cleanup():
        with tenant_context(world.a):
            ReplayCounter.objects.filter(delivery_id=delivery_id).delete()
        connection.close()

    workers = [threading.Thread(target=allocate) for _ in range(threads)]
    try:
        for w in workers:
            w.start()
        for w in workers:
            w.join(timeout=60)
    finally:
        t = threading.Thread(target=cleanup)
        t.start()
        t.join(timeout=30)
    assert not errors, errors
    assert sorted(got) == list(range(1, threads * per_thread + 1))
