"""Thin tasks: ids in, service call, idempotent (running one twice changes nothing).

Provisioning and offboarding retry with exponential backoff (and jitter) when a step fails,
up to TENANT_LIFECYCLE_MAX_RETRIES; the last attempt marks provisioning `failed`, or leaves
the offboarding stopped with its error, for an operator to retry or resume. `acks_late` and
`reject_on_worker_lost` hand a task whose worker died back to the broker; the resume job
re-queues runs that stalled anyway (a worker killed during a backoff wait, say).
"""

from celery import shared_task
from celery.utils.time import get_exponential_backoff_interval
from django.conf import settings

from . import services


def _attempt(task) -> tuple[bool, int]:
    """(is this the final attempt, the countdown of the next one)."""
    retries = task.request.retries
    countdown = get_exponential_backoff_interval(
        factor=settings.TENANT_LIFECYCLE_RETRY_BACKOFF_SECONDS,
        retries=retries,
        maximum=settings.TENANT_LIFECYCLE_RETRY_BACKOFF_MAX_SECONDS,
        full_jitter=True,
    )
    return retries >= settings.TENANT_LIFECYCLE_MAX_RETRIES, countdown


def _retry(task, exc, countdown) -> None:
    """Sends the retry (with its countdown) and ends this run normally: the error is already
    recorded on the tenant."""
    if task.request.is_eager:
        # Run eagerly (tests, scripts), the next attempt runs now, inline: Celery's own eager
        # retry re-raises instead when eager tasks propagate their exceptions.
        task.apply(args=task.request.args, retries=task.request.retries + 1, throw=True)
        return
    task.retry(
        exc=exc,
        countdown=countdown,
        max_retries=settings.TENANT_LIFECYCLE_MAX_RETRIES,
        throw=False,
    )


@shared_task(bind=True, acks_late=True, reject_on_worker_lost=True, time_limit=300)
def tenant_provision_task(self, tenant_id: str) -> None:
    final, countdown = _attempt(self)
    try:
        services.tenant_provision(tenant_id=tenant_id, final=final)
    except services.StepFailed as exc:
        _retry(self, exc, countdown)


@shared_task(
    bind=True, acks_late=True, reject_on_worker_lost=True, time_limit=600, soft_time_limit=540
)
def tenant_offboard_task(self, tenant_id: str) -> None:
    final, countdown = _attempt(self)
    try:
        services.tenant_offboard_run(tenant_id=tenant_id, final=final)
    except services.StepFailed as exc:
        _retry(self, exc, countdown)


@shared_task(ignore_result=True)
def tenant_lifecycle_resume() -> list[str]:
    """Beat: re-queues the provisioning and offboarding runs idle for longer than
    TENANT_RESUME_AFTER_SECONDS (a live run holds its lock: the duplicate leaves at once)."""
    stalled = services.tenants_stalled(idle_seconds=settings.TENANT_RESUME_AFTER_SECONDS)
    for tenant in stalled:
        task = tenant_provision_task if tenant.status == "provisioning" else tenant_offboard_task
        task.delay(str(tenant.pk))
    return [str(t.pk) for t in stalled]
