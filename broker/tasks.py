"""broker's own periodic jobs (thin, idempotent: running one twice changes nothing)."""

from celery import shared_task
from django.db import connection
from django_tenants.utils import schema_context

from tenants.models import Tenant, TenantStatus

from .services import api_keys_expire


@shared_task(acks_late=True, time_limit=600, soft_time_limit=540, ignore_result=True)
def expire_api_keys() -> int:
    """Removes the API keys whose rotation grace period ended, in every live tenant; the relay
    tombstones their items."""
    connection.set_schema_to_public()
    total = 0
    live = Tenant.objects.filter(
        status__in=[TenantStatus.ACTIVE, TenantStatus.SUSPENDED], tier__isnull=False
    )
    for schema in live.values_list("schema_name", flat=True):
        with schema_context(schema):
            total += api_keys_expire()
    connection.set_schema_to_public()
    return total
