"""Periodic endpoint auto-disable: a tick fans out one task per active tenant."""

import logging

from celery import shared_task
from django_tenants.utils import get_public_schema_name, tenant_context

from tenants.models import Tenant, TenantStatus

from . import services

logger = logging.getLogger(__name__)


@shared_task(ignore_result=True)
def auto_disable_tick() -> None:
    for tenant_id in Tenant.objects.filter(status=TenantStatus.ACTIVE).values_list("pk", flat=True):
        auto_disable_tenant.delay(str(tenant_id))


@shared_task(acks_late=True, time_limit=300, soft_time_limit=240, ignore_result=True)
def auto_disable_tenant(tenant_id: str) -> list[str]:
    tenant = (
        Tenant.objects.filter(pk=tenant_id, status=TenantStatus.ACTIVE)
        .exclude(schema_name=get_public_schema_name())
        .first()
    )
    if tenant is None:
        return []
    with tenant_context(tenant):
        return services.auto_disable_failing_consumers(tenant=tenant)
