"""Thin, idempotent sync tasks (acks_late: a task lost with its worker runs again)."""

import random

from celery import shared_task
from django.db import connection

from . import reconcile, relay
from .models import SyncJobKind


def kick_relay() -> None:
    """After a commit: relay now. The periodic run catches what a crash here would lose."""
    # Sent from the public schema whatever the caller's: the relay serves every tenant.
    relay_outbox.apply_async(kwargs={}, headers={"_schema_name": "public"})


@shared_task(acks_late=True, time_limit=120, soft_time_limit=100, ignore_result=True)
def relay_outbox() -> dict:
    connection.set_schema_to_public()
    return relay.drain()


@shared_task(ignore_result=True)
def relay_tick(jitter_seconds: float = 0) -> None:
    """Beat's entry point: the relay, after a random delay (no worker sleeps meanwhile), so
    periodic runs spread out instead of colliding."""
    countdown = random.uniform(0, jitter_seconds) if jitter_seconds else 0  # noqa: S311
    relay_outbox.apply_async(countdown=countdown, headers={"_schema_name": "public"})


@shared_task(acks_late=True, time_limit=3600, soft_time_limit=3500, ignore_result=True)
def sync_job_run(job_id: str) -> None:
    connection.set_schema_to_public()
    reconcile.run_job(job_id)
    kick_relay()  # the changes the job released from their backoff go now


@shared_task(ignore_result=True)
def reconcile_tick(jitter_seconds: float = 0) -> None:
    """Beat's entry point: the periodic reconciler as a job (drift counts are kept)."""
    connection.set_schema_to_public()
    job = reconcile.job_create(kind=SyncJobKind.RECONCILE)
    countdown = random.uniform(0, jitter_seconds) if jitter_seconds else 0  # noqa: S311
    sync_job_run.apply_async(
        args=[str(job.pk)], countdown=countdown, headers={"_schema_name": "public"}
    )
