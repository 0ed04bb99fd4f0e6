"""The DynamoDB contract (docs/dynamodb-contract.md): the only module that knows item shapes.

Items are plain dicts of Python values; `dynamo.py` serializes them. Every item carries
`version` (monotonic per object, assigned in PostgreSQL) and `updated_at` (ISO 8601, UTC).
"""

import json
import time
from datetime import UTC, datetime

from django.conf import settings

from broker.functions.shared.contract import (
    APIKEY_SK,
    CONTRACT_VERSION,
    SOURCE_QUEUE_SK,
    TENANT_SK,
    apikey_pk,
    consumer_sk,
    event_type_sk,
    producer_sk,
    route_sk,
    source_queue_pk,
    tenant_pk,
)


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def tenant_item(tenant) -> dict:
    item = {
        "PK": tenant_pk(tenant.pk),
        "SK": TENANT_SK,
        "type": "tenant",
        "contract": CONTRACT_VERSION,
        "tenant_id": str(tenant.pk),
        "slug": tenant.slug,
        "status": tenant.status,
        "tier": tenant.tier.name,
        "deployment_model": tenant.tier.deployment_model,
        "quotas": tenant.effective_quotas(),
        "delivery_queues": list(tenant.delivery_queues),
        # FIFO queues of ordered subscriptions; absent until provisioned (the data plane then
        # delivers ordered routes unordered and says so).
        "ordered_queues": list(tenant.ordered_queues) or None,
        "version": tenant.version,
        "updated_at": now_iso(),
    }
    return item


def tombstone(*, pk: str, sk: str, version: int) -> dict:
    """A deleted object: keeps its version so an older late write cannot bring it back."""
    return {
        "PK": pk,
        "SK": sk,
        "deleted": True,
        "version": version,
        "updated_at": now_iso(),
        "ttl": int(time.time() + settings.TOMBSTONE_TTL.total_seconds()),
    }


# --- tenant configuration items ----------------------------------------------------------
# Object types as they appear in the outbox and in sync state.
PRODUCER, APIKEY, CONSUMER, SUBSCRIPTION, EVENT_TYPE, TENANT = (
    "producer",
    "apikey",
    "consumer",
    "subscription",
    "event_type",
    "tenant",
)
OBJECT_TYPES = (TENANT, PRODUCER, APIKEY, CONSUMER, SUBSCRIPTION, EVENT_TYPE)


def _epoch(dt) -> int | None:
    return int(dt.timestamp()) if dt is not None else None


def _json(value) -> str:
    # Filters and schemas hold floats, which DynamoDB's number type (Decimal) refuses; and the
    # data plane parses them as JSON anyway.
    return json.dumps(value, separators=(",", ":"), sort_keys=True)


def item_keys(object_type: str, obj, *, tenant_id) -> list[tuple[str, str]]:
    """The (PK, SK) of every item an object is mirrored to."""
    pk = tenant_pk(tenant_id)
    if object_type == TENANT:
        return [(pk, TENANT_SK)]
    if object_type == PRODUCER:
        keys = [(pk, producer_sk(obj.pk))]
        if obj.kind == "sqs" and obj.source_queue_arn:
            keys.append((source_queue_pk(obj.source_queue_arn), SOURCE_QUEUE_SK))
        return keys
    if object_type == APIKEY:
        return [(apikey_pk(obj.key_hash), APIKEY_SK)]
    if object_type == CONSUMER:
        return [(pk, consumer_sk(obj.pk))]
    if object_type == SUBSCRIPTION:
        return [(pk, route_sk(obj.event_type, obj.pk))]
    if object_type == EVENT_TYPE:
        return [(pk, event_type_sk(obj.name))]
    raise ValueError(f"unknown object type {object_type!r}")


def _base(keys, *, type_: str, tenant_id, obj) -> dict:
    pk, sk = keys[0]
    return {
        "PK": pk,
        "SK": sk,
        "type": type_,
        "contract": CONTRACT_VERSION,
        "tenant_id": str(tenant_id),
        "version": obj.version,
        "updated_at": now_iso(),
    }


def producer_item(producer, *, tenant) -> dict:
    quotas = tenant.effective_quotas()
    item = _base(
        item_keys(PRODUCER, producer, tenant_id=tenant.pk),
        type_="producer",
        tenant_id=tenant.pk,
        obj=producer,
    )
    item.update(
        producer_id=str(producer.pk),
        name=producer.name,
        kind=producer.kind,
        enabled=producer.enabled,
        allowed_event_types=list(producer.allowed_event_types),
        rate_per_second=producer.ingest_rate_per_second or quotas["ingest_rate_per_second"],
        burst=producer.ingest_burst or quotas["ingest_burst"],
        max_event_size_bytes=quotas["max_event_size_bytes"],
        source_queue_arn=producer.source_queue_arn or None,
    )
    return item


