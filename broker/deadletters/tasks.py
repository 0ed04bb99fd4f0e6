"""Thin, idempotent dead-letter tasks; the work is in ingest, services, alerts, retention."""

import logging
import random

from celery import shared_task
from django.conf import settings
from django.db import connection
from django_tenants.utils import schema_context

from core.handled import handled
from tenants.models import Tenant, TenantStatus

from . import alerts, ingest, retention, runner
from .models import ACTIVE_JOB_STATUSES, ReplayJob

logger = logging.getLogger(__name__)
PUBLIC = {"_schema_name": "public"}
LIVE = (TenantStatus.ACTIVE, TenantStatus.SUSPENDED)


def _countdown(jitter_seconds: float) -> float:
    return random.uniform(0, jitter_seconds) if jitter_seconds else 0  # noqa: S311


@shared_task(acks_late=True, time_limit=300, soft_time_limit=240, ignore_result=True)
def dlq_ingest() -> dict:
    result = ingest.run(max_batches=settings.DLQ_INGEST_MAX_BATCHES)
    if result.tenants:
        for tenant in Tenant.objects.filter(pk__in=result.tenants).select_related("tier"):
            alerts.evaluate(tenant=tenant)
    if result.more:
        # The DLQ still holds letters: go on now rather than at the next beat.
        dlq_ingest.apply_async(headers=PUBLIC)
    return {"received": result.received, "stored": result.stored, "more": result.more}


@shared_task(ignore_result=True)
def dlq_ingest_tick(jitter_seconds: float = 0) -> None:
    dlq_ingest.apply_async(countdown=_countdown(jitter_seconds), headers=PUBLIC)


@shared_task(
    bind=True,
    acks_late=True,
    time_limit=3600,
    soft_time_limit=3500,
    ignore_result=True,
    max_retries=None,
)
def replay_job_run(self, job_id: str) -> str:
    """Runs in the schema of the tenant that queued it (tenant-schemas-celery)."""
    tenant = connection.tenant
    try:
        return runner.replay_job_run(tenant=tenant, job_id=job_id)
    except runner.AwsUnavailable as exc:
        # Nothing is lost: the job stays running and resumes from its cursor.
        raise self.retry(exc=exc, countdown=min(60 * 2 ** min(self.request.retries, 4), 900))


@shared_task(ignore_result=True)
def replay_jobs_resume() -> int:
    """Re-queues active jobs whose task was lost (belt and braces next to acks_late)."""
    count = 0
    for tenant in Tenant.objects.filter(status__in=LIVE, tier__isnull=False):
        with schema_context(tenant.schema_name):
            for job_id in ReplayJob.objects.filter(status__in=ACTIVE_JOB_STATUSES).values_list(
                "pk", flat=True
            ):
                replay_job_run.delay(str(job_id))
                count += 1
    return count


@shared_task(acks_late=True, time_limit=600, soft_time_limit=540, ignore_result=True)
def dlq_alerts_run() -> int:
    connection.set_schema_to_public()
    count = 0
    for tenant in Tenant.objects.filter(status__in=LIVE, tier__isnull=False).select_related("tier"):
        try:
            alerts.evaluate(tenant=tenant)
            count += 1
        except Exception:
            handled(logger, "dlq_alerts_tenant", "DLQ alert check of tenant %s failed", tenant.pk)
    return count


@shared_task(ignore_result=True)
def dlq_alerts_tick(jitter_seconds: float = 0) -> None:
    dlq_alerts_run.apply_async(countdown=_countdown(jitter_seconds), headers=PUBLIC)


@shared_task(acks_late=True, time_limit=3600, soft_time_limit=3500, ignore_result=True)
def dlq_retention_run() -> int:
    connection.set_schema_to_public()
    total = 0
    for tenant in Tenant.objects.filter(status__in=LIVE, tier__isnull=False).select_related("tier"):
        with schema_context(tenant.schema_name):
            total += retention.purge(tenant=tenant)
    return total


@shared_task(ignore_result=True)
def dlq_retention_tick(jitter_seconds: float = 0) -> None:
    dlq_retention_run.apply_async(countdown=_countdown(jitter_seconds), headers=PUBLIC)
