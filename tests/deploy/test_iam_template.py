"""The IAM check against the roles of deploy/template.yaml as CloudFormation deploys them in
the emulator (in-process moto): the policies read back as moto returns them (a Python repr,
a `None` statement for the egress's KMS `!If`), then `iam.check` on calls the functions make.

moto has no `AWS::Lambda::Url`, and an Output naming it fails CreateStack: the parsed template
loses IngressUrl, its two permissions and that output before it is deployed here (the lead's
Condition on the template makes this step unnecessary)."""

import ast
import json
import uuid
from dataclasses import dataclass
from pathlib import Path

import boto3
import pytest
from cfnlint.decode import decode_str

from broker.functions.local import iam

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "deploy" / "template.yaml"
REGION = "eu-west-1"


@dataclass
class Stack:
    name: str
    prefix: str  # QueuePrefix, and the tables' names
    account: str
    roles: dict  # principal (function name or logical id) → role name
    clients: dict

    def arn(self, service: str, rest: str) -> str:
        return f"arn:aws:{service}:{REGION}:{self.account}:{rest}"

    def queue(self, name: str) -> str:
        return self.arn("sqs", name)

    def tenant_queue(self, name: str) -> str:
        return self.queue(f"{self.prefix}{name}")

    def table(self, name: str) -> str:
        return self.arn("dynamodb", f"table/{name}")

    def policies(self, logical: str) -> list[dict]:
        return iam.role_policies(self.clients["iam"], self.roles[logical])


def deployable_template() -> dict:
    parsed, errors = decode_str(TEMPLATE.read_text())
    assert not errors
    # As parsed: CreateFunctionUrl=false (below) leaves out the function URL moto lacks.
    return json.loads(json.dumps(parsed, default=str))


def deploy_stack(*, prefix: str, parameters: dict | None = None) -> Stack:
    """Deploys the template into whatever moto the default clients reach (in-process under
    mock_aws), every name carrying `prefix` so it never meets the session's resources.

    Tenants' queues are the ones named "<prefix>acme…" (`Stack.tenant_queue`): the SQS
    producer's Allow on tenants' queues then covers the platform's "<prefix>-…" queues too,
    so its explicit Deny on them has to win."""
    s3 = boto3.client("s3", region_name=REGION)
    bucket = f"{prefix}-code"
    s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": REGION})
    s3.put_object(Bucket=bucket, Key="functions.zip", Body=b"moto never runs the code")
    cfn = boto3.client("cloudformation", region_name=REGION)
    template = deployable_template()
    key = boto3.client("kms", region_name=REGION).create_key()["KeyMetadata"]["Arn"]
    values = {
        "CodeS3Bucket": bucket,
        "QueuePrefix": prefix,
        "ConfigTableName": f"{prefix}-config",
        "DataplaneTableName": f"{prefix}-dataplane",
        "IdempotencyTableName": f"{prefix}-idempotency",
        "TenantQueuePrefix": prefix,
        "SecretsArn": key,
        "CreateFunctionUrl": "false",
        **(parameters or {}),
    }
    values = {k: v for k, v in values.items() if k in template["Parameters"]}
    cfn.create_stack(
        StackName=prefix,
        TemplateBody=json.dumps(template),
        Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in values.items()],
        Capabilities=["CAPABILITY_IAM"],
    )
    stack = cfn.describe_stacks(StackName=prefix)["Stacks"][0]
    assert stack["StackStatus"] == "CREATE_COMPLETE", stack.get("StackStatusReason")
    clients = {
        "cloudformation": cfn,
        "lambda": boto3.client("lambda", region_name=REGION),
        "iam": boto3.client("iam", region_name=REGION),
    }
    account = boto3.client("sts", region_name=REGION).get_caller_identity()["Account"]
    roles = iam.function_roles(
        cloudformation=cfn, lambda_client=clients["lambda"], stack_name=prefix
    )
    return Stack(prefix, prefix, account, roles, clients)


