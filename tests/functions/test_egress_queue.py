"""Egress around the delivery: duplicates, replays, SQS consumers, the in-flight cap, partial
batch failures, unusable consumers and the DynamoDB write budget of the delivery records."""

import json
import uuid

from botocore.exceptions import ClientError

from broker.functions import aws, settings
from broker.functions.egress import flush_records, inflight
from broker.functions.shared import messages, records
from tests.functions import egress_fixtures
from tests.functions.egress_fixtures import Answer
from tests.helpers.functions import new_queue, receive_all

egress, receiver = egress_fixtures.egress, egress_fixtures.receiver


def test_a_duplicated_sqs_message_is_posted_once(egress):
    consumer = egress.consumer()
    message = egress.message(consumer)

    first = egress.run(message, message)  # the same message twice in one batch
    second = egress.run(message)  # and once more later

    assert first == second == {"batchItemFailures": []}
    assert len(egress.receiver.received) == 1


def test_a_replay_of_a_delivered_message_is_posted_again_with_the_same_webhook_id(egress):
    consumer = egress.consumer()
    message = egress.message(consumer)
    egress.run(message)

    replay = egress.message(consumer)
    replay.delivery = messages.Delivery(**{**message.delivery.__dict__, "replay": 1})
    replay.event = message.event
    egress.run(replay)

    assert len(egress.receiver.received) == 2
    ids = {r.headers["webhook-id"] for r in egress.receiver.received}
    assert ids == {message.delivery.delivery_id}


def test_an_sqs_consumer_gets_the_event_with_the_delivery_metadata(egress):
    url, arn = new_queue()
    consumer = egress.consumer(kind="sqs", queue_arn=arn)
    message = egress.message(consumer)

    egress.run(message)

    got = aws.sqs().receive_message(QueueUrl=url, MessageAttributeNames=["All"])["Messages"]
    (sent,) = got
    assert json.loads(sent["Body"]) == message.event
    attrs = {k: v["StringValue"] for k, v in sent["MessageAttributes"].items()}
    assert attrs["webhook-id"] == message.delivery.delivery_id
    assert attrs["event_type"] == "order.created"
    assert (attrs["attempt"], attrs["replay"]) == ("1", "0")
    assert egress.receiver.received == []


def test_an_sqs_consumer_whose_queue_is_gone_is_a_failed_attempt(egress):
    consumer = egress.consumer(
        kind="sqs", queue_arn="arn:aws:sqs:eu-west-1:123456789012:no-such-queue"
    )

    egress.run(egress.message(consumer, attempt=3))

    (letter,) = egress.dead_letters()
    assert letter.failure.error_kind == messages.ERROR_SQS


def test_a_disabled_or_deleted_consumer_dead_letters_the_delivery_for_a_later_replay(egress):
    disabled = egress.consumer(enabled=False)
    deleted = egress.message(egress.consumer(), tenant=egress.tenant)
    deleted.delivery.consumer_id = str(uuid.uuid4())  # no such consumer item

    egress.run(egress.message(disabled), deleted)

    assert egress.receiver.received == []
    letters = egress.dead_letters()
    assert [m.failure.error_kind for m in letters] == [messages.ERROR_CONSUMER_GONE] * 2
    assert [m.failure.attempts for m in letters] == [0, 0]


def test_a_malformed_message_goes_to_the_dlq_as_it_is(egress):
    assert egress.run("{not json") == {"batchItemFailures": []}

    (sent,) = egress.sent_to(egress.dlq_url)
    assert sent["MessageBody"] == "{not json"


def test_a_pool_consumer_at_its_in_flight_cap_gets_its_message_put_back(egress, dataplane):
    pool = dataplane.tenant(model="pool")
    consumer = egress.consumer(tenant=pool, concurrency=1)
    other = inflight.Slots()  # another function instance is delivering to this consumer
    assert other.acquire(pool.tenant_id, consumer.pk, 1)

    message = egress.message(consumer, tenant=pool)
    egress.run(message)

    assert egress.receiver.received == []
    ((back, delay),) = egress.requeued()
    assert back.delivery.attempt == 1  # not counted as an attempt
    assert 0 < delay <= 10

    other.release_all()
    egress.run(back)
    assert len(egress.receiver.received) == 1


def test_a_failed_record_is_reported_alone_and_its_neighbours_are_not_sent_again(egress):
    egress.receiver.answers["/flaky"] = Answer(status=500)
    ok = egress.consumer()
    flaky = egress.consumer(url=egress.receiver.url("/flaky"))
    a, b, c = egress.message(ok), egress.message(flaky), egress.message(ok)

    def sqs_down(params, **kwargs):
        # The retry of b cannot be re-enqueued: SQS is unavailable (a transient platform error).
        if params.get("QueueUrl") == egress.queue_url:
            raise ClientError({"Error": {"Code": "ServiceUnavailable"}}, "SendMessage")

    events = aws.sqs().meta.events
    events.register("provide-client-params.sqs.SendMessage", sqs_down)
    try:
        answer = egress.run(a, b, c, message_ids=["a", "b", "c"])
    finally:
        events.unregister("provide-client-params.sqs.SendMessage", sqs_down)

    assert answer == {"batchItemFailures": [{"itemIdentifier": "b"}]}
    # (The batch's attempts run concurrently: in any order.)
    assert sorted(r.path for r in egress.receiver.received) == ["/flaky", "/hook", "/hook"]

    # SQS hands out b again (only b): its attempt runs again, the neighbours are not re-sent.
    assert egress.run(b, message_ids=["b"]) == {"batchItemFailures": []}
    assert sorted(r.path for r in egress.receiver.received) == [
        "/flaky",
        "/flaky",
        "/hook",
        "/hook",
    ]
    retry, _ = egress.requeued()[-1]  # (the first try, refused by SQS, was seen by the hook)
    assert retry.delivery.attempt == 2


