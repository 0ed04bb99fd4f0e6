"""The idempotency mark comes after the consumer got the delivery: a mark that cannot be
written (AccessDenied or any other ClientError) never fails the record (SQS would hand out a
delivery already made); it is logged at ERROR and counted in the egress's metrics, in the
namespace the template sets."""

import json
import logging

import pytest
from botocore.exceptions import ClientError

from broker.functions import aws, settings
from broker.functions.egress import deliver
from tests.functions import egress_fixtures

egress, receiver = egress_fixtures.egress, egress_fixtures.receiver


def _refuse(operation: str, code: str):
    """Makes the egress's `operation` on the idempotency table fail with `code`."""
    table = settings.get().idempotency_table

    def hook(params, model, **kwargs):
        mine = params.get("TableName") == table or table in (params.get("RequestItems") or {})
        if mine and model.name == operation:
            raise ClientError({"Error": {"Code": code, "Message": "refused"}}, operation)

    events = aws.dynamodb().meta.events
    events.register("provide-client-params.dynamodb", hook)
    return lambda: events.unregister("provide-client-params.dynamodb", hook)


def _emf(out: str) -> list[dict]:
    blobs = []
    for line in out.splitlines():
        if line.startswith("{") and '"_aws"' in line:
            blobs.append(json.loads(line))
    return blobs


@pytest.mark.parametrize("code", ["AccessDeniedException", "ValidationException"])
def test_marks_refused_after_the_batch_was_delivered_are_logged_and_counted(
    egress, monkeypatch, capsys, caplog, code
):
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "broker-egress")
    monkeypatch.setenv("POWERTOOLS_METRICS_NAMESPACE", "EventBrokerTest")
    consumer = egress.consumer()
    batch = [egress.message(consumer) for _ in range(3)]
    undo = _refuse("BatchWriteItem", code)
    try:
        with caplog.at_level(logging.ERROR):
            answer = egress.run(*batch)
    finally:
        undo()

    assert answer == {"batchItemFailures": []}
    assert len(egress.receiver.received) == 3
    assert any(
        r.levelno == logging.ERROR and "idempotency marks" in r.getMessage() for r in caplog.records
    )
    (blob,) = _emf(capsys.readouterr().out)
    (directive,) = blob["_aws"]["CloudWatchMetrics"]
    assert directive["Namespace"] == "EventBrokerTest"
    assert blob["egress_mark_write_failures"] == [3.0]
    assert blob["egress_delivered"] == [3.0]


def test_a_mark_refused_outside_a_batch_does_not_fail_the_delivery(egress, caplog):
    consumer = egress.consumer()
    message = egress.message(consumer)
    undo = _refuse("BatchWriteItem", "AccessDeniedException")
    try:
        with caplog.at_level(logging.ERROR):
            outcome = deliver.process_body(message.body(), source_arn=egress.queue_arn)
    finally:
        undo()

    assert outcome == deliver.DELIVERED
    assert len(egress.receiver.received) == 1
    assert any(r.levelno == logging.ERROR for r in caplog.records)
