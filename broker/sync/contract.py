"""The DynamoDB contract (docs/dynamodb-contract.md): the only module that knows item shapes.

Items are plain dicts of Python values; `dynamo.py` serializes them. Every item carries
`version` (monotonic per object, assigned in PostgreSQL) and `updated_at` (ISO 8601, UTC).
"""

import time
from datetime import UTC, datetime

from django.conf import settings

CONTRACT_VERSION = 1


def tenant_pk(tenant_id) -> str:
    return f"TENANT#{tenant_id}"


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def tenant_item(tenant) -> dict:
    return {
        "PK": tenant_pk(tenant.pk),
        "SK": "TENANT",
        "type": "tenant",
        "contract": CONTRACT_VERSION,
        "tenant_id": str(tenant.pk),
        "slug": tenant.slug,
        "status": tenant.status,
        "tier": tenant.tier.name,
        "deployment_model": tenant.tier.deployment_model,
        "quotas": tenant.effective_quotas(),
        "delivery_queues": list(tenant.delivery_queues),
        "version": tenant.version,
        "updated_at": now_iso(),
    }


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
