"""Puts items into the data plane's table with the keys of broker/functions/shared/records.py
and the attributes the egress writes (docs/dynamodb-contract.md, "Data-plane table"): what the
portal reads in tests, written as the data plane writes it."""

import json
from datetime import UTC, datetime, timedelta

from boto3.dynamodb.types import TypeSerializer
from django.conf import settings
from django.core.cache import cache

from broker.functions.shared import records
from core import aws

_serializer = TypeSerializer()


def put(pk: str, sk: str, **attrs) -> None:
    item = {"PK": pk, "SK": sk, "ttl": int(datetime.now(UTC).timestamp()) + 86_400, **attrs}
    aws.dynamodb().put_item(
        TableName=settings.DATAPLANE_TABLE,
        Item={k: _serializer.serialize(v) for k, v in item.items() if v is not None},
    )


def add(pk: str, sk: str, **counters) -> None:
    names = {f"#a{i}": k for i, k in enumerate(counters)}
    values = {f":v{i}": {"N": str(v)} for i, v in enumerate(counters.values())}
    aws.dynamodb().update_item(
        TableName=settings.DATAPLANE_TABLE,
        Key={"PK": {"S": pk}, "SK": {"S": sk}},
        UpdateExpression="ADD " + ", ".join(f"#a{i} :v{i}" for i in range(len(counters))),
        ExpressionAttributeNames=names,
        ExpressionAttributeValues=values,
    )


def tenant_minute(tenant, at: datetime, **counters) -> None:
    add(*records.tenant_stats_key(str(tenant.pk), records.minute(at)), **counters)


def consumer_minute(tenant, consumer_id, at: datetime, *, ok=0, failed=0, latencies=()) -> None:
    counters = {"ok": ok, "failed": failed}
    for ms in latencies:
        name = records.latency_bucket(ms)
        counters[name] = counters.get(name, 0) + 1
    add(
        *records.consumer_stats_key(str(tenant.pk), str(consumer_id), records.minute(at)),
        **counters,
    )


def events_today(tenant, count: int, at: datetime | None = None) -> None:
    add(*records.quota_key(str(tenant.pk), records.day(at)), c=count)


def attempt(
    tenant,
    consumer_id,
    *,
    delivery_id: str,
    at: datetime,
    status: str = records.OK,
    http_status: int | None = 200,
    latency_ms: int = 42,
    error: str = "",
    error_kind: str | None = None,
    replay: int = 0,
    attempt_no: int = 1,
    event_type: str = "order.created",
    event_id: str = "evt_1",
    subscription_id: str | None = None,
    producer_id: str | None = None,
    event: dict | None = None,
    throttled_ms: int | None = None,
    ordering_key: str | None = None,
) -> dict:
    """One attempt under the consumer's log and under its delivery (+ the EVENT item)."""
    at_iso = at.astimezone(UTC).isoformat(timespec="milliseconds")
    attrs = {
        "delivery_id": delivery_id,
        "status": status,
        "http_status": http_status,
        "latency_ms": latency_ms,
        "error": error or None,
        "error_kind": error_kind,
        "event_id": event_id,
        "event_type": event_type,
        "subscription_id": subscription_id,
        "producer_id": producer_id,
        "consumer_id": str(consumer_id),
        "replay": replay,
        "attempt": attempt_no,
        "at": at_iso,
        "throttled_ms": throttled_ms,
        "ordering_key": ordering_key,
    }
    tid = str(tenant.pk)
    put(
        *records.consumer_log_key(tid, str(consumer_id), at_iso, delivery_id, replay, attempt_no),
        **attrs,
    )
    put(*records.delivery_attempt_key(tid, delivery_id, replay, attempt_no), **attrs)
    event = event or {"id": event_id, "type": event_type, "time": at_iso, "data": {"total": 12}}
    put(
        *records.delivery_event_key(tid, delivery_id),
        event=json.dumps(event),
        consumer_id=str(consumer_id),
        subscription_id=subscription_id,
        producer_id=producer_id,
        event_id=event_id,
        event_type=event_type,
    )
    return attrs


def clear() -> None:
    """Deletes every item of the data-plane table (tests share the in-process moto), and the
    portal's cached reads of it."""
    cache.clear()
    ddb, table = aws.dynamodb(), settings.DATAPLANE_TABLE
    kwargs = {"TableName": table, "ProjectionExpression": "PK, SK"}
    while True:
        page = ddb.scan(**kwargs)
        for item in page.get("Items", []):
            ddb.delete_item(TableName=table, Key={"PK": item["PK"], "SK": item["SK"]})
        if "LastEvaluatedKey" not in page:
            break
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def minutes_ago(n: int) -> datetime:
    return datetime.now(UTC) - timedelta(minutes=n)
