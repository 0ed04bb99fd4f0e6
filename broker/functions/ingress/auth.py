"""Who sends: an HTTPS producer's API key, or an SQS producer's source queue → producer and
tenant items, with the checks both paths share. Every read goes through `config` (cached)."""

import hashlib
import time

from broker.functions import config
from broker.functions.shared import patterns

from .errors import IngressError

UNKNOWN_KEY = "Unknown, revoked or expired API key."


def key_from_headers(headers: dict) -> str | None:
    """`Authorization: Bearer <key>`, else `X-Api-Key: <key>` (header names lower-case)."""
    value = (headers.get("authorization") or "").strip()
    if value:
        scheme, _, token = value.partition(" ")
        if scheme.lower() == "bearer" and token.strip():
            return token.strip()
        return None
    return (headers.get("x-api-key") or "").strip() or None


def key_prefix(key: str | None) -> str | None:
    """What may be logged of a key: its first characters, as the portal shows them."""
    return key[:12] if key else None


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def _principal(tenant_id: str, producer_id: str) -> tuple[dict, dict]:
    producer = config.producer(tenant_id, producer_id)
    tenant = config.tenant(tenant_id)
    if producer is None or tenant is None:
        return None, None
    return tenant, producer


def check_producer(tenant: dict, producer: dict) -> None:
    """403 for a disabled producer or a tenant that is not active (both may come back, so an
    SQS producer's messages stay in its queue)."""
    if tenant.get("status") != "active":
        raise IngressError(
            "forbidden", "The tenant is not active; events are refused.", retryable=True
        )
    if not producer.get("enabled", False):
        raise IngressError("forbidden", "The producer is disabled.", retryable=True)


def check_type_allowed(producer: dict, event_type: str) -> None:
    allowed = producer.get("allowed_event_types") or []
    if allowed and not any(patterns.event_type_matches(p, event_type) for p in allowed):
        raise IngressError(
            "forbidden",
            f"This producer may not send events of type {event_type!r}.",
            fields={"type": [f"Allowed: {', '.join(allowed)}."]},
        )


def authenticate(key: str | None, *, now: float | None = None) -> tuple[dict, dict]:
    """(tenant item, producer item) of an API key; 401 when the key is not (or no longer)
    valid, 403 when it is but its producer or tenant may not send."""
    if not key:
        raise IngressError(
            "not_authenticated",
            "Send the producer's API key as 'Authorization: Bearer <key>' or 'X-Api-Key'.",
        )
    item = config.api_key(hash_key(key))
    now = time.time() if now is None else now
    if item is None or (item.get("expires_at") is not None and now >= int(item["expires_at"])):
        raise IngressError("not_authenticated", UNKNOWN_KEY)
    tenant, producer = _principal(item["tenant_id"], item["producer_id"])
    if producer is None or producer.get("kind", "https") != "https":
        raise IngressError("not_authenticated", UNKNOWN_KEY)
    check_producer(tenant, producer)
    return tenant, producer


def source_producer(queue_arn: str) -> tuple[dict, dict]:
    """(tenant item, producer item) of an SQS producer's source queue."""
    item = config.source_queue(queue_arn)
    tenant, producer = (None, None)
    if item is not None:
        tenant, producer = _principal(item["tenant_id"], item["producer_id"])
    if producer is None or producer.get("source_queue_arn") != queue_arn:
        # Not synced yet, or the producer moved to another queue: keep the messages.
        raise IngressError("forbidden", "No producer reads this queue.", retryable=True)
    check_producer(tenant, producer)
    return tenant, producer