def source_queue_item(producer, *, tenant) -> dict:
    """An SQS producer's source queue → its producer: the ingress's SQS handler finds the
    producer of a record in one GetItem on the queue's ARN. It carries the producer's version
    (it changes with the producer) and `apikey_tenant_id`, so that the tenant's sparse index
    lists it too: the reconciler and offboarding find it there, as they find API keys."""
    keys = item_keys(PRODUCER, producer, tenant_id=tenant.pk)
    item = _base(keys[1:], type_="source_queue", tenant_id=tenant.pk, obj=producer)
    item.update(
        apikey_tenant_id=str(tenant.pk),
        producer_id=str(producer.pk),
        queue_arn=producer.source_queue_arn,
    )
    return item


def apikey_item(key, *, tenant) -> dict:
    """What the ingress needs to authenticate a request with one GetItem on the key's hash.

    A key being rotated out carries `expires_at`; DynamoDB's TTL removes it a day later and the
    relay tombstones it when it expires. A revoked or expired key is a tombstone."""
    pk, sk = item_keys(APIKEY, key, tenant_id=tenant.pk)[0]
    if not key.is_valid():
        return tombstone(pk=pk, sk=sk, version=key.version)
    item = _base([(pk, sk)], type_="apikey", tenant_id=tenant.pk, obj=key)
    expires = _epoch(key.expires_at)
    item.update(
        key_id=str(key.pk),
        apikey_tenant_id=str(tenant.pk),  # the sparse index the reconciler reads
        producer_id=str(key.producer_id),
        prefix=key.prefix,
        expires_at=expires,
        ttl=expires + 86_400 if expires else None,
    )
    return item


def consumer_item(consumer, *, tenant) -> dict:
    """Secrets appear only as references: the KMS/Fernet-encrypted blobs (broker.secrets),
    decryptable only with the tenant id as encryption context."""
    quotas = tenant.effective_quotas()
    item = _base(
        item_keys(CONSUMER, consumer, tenant_id=tenant.pk),
        type_="consumer",
        tenant_id=tenant.pk,
        obj=consumer,
    )
    signing = []
    if consumer.signing_secret_encrypted:
        signing.append({"secret_ref": consumer.signing_secret_encrypted})
    if consumer.previous_signing_secret_encrypted and consumer.previous_signing_secret_expires_at:
        signing.append(
            {
                "secret_ref": consumer.previous_signing_secret_encrypted,
                "expires_at": _epoch(consumer.previous_signing_secret_expires_at),
            }
        )
    auth = {"type": consumer.auth_type}
    if consumer.auth_type in ("header", "basic"):
        auth["name"] = consumer.auth_username
    if consumer.auth_type != "none":
        auth["secret_ref"] = consumer.auth_secret_encrypted
    target = (
        {"url": consumer.url} if consumer.kind == "https" else {"queue_arn": consumer.queue_arn}
    )
    item.update(
        consumer_id=str(consumer.pk),
        name=consumer.name,
        kind=consumer.kind,
        enabled=consumer.enabled,
        target=target,
        auth=auth,
        signing_secrets=signing,
        timeout_ms=consumer.timeout_ms,
        concurrency=consumer.delivery_concurrency or quotas["delivery_concurrency"],
        retry=consumer.retry_policy,
        rate_limit_per_second=consumer.rate_limit_per_second,  # absent: no limit
    )
    return item


def route_item(subscription, *, tenant) -> dict:
    item = _base(
        item_keys(SUBSCRIPTION, subscription, tenant_id=tenant.pk),
        type_="route",
        tenant_id=tenant.pk,
        obj=subscription,
    )
    item.update(
        subscription_id=str(subscription.pk),
        event_type=subscription.event_type,
        consumer_id=str(subscription.consumer_id),
        producer_id=str(subscription.producer_id) if subscription.producer_id else None,
        filter_json=_json(subscription.filter or {}),
        enabled=subscription.enabled,
        ordered=subscription.ordered,
        # Absent: the envelope's `ordering_key`.
        ordering_key_path=subscription.ordering_key_path or None,
        on_head_failure=subscription.on_head_failure,
    )
    return item


def event_type_item(event_type, *, tenant) -> dict:
    item = _base(
        item_keys(EVENT_TYPE, event_type, tenant_id=tenant.pk),
        type_="event_type",
        tenant_id=tenant.pk,
        obj=event_type,
    )
    item.update(
        name=event_type.name,
        schema_json=_json(event_type.schema) if event_type.schema is not None else None,
    )
    return item


def _tenant_self_item(obj, *, tenant) -> dict:
    return tenant_item(tenant)


BUILDERS = {
    TENANT: _tenant_self_item,
    PRODUCER: producer_item,
    APIKEY: apikey_item,
    CONSUMER: consumer_item,
    SUBSCRIPTION: route_item,
    EVENT_TYPE: event_type_item,
}


def build_all(object_type: str, obj, *, tenant) -> list[dict]:
    """Every item an object is mirrored to, in the order of `item_keys`: its own item, and an
    sqs producer's source-queue item."""
    items = [BUILDERS[object_type](obj, tenant=tenant)]
    if object_type == PRODUCER and len(item_keys(PRODUCER, obj, tenant_id=tenant.pk)) > 1:
        items.append(source_queue_item(obj, tenant=tenant))
    return items