def test_every_attempt_is_recorded_with_its_event_and_counted_per_minute(egress):
    consumer = egress.consumer()
    message = egress.message(consumer)
    egress.run(message)

    tid = egress.tenant.tenant_id
    items = {i["SK"]: i for i in egress.history(message.delivery.delivery_id)}
    attempt = items["ATTEMPT#0000#0001"]
    assert attempt["status"] == records.OK and attempt["http_status"] == 200
    assert attempt["event_type"] == "order.created" and attempt["test"] is False
    assert json.loads(items["EVENT"]["event"]) == message.event
    log_pk = records.consumer_log_key(tid, consumer.pk, "", "", 0, 0)[0]
    (log,) = egress.record_items(log_pk)
    assert log["delivery_id"] == message.delivery.delivery_id
    minute = log["at"][:16]
    (stats,) = egress.record_items(records.consumer_stats_key(tid, consumer.pk, minute)[0])
    assert stats["ok"] == 1 and sum(v for k, v in stats.items() if k.startswith("lat_")) == 1
    (tenant_stats,) = egress.record_items(records.tenant_stats_key(tid, minute)[0])
    assert tenant_stats["delivered"] == 1


def test_records_and_counters_cost_at_most_a_fifth_of_a_write_call_per_delivery(egress):
    """Counted with a botocore hook on the client (egress.writes): every BatchWriteItem,
    UpdateItem or PutItem on the data-plane table; the idempotency table is not counted."""
    consumer = egress.consumer()
    deliveries = 0
    for _ in range(10):
        egress.run(*[egress.message(consumer) for _ in range(10)])
        deliveries += 10
    flush_records()  # what stays buffered is written too, and counted

    calls = sum(egress.writes.values())
    print(f"silo: {calls / deliveries:.2f} write calls per delivery {dict(egress.writes)}")
    assert len(egress.receiver.received) == deliveries
    assert calls / deliveries <= 0.2, dict(egress.writes)
    tid = egress.tenant.tenant_id
    log_pk = records.consumer_log_key(tid, consumer.pk, "", "", 0, 0)[0]
    assert len(egress.record_items(log_pk)) == deliveries


def test_a_partial_batch_writes_its_records_at_once(egress):
    consumer = egress.consumer()
    message = egress.message(consumer)
    egress.run(message)

    # No flush_records() here: the handler wrote them after the (partial) batch.
    answer = aws.dynamodb().query(
        TableName=settings.get().dataplane_table,
        KeyConditionExpression="PK = :pk",
        ExpressionAttributeValues={
            ":pk": {"S": records.delivery_event_key(egress.tenant.tenant_id, "x")[0][:-1]}
        },
    )
    assert answer["Count"] == 0  # sanity: the query above is on another key
    pk, _ = records.delivery_event_key(egress.tenant.tenant_id, message.delivery.delivery_id)
    got = aws.dynamodb().query(
        TableName=settings.get().dataplane_table,
        KeyConditionExpression="PK = :pk",
        ExpressionAttributeValues={":pk": {"S": pk}},
    )
    assert got["Count"] == 2  # the attempt and the event


def test_messages_sent_back_keep_tenant_and_consumer_attributes(egress):
    egress.receiver.answers["/hook"] = Answer(status=500)
    consumer = egress.consumer()
    egress.run(egress.message(consumer))

    (sent,) = egress.sent_to(egress.queue_url)
    assert sent["MessageAttributes"]["tenant_id"]["StringValue"] == egress.tenant.tenant_id
    assert sent["MessageAttributes"]["consumer_id"]["StringValue"] == consumer.pk
    assert receive_all  # the shared helper stays importable for readers of these queues


def test_a_pool_consumer_adds_two_in_flight_counter_calls_per_batch(egress, dataplane):
    """The in-flight cap (pool tenants only) takes and gives back one slot per consumer per
    batch: two UpdateItem calls, on top of the records' budget."""
    pool = dataplane.tenant(model="pool")
    consumer = egress.consumer(tenant=pool, concurrency=5)
    for _ in range(10):
        egress.run(*[egress.message(consumer, tenant=pool) for _ in range(10)])
    flush_records()

    calls = sum(egress.writes.values())
    print(f"pool: {calls / 100:.2f} write calls per delivery {dict(egress.writes)}")
    assert len(egress.receiver.received) == 100
    assert calls / 100 <= 0.2 + 0.2, dict(egress.writes)
