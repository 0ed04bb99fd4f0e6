from django_tenants.utils import schema_context, schema_exists

from core.audit import actor_fields, diff
from core.context import current_request_id

from .models import AuditEvent


def audit_record(
    *, actor, action: str, object_type: str, object_id, before=None, after=None
) -> AuditEvent:
    """Writes an audit row in the active tenant schema (call it inside the change's transaction)."""
    return AuditEvent.objects.create(
        **actor_fields(actor),
        action=action,
        object_type=object_type,
        object_id=str(object_id),
        diff=diff(before, after),
        request_id=current_request_id() or "",
    )


def audit_in_tenant(tenant, **kwargs) -> AuditEvent | None:
    """An audit row in `tenant`'s own log, from any schema (tenant-level actions: members)."""
    if not schema_exists(tenant.schema_name):
        return None
    with schema_context(tenant.schema_name):
        return audit_record(**kwargs)
