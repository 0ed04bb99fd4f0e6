"""Versioned, conditional writes to the config table."""

import time
from concurrent.futures import ThreadPoolExecutor

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from django.conf import settings

from core import aws

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


BATCH_WRITE_LIMIT = 25  # BatchWriteItem takes at most 25 requests
BATCH_GET_LIMIT = 100


def batch_write(items: list[dict], *, workers: int = 1, max_rounds: int = 8) -> int:
    """Unconditional writes, 25 per BatchWriteItem call (`workers` calls in flight),
    re-sending what DynamoDB left unprocessed.

    No version condition: only for callers that hold the tenant's exclusive writer lock and
    know no newer version can be in the table (resync and reconcile)."""
    client = aws.dynamodb()
    table = settings.DYNAMODB_CONFIG_TABLE

    def write(chunk: list[dict]) -> int:
        requests = [{"PutRequest": {"Item": serialize(i)}} for i in chunk]
        written = 0
        for attempt in range(max_rounds):
            out = client.batch_write_item(RequestItems={table: requests})
            left = out.get("UnprocessedItems", {}).get(table, [])
            written += len(requests) - len(left)
            if not left:
                return written
            requests = left
            time.sleep(min(1.0, 0.05 * 2**attempt))
        raise RuntimeError(f"DynamoDB left {len(requests)} items unprocessed")

    chunks = [items[i : i + BATCH_WRITE_LIMIT] for i in range(0, len(items), BATCH_WRITE_LIMIT)]
    if workers <= 1 or len(chunks) <= 1:
        return sum(write(chunk) for chunk in chunks)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return sum(pool.map(write, chunks))


def batch_get(keys: list[tuple[str, str]], *, projection: str | None = None) -> list[dict]:
    client = aws.dynamodb()
    table = settings.DYNAMODB_CONFIG_TABLE
    found = []
    for start in range(0, len(keys), BATCH_GET_LIMIT):
        request = {
            "Keys": [{"PK": {"S": pk}, "SK": {"S": sk}} for pk, sk in keys[start : start + 100]],
            "ConsistentRead": True,
        }
        if projection:
            request["ProjectionExpression"] = projection
        pending = {table: request}
        for attempt in range(8):
            out = client.batch_get_item(RequestItems=pending)
            found.extend(deserialize(i) for i in out["Responses"].get(table, []))
            pending = out.get("UnprocessedKeys") or {}
            if not pending:
                break
            time.sleep(min(1.0, 0.05 * 2**attempt))
    return found


def scan_all(*, segments: int = 4) -> list[dict]:
    """Every item of the config table: a parallel Scan (`segments` in flight), consistent.
    Pages of at most RECONCILE_SCAN_PAGE_SIZE items: moto's Scan costs ~2-6 ms an item
    returned (a 1 MB page of 1,500 TENANT items took 10-50 s there, past the client's 10-s
    read timeout); bench/scale.py sets 100."""
    page_size = settings.RECONCILE_SCAN_PAGE_SIZE
    client = aws.dynamodb()

    def segment(number: int) -> list[dict]:
        items, kwargs = [], {}
        while True:
            page = client.scan(
                TableName=settings.DYNAMODB_CONFIG_TABLE,
                Segment=number,
                TotalSegments=segments,
                ConsistentRead=True,
                Limit=page_size,
                **kwargs,
            )
            items.extend(deserialize(i) for i in page["Items"])
            if "LastEvaluatedKey" not in page:
                return items
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    with ThreadPoolExecutor(max_workers=segments) as pool:
        return [item for part in pool.map(segment, range(segments)) for item in part]


def query_index(index: str, key_name: str, value: str) -> list[tuple[str, str]]:
    """Keys of the items of a sparse index (KEYS_ONLY projection)."""
    client = aws.dynamodb()
    keys, kwargs = [], {}
    while True:
        page = client.query(
            TableName=settings.DYNAMODB_CONFIG_TABLE,
            IndexName=index,
            KeyConditionExpression="#k = :v",
            ExpressionAttributeNames={"#k": key_name},
            ExpressionAttributeValues={":v": {"S": value}},
            **kwargs,
        )
        keys.extend((i["PK"]["S"], i["SK"]["S"]) for i in page["Items"])
        if "LastEvaluatedKey" not in page:
            return keys
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]
