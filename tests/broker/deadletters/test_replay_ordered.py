"""Dead letters of an ordered subscription: read from the FIFO DLQ, and replayed to their keys'
FIFO queues in their keys' message groups, each key's letters in their original order."""

import time
import uuid

import pytest
from django_tenants.utils import tenant_context

from broker.deadletters import ingest, runner, services
from broker.deadletters.models import DeadLetter
from broker.functions.shared import messages, ordering
from core import aws
from tests.helpers.deadletters import dead_letter, ingest_all, purge
from tests.helpers.functions import receive_fifo, valid_sqs_id

pytestmark = pytest.mark.django_db


@pytest.fixture
def fifo_dlq(world, db):
    url = aws.queue_url(aws.central_fifo_dlq_name())
    purge(url)
    yield url
    purge(url)


@pytest.fixture
def ordered_queues(world):
    urls = list(world.a.ordered_queues)
    for url in urls:
        purge(url)
    yield urls
    for url in urls:
        purge(url)


def _ordered_letters(world, consumer, keys, per_key):
    """Letters of one subscription, dead-lettered key by key in turns (a0 b0 c0 a1 …), sent
    to the FIFO DLQ in their keys' groups as the egress sends them."""
    sub = str(uuid.uuid4())
    sent = []
    for seq in range(per_key):
        for key in keys:
            letter = dead_letter(
                world.a, consumer.pk, subscription_id=sub, data={"key": key, "seq": seq}
            )
            letter.delivery.ordering_key = key
            letter.delivery.group_id = ordering.group_id(str(world.a.pk), sub, key)
            aws.sqs().send_message(
                QueueUrl=aws.queue_url(aws.central_fifo_dlq_name()),
                MessageBody=letter.body(),
                MessageAttributes=letter.attributes(),
                MessageGroupId=letter.delivery.group_id,
                MessageDeduplicationId=f"{letter.delivery.delivery_id}-0-dead",
            )
            sent.append(letter)
            time.sleep(0.002)  # distinct dead-letter times, as the egress's one at a time
    return sub, sent


def test_the_ingest_reads_the_fifo_dlq_and_keeps_each_letters_key(world, fifo_dlq, consumer_a):
    _, sent = _ordered_letters(world, consumer_a, ["a"], 2)
    result = ingest_all()
    assert result.stored == 2
    with tenant_context(world.a):
        letters = list(
            DeadLetter.objects.filter(delivery_id__in=[m.delivery.delivery_id for m in sent])
        )
    assert {(x.metadata["ordering_key"], x.metadata["group_id"]) for x in letters} == {
        ("a", sent[0].delivery.group_id)
    }
    assert ingest.dlq_urls()[1] == fifo_dlq


def test_a_replay_sends_each_keys_letters_in_order_to_its_fifo_queue_and_group(
    world, fifo_dlq, consumer_a, ordered_queues, django_capture_on_commit_callbacks
):
    _, sent = _ordered_letters(world, consumer_a, ["a", "b", "c"], 5)
    ingest_all()
    with tenant_context(world.a):
        with django_capture_on_commit_callbacks(execute=False):
            outcome = services.replay_start(
                tenant=world.a, actor=world.admin_a, filter={"consumer": str(consumer_a.pk)}
            )
        [job] = outcome.jobs
        assert runner.replay_job_run(tenant=world.a, job_id=job.pk, sleep=lambda s: None) == (
            "completed"
        )
    got = [m for url in ordered_queues for m in receive_fifo(url)]
    by_key = {}
    for m in got:
        d = m["message"].delivery
        assert (
            m["group"]
            == d.group_id
            == ordering.group_id(str(world.a.pk), d.subscription_id, d.ordering_key)
        )
        assert m["dedup"] == f"{d.delivery_id}-{d.replay}" and d.replay == 1
        assert valid_sqs_id(m["group"]) and valid_sqs_id(m["dedup"])
        by_key.setdefault(d.ordering_key, []).append(m["message"].event["data"]["seq"])
    assert by_key == {k: [0, 1, 2, 3, 4] for k in "abc"}


def test_a_refused_letter_holds_back_its_keys_later_letters_only(
    world, fifo_dlq, consumer_a, ordered_queues, monkeypatch, django_capture_on_commit_callbacks
):
    _, sent = _ordered_letters(world, consumer_a, ["a", "b"], 3)
    ingest_all()
    refused_id = sent[2].delivery.delivery_id  # a1
    client = aws.sqs()
    real = client.send_message_batch

    def send_message_batch(**kwargs):
        import json

        keep, out_failed = [], []
        for e in kwargs["Entries"]:
            body = json.loads(e["MessageBody"])
            (out_failed if body["delivery"]["delivery_id"] == refused_id else keep).append(e)
        out = real(QueueUrl=kwargs["QueueUrl"], Entries=keep) if keep else {"Successful": []}
        out["Failed"] = [
            {"Id": e["Id"], "SenderFault": True, "Code": "InvalidParameterValue"}
            for e in out_failed
        ]
        return out

    monkeypatch.setattr(client, "send_message_batch", send_message_batch)
    with tenant_context(world.a):
        with django_capture_on_commit_callbacks(execute=False):
            [job] = services.replay_start(
                tenant=world.a, actor=world.admin_a, filter={"consumer": str(consumer_a.pk)}
            ).jobs
        runner.replay_job_run(tenant=world.a, job_id=job.pk, sleep=lambda s: None)
        pending = set(
            DeadLetter.objects.filter(status="pending").values_list("delivery_id", flat=True)
        )
    assert pending == {sent[2].delivery.delivery_id, sent[4].delivery.delivery_id}  # a1, a2
    got = [m for url in ordered_queues for m in receive_fifo(url)]
    seqs = {}
    for m in got:
        seqs.setdefault(m["message"].delivery.ordering_key, []).append(
            m["message"].event["data"]["seq"]
        )
    assert seqs == {"a": [0], "b": [0, 1, 2]}


def test_a_resent_ordered_delivery_goes_to_its_keys_fifo_queue_and_group(
    world, consumer_a, ordered_queues
):
    from datetime import UTC, datetime

    from broker.deliveries.services import delivery_resend
    from tests import dataplane_items as dp

    sub, delivery_id = str(uuid.uuid4()), messages.new_delivery_id()
    dp.attempt(
        world.a,
        consumer_a.pk,
        delivery_id=delivery_id,
        at=datetime.now(UTC),
        status="dead",
        http_status=503,
        subscription_id=sub,
        ordering_key="order-9",
    )
    with tenant_context(world.a):
        out = delivery_resend(tenant=world.a, actor=world.admin_a, delivery_id=delivery_id)
    [got] = [{**m, "queue": url} for url in ordered_queues for m in receive_fifo(url)]
    d = got["message"].delivery
    group = ordering.group_id(str(world.a.pk), sub, "order-9")
    assert (d.delivery_id, d.ordering_key, d.group_id, got["group"]) == (
        delivery_id,
        "order-9",
        group,
        group,
    )
    assert got["dedup"] == f"{delivery_id}-{out['replay']}" and valid_sqs_id(got["dedup"])
    assert got["queue"] == ordering.queue_for({"ordered_queues": ordered_queues}, group)
