"""parliament (an IAM policy linter) on every policy of deploy/template.yaml and on
deploy/portal-policy.json, as cfn-lint lints the template: no finding of severity MEDIUM or
above. The template's intrinsics are resolved to sample strings first (parliament reads plain
policy JSON): `!Sub` and `!Ref` with the sample parameters below, `!GetAtt X.Arn` to the ARN
AWS gives that resource type, `!If` by its condition with those parameters (both ways for
the KMS key, so the statement it guards is linted too)."""

import json
import re
from pathlib import Path

import pytest
from cfnlint.decode import decode_str
from parliament import analyze_policy_string, enhance_finding

from broker.functions.local import iam

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "deploy" / "template.yaml"
ACCOUNT, REGION = "123456789012", "eu-west-1"
KMS_KEY = f"arn:aws:kms:{REGION}:{ACCOUNT}:key/1234abcd-12ab-34cd-56ef-1234567890ab"
PSEUDO = {
    "AWS::AccountId": ACCOUNT,
    "AWS::Region": REGION,
    "AWS::Partition": "aws",
    "AWS::StackName": "broker-dataplane",
}
SEVERE = {"MEDIUM", "HIGH", "CRITICAL"}
# Findings allowed, each with its reason: (issue, where it is) -> why.
ALLOWED: dict[tuple[str, str], str] = {}


def _template() -> dict:
    parsed, errors = decode_str(TEMPLATE.read_text())
    assert not errors
    return json.loads(json.dumps(parsed, default=str))


def _parameters(template, **overrides) -> dict:
    values = {k: str(v.get("Default", "")) for k, v in template["Parameters"].items()}
    values.update(CodeS3Bucket="broker-code", **overrides)
    return {**values, **PSEUDO}


def _arn(template, values, logical: str) -> str:
    """The Arn attribute AWS returns for the resource."""
    resource = template["Resources"][logical]
    props = _resolve(resource.get("Properties", {}), template, values)
    base = f"arn:aws:{{}}:{REGION}:{ACCOUNT}:"
    return {
        "AWS::DynamoDB::Table": lambda: base.format("dynamodb") + f"table/{props['TableName']}",
        "AWS::SQS::Queue": lambda: base.format("sqs") + props["QueueName"],
        # A log group's Arn ends in ":*" (CloudFormation's documented value).
        "AWS::Logs::LogGroup": lambda: base.format("logs") + f"log-group:{props['LogGroupName']}:*",
        "AWS::Lambda::Function": lambda: (
            base.format("lambda") + f"function:{props['FunctionName']}"
        ),
        "AWS::IAM::Role": lambda: f"arn:aws:iam::{ACCOUNT}:role/{logical}",
    }[resource["Type"]]()


def _condition(template, values, name) -> bool:
    cond = template["Conditions"][name]
    ((fn, args),) = cond.items()
    if fn == "Fn::Not":
        (inner,) = args
        ((fn2, args2),) = inner.items()
        assert fn2 == "Fn::Equals"
        a, b = (_resolve(x, template, values) for x in args2)
        return a != b
    raise AssertionError(f"condition {name}: {fn} not resolved here")


_NO_VALUE = object()


def _resolve(node, template, values):
    """The node with every intrinsic replaced by a sample string (`_NO_VALUE` dropped)."""
    if isinstance(node, list):
        out = [_resolve(x, template, values) for x in node]
        return [x for x in out if x is not _NO_VALUE]
    if not isinstance(node, dict):
        return node
    if len(node) == 1 and (next(iter(node)) == "Ref" or next(iter(node)).startswith("Fn::")):
        ((key, arg),) = node.items()
        return _intrinsic(key, arg, template, values)
    out = {k: _resolve(v, template, values) for k, v in node.items()}
    return {k: v for k, v in out.items() if v is not _NO_VALUE}


def _ref(name, template, values):
    if name == "AWS::NoValue":
        return _NO_VALUE
    if name in values:
        return values[name]
    props = _resolve(template["Resources"][name].get("Properties", {}), template, values)
    return props.get("TableName") or props.get("FunctionName") or name


