"""The IAM call recorder (broker/functions/local/iam.py) on the data plane's own client module
(broker/functions/aws.py), against the in-process moto: with AWS_CALL_LOG set, each API call is
one JSON line naming the principal, the IAM action that authorizes it and the ARNs it names."""

import json
import multiprocessing
import threading
import uuid

import pytest

from broker.functions import aws
from broker.functions.local import iam
from tests.helpers.functions import new_queue

ACCOUNT, REGION = "123456789012", "eu-west-1"


@pytest.fixture
def call_log(dataplane, tmp_path, monkeypatch):
    """The data plane's clients recording to a temporary file as "broker-egress"."""
    path = tmp_path / "calls.jsonl"
    monkeypatch.setenv("AWS_CALL_LOG", str(path))
    monkeypatch.setenv("AWS_CALL_PRINCIPAL", "broker-egress")
    aws.reset_clients()
    yield path
    monkeypatch.delenv("AWS_CALL_LOG")
    aws.reset_clients()


def lines(path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def new_table(name: str) -> None:
    aws.dynamodb().create_table(
        TableName=name,
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        BillingMode="PAY_PER_REQUEST",
    )


def test_a_batch_send_and_delete_are_recorded_as_the_actions_iam_checks_for_them(
    dataplane, call_log
):
    url, arn = new_queue(f"iam-{uuid.uuid4().hex[:8]}")
    call_log.unlink(missing_ok=True)  # the queue's creation was recorded too

    aws.sqs().send_message_batch(
        QueueUrl=url, Entries=[{"Id": str(i), "MessageBody": "x"} for i in range(3)]
    )
    got = aws.sqs().receive_message(QueueUrl=url, MaxNumberOfMessages=10)["Messages"]
    aws.sqs().delete_message_batch(
        QueueUrl=url,
        Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(got)],
    )

    assert lines(call_log) == [
        {
            "principal": "broker-egress",
            "service": "sqs",
            "operation": operation,
            "action": action,
            "resources": [arn],
        }
        for operation, action in [
            ("SendMessageBatch", "sqs:SendMessage"),
            ("ReceiveMessage", "sqs:ReceiveMessage"),
            ("DeleteMessageBatch", "sqs:DeleteMessage"),
        ]
    ]
    assert arn == f"arn:aws:sqs:{REGION}:{ACCOUNT}:{url.rsplit('/', 1)[1]}"


def test_a_queue_looked_up_by_name_is_named_by_its_arn(dataplane, call_log):
    name = f"iam-{uuid.uuid4().hex[:8]}"
    new_queue(name)
    call_log.unlink()

    aws.sqs().get_queue_url(QueueName=name)

    (record,) = lines(call_log)
    assert (record["action"], record["resources"]) == (
        "sqs:GetQueueUrl",
        [f"arn:aws:sqs:{REGION}:{ACCOUNT}:{name}"],
    )


def test_a_dynamodb_batch_over_two_tables_names_both_tables(dataplane, call_log):
    first, second = (f"iam-{uuid.uuid4().hex[:8]}" for _ in range(2))
    new_table(first)
    new_table(second)
    call_log.unlink()

    aws.dynamodb().batch_write_item(
        RequestItems={
            first: [{"PutRequest": {"Item": {"id": {"S": "1"}}}}],
            second: [{"DeleteRequest": {"Key": {"id": {"S": "2"}}}}],
        }
    )
    aws.dynamodb().batch_get_item(
        RequestItems={t: {"Keys": [{"id": {"S": "1"}}]} for t in (first, second)}
    )

    arns = [f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{t}" for t in (first, second)]
    assert [(r["action"], r["resources"]) for r in lines(call_log)] == [
        ("dynamodb:BatchWriteItem", arns),
        ("dynamodb:BatchGetItem", arns),
    ]


def test_a_transaction_is_checked_as_each_items_own_action_on_its_table(dataplane, call_log):
    first, second = (f"iam-{uuid.uuid4().hex[:8]}" for _ in range(2))
    new_table(first)
    new_table(second)
    call_log.unlink()

    aws.dynamodb().transact_write_items(
        TransactItems=[
            {"Put": {"TableName": first, "Item": {"id": {"S": "1"}}}},
            {"Put": {"TableName": second, "Item": {"id": {"S": "1"}}}},
            {"Delete": {"TableName": second, "Key": {"id": {"S": "2"}}}},
        ]
    )

    table = f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/"
    assert [(r["operation"], r["action"], r["resources"]) for r in lines(call_log)] == [
        ("TransactWriteItems", "dynamodb:PutItem", [table + first, table + second]),
        ("TransactWriteItems", "dynamodb:DeleteItem", [table + second]),
    ]


def test_a_kms_decrypt_without_a_key_id_names_the_key_that_encrypted(dataplane, call_log):
    key = aws.kms().create_key()["KeyMetadata"]
    blob = aws.kms().generate_data_key(KeyId=key["KeyId"], KeySpec="AES_256")["CiphertextBlob"]
    aws.kms().decrypt(CiphertextBlob=blob)

    records = lines(call_log)
    assert [(r["action"], r["resources"]) for r in records] == [
        ("kms:CreateKey", ["*"]),
        ("kms:GenerateDataKey", [key["Arn"]]),
        ("kms:Decrypt", [key["Arn"]]),
    ]


def test_the_principal_defaults_to_the_lambda_functions_name(dataplane, call_log, monkeypatch):
    monkeypatch.delenv("AWS_CALL_PRINCIPAL")
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "broker-dataplane-ingress")
    aws.reset_clients()

    aws.sqs().list_queues()

    assert lines(call_log)[-1]["principal"] == "broker-dataplane-ingress"
    assert lines(call_log)[-1]["resources"] == ["*"]