@pytest.fixture(scope="module")
def stack(aws_moto) -> Stack:
    return deploy_stack(prefix=f"iam{uuid.uuid4().hex[:8]}")


def calls_of_each_function(stack: Stack) -> list[iam.Call]:
    """What each function calls, read from its code (broker/functions): the ingress and the
    SQS-producer function route events alike; the egress delivers, records, dead-letters.
    The event source mapping's polling counts against the function's role, as on AWS."""
    p = stack.prefix
    config, dataplane = stack.table(f"{p}-config"), stack.table(f"{p}-dataplane")
    idempotency = stack.table(f"{p}-idempotency")
    delivery, silo = stack.queue(f"{p}-delivery-03"), stack.queue(f"{p}-silo-{uuid.uuid4()}")
    source, tenant_queue = stack.tenant_queue("acme-orders"), stack.tenant_queue("acme-inbox")
    dlq = stack.queue(f"{p}-dlq")
    routing = [
        ("dynamodb:GetItem", config),  # API key, producer, tenant (config.py)
        ("dynamodb:Query", config),  # routes
        ("dynamodb:UpdateItem", dataplane),  # rate and quota (limits.py)
        ("dynamodb:PutItem", dataplane),  # the producer id's claim
        ("dynamodb:GetItem", dataplane),  # a claim held by another request
        ("dynamodb:BatchWriteItem", dataplane),  # per-minute counters
        ("dynamodb:DeleteItem", dataplane),  # a claim released when SQS did not take it
        ("sqs:SendMessage", delivery),  # SendMessageBatch (routing.py)
        ("sqs:SendMessage", silo),
    ]
    polling = [("sqs:ReceiveMessage", "q"), ("sqs:DeleteMessage", "q")]
    egress = [
        *((a, q) for a, _ in polling for q in (delivery, silo)),
        ("dynamodb:GetItem", config),  # consumer (config.py)
        ("dynamodb:UpdateItem", dataplane),  # the in-flight counter (inflight.py)
        ("dynamodb:BatchWriteItem", dataplane),  # delivery records (recorder.py)
        ("dynamodb:PutItem", idempotency),  # the claim (idempotency.py)
        ("dynamodb:BatchWriteItem", idempotency),  # completion marks (idempotency.py)
        ("sqs:SendMessage", delivery),  # a retry put back
        ("sqs:SendMessage", tenant_queue),  # an SQS consumer
        ("sqs:GetQueueUrl", dlq),  # deliver.py, central_dlq_url()
        ("sqs:SendMessage", dlq),
    ]
    out = []
    for principal, pairs in (
        ("IngressFunction", routing),
        ("SqsProducerFunction", routing + [(a, source) for a, _ in polling]),
        ("EgressFunction", egress),
    ):
        for action, resource in pairs:
            service, operation = action.split(":")
            out.append(iam.Call(principal, service, operation, action, (resource,)))
    return out


def policies_of(stack: Stack) -> dict:
    return {
        logical: stack.policies(logical)
        for logical in ("IngressFunction", "SqsProducerFunction", "EgressFunction")
    }


def test_the_roles_come_back_normalised_from_what_moto_returns(stack):
    raw = stack.clients["iam"].get_role_policy(
        RoleName=stack.roles["EgressFunction"], PolicyName="egress"
    )["PolicyDocument"]
    assert isinstance(raw, str) and raw.startswith("{'Version'")  # a Python repr, not JSON
    as_deployed = ast.literal_eval(raw)["Statement"]
    (policy,) = stack.policies("EgressFunction")
    # An !If's AWS::NoValue comes back as a None statement: dropped.
    assert len(policy["Statement"]) == len([s for s in as_deployed if s is not None])
    assert all(isinstance(s, dict) for s in policy["Statement"])
    assert all(isinstance(s["Action"], list) for s in policy["Statement"])
    assert stack.roles["EgressFunction"] == stack.roles[f"{stack.prefix}-egress"]