def _sub(arg, template, values):
    text, extra = (arg, {}) if isinstance(arg, str) else arg

    def one(m):
        name = m.group(1)
        if name in extra:
            return str(_resolve(extra[name], template, values))
        if name in values:
            return values[name]
        logical, _, attribute = name.partition(".")
        assert attribute == "Arn", name
        return _arn(template, values, logical)

    return re.sub(r"\$\{([^}!]+)\}", one, text)


def _intrinsic(key, arg, template, values):
    if key == "Ref":
        return _ref(arg, template, values)
    if key == "Fn::GetAtt":
        logical, attribute = arg if isinstance(arg, list) else arg.split(".", 1)
        assert attribute == "Arn", attribute
        return _arn(template, values, logical)
    if key == "Fn::Sub":
        return _sub(arg, template, values)
    if key == "Fn::If":
        name, yes, no = arg
        return _resolve(yes if _condition(template, values, name) else no, template, values)
    raise AssertionError(f"{key} is not resolved here: add it")


def template_policies(**overrides) -> dict[str, dict]:
    """{"<Role>/<PolicyName>": document} for every role's inline policies (and any
    AWS::IAM::Policy or ManagedPolicy), intrinsics resolved."""
    template = _template()
    values = _parameters(template, **overrides)
    out = {}
    for logical, resource in template["Resources"].items():
        props = resource.get("Properties", {})
        if resource["Type"] == "AWS::IAM::Role":
            for policy in props.get("Policies", []):
                doc = _resolve(policy["PolicyDocument"], template, values)
                out[f"{logical}/{policy['PolicyName']}"] = doc
        elif resource["Type"] in ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy"):
            out[logical] = _resolve(props["PolicyDocument"], template, values)
    return out


def portal_policy(**overrides) -> dict:
    values = {
        "AWS::AccountId": ACCOUNT,
        "AWS::Region": REGION,
        "QueuePrefix": "broker",
        "StackName": "broker-dataplane",
        "ConfigTableName": "broker-config",
        "DataplaneTableName": "broker-dataplane",
        "SecretsKmsKeyArn": KMS_KEY,
        "TenantQueueNamePattern": "*",
        **overrides,
    }
    return iam.portal_policy(**{k.replace("::", "__"): v for k, v in values.items()})


def severe_findings(name: str, document: dict) -> list[str]:
    out = []
    for finding in analyze_policy_string(json.dumps(document)).findings:
        finding = enhance_finding(finding)
        if finding.severity not in SEVERE or (finding.issue, name) in ALLOWED:
            continue
        out.append(f"{name}: {finding.issue} ({finding.severity}) {finding.detail}")
    return out


@pytest.mark.parametrize("kms_key", [KMS_KEY, ""], ids=["with-kms-key", "without"])
def test_the_templates_policies_lint_without_medium_or_worse_findings(kms_key):
    policies = template_policies(SecretsKmsKeyArn=kms_key)
    assert set(policies) == {
        "IngressRole/ingress",
        "SqsProducerRole/sqs-producer",
        "EgressRole/egress",
    }
    egress = iam.normalise_policy(policies["EgressRole/egress"])
    egress_actions = {a for s in egress["Statement"] for a in s["Action"]}
    assert ("kms:Decrypt" in egress_actions) == bool(kms_key)  # the !If resolved both ways
    findings = [f for name, doc in policies.items() for f in severe_findings(name, doc)]
    assert findings == []


def test_the_portal_policy_lints_without_medium_or_worse_findings():
    assert severe_findings("portal-policy.json", portal_policy()) == []


def test_the_linter_would_report_a_bad_policy():
    """The test above is not vacuous: parliament flags an ARN that is not one."""
    bad = {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Action": "sqs:SendMessage", "Resource": "arn:aws:sqs:x"}
        ],
    }
    assert severe_findings("bad", bad)
