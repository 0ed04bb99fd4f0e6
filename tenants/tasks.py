"""Thin tasks: ids in, service call, idempotent (running one twice changes nothing)."""

from botocore.exceptions import BotoCoreError, ClientError
from celery import shared_task

from . import services


@shared_task(acks_late=True, time_limit=300)
def tenant_provision_task(tenant_id: str) -> None:
    services.tenant_provision(tenant_id=tenant_id)


@shared_task(acks_late=True, time_limit=600, soft_time_limit=540)
def tenant_offboard_task(tenant_id: str) -> None:
    services.tenant_offboard_run(tenant_id=tenant_id)


@shared_task(
    acks_late=True,
    autoretry_for=(BotoCoreError, ClientError),
    retry_backoff=True,
    retry_backoff_max=60,
    max_retries=8,
    time_limit=60,
    soft_time_limit=50,
)
def tenant_sync_item_task(tenant_id: str) -> None:
    services.tenant_sync_item(tenant_id=tenant_id)
