"""The local runner does what AWS does around the functions: a function URL for the ingress and
SQS event source mappings (partial batch responses) for the queues. Here with tiny handlers of
the test's own (tests/e2e/handlers.py), on its own queue prefix and config table, so that only
the runner's behaviour is under test."""

import json
import signal
import subprocess
import sys
import urllib.request
import uuid

import boto3
import pytest

from broker.functions import runner, settings
from broker.functions.runner import Discovery, Options
from broker.functions.shared import contract
from tests.helpers import free_port
from tests.helpers.e2e import Runner, wait_for

pytestmark = pytest.mark.e2e

HANDLERS = {
    "RUNNER_INGRESS_HANDLER": "tests.e2e.handlers:ingress",
    "RUNNER_EGRESS_HANDLER": "tests.e2e.handlers:egress",
    "RUNNER_SOURCE_HANDLER": "tests.e2e.handlers:source",
    "RUNNER_EGRESS_FLUSH": "tests.e2e.handlers:none",
}


@pytest.fixture
def world_of_runner(live_aws, logs):
    """A runner with the test handlers on a fresh prefix and config table; yields helpers."""
    prefix = f"rt{uuid.uuid4().hex[:8]}"
    table = f"{prefix}-config"
    sqs = boto3.client("sqs", endpoint_url=live_aws, region_name="eu-west-1")
    ddb = boto3.client("dynamodb", endpoint_url=live_aws, region_name="eu-west-1")
    ddb.create_table(
        TableName=table,
        AttributeDefinitions=[
            {"AttributeName": "PK", "AttributeType": "S"},
            {"AttributeName": "SK", "AttributeType": "S"},
        ],
        KeySchema=[
            {"AttributeName": "PK", "KeyType": "HASH"},
            {"AttributeName": "SK", "KeyType": "RANGE"},
        ],
        BillingMode="PAY_PER_REQUEST",
    )
    shared = sqs.create_queue(QueueName=f"{prefix}-delivery-00")["QueueUrl"]
    log = logs / "calls.jsonl"
    log.touch()
    runner = Runner(
        aws_endpoint=live_aws,
        log=logs / "runner.log",
        SQS_QUEUE_PREFIX=prefix,
        DYNAMODB_CONFIG_TABLE=table,
        DATAPLANE_TABLE=f"{prefix}-dataplane",
        IDEMPOTENCY_TABLE=f"{prefix}-idempotency",
        RUNNER_WAIT_SECONDS=1,
        RUNNER_DISCOVER_SECONDS=0.5,
        RUNNER_TEST_LOG=log,
        **HANDLERS,
    )

    class W:
        pass

    w = W()
    w.prefix, w.table, w.sqs, w.ddb, w.shared, w.runner, w.logs = (
        prefix,
        table,
        sqs,
        ddb,
        shared,
        runner,
        logs,
    )

    def calls(kind):
        return [
            c["value"] for c in map(json.loads, log.read_text().splitlines()) if c["kind"] == kind
        ]

    w.calls = calls
    w.endpoint = live_aws
    yield w
    runner.stop()
    for url in sqs.list_queues(QueueNamePrefix=prefix).get("QueueUrls", []):
        sqs.delete_queue(QueueUrl=url)
    ddb.delete_table(TableName=table)


def test_an_http_request_reaches_the_ingress_as_a_function_url_event_and_its_answer_comes_back(
    world_of_runner,
):
    w = world_of_runner
    status, body, headers = w.runner.post(
        "/v1/events?x=1&x=2",
        {"type": "a.b"},
        headers={"X-In": "hello", "Authorization": "Bearer k"},
    )
    assert status == 202 and headers["x-echo"] == "hello"
    assert body == {"path": "/v1/events", "body": '{"type": "a.b"}'}
    (event,) = w.calls("http")
    assert event["version"] == "2.0" and event["rawQueryString"] == "x=1&x=2"
    assert event["queryStringParameters"] == {"x": "1,2"}
    assert event["headers"]["authorization"] == "Bearer k"
    assert event["requestContext"]["http"]["method"] == "POST"
    assert event["isBase64Encoded"] is False


def test_a_handler_that_raises_answers_502_and_the_runner_keeps_serving(world_of_runner):
    w = world_of_runner
    assert w.runner.post("/raise", {})[0] == 502
    assert w.runner.post("/v1/events", {})[0] == 202


def test_delivery_messages_reach_the_egress_as_sqs_records_successes_deleted_failures_kept(
    world_of_runner,
):
    w = world_of_runner
    w.sqs.send_message(
        QueueUrl=w.shared,
        MessageBody="ok-1",
        MessageAttributes={"tenant_id": {"DataType": "String", "StringValue": "t1"}},
    )
    w.sqs.send_message(QueueUrl=w.shared, MessageBody="fail-1")
    assert wait_for(
        lambda: {r["body"] for r in w.calls("egress")} >= {"ok-1", "fail-1"}, timeout=10
    )
    record = next(r for r in w.calls("egress") if r["body"] == "ok-1")
    assert record["eventSource"] == "aws:sqs" and record["awsRegion"] == "eu-west-1"
    assert record["eventSourceARN"].endswith(f":{w.prefix}-delivery-00")
    assert record["attributes"]["ApproximateReceiveCount"] == "1"
    assert record["messageAttributes"]["tenant_id"]["stringValue"] == "t1"
    assert record["receiptHandle"] and record["messageId"]

    # The successful one is deleted (once the handler has returned); the failed one stays.
    def left():
        attrs = w.sqs.get_queue_attributes(QueueUrl=w.shared, AttributeNames=["All"])
        a = attrs["Attributes"]
        return int(a["ApproximateNumberOfMessages"]) + int(
            a["ApproximateNumberOfMessagesNotVisible"]
        )

    assert wait_for(lambda: left() == 1, timeout=5)
    assert left() == 1
    w.sqs.purge_queue(QueueUrl=w.shared)


