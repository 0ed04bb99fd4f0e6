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
SECRET = f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:broker/fernet-AbCdEf"
# The key of consumers' secrets, both ways, under either parameter the template may name it
# by: each !If guarding a KMS statement is linted resolved both ways.
SECRETS = {
    "with-kms-key": {"SecretsKmsKeyArn": KMS_KEY, "SecretsArn": KMS_KEY},
    "without": {"SecretsKmsKeyArn": "", "SecretsArn": SECRET},
}
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
    """Defaults, with `overrides` for the parameters the template has."""
    params = template["Parameters"]
    values = {k: str(v.get("Default", "")) for k, v in params.items()}
    values.update(
        {k: v for k, v in {"CodeS3Bucket": "broker-code", **overrides}.items() if k in params}
    )
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
    return bool(_resolve(template["Conditions"][name], template, values))


_NO_VALUE = object()
_FN = ("Fn::GetAtt", "Fn::Sub", "Fn::If", "Fn::Select", "Fn::Split", "Fn::Join")
_FN += ("Fn::Equals", "Fn::Not", "Fn::And", "Fn::Or")


def _resolve(node, template, values):
    """The node with every intrinsic replaced by a sample string (`_NO_VALUE` dropped)."""
    if isinstance(node, list):
        out = [_resolve(x, template, values) for x in node]
        return [x for x in out if x is not _NO_VALUE]
    if not isinstance(node, dict):
        return node
    if len(node) == 1 and next(iter(node)) in ("Ref", "Condition", *_FN):
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
    def r(x):
        return _resolve(x, template, values)

    functions = {
        "Ref": lambda: _ref(arg, template, values),
        "Fn::GetAtt": lambda: _get_att(arg, template, values),
        "Fn::Sub": lambda: _sub(arg, template, values),
        "Fn::If": lambda: r(arg[1] if _condition(template, values, arg[0]) else arg[2]),
        "Fn::Select": lambda: r(arg[1])[int(r(arg[0]))],
        "Fn::Split": lambda: r(arg[1]).split(arg[0]),
        "Fn::Join": lambda: arg[0].join(str(x) for x in r(arg[1])),
        "Fn::Equals": lambda: str(r(arg[0])) == str(r(arg[1])),
        "Fn::Not": lambda: not r(arg[0]),
        "Fn::And": lambda: all(r(x) for x in arg),
        "Fn::Or": lambda: any(r(x) for x in arg),
        "Condition": lambda: _condition(template, values, arg),
    }
    assert key in functions, f"{key} is not resolved here: add it"
    return functions[key]()


def _get_att(arg, template, values):
    logical, attribute = arg if isinstance(arg, list) else arg.split(".", 1)
    assert attribute == "Arn", attribute
    return _arn(template, values, logical)


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
        "TenantQueuePrefix": "tenant-",
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


@pytest.mark.parametrize("secrets", SECRETS.values(), ids=SECRETS.keys())
def test_the_templates_policies_lint_without_medium_or_worse_findings(secrets):
    policies = template_policies(**secrets)
    assert {"IngressRole/ingress", "SqsProducerRole/sqs-producer", "EgressRole/egress"} <= set(
        policies
    )
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
