"""The Lambda deadline governs the batch: no attempt starts that could not finish (the
consumer's timeout plus a margin) before it; the rest is handed back untried."""

from broker.functions import settings
from broker.functions.egress import deliver, handler
from broker.functions.shared import messages, records
from tests.functions import egress_fixtures
from tests.functions.egress_context import Deadline
from tests.functions.egress_fixtures import Answer, sqs_record

egress, receiver = egress_fixtures.egress, egress_fixtures.receiver

NEED_S = 1 + deliver.DEADLINE_MARGIN_MS / 1000  # a 1 s consumer timeout plus the margin


def _run(egress, bodies, context, *, receive_count=1) -> list[str]:
    """Runs the handler; returns the message ids it handed back."""
    records_ = []
    for i, m in enumerate(bodies):
        record = sqs_record(m.body(), egress.queue_arn, message_id=f"m{i}")
        record["attributes"]["ApproximateReceiveCount"] = str(receive_count)
        records_.append(record)
    answer = handler({"Records": records_}, context)
    return [f["itemIdentifier"] for f in answer["batchItemFailures"]]


def _idempotency_items() -> int:
    from broker.functions import aws

    return aws.dynamodb().scan(TableName=settings.get().idempotency_table, Select="COUNT")["Count"]


def test_a_record_that_cannot_finish_before_the_deadline_is_handed_back_untried(egress):
    consumer = egress.consumer(timeout_ms=1000)
    batch = [egress.message(consumer, attempt=2) for _ in range(3)]
    claims = _idempotency_items()

    handed_back = _run(egress, batch, Deadline(NEED_S - 0.5))

    assert handed_back == ["m0", "m1", "m2"]
    assert egress.receiver.received == []
    assert egress.requeued() == []  # no retry scheduled: it was not an attempt
    assert _idempotency_items() == claims  # no claim left to block it later

    # SQS hands out the same bodies again: attempted now, as attempt 2 still (the receive
    # count is not the attempt count).
    assert _run(egress, batch, Deadline(900), receive_count=2) == []
    assert len(egress.receiver.received) == 3
    for m in batch:
        (attempt,) = [i for i in egress.history(m.delivery.delivery_id) if i["SK"] != "EVENT"]
        assert attempt["attempt"] == 2
        assert attempt["status"] == records.OK


def test_a_batch_starts_attempts_while_they_fit_and_hands_back_the_rest(egress):
    """A silo consumer takes its records one at a time: with ten answers of 0.5 s and about
    1.2 s to spare, a few are tried and the others are handed back, none both ways; and the
    invocation ends before its deadline."""
    egress.receiver.answers["/slow"] = Answer(delay=0.5)
    consumer = egress.consumer(url=egress.receiver.url("/slow"), timeout_ms=1000)
    batch = [egress.message(consumer) for _ in range(10)]
    context = Deadline(NEED_S + 1.2)

    handed_back = _run(egress, batch, context)

    assert context.get_remaining_time_in_millis() > 0
    tried = {r.headers["webhook-id"] for r in egress.receiver.received}
    back = {batch[int(i[1:])].delivery.delivery_id for i in handed_back}
    assert tried and back
    assert tried.isdisjoint(back)
    assert tried | back == {m.delivery.delivery_id for m in batch}
    assert egress.requeued() == []


def test_a_record_handed_back_often_goes_back_as_a_new_message_instead(egress):
    """The queue's redrive dead-letters a message at its 10th receive: before hand-backs could
    get it there, the record is sent back as a new message, the same body, and succeeds."""
    consumer = egress.consumer(timeout_ms=1000)
    message = egress.message(consumer, attempt=3)

    handed_back = _run(
        egress, [message], Deadline(NEED_S - 0.5), receive_count=deliver.HANDBACK_REQUEUE_AT
    )

    assert handed_back == []
    ((again, delay),) = egress.requeued()
    assert again.body() == message.body()
    assert again.delivery.attempt == 3
    assert delay == 0
    assert egress.receiver.received == []


def test_without_a_deadline_every_record_is_tried(egress):
    """Outside Lambda (`process_body` on its own, no context) nothing is handed back."""
    consumer = egress.consumer(timeout_ms=1000)
    message = egress.message(consumer)

    outcome = deliver.process_body(message.body(), source_arn=egress.queue_arn)

    assert outcome == deliver.DELIVERED
    assert messages.parse(message.body()).delivery.attempt == 1
