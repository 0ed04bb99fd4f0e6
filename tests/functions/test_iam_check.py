"""`iam.check` on moto's own evaluator (moto.iam.access_control.IAMPolicy), and what it does
about each of that evaluator's limits in moto 5.2.5 (iam.EVALUATOR_LIMITS,
docs/aws-differences.md). Each limit is shown on the bare evaluator first, so a moto upgrade
that lifts one fails here and says so."""

import json
from urllib.parse import quote

import pytest
from moto.iam.access_control import IAMPolicy, PermissionResult

from broker.functions.local import iam

SQS = "arn:aws:sqs:eu-west-1:123456789012:"
Q = SQS + "broker-delivery-00"
DLQ = "arn:aws:sqs:eu-west-1:123456789012:broker-dlq"


def policy(*statements) -> dict:
    return {"Version": "2012-10-17", "Statement": list(statements)}


def allow(action, resource, **extra) -> dict:
    return {"Effect": "Allow", "Action": action, "Resource": resource, **extra}


def deny(action, resource, **extra) -> dict:
    return {"Effect": "Deny", "Action": action, "Resource": resource, **extra}


def call(action, resource, principal="egress", operation=None) -> iam.Call:
    return iam.Call(
        principal, action.split(":")[0], operation or action.split(":")[1], action, (resource,)
    )


def bare(document: dict, action: str, resource: str) -> PermissionResult:
    return IAMPolicy(json.dumps(document)).is_action_permitted(action, resource)


def test_a_call_some_policy_allows_passes_and_one_none_allows_is_named():
    policies = [policy(allow(["sqs:SendMessage"], Q))]
    denied = iam.check(
        [call("sqs:SendMessage", Q), call("sqs:SendMessage", DLQ), call("sqs:SendMessage", DLQ)],
        policies,
    )
    assert denied == [
        iam.Denied("egress", "sqs:SendMessage", DLQ, "SendMessage", "no statement allows it", 2)
    ]
    assert str(denied[0]) == f"egress: sqs:SendMessage on {DLQ}: no statement allows it (2 calls)"


def test_an_explicit_deny_wins_over_an_allow_in_another_policy():
    policies = [policy(allow("sqs:*", "*")), policy(deny("sqs:ReceiveMessage", Q))]
    denied = iam.check([call("sqs:ReceiveMessage", Q), call("sqs:ReceiveMessage", DLQ)], policies)
    assert [(d.resource, d.reason) for d in denied] == [(Q, "denied explicitly")]


def test_a_principal_without_policies_is_denied_every_call():
    denied = iam.check([call("sqs:SendMessage", Q, principal="stranger")], {"egress": []})
    assert [(d.principal, d.reason) for d in denied] == [("stranger", "no role known")]


def test_actions_match_whatever_their_case():
    assert bare(policy(allow("sqs:sendmessage", "*")), "sqs:SendMessage", Q) is (
        PermissionResult.NEUTRAL
    )  # moto: case-sensitive
    assert iam.check([call("sqs:SendMessage", Q)], [policy(allow("SQS:sendMESSAGE", "*"))]) == []
    assert iam.check([call("sqs:SendMessage", Q)], [policy(allow("sqs:Send*", Q))]) == []


def test_wildcards_are_iams_not_regular_expressions():
    one_char = policy(allow("sqs:SendMessage", "arn:aws:sqs:eu-west-1:123456789012:broker-dlq?"))
    dotted = policy(allow("sqs:SendMessage", "arn:aws:sqs:eu-west-1:123456789012:a.fifo"))
    # moto reads ? as "the character before is optional" and . as any character
    assert bare(one_char, "sqs:SendMessage", DLQ + "2") is PermissionResult.NEUTRAL
    assert bare(dotted, "sqs:SendMessage", SQS + "aXfifo") is PermissionResult.PERMITTED

    assert iam.check([call("sqs:SendMessage", DLQ + "2")], [one_char]) == []
    assert iam.check([call("sqs:SendMessage", SQS + "aXfifo")], [dotted]) != []


def test_a_statement_cloudformation_left_as_none_is_dropped():
    with pytest.raises(TypeError):
        bare(policy(allow("sqs:SendMessage", Q), None), "sqs:SendMessage", Q)
    assert iam.normalise_policy(policy(allow("sqs:SendMessage", Q), None))["Statement"] == [
        allow(["sqs:SendMessage"], [Q])
    ]


def test_policy_documents_are_read_as_json_url_encoded_json_or_the_repr_moto_returns():
    doc = policy(allow("sqs:SendMessage", Q), None)
    for form in (json.dumps(doc), quote(json.dumps(doc)), str(doc), quote(str(doc)), doc):
        assert iam.normalise_policy(form)["Statement"] == [allow(["sqs:SendMessage"], [Q])]
    with pytest.raises(ValueError):
        iam.normalise_policy("not a policy")


