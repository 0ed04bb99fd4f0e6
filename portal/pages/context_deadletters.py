"""The DLQ alert banner on every tenant page (one small query, members only)."""

from django.db import connection

from broker.dlq.models import TenantDlqState
from tenants import roles


def dlq_banner(request):
    tenant = getattr(request, "tenant", None)
    user = getattr(request, "user", None)
    if connection.schema_name == "public" or tenant is None or user is None:
        return {}
    if not user.is_authenticated or roles.resolve_role(request) not in roles.TENANT_READ_ROLES:
        return {}
    return {"dlq_alert": TenantDlqState.objects.filter(tenant_id=tenant.pk, alerting=True).first()}