def test_a_silo_queue_created_later_is_polled_without_a_restart(world_of_runner):
    w = world_of_runner
    silo = w.sqs.create_queue(QueueName=f"{w.prefix}-silo-{uuid.uuid4()}")["QueueUrl"]
    w.sqs.send_message(QueueUrl=silo, MessageBody="to-the-silo")
    assert wait_for(lambda: any(r["body"] == "to-the-silo" for r in w.calls("egress")), timeout=10)
    assert wait_for(
        lambda: (
            w.sqs.get_queue_attributes(
                QueueUrl=silo, AttributeNames=["ApproximateNumberOfMessagesNotVisible"]
            )["Attributes"]["ApproximateNumberOfMessagesNotVisible"]
            == "0"
        ),
        timeout=5,
    )


def test_an_sqs_producers_source_queue_is_found_from_its_contract_item_and_polled(
    world_of_runner,
):
    w = world_of_runner
    name = f"{w.prefix}-orders-in"
    url = w.sqs.create_queue(QueueName=name)["QueueUrl"]
    arn = w.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    w.ddb.put_item(
        TableName=w.table,
        Item={
            "PK": {"S": contract.source_queue_pk(arn)},
            "SK": {"S": contract.SOURCE_QUEUE_SK},
            "contract": {"N": "1"},
            "tenant_id": {"S": "t1"},
            "producer_id": {"S": "p1"},
        },
    )
    w.sqs.send_message(QueueUrl=url, MessageBody='{"type": "order.created"}')
    assert wait_for(lambda: w.calls("source"), timeout=10)
    (record,) = w.calls("source")
    assert record["eventSourceARN"] == arn and w.calls("egress") == []


def test_the_runner_stops_cleanly_on_sigterm(world_of_runner):
    w = world_of_runner
    w.runner.proc.send_signal(signal.SIGTERM)
    assert w.runner.proc.wait(timeout=15) == 0
    assert "stopped:" in (w.logs / "runner.log").read_text()


def test_a_silo_queue_gets_as_many_pollers_as_its_tenants_largest_consumer_concurrency(
    world_of_runner, monkeypatch
):
    """Discovery, in this process: the enabled consumers ask for 1 and 3 (a disabled one for 7)."""
    w = world_of_runner
    tenant_id = str(uuid.uuid4())
    silo = w.sqs.create_queue(QueueName=f"{w.prefix}-silo-{tenant_id}")["QueueUrl"]
    for n, (concurrency, enabled) in enumerate([(1, True), (3, True), (7, False)]):
        w.ddb.put_item(
            TableName=w.table,
            Item={
                "PK": {"S": contract.tenant_pk(tenant_id)},
                "SK": {"S": contract.consumer_sk(f"c{n}")},
                "contract": {"N": "1"},
                "concurrency": {"N": str(concurrency)},
                "enabled": {"BOOL": enabled},
            },
        )
    monkeypatch.setenv("AWS_ENDPOINT_URL", w.endpoint)
    monkeypatch.setenv("SQS_QUEUE_PREFIX", w.prefix)
    monkeypatch.setenv("DYNAMODB_CONFIG_TABLE", w.table)
    settings.reload()
    try:
        found = Discovery(runner._poll_client_factory(pool_size=2), Options()).queues()
    finally:
        monkeypatch.undo()
        settings.reload()
    assert found[silo].concurrency == 3 and found[silo].kind == runner.DELIVERY
    assert found[w.shared].concurrency == Options().pool_concurrency


def test_the_runner_starts_against_an_empty_moto_server_and_picks_up_what_appears_later(
    live_aws, logs
):
    """No table, no queue: it creates the data plane's tables, then polls the config table and
    the delivery queues once the portal's bootstrap has made them."""
    port = free_port()
    moto = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    endpoint = f"http://127.0.0.1:{port}"
    try:
        assert wait_for(lambda: _answers(f"{endpoint}/moto-api/"), timeout=30)
        log = logs / "calls.jsonl"
        log.touch()
        r = Runner(
            aws_endpoint=endpoint,
            log=logs / "fresh.log",
            SQS_QUEUE_PREFIX="fresh",
            DYNAMODB_CONFIG_TABLE="fresh-config",
            DATAPLANE_TABLE="fresh-dataplane",
            IDEMPOTENCY_TABLE="fresh-idempotency",
            RUNNER_WAIT_SECONDS=1,
            RUNNER_DISCOVER_SECONDS=0.5,
            RUNNER_TEST_LOG=log,
            **HANDLERS,
        )
        try:
            ddb = boto3.client("dynamodb", endpoint_url=endpoint, region_name="eu-west-1")
            assert {"fresh-dataplane", "fresh-idempotency"} <= set(ddb.list_tables()["TableNames"])
            sqs = boto3.client("sqs", endpoint_url=endpoint, region_name="eu-west-1")
            url = sqs.create_queue(QueueName="fresh-delivery-00")["QueueUrl"]
            sqs.send_message(QueueUrl=url, MessageBody="late")
            assert wait_for(lambda: "late" in log.read_text(), timeout=10)
            assert r.proc.poll() is None
        finally:
            assert r.stop() == 0
    finally:
        moto.terminate()
        moto.wait(timeout=10)


def _answers(url: str) -> bool:
    try:
        urllib.request.urlopen(url, timeout=1).close()  # noqa: S310
        return True
    except OSError:
        return False
