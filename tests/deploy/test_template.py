"""deploy/template.yaml: valid for cfn-lint (offline), and it says what the data plane needs."""

import json
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
    assert len(mappings) == 8
    for props in mappings.values():
        assert props["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
        assert props["BatchSize"] == 10


def test_queues_keep_messages_14_days_and_delivery_queues_redrive_to_the_central_dlq(template):
    queues = resources(template, "AWS::SQS::Queue")
    assert {q["MessageRetentionPeriod"] for q in queues.values()} == {1209600}
    delivery = {k: q for k, q in queues.items() if k != "CentralDlq"}
    assert len(delivery) == 8
    for q in delivery.values():
        assert q["RedrivePolicy"]["deadLetterTargetArn"] == {"Fn::GetAtt": ["CentralDlq", "Arn"]}


def test_the_tables_match_what_bootstrap_creates(template):
    """broker/functions/bootstrap.py made the session's tables (in-process moto): same keys and
    TTL attributes as the template's."""
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