def test_nothing_is_recorded_without_aws_call_log(dataplane, tmp_path, monkeypatch):
    monkeypatch.delenv("AWS_CALL_LOG", raising=False)
    aws.reset_clients()
    aws.sqs().list_queues()
    assert list(tmp_path.iterdir()) == []
    assert iam.read_calls(tmp_path / "calls.jsonl") == []


def _append(path, writer: int, n: int) -> None:
    sink = iam._Sink(path)
    for i in range(n):
        sink({"principal": f"w{writer}", "i": i, "pad": "x" * 3000})


def test_threads_and_processes_append_whole_lines_to_one_file(tmp_path):
    path = tmp_path / "calls.jsonl"
    threads = [threading.Thread(target=_append, args=(path, w, 50)) for w in range(4)]
    procs = [
        multiprocessing.get_context("fork").Process(target=_append, args=(path, 10 + w, 50))
        for w in range(2)
    ]
    for t in threads + procs:
        t.start()
    for t in threads:
        t.join()
    for p in procs:
        p.join()
        assert p.exitcode == 0

    records = lines(path)
    assert len(records) == 300
    assert {r["principal"] for r in records} == {"w0", "w1", "w2", "w3", "w10", "w11"}


@pytest.mark.parametrize(
    ("service", "operation", "params", "action", "resources"),
    [
        (
            "dynamodb",
            "Query",
            {"TableName": "cfg", "IndexName": "apikeys-by-tenant"},
            "dynamodb:Query",
            [f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/cfg/index/apikeys-by-tenant"],
        ),
        (
            "sqs",
            "ChangeMessageVisibilityBatch",
            {"QueueUrl": "https://sqs.us-east-2.amazonaws.com/210987654321/q"},
            "sqs:ChangeMessageVisibility",
            ["arn:aws:sqs:us-east-2:210987654321:q"],
        ),
        (
            "kms",
            "GenerateDataKey",
            {"KeyId": "alias/broker-secrets"},
            "kms:GenerateDataKey",
            [f"arn:aws:kms:{REGION}:{ACCOUNT}:alias/broker-secrets"],
        ),
        (
            "secretsmanager",
            "GetSecretValue",
            {"SecretId": "broker/fernet"},
            "secretsmanager:GetSecretValue",
            [f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:broker/fernet-??????"],
        ),
        (
            "lambda",
            "GetFunctionConfiguration",
            {"FunctionName": "broker-dataplane-egress"},
            "lambda:GetFunctionConfiguration",
            [f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:broker-dataplane-egress"],
        ),
        (
            "lambda",
            "CreateEventSourceMapping",
            {"FunctionName": "broker-dataplane-egress", "EventSourceArn": "arn:aws:sqs:x"},
            "lambda:CreateEventSourceMapping",
            ["*"],  # no resource type in IAM: lambda:FunctionArn is a condition key
        ),
        (
            "lambda",
            "DeleteEventSourceMapping",
            {"UUID": "a1b2"},
            "lambda:DeleteEventSourceMapping",
            [f"arn:aws:lambda:{REGION}:{ACCOUNT}:event-source-mapping:a1b2"],
        ),
        (
            "lambda",
            "Invoke",
            {"FunctionName": "f:live"},
            "lambda:InvokeFunction",
            [f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:f:live"],
        ),
        ("sts", "GetCallerIdentity", {}, "sts:GetCallerIdentity", ["*"]),
    ],
)
def test_what_each_kind_of_call_names(service, operation, params, action, resources):
    (call,) = iam.calls_of(
        service=service,
        operation=operation,
        params=params,
        region=REGION,
        account=ACCOUNT,
        principal="p",
    )
    assert (call.action, list(call.resources)) == (action, resources)


@pytest.mark.parametrize("kind", ["boto3", "botocore"])
def test_a_session_records_every_client_it_builds_afterwards(kind):
    import boto3
    import botocore.session

    records = []
    session = boto3.session.Session() if kind == "boto3" else botocore.session.get_session()
    iam.install_recorder(session, records.append, principal="runner", account=ACCOUNT)
    client = (
        session.create_client("sqs", region_name=REGION)
        if kind == "botocore"
        else (session.client("sqs", region_name=REGION))
    )

    client.list_queues()

    assert records == [
        {
            "principal": "runner",
            "service": "sqs",
            "operation": "ListQueues",
            "action": "sqs:ListQueues",
            "resources": ["*"],
        }
    ]
