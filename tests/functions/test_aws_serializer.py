"""The data plane's DynamoDB client writes the item calls' bodies itself (aws.PlainJSONBody) and
remembers their endpoints per table (aws.TableEndpoints): the requests must be botocore's own."""

import json

import pytest
from botocore.serialize import create_serializer

from broker.functions import aws, settings
from broker.functions.aws import PlainJSONBody, TableEndpoints

ITEM = {
    "PK": {"S": "DLOG#t#c"},
    "SK": {"S": "2026-12-06T04:00:00.000Z#msg_1#0000#0001"},
    "n": {"N": "12.5"},
    "ok": {"BOOL": True},
    "none": {"NULL": True},
    "tags": {"SS": ["a", "é", "😀"]},
    "nested": {"M": {"l": {"L": [{"S": "x"}, {"N": "1"}, {"M": {}}]}}},
}

CALLS = [
    (
        "PutItem",
        {"TableName": "t", "Item": ITEM, "ConditionExpression": "attribute_not_exists(PK)"},
    ),
    ("GetItem", {"TableName": "t", "Key": {"PK": ITEM["PK"], "SK": ITEM["SK"]}}),
    (
        "UpdateItem",
        {
            "TableName": "t",
            "Key": {"PK": ITEM["PK"], "SK": ITEM["SK"]},
            "UpdateExpression": "SET #a = :a ADD #n :n",
            "ExpressionAttributeNames": {"#a": "a", "#n": "n"},
            "ExpressionAttributeValues": {":a": {"S": "v"}, ":n": {"N": "1"}},
            "ReturnValues": "ALL_NEW",
        },
    ),
    ("BatchWriteItem", {"RequestItems": {"t": [{"PutRequest": {"Item": ITEM}}] * 3}}),
    (
        "Query",
        {
            "TableName": "t",
            "KeyConditionExpression": "PK = :pk",
            "ExpressionAttributeValues": {":pk": ITEM["PK"]},
            "Limit": 25,
            "ScanIndexForward": False,
        },
    ),
    ("PutItem", {"TableName": "t", "Item": {**ITEM, "bin": {"B": b"\x00\xff"}}}),
]


@pytest.mark.parametrize(("operation", "params"), CALLS, ids=[c[0] for c in CALLS])
def test_the_item_calls_requests_are_botocores_own(dataplane, operation, params):
    model = aws.dynamodb().meta.service_model.operation_model(operation)
    botocores = create_serializer("json", include_validation=False)

    ours = aws.dynamodb()._serializer.serialize_to_request(params, model)
    theirs = botocores.serialize_to_request(params, model)

    assert isinstance(aws.dynamodb()._serializer, PlainJSONBody)
    assert json.loads(ours.pop("body")) == json.loads(theirs.pop("body"))
    assert ours == theirs


def test_items_go_in_and_come_back_the_same(dataplane):
    table = settings.get().dataplane_table
    item = {**ITEM, "bin": {"B": b"\x00\xff"}}
    client = aws.dynamodb()

    client.put_item(TableName=table, Item=item)
    client.batch_write_item(
        RequestItems={table: [{"PutRequest": {"Item": {**ITEM, "SK": {"S": "other"}}}}]}
    )
    got = client.get_item(TableName=table, Key={"PK": ITEM["PK"], "SK": ITEM["SK"]})["Item"]
    other = client.get_item(TableName=table, Key={"PK": ITEM["PK"], "SK": {"S": "other"}})["Item"]

    assert got == item
    assert other == {**ITEM, "SK": {"S": "other"}}


def test_endpoints_are_remembered_per_operation_and_table(dataplane):
    client = aws.dynamodb()
    resolver = client._ruleset_resolver
    assert isinstance(resolver, TableEndpoints)
    model = client.meta.service_model.operation_model("GetItem")
    plain = resolver._inner

    for table in ("a", "b", "a"):
        args = {"TableName": table, "Key": {}}
        assert resolver.construct_endpoint(model, args, {}) == plain.construct_endpoint(
            model, args, {}
        )
    assert sorted(resolver._known) == [("GetItem", ("a",)), ("GetItem", ("b",))]
