"""SQS producers: records of a producer's source queue take the ingress's checks and routing,
and the handler reports which records to keep (partial batch response)."""

import json
import uuid

import pytest

from broker.functions import aws, config
from broker.functions.ingress import sqs_source_handler
from tests.helpers.functions import new_queue

ORDER = {"type": "order.created", "data": {"total": 12}}


def record(queue_arn, body, message_id=None):
    return {
        "messageId": message_id or str(uuid.uuid4()),
        "receiptHandle": "rh",
        "body": body if isinstance(body, str) else json.dumps(body),
        "attributes": {"ApproximateReceiveCount": "1"},
        "messageAttributes": {},
        "md5OfBody": "",
        "eventSource": "aws:sqs",
        "eventSourceARN": queue_arn,
        "awsRegion": "eu-west-1",
    }


def run(records):
    out = sqs_source_handler({"Records": records}, None)
    return {f["itemIdentifier"] for f in out["batchItemFailures"]}


@pytest.fixture
def source(dataplane):
    t = dataplane.tenant()
    _, t.queue_arn = new_queue()
    t.prod = t.producer(kind="sqs", source_queue_arn=t.queue_arn, allowed_event_types=["order.*"])
    t.cons = t.consumer()
    t.route("order.*", t.cons)
    return t


def test_records_of_a_source_queue_are_routed_as_their_producers_events(source):
    assert run([record(source.queue_arn, ORDER), record(source.queue_arn, ORDER)]) == set()
    sent = source.deliveries()
    assert len(sent) == 2
    assert {(m.delivery.tenant_id, m.delivery.producer_id) for m in sent} == {
        (source.tenant_id, source.prod.pk)
    }
    assert sent[0].event["data"] == ORDER["data"]


def test_records_that_can_never_pass_are_dropped_and_the_rest_routed(source):
    failed = run(
        [
            record(source.queue_arn, "not json"),
            record(source.queue_arn, {"type": "order.created"}),
            record(source.queue_arn, {"type": "user.created", "data": {}}),
            record(source.queue_arn, ORDER),
        ]
    )
    assert failed == set()  # retrying them cannot help
    assert len(source.deliveries()) == 1


def test_a_repeated_producer_id_in_the_queue_is_routed_once(source):
    event = {**ORDER, "id": "o-1"}
    assert run([record(source.queue_arn, event)]) == set()
    assert run([record(source.queue_arn, event)]) == set()
    assert len(source.deliveries()) == 1


def test_records_of_an_unknown_queue_stay_in_it(dataplane):
    _, arn = new_queue()
    ids = ["m1", "m2"]
    assert run([record(arn, ORDER, i) for i in ids]) == set(ids)


def test_a_disabled_producers_records_stay_in_the_queue(dataplane):
    t = dataplane.tenant()
    _, arn = new_queue()
    t.producer(kind="sqs", source_queue_arn=arn, enabled=False)
    assert run([record(arn, ORDER, "m1")]) == {"m1"}


def test_a_suspended_tenants_records_stay_in_the_queue(source):
    source.write_tenant(status="suspended")
    config.clear()
    assert run([record(source.queue_arn, ORDER, "m1")]) == {"m1"}
    assert source.deliveries() == []


def test_over_the_rate_the_whole_batch_stays_in_the_queue(dataplane):
    t = dataplane.tenant()
    _, arn = new_queue()
    t.producer(kind="sqs", source_queue_arn=arn, rate=1, burst=2)
    records = [record(arn, ORDER, f"m{i}") for i in range(3)]
    assert run(records) == {"m0", "m1", "m2"}


def test_over_the_daily_quota_the_records_stay_in_the_queue(dataplane):
    t = dataplane.tenant(quotas={"daily_event_quota": 1})
    _, arn = new_queue()
    t.producer(kind="sqs", source_queue_arn=arn)
    assert run([record(arn, ORDER, "m0")]) == set()
    assert run([record(arn, ORDER, "m1")]) == {"m1"}


def test_only_the_records_whose_messages_sqs_refused_are_reported(source, monkeypatch):
    client = aws.sqs()
    real = client.send_message_batch

    def refuse_second(**kwargs):
        entries = kwargs["Entries"]
        out = real(QueueUrl=kwargs["QueueUrl"], Entries=[e for e in entries if e["Id"] != "1"])
        out["Failed"] = [
            {"Id": "1", "SenderFault": False, "Code": "InternalError"}
            for e in entries
            if e["Id"] == "1"
        ]
        return out

    monkeypatch.setattr(client, "send_message_batch", refuse_second)
    failed = run([record(source.queue_arn, ORDER, f"m{i}") for i in range(3)])
    assert failed == {"m1"}
    assert len(source.deliveries()) == 2


def test_a_queue_the_producer_moved_away_from_is_not_its_source_any_more(source):
    _, new_arn = new_queue()
    # The producer item now names the new queue; the old queue's item is not tombstoned yet.
    source.producer(kind="sqs", source_queue_arn=new_arn, producer_id=source.prod.pk)
    config.clear()
    assert run([record(source.queue_arn, ORDER, "m1")]) == {"m1"}
    assert run([record(new_arn, ORDER, "m2")]) == set()


def test_a_failing_dynamodb_keeps_the_whole_batch(source, monkeypatch):
    from botocore.exceptions import ClientError

    client = aws.dynamodb()

    def throttled(**kwargs):
        raise ClientError({"Error": {"Code": "ThrottlingException", "Message": "slow"}}, "X")

    monkeypatch.setattr(client, "update_item", throttled)
    assert run([record(source.queue_arn, ORDER, "m1"), record(source.queue_arn, ORDER, "m2")]) == {
        "m1",
        "m2",
    }
