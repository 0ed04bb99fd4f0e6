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
    assert len(mappings) == 9  # the 8 shared delivery queues and the slow lane
    for props in mappings.values():
        assert props["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
        assert props["BatchSize"] == 10


def test_queues_keep_messages_14_days_and_delivery_queues_redrive_to_the_central_dlq(template):
    queues = resources(template, "AWS::SQS::Queue")
    assert {q["MessageRetentionPeriod"] for q in queues.values()} == {1209600}
    delivery = {k: q for k, q in queues.items() if k != "CentralDlq"}
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
    tables, the central DLQ, eight delivery queues and the slow lane with their attributes, three
    functions with their deployed timeouts and environments, nine enabled mappings, and the
    outputs."""
    from broker.functions.local.stack import Stack

    stack = Stack(region=settings.AWS_REGION)
    kinds = Counter(r.get("ResourceType") for r in stack.resources())
    assert kinds["AWS::DynamoDB::Table"] == 2
    assert kinds["AWS::SQS::Queue"] == 10
    assert kinds["AWS::Lambda::Function"] == 3
    assert kinds["AWS::Lambda::EventSourceMapping"] == 9
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
    for logical in ("DataplaneTable", "IdempotencyTable", "CentralDlq", "EgressLogs"):
        assert template["Resources"][logical]["DeletionPolicy"] == "Retain"
        assert template["Resources"][logical]["UpdateReplacePolicy"] == "Retain"
