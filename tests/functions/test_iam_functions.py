"""The functions' own calls, recorded from broker/functions/aws.py's clients while the real
ingress and egress handlers run (in-process moto), checked against the roles of
deploy/template.yaml as CloudFormation deployed them there (`iam.check_stack`). The functions
run with the stack's names (tables, queue prefix), as they would in Lambda."""

import contextlib
import uuid

import pytest

from broker.functions import aws, settings
from broker.functions.egress import deliver, flush_records
from broker.functions.egress import handler as egress_handler
from broker.functions.ingress import flush_stats
from broker.functions.local import iam
from tests.deploy.test_iam_template import deploy_stack, known_faults
from tests.functions import egress_fixtures
from tests.functions.egress_fixtures import Answer, sqs_record
from tests.helpers.functions import new_queue, post

egress, receiver = egress_fixtures.egress, egress_fixtures.receiver


@pytest.fixture(scope="module")
def stack(aws_moto):
    return deploy_stack(prefix=f"iamf{uuid.uuid4().hex[:8]}")


@pytest.fixture
def stack_names(stack, monkeypatch, tmp_path):
    """The functions' settings name the stack's tables and queues (before `dataplane` reads
    them); returns a switch that records the next calls as one function."""
    p = stack.prefix
    monkeypatch.setenv("DYNAMODB_CONFIG_TABLE", f"{p}-config")
    monkeypatch.setenv("DATAPLANE_TABLE", f"{p}-dataplane")
    monkeypatch.setenv("IDEMPOTENCY_TABLE", f"{p}-idempotency")
    monkeypatch.setenv("SQS_QUEUE_PREFIX", p)
    deliver._dlq_urls.clear()
    path = tmp_path / "calls.jsonl"

    @contextlib.contextmanager
    def recording(principal: str):
        monkeypatch.setenv("AWS_CALL_LOG", str(path))
        monkeypatch.setenv("AWS_CALL_PRINCIPAL", principal)
        aws.reset_clients()
        try:
            yield
        finally:
            monkeypatch.delenv("AWS_CALL_LOG")
            aws.reset_clients()

    recording.path = path
    yield recording
    deliver._dlq_urls.clear()


def test_the_functions_calls_checked_against_their_deployed_roles(stack, stack_names, egress):
    p = stack.prefix
    silo_url, silo_arn = new_queue(f"{p}-silo-{uuid.uuid4()}")
    tenant = egress.plane(model="silo", queues=[silo_url])
    producer = tenant.producer()
    key = tenant.api_key(producer)
    ok = egress.consumer(tenant=tenant)
    failing = egress.consumer(tenant=tenant, url=egress.receiver.url("/fail"))
    egress.receiver.answers["/fail"] = Answer(status=503)
    tenant.route("order.created", ok)
    tenant.route("order.created", failing)

    # A second tenant whose queue is gone: SQS refuses, the ingress releases its claim.
    gone_url, _ = new_queue(f"{p}-silo-{uuid.uuid4()}")
    stranded = egress.plane(model="silo", queues=[gone_url])
    stranded.route("order.created", stranded.consumer())
    stranded_key = stranded.api_key(stranded.producer())
    aws.sqs().delete_queue(QueueUrl=gone_url)

    with stack_names("IngressFunction"):
        status, body, _ = post(body={"type": "order.created", "id": "o-1", "data": {}}, key=key)
        refused, _, _ = post(
            body={"type": "order.created", "id": "o-2", "data": {}}, key=stranded_key
        )
        flush_stats()
    assert (status, body["deliveries"], refused) == (202, 2, 503)

    bodies = [m.body() for m in tenant.deliveries()]
    last = egress.message(failing, tenant=tenant, attempt=3)  # its last attempt: dead letter
    with stack_names("EgressFunction"):
        event = {"Records": [sqs_record(b, silo_arn) for b in [*bodies, last.body()]]}
        assert egress_handler(event, None)["batchItemFailures"] == []
        flush_records()

    calls = iam.read_calls(stack_names.path)
    result = iam.check_stack(
        calls,
        cloudformation=stack.clients["cloudformation"],
        lambda_client=stack.clients["lambda"],
        iam_client=stack.clients["iam"],
        stack_name=stack.name,
    )
    assert {c.principal for c in calls} == {"IngressFunction", "EgressFunction"}
    # Today's template (issue 15, point 5): what the run above reaches of its known faults.
    expected = {f for f in known_faults(stack) if f[0] != "SqsProducerFunction"}
    assert {(d.principal, d.action, d.resource) for d in result.denied} == expected, result.report()
    assert settings.get().dataplane_table == f"{p}-dataplane"
