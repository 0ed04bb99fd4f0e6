"""Cached reads of the contract table (docs/dynamodb-contract.md), shared by both functions.

An item read is reused for `CONFIG_CACHE_TTL_SECONDS` (60 s), an absent one for
`CONFIG_MISS_TTL_SECONDS` (5 s): a warm function does no DynamoDB read per event, and a change
made in the portal is seen within a minute. Tombstones and items of an unknown contract
version read as absent. Cache keys are the items' own keys, which carry the tenant id.
"""

import threading
import time

from boto3.dynamodb.types import TypeDeserializer

from broker.functions import aws, settings
from broker.functions.shared import contract

_de = TypeDeserializer()
_lock = threading.Lock()
_cache: dict[tuple, tuple[float, object]] = {}
# Counted for the benchmark and the "no read per event when warm" test.
reads = {"get_item": 0, "query": 0}


def clear() -> None:
    with _lock:
        _cache.clear()


def deserialize(raw: dict) -> dict:
    return {k: _de.deserialize(v) for k, v in raw.items()}


def _cached(key: tuple, load):
    now = time.monotonic()
    with _lock:
        hit = _cache.get(key)
    if hit is not None and hit[0] > now:
        return hit[1]
    value = load()
    s = settings.get()
    ttl = s.cache_ttl if value else s.miss_ttl
    with _lock:
        _cache[key] = (now + ttl, value)
    return value


def get_item(pk: str, sk: str) -> dict | None:
    """The live item at (pk, sk), or None (absent, tombstone, unreadable contract version)."""

    def load():
        reads["get_item"] += 1
        raw = aws.dynamodb().get_item(
            TableName=settings.get().config_table,
            Key={"PK": {"S": pk}, "SK": {"S": sk}},
        )
        item = deserialize(raw["Item"]) if "Item" in raw else None
        return item if contract.is_live(item) else None

    return _cached(("item", pk, sk), load)


def tenant(tenant_id) -> dict | None:
    return get_item(contract.tenant_pk(tenant_id), contract.TENANT_SK)


def producer(tenant_id, producer_id) -> dict | None:
    return get_item(contract.tenant_pk(tenant_id), contract.producer_sk(producer_id))


def consumer(tenant_id, consumer_id) -> dict | None:
    return get_item(contract.tenant_pk(tenant_id), contract.consumer_sk(consumer_id))


def event_type(tenant_id, name: str) -> dict | None:
    return get_item(contract.tenant_pk(tenant_id), contract.event_type_sk(name))


def api_key(key_hash: str) -> dict | None:
    return get_item(contract.apikey_pk(key_hash), contract.APIKEY_SK)


def source_queue(queue_arn: str) -> dict | None:
    return get_item(contract.source_queue_pk(queue_arn), contract.SOURCE_QUEUE_SK)


def routes(tenant_id) -> list[dict]:
    """Every live route item of the tenant (one paginated Query, then cached)."""

    def load():
        client = aws.dynamodb()
        out, kwargs = [], {}
        while True:
            reads["query"] += 1
            page = client.query(
                TableName=settings.get().config_table,
                KeyConditionExpression="PK = :pk AND begins_with(SK, :r)",
                ExpressionAttributeValues={
                    ":pk": {"S": contract.tenant_pk(tenant_id)},
                    ":r": {"S": contract.ROUTE_PREFIX},
                },
                **kwargs,
            )
            out.extend(i for i in map(deserialize, page.get("Items", [])) if contract.is_live(i))
            if "LastEvaluatedKey" not in page:
                return out
            kwargs = {"ExclusiveStartKey": page["LastEvaluatedKey"]}

    return _cached(("routes", str(tenant_id)), load)
