"""Egress idempotency: one conditional claim per delivery, the COMPLETED marks of a batch
written together at its end (broker/functions/egress/idempotency.py), in the items Powertools'
idempotency utility wrote before."""

from collections import Counter

import pytest
from botocore.exceptions import ClientError

from broker.functions import aws, settings
from broker.functions.egress import handler
from broker.functions.local.events import LambdaContext
from tests.functions import egress_fixtures
from tests.functions.egress_fixtures import sqs_record

egress, receiver = egress_fixtures.egress, egress_fixtures.receiver


def _idempotency_calls(*, fail_batch_write=False):
    """Counts the egress's write calls on the idempotency table by operation; optionally makes
    its BatchWriteItem fail as an unavailable DynamoDB would. Returns (counts, unregister)."""
    calls: Counter = Counter()
    table = settings.get().idempotency_table

    def hook(params, model, **kwargs):
        if params.get("TableName") == table or table in (params.get("RequestItems") or {}):
            calls[model.name] += 1
            if fail_batch_write and model.name == "BatchWriteItem":
                raise ClientError({"Error": {"Code": "ServiceUnavailable"}}, "BatchWriteItem")

    events = aws.dynamodb().meta.events
    events.register("provide-client-params.dynamodb", hook)
    return calls, lambda: events.unregister("provide-client-params.dynamodb", hook)


def _statuses() -> Counter:
    items = aws.dynamodb().scan(TableName=settings.get().idempotency_table)["Items"]
    return Counter(i["status"]["S"] for i in items)


def test_a_batch_claims_each_delivery_and_marks_them_all_completed_in_one_write(egress):
    consumer = egress.consumer()
    batch = [egress.message(consumer) for _ in range(10)]
    before = _statuses()
    calls, unregister = _idempotency_calls()
    try:
        assert egress.run(*batch) == {"batchItemFailures": []}
    finally:
        unregister()

    assert calls == {"PutItem": 10, "BatchWriteItem": 1}  # no UpdateItem per delivery
    assert _statuses() - before == {"COMPLETED": 10}
    assert egress.run(*batch) == {"batchItemFailures": []}  # SQS duplicates, later
    assert len(egress.receiver.received) == 10


def test_when_the_marks_cannot_be_written_the_batch_succeeds_and_a_duplicate_waits(egress):
    consumer = egress.consumer()
    a, b = egress.message(consumer), egress.message(consumer)
    calls, unregister = _idempotency_calls(fail_batch_write=True)
    try:
        answer = egress.run(a, b, message_ids=["a", "b"])
    finally:
        unregister()

    # Delivered: the batch is not failed for its marks, so SQS hands nothing out again.
    assert answer == {"batchItemFailures": []}
    assert calls["BatchWriteItem"] >= 1
    assert len(egress.receiver.received) == 2
    # A duplicate while the claim is still in progress is not sent: its record fails, and SQS
    # hands it out again later (delivered again only once the in-progress claim has expired).
    assert egress.run(a, message_ids=["a"]) == {"batchItemFailures": [{"itemIdentifier": "a"}]}
    assert len(egress.receiver.received) == 2


@pytest.mark.parametrize("seconds_left, written_before_the_next", [(900, 0)])
def test_the_marks_wait_for_the_end_of_the_batch(egress, seconds_left, written_before_the_next):
    """(Near the deadline no attempt starts at all: tests/functions/test_egress_deadline.py.)"""
    consumer = egress.consumer()
    first, second = egress.message(consumer), egress.message(consumer)
    before = _statuses()["COMPLETED"]
    seen_at_claims = []
    table = settings.get().idempotency_table

    def on_claim(params, **kwargs):
        if params.get("TableName") == table:
            seen_at_claims.append(_statuses()["COMPLETED"] - before)

    events = aws.dynamodb().meta.events
    events.register("provide-client-params.dynamodb.PutItem", on_claim)
    try:
        records = [sqs_record(m.body(), egress.queue_arn) for m in (first, second)]
        context = LambdaContext("egress", timeout_s=seconds_left)
        assert handler({"Records": records}, context) == {"batchItemFailures": []}
    finally:
        events.unregister("provide-client-params.dynamodb.PutItem", on_claim)

    assert seen_at_claims == [0, written_before_the_next]
    assert _statuses()["COMPLETED"] - before == 2  # all written once the batch is done


def _powertools_id(key: dict) -> str:
    """The item id Powertools' idempotency utility gave this key (the egress before)."""
    from aws_lambda_powertools.utilities.idempotency import (
        DynamoDBPersistenceLayer,
        IdempotencyConfig,
    )

    layer = DynamoDBPersistenceLayer(table_name="unused", boto3_client=aws.dynamodb())
    layer.configure(IdempotencyConfig(), function_name="attempt", key_prefix="broker-egress")
    return layer._get_hashed_idempotency_key(key)


@pytest.mark.parametrize("status", ["COMPLETED", "INPROGRESS"])
def test_claims_made_by_the_previous_version_are_honoured(egress, status):
    """A deploy while deliveries are in flight: what the previous egress (Powertools) claimed
    or completed is the same item to this one, so nothing is sent twice."""
    import time

    consumer = egress.consumer()
    message = egress.message(consumer)
    d = message.delivery
    key = {"tenant_id": d.tenant_id, "delivery_id": d.delivery_id, "replay": 0, "attempt": 1}
    item = {
        "id": {"S": _powertools_id(key)},
        "expiration": {"N": str(int(time.time()) + 3600)},
        "status": {"S": status},
    }
    if status == "COMPLETED":
        item["data"] = {"S": '{"outcome": "delivered", "token": "earlier"}'}
    else:
        item["in_progress_expiration"] = {"N": str(int(time.time() * 1000) + 60_000)}
    aws.dynamodb().put_item(TableName=settings.get().idempotency_table, Item=item)

    answer = egress.run(message, message_ids=["m"])

    assert egress.receiver.received == []
    failed = [] if status == "COMPLETED" else [{"itemIdentifier": "m"}]
    assert answer == {"batchItemFailures": failed}  # in progress elsewhere: SQS hands it out again
