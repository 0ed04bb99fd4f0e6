"""Versioned, conditional writes to the config table."""

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from django.conf import settings

from portal import aws

_ser = TypeSerializer()
_de = TypeDeserializer()
NEWER_ONLY = "attribute_not_exists(PK) OR version < :v"


def serialize(item: dict) -> dict:
    return {k: _ser.serialize(v) for k, v in item.items() if v is not None}


def deserialize(raw: dict) -> dict:
    return {k: _de.deserialize(v) for k, v in raw.items()}


def put_versioned(item: dict) -> bool:
    """Writes the item unless the table already holds this version or a newer one.

    Returns False when the condition failed: that means "something newer is there", which is
    success for the caller, not an error.
    """
    client = aws.dynamodb()
    try:
        client.put_item(
            TableName=settings.DYNAMODB_CONFIG_TABLE,
            Item=serialize(item),
            ConditionExpression=NEWER_ONLY,
            ExpressionAttributeValues={":v": {"N": str(item["version"])}},
        )
    except client.exceptions.ConditionalCheckFailedException:
        return False
    return True


def get_item(pk: str, sk: str) -> dict | None:
    raw = aws.dynamodb().get_item(
        TableName=settings.DYNAMODB_CONFIG_TABLE,
        Key={"PK": {"S": pk}, "SK": {"S": sk}},
        ConsistentRead=True,
    )
    return deserialize(raw["Item"]) if "Item" in raw else None


def query_partition(pk: str) -> list[dict]:
    client = aws.dynamodb()
    items, kwargs = [], {}
    while True:
        page = client.query(
            TableName=settings.DYNAMODB_CONFIG_TABLE,
            KeyConditionExpression="PK = :pk",
            ExpressionAttributeValues={":pk": {"S": pk}},
            ConsistentRead=True,
            **kwargs,
        )
        items.extend(deserialize(i) for i in page["Items"])
        if "LastEvaluatedKey" not in page:
            return items
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]