def test_a_call_the_role_allows_passes(stack):
    dlq = stack.queue(f"{stack.prefix}-dlq")
    calls = [iam.Call("EgressFunction", "sqs", "SendMessage", "sqs:SendMessage", (dlq,))]
    assert iam.check(calls, policies_of(stack)) == []


def test_removing_one_action_from_a_role_names_that_function_action_and_resource(stack):
    client, role = stack.clients["iam"], stack.roles["EgressFunction"]
    original = client.get_role_policy(RoleName=role, PolicyName="egress")["PolicyDocument"]
    policy = iam.normalise_policy(original)
    (statement,) = [s for s in policy["Statement"] if s.get("Sid") == "Idempotency"]
    statement["Action"].remove("dynamodb:PutItem")
    client.put_role_policy(RoleName=role, PolicyName="egress", PolicyDocument=json.dumps(policy))
    try:
        result = iam.check_stack(
            [c for c in calls_of_each_function(stack) if c.principal == "EgressFunction"],
            cloudformation=stack.clients["cloudformation"],
            lambda_client=stack.clients["lambda"],
            iam_client=client,
            stack_name=stack.name,
        )
        table = stack.table(f"{stack.prefix}-idempotency")
        found = {(d.principal, d.action, d.resource) for d in result.denied}
        assert found - known_faults(stack) == {("EgressFunction", "dynamodb:PutItem", table)}
        assert f"EgressFunction: dynamodb:PutItem on {table}: no statement allows it" in (
            result.report()
        )
    finally:
        client.put_role_policy(
            RoleName=role,
            PolicyName="egress",
            PolicyDocument=json.dumps(iam.normalise_policy(original)),
        )


def test_the_sqs_producer_role_denies_the_platforms_queues_whatever_else_it_allows(stack):
    """The Allow on tenants' queues covers the platform's queues here (`deploy_stack`): the
    explicit Deny on "<QueuePrefix>-*" wins."""
    platform = stack.queue(f"{stack.prefix}-delivery-00")
    tenant = stack.tenant_queue("acme-orders")
    calls = [
        iam.Call("SqsProducerFunction", "sqs", "ReceiveMessage", "sqs:ReceiveMessage", (q,))
        for q in (platform, tenant)
    ]
    denied = iam.check(calls, policies_of(stack))
    assert [(d.principal, d.action, d.resource, d.reason) for d in denied] == [
        ("SqsProducerFunction", "sqs:ReceiveMessage", platform, "denied explicitly")
    ]


def known_faults(stack) -> set[tuple[str, str, str]]:
    """What the template does not allow of what the functions call: nothing. (It lacked
    BatchWriteItem on the idempotency table and GetQueueUrl on the DLQ for the egress, and
    DeleteItem on the data-plane table for the ingress and SQS producer, until the check
    found them.) tests/functions/test_iam_functions.py reads it too."""
    return set()


def test_every_call_the_functions_make_is_allowed_by_their_roles(stack):
    denied = iam.check(calls_of_each_function(stack), policies_of(stack))
    assert denied == [], iam.report(calls_of_each_function(stack), denied)


def test_the_command_line_checks_a_call_log_against_the_stack(stack, tmp_path, capsys):
    path = tmp_path / "calls.jsonl"
    dlq = stack.queue(f"{stack.prefix}-dlq")
    sink = iam._Sink(path)
    for action, resource in (("sqs:SendMessage", dlq), ("sqs:DeleteQueue", dlq)):
        sink(iam.Call("egress", "sqs", action.split(":")[1], action, (resource,)).as_dict())

    code = iam.main(
        [str(path), "--stack", stack.name, "--region", REGION, "--alias", "egress=EgressFunction"]
    )

    assert code == 1
    assert capsys.readouterr().out.splitlines()[1:] == [
        "  egress: 2 calls, 2 actions, 1 denied",
        "Denied:",
        f"  egress: sqs:DeleteQueue on {dlq}: no statement allows it",
    ]
