"""deploy/template.yaml: valid for cfn-lint (offline), and it says what the data plane needs."""

import json
from collections import Counter
from pathlib import Path

import pytest
from cfnlint.api import lint_file
from cfnlint.decode import decode_str
from django.conf import settings

from core import aws

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "deploy" / "template.yaml"


@pytest.fixture(scope="module")
def template() -> dict:
    parsed, errors = decode_str(TEMPLATE.read_text())
    assert not errors
    return parsed


def resources(template, type_):
    return {k: v["Properties"] for k, v in template["Resources"].items() if v["Type"] == type_}


def test_cfn_lint_finds_no_error_in_the_template():
    """cfn-lint's own rules and resource specs, offline (no AWS call)."""
    matches = lint_file(TEMPLATE)
    errors = [m for m in matches if m.rule.id.startswith("E")]
    assert errors == [], "\n".join(str(m) for m in errors)
    assert matches == [], "warnings too: " + "\n".join(str(m) for m in matches)


def test_every_event_source_mapping_reports_partial_batch_failures(template):
    mappings = resources(template, "AWS::Lambda::EventSourceMapping")
    assert len(mappings) == 8 + 1 + 8  # eight shared queues, the slow lane, up to eight FIFO
    for props in mappings.values():
        assert props["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
        assert props["BatchSize"] == 10


def test_fifo_queues_redrive_to_the_fifo_dlq_and_their_mappings_have_no_batching_window(template):
    """AWS refuses a batching window on a FIFO queue's mapping, and a FIFO queue's redrive to a
    standard queue."""
    queues = resources(template, "AWS::SQS::Queue")
    fifo = {k: q for k, q in queues.items() if k.startswith("OrderedQueue")}
    assert len(fifo) == 8
    for q in fifo.values():
        assert q["FifoQueue"] is True and q["QueueName"]["Fn::Sub"].endswith(".fifo")
        assert q["RedrivePolicy"]["deadLetterTargetArn"] == {
            "Fn::GetAtt": ["CentralFifoDlq", "Arn"]
        }
    assert queues["CentralFifoDlq"]["FifoQueue"] is True
    mappings = resources(template, "AWS::Lambda::EventSourceMapping")
    ordered = {k: m for k, m in mappings.items() if k.startswith("OrderedMapping")}
    assert len(ordered) == 8
    for m in ordered.values():
        assert "MaximumBatchingWindowInSeconds" not in m
        assert m["EventSourceArn"]["Fn::GetAtt"][0].startswith("OrderedQueue")
    # Queue 00 always; the others as OrderedQueueCount (default 4) says.
    conditions = {k: template["Resources"][k].get("Condition") for k in fifo}
    assert conditions["OrderedQueue00"] is None
    assert template["Parameters"]["OrderedQueueCount"]["Default"] == 4


def test_the_functions_roles_cover_the_ordered_queues_and_the_fifo_dlq(template):
    roles = resources(template, "AWS::IAM::Role")
    text = {name: json.dumps(role, default=str) for name, role in roles.items()}
    for name in ("IngressRole", "SqsProducerRole", "EgressRole"):
        assert "${QueuePrefix}-ordered-*" in text[name]
    assert "CentralFifoDlq" in text["EgressRole"]


def test_queues_keep_messages_14_days_and_delivery_queues_redrive_to_the_central_dlq(template):
    queues = resources(template, "AWS::SQS::Queue")
    assert {q["MessageRetentionPeriod"] for q in queues.values()} == {1209600}
    delivery = {
        k: q for k, q in queues.items() if k.startswith("DeliveryQueue") or k == "SlowDeliveryQueue"
    }
    assert len(delivery) == 9  # the 8 shared delivery queues and the slow lane
    for q in delivery.values():
        assert q["RedrivePolicy"]["deadLetterTargetArn"] == {"Fn::GetAtt": ["CentralDlq", "Arn"]}


def test_the_deployed_stack_holds_the_tables_as_the_template_says(template):
    """The session's tables come from the template, deployed by CloudFormation (in-process
    moto): same keys and TTL attributes as the template's."""
    tables = resources(template, "AWS::DynamoDB::Table")
    ddb = aws.dynamodb()
    for logical, name in (
        ("DataplaneTable", settings.DATAPLANE_TABLE),
        ("IdempotencyTable", settings.IDEMPOTENCY_TABLE),
    ):
        live = ddb.describe_table(TableName=name)["Table"]
        assert tables[logical]["KeySchema"] == live["KeySchema"]
        assert sorted(tables[logical]["AttributeDefinitions"], key=str) == sorted(
            live["AttributeDefinitions"], key=str
        )
        ttl = ddb.describe_time_to_live(TableName=name)["TimeToLiveDescription"]
        assert tables[logical]["TimeToLiveSpecification"]["AttributeName"] == ttl["AttributeName"]


def test_the_functions_may_only_read_the_config_table(template):
    text = json.dumps(template, default=str)
    assert "ConfigTable" not in {k for k in template["Resources"]}  # owned by the control plane
    for role in resources(template, "AWS::IAM::Role").values():
        for statement in role["Policies"][0]["PolicyDocument"]["Statement"]:
            if isinstance(statement, dict) and "ConfigTableName" in str(statement.get("Resource")):
                assert statement["Action"] == ["dynamodb:GetItem", "dynamodb:Query"]
    assert "dynamodb:*" not in text and "sqs:*" not in text


def test_each_function_runs_a_handler_of_broker_functions(template):
    handlers = {p["Handler"] for p in resources(template, "AWS::Lambda::Function").values()}
    assert handlers == {
        "broker.functions.ingress.handler",
        "broker.functions.ingress.sqs_source_handler",
        "broker.functions.egress.handler",
    }


def test_the_stack_deploys_every_resource_and_output_the_portal_and_runner_need():
    """The session's stack (tests/conftest.py deploys deploy/template.yaml with CloudFormation):
    tables, the central DLQs, eight delivery queues, the slow lane and four FIFO ones with their
    attributes, three functions with their deployed timeouts and environments, thirteen enabled
    mappings, and the outputs."""
    from broker.functions.local.stack import Stack

    stack = Stack(region=settings.AWS_REGION)
    kinds = Counter(r.get("ResourceType") for r in stack.resources())
    assert kinds["AWS::DynamoDB::Table"] == 2
    assert kinds["AWS::SQS::Queue"] == 2 + 8 + 1 + 4  # DLQs, delivery, slow lane, ordered
    assert kinds["AWS::Lambda::Function"] == 3
    assert kinds["AWS::Lambda::EventSourceMapping"] == 8 + 1 + 4
    assert kinds["AWS::IAM::Role"] == 3
    assert "AWS::Lambda::Url" not in kinds  # CreateFunctionUrl=false on the emulator
    outputs = stack.outputs()
    assert outputs["EgressFunctionArn"] == settings.EGRESS_FUNCTION_ARN
    assert outputs["SqsProducerFunctionArn"] == settings.SQS_PRODUCER_FUNCTION_ARN
    assert outputs["DataplaneTableName"] == settings.DATAPLANE_TABLE
    lam = aws.client("lambda")
    egress = lam.get_function_configuration(FunctionName=outputs["EgressFunctionArn"])
    assert egress["Timeout"] == int(outputs["EgressTimeout"]) == 60
    env = egress["Environment"]["Variables"]
    assert env["SECRETS_FERNET_SECRET_ARN"].startswith("arn:aws:secretsmanager:")
    assert env["SQS_QUEUE_PREFIX"] == settings.SQS_QUEUE_PREFIX
    slow = f"{settings.SQS_QUEUE_PREFIX}-delivery-slow"
    assert env["EGRESS_SLOW_QUEUE"] == slow
    mappings = lam.list_event_source_mappings()["EventSourceMappings"]
    shared = [
        m
        for m in mappings
        if "-delivery-" in m["EventSourceArn"] and m["FunctionArn"] == outputs["EgressFunctionArn"]
    ]
    assert len(shared) == 9  # the slow lane's too
    assert any(m["EventSourceArn"].endswith(f":{slow}") for m in shared)
    assert {m["State"] for m in shared} == {"Enabled"}
    assert {m["FunctionArn"] for m in shared} == {outputs["EgressFunctionArn"]}
    for name in [*aws.shared_delivery_queue_names(), slow]:
        attrs = aws.sqs().get_queue_attributes(QueueUrl=aws.queue_url(name), AttributeNames=["All"])
        attrs = attrs["Attributes"]
        assert int(attrs["VisibilityTimeout"]) >= 6 * egress["Timeout"]
        assert attrs["MaximumMessageSize"] == "262144"
        assert json.loads(attrs["RedrivePolicy"])["deadLetterTargetArn"].endswith(":broker-dlq")
    ordered = [
        m
        for m in mappings
        if "-ordered-" in m["EventSourceArn"] and m["FunctionArn"] == outputs["EgressFunctionArn"]
    ]
    assert len(ordered) == 4 and {m["State"] for m in ordered} == {"Enabled"}
    for name in aws.shared_ordered_queue_names():
        attrs = aws.sqs().get_queue_attributes(QueueUrl=aws.queue_url(name), AttributeNames=["All"])
        attrs = attrs["Attributes"]
        assert attrs["FifoQueue"] == "true"
        assert int(attrs["VisibilityTimeout"]) >= 6 * egress["Timeout"]
        redrive = json.loads(attrs["RedrivePolicy"])["deadLetterTargetArn"]
        assert redrive.endswith(":broker-dlq.fifo")
    assert outputs["CentralFifoDlqUrl"].endswith("/broker-dlq.fifo")


def test_the_stack_refuses_to_deploy_without_the_secrets_key(template):
    """No SecretsArn, no stack: the egress could sign nothing."""
    from broker.functions.local.stack import Stack

    with pytest.raises(ValueError, match="SecretsArn"):
        Stack(name="no-secrets", region=settings.AWS_REGION).deploy({})
    assert "Default" not in template["Parameters"]["SecretsArn"]


def test_the_queue_prefix_leaves_room_for_a_silo_queue_name_within_sqs_limit(template):
    """prefix + "-silo-" + a UUID + ".fifo" fits SQS's 80 characters."""
    pattern = template["Parameters"]["QueuePrefix"]["AllowedPattern"]
    longest = int(pattern.split(",")[1].split("}")[0])
    assert longest + len("-silo-") + 36 + len(".fifo") <= 80


def test_tables_the_dlq_and_log_groups_are_retained_when_the_stack_goes(template):
    for logical in (
        "DataplaneTable",
        "IdempotencyTable",
        "CentralDlq",
        "CentralFifoDlq",
        "EgressLogs",
    ):
        assert template["Resources"][logical]["DeletionPolicy"] == "Retain"
        assert template["Resources"][logical]["UpdateReplacePolicy"] == "Retain"