def test_a_policy_with_not_resource_is_refused_since_moto_would_apply_it_everywhere():
    not_resource = {"Effect": "Deny", "Action": "sqs:SendMessage", "NotResource": DLQ}
    # moto ignores NotResource: this Deny comes out PERMITTED, for any queue
    assert bare(policy(not_resource), "sqs:SendMessage", Q) is PermissionResult.PERMITTED
    with pytest.raises(iam.UnsupportedPolicy):
        iam.check([call("sqs:SendMessage", Q)], [policy(not_resource)])


def test_conditions_count_as_met_whatever_their_operator():
    """moto evaluates StringEquals only, on the keys it is given; check gives none. So a
    conditional Allow allows and a conditional Deny denies (a stricter check for Deny, a
    looser one for Allow: keep the roles' conditions out of what decides a call)."""
    arn_like = {"ArnLike": {"aws:SourceArn": "arn:aws:sqs:*:*:nothing"}}
    string_equals = {"StringEquals": {"aws:PrincipalTag/team": "nobody"}}
    for condition in (arn_like, string_equals):
        assert (
            iam.check(
                [call("sqs:SendMessage", Q)],
                [policy(allow("sqs:SendMessage", Q, Condition=condition))],
            )
            == []
        )
        assert (
            iam.check(
                [call("sqs:SendMessage", Q)],
                [policy(allow("sqs:*", "*"), deny("sqs:SendMessage", Q, Condition=condition))],
            )
            != []
        )


def test_a_failed_string_equals_makes_moto_deny_even_in_an_allow_statement():
    """Why check passes no condition values: moto answers DENIED (not "does not apply") for
    an Allow whose StringEquals fails, and a DENIED would win over every other policy."""
    doc = policy(allow("sqs:SendMessage", "*", Condition={"StringEquals": {"k": "v"}}))
    answer = IAMPolicy(json.dumps(doc)).is_action_permitted(
        "sqs:SendMessage", Q, incoming_condition_values={"k": "other"}
    )
    assert answer is PermissionResult.DENIED


def test_policy_variables_are_not_substituted():
    doc = policy(allow("sqs:SendMessage", "arn:aws:sqs:eu-west-1:123456789012:${aws:username}"))
    assert iam.check([call("sqs:SendMessage", Q)], [doc]) != []


def test_the_report_counts_per_principal_and_names_every_denied_call():
    calls = [
        call("sqs:SendMessage", Q),
        call("sqs:SendMessage", DLQ),
        call("sqs:ReceiveMessage", Q),
        call("dynamodb:GetItem", "arn:aws:dynamodb:eu-west-1:123456789012:table/t", "ingress"),
    ]
    policies = {"egress": [policy(allow(["sqs:SendMessage", "sqs:ReceiveMessage"], Q))]}
    policies["ingress"] = [policy(allow("dynamodb:GetItem", "*"))]

    text = iam.report(calls, iam.check(calls, policies))

    assert text.splitlines() == [
        "IAM check: principal, calls, distinct actions, denied",
        "  egress: 3 calls, 2 actions, 1 denied",
        "  ingress: 1 calls, 1 actions, 0 denied",
        "Denied:",
        f"  egress: sqs:SendMessage on {DLQ}: no statement allows it",
    ]


def test_a_call_log_file_is_checked_as_its_calls(tmp_path):
    path = tmp_path / "calls.jsonl"
    sink = iam._Sink(path)
    for c in (call("sqs:SendMessage", Q), call("sqs:SendMessage", DLQ)):
        sink(c.as_dict())
    denied = iam.check(iam.read_calls(path), [policy(allow("sqs:SendMessage", Q))])
    assert [d.resource for d in denied] == [DLQ]


def test_fill_policy_substitutes_names_and_drops_what_an_empty_parameter_leaves():
    doc = policy(
        allow("sqs:SendMessage", "arn:${AWS::Partition}:sqs:${AWS::Region}:${AWS::AccountId}:q"),
        allow("kms:Decrypt", "${SecretsKmsKeyArn}"),
    )
    values = {"AWS::Partition": "aws", "AWS::Region": "eu-west-1", "AWS::AccountId": "1"}
    filled = iam.fill_policy(doc, {**values, "SecretsKmsKeyArn": ""})
    assert filled["Statement"] == [allow(["sqs:SendMessage"], ["arn:aws:sqs:eu-west-1:1:q"])]
    with pytest.raises(KeyError, match="SecretsKmsKeyArn"):
        iam.fill_policy(doc, values)
