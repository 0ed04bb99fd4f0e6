"""What every configuration service does: lock, check limits, audit, outbox."""

import json

from django.db import connection, transaction
from django.utils import timezone

from broker.audit import audit_record
from broker.sync import contract, tasks
from broker.sync.models import OutboxEntry
from core import locks
from core.audit_actions import AuditAction
from core.errors import ApplicationError
from core.parsers import check_json_value
from tenants.models import Tenant


def current_tenant():
    """The tenant whose schema is active (services always run inside one)."""
    tenant = getattr(connection, "tenant", None)
    if isinstance(tenant, Tenant) and tenant.tier_id:
        return tenant
    schema = connection.schema_name
    found = Tenant.objects.select_related("tier").filter(schema_name=schema).first()
    if found is None or found.tier_id is None:
        raise RuntimeError(f"broker services need a tenant schema, not {schema!r}")
    return found


def quotas() -> dict[str, int]:
    """The tenant's quotas as they are now (the request's tenant object may be older)."""
    return Tenant.objects.select_related("tier").get(pk=current_tenant().pk).effective_quotas()


def lock(name: str) -> None:
    """A transaction-scoped advisory lock per tenant: serialises count-then-insert limit checks."""
    locks.xact_lock(name, connection.schema_name)


def check_limit(*, model, quota: str, label: str) -> None:
    limit = quotas()[quota]
    if model.objects.count() >= limit:
        raise ApplicationError(
            f"Your plan allows at most {limit} {label} ({quota}).",
            code="limit_exceeded",
            fields={"non_field_errors": [f"Limit of {limit} {label} reached ({quota})."]},
        )


def check_at_most(
    *, field: str, value, quota: str, errors: dict, limits=None, previous=None
) -> None:
    """A plan limit applies to a new value and to raising one: an object stored above a
    since-lowered limit can still be edited, and lowered, but not raised further."""
    if value is None:
        return
    if previous is not None and isinstance(value, int) and value <= previous:
        return
    limit = (limits or quotas())[quota]
    if value > limit:
        errors.setdefault(field, []).append(f"At most {limit} on your plan ({quota}).")


def check_json_size(*, field: str, value, max_bytes: int, max_depth: int, errors: dict) -> None:
    """Bounds what a JSON field can grow to, so its DynamoDB item stays far below 400 KB."""
    if value is None:
        return
    problem = check_json_value(value, max_depth=max_depth)
    if problem:
        errors.setdefault(field, []).append(problem)
        return
    size = len(json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode())
    if size > max_bytes:
        errors.setdefault(field, []).append(f"At most {max_bytes} bytes of JSON ({size} given).")


def raise_if(errors: dict, message: str = "Invalid input.") -> None:
    if errors:
        raise ApplicationError(message, fields=errors)


def snapshot(obj, fields) -> dict:
    out = {}
    for name in fields:
        value = getattr(obj, name)
        if hasattr(value, "isoformat"):
            value = value.isoformat()
        elif hasattr(value, "hex") and not isinstance(value, (str, bytes)):
            value = str(value)
        out[name] = value
    return out


def record_change(
    *,
    actor,
    action: str,
    object_type: str,
    obj,
    before: dict | None,
    after: dict | None,
    deleted: bool = False,
    stale_keys=(),
    audit: bool = True,
) -> OutboxEntry:
    """Audit row (in the tenant schema) and outbox row (shared), in the caller's transaction."""
    assert transaction.get_connection().in_atomic_block, "call inside the change's transaction"
    if audit:
        audit_record(
            actor=actor,
            action=action,
            object_type=object_type,
            object_id=obj.pk,
            before=before,
            after=after,
        )
    entry = OutboxEntry.objects.create(
        tenant_id=current_tenant().pk,
        object_type=object_type,
        object_id=str(obj.pk),
        version=obj.version,
        deleted=deleted,
        stale_keys=[list(k) for k in stale_keys],
    )
    transaction.on_commit(_kick_relay)
    return entry


def delete_recorded(
    *, actor, object_type: str, obj, action: AuditAction | None = None, before=None, audit=True
) -> None:
    """The one way a mirrored object is deleted: its version bumped, tombstones queued for
    every item key it had, an audit row (unless `audit` is off), then the row itself."""
    keys = keys_of(object_type, obj)
    bump(obj)
    record_change(
        actor=actor,
        action=action or AuditAction(f"{object_type}.delete"),
        object_type=object_type,
        obj=obj,
        before=before,
        after=None,
        deleted=True,
        stale_keys=keys,
        audit=audit,
    )
    obj.delete()


def keys_of(object_type: str, obj) -> list[tuple[str, str]]:
    return contract.item_keys(object_type, obj, tenant_id=current_tenant().pk)


def bump(obj) -> None:
    obj.version += 1
    obj.updated_at = timezone.now()


def _kick_relay() -> None:
    tasks.kick_relay()
