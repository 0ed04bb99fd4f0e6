from django_tenants.utils import schema_context, schema_exists

from core.context import current_request_id

from .models import AuditEvent

SECRET_MARKERS = ("secret", "password", "token", "api_key", "credential")
MASK = "********"


def mask_secrets(data: dict) -> dict:
    return {
        k: (MASK if any(m in k.lower() for m in SECRET_MARKERS) and v else v)
        for k, v in data.items()
    }


def audit_record(
    *, actor, action: str, object_type: str, object_id, before=None, after=None
) -> AuditEvent:
    """Writes an audit row in the active tenant schema (call it inside the change's transaction)."""
    before = mask_secrets(before or {})
    after = mask_secrets(after or {})
    diff = {
        k: [before.get(k), after.get(k)]
        for k in sorted(set(before) | set(after))
        if before.get(k) != after.get(k)
    }
    return AuditEvent.objects.create(
        actor=actor if actor is not None and actor.is_authenticated else None,
        actor_email=getattr(actor, "email", "") or "",
        action=action,
        object_type=object_type,
        object_id=str(object_id),
        diff=diff,
        request_id=current_request_id() or "",
    )


def audit_in_tenant(tenant, **kwargs) -> AuditEvent | None:
    """An audit row in `tenant`'s own log, from any schema (tenant-level actions: members)."""
    if not schema_exists(tenant.schema_name):
        return None
    with schema_context(tenant.schema_name):
        return audit_record(**kwargs)
