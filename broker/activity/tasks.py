"""The activity job (services.activity_refresh), run by beat every ACTIVITY_INTERVAL_SECONDS
with a jitter, like the dead-letter jobs."""

import random

from celery import shared_task
from django.core.cache import cache
from django.db import connection

from . import services

PUBLIC = {"_schema_name": "public"}
LOCK = "activity-refresh-running"
LOCK_SECONDS = 300  # the task's time limit: a killed run's lock expires with it


@shared_task(acks_late=True, time_limit=300, soft_time_limit=240, ignore_result=True)
def activity_refresh_run() -> dict:
    # One run at a time: a slow run and the next beat's would read and write the same rows.
    if not cache.add(LOCK, 1, LOCK_SECONDS):
        return {"skipped": True}
    try:
        connection.set_schema_to_public()
        result = services.activity_refresh()
    finally:
        cache.delete(LOCK)
    return {"tenants": result.tenants, "failed": result.failed, "keys": result.keys_read}


@shared_task(ignore_result=True)
def activity_refresh_tick(jitter_seconds: float = 0) -> None:
    countdown = random.uniform(0, jitter_seconds) if jitter_seconds else 0  # noqa: S311
    activity_refresh_run.apply_async(countdown=countdown, headers=PUBLIC)
