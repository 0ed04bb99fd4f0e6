"""Thin tasks: ids in, service call, idempotent (running one twice changes nothing)."""

from celery import shared_task

from . import services


@shared_task(acks_late=True, time_limit=300)
def tenant_provision_task(tenant_id: str) -> None:
    services.tenant_provision(tenant_id=tenant_id)


@shared_task(acks_late=True, time_limit=600, soft_time_limit=540)
def tenant_offboard_task(tenant_id: str) -> None:
    services.tenant_offboard_run(tenant_id=tenant_id)
