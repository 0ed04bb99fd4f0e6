"""The activity job (services.activity_refresh), run by beat every ACTIVITY_INTERVAL_SECONDS
with a jitter, like the dead-letter jobs: one task per shard of the tenants (ACTIVITY_SHARDS)."""

import random

from celery import shared_task
from django.conf import settings
from django.core.cache import cache
from django.db import connection

from . import services

PUBLIC = {"_schema_name": "public"}
LOCK = "activity-refresh-running"
LOCK_SECONDS = 300  # the task's time limit: a killed run's lock expires with it


@shared_task(acks_late=True, time_limit=300, soft_time_limit=240, ignore_result=True)
def activity_refresh_run(shard: int = 0, shards: int = 1) -> dict:
    # One run of a shard at a time: a slow run and the next beat's would read and write the
    # same rows.
    lock = f"{LOCK}-{shard}-of-{shards}"
    if not cache.add(lock, 1, LOCK_SECONDS):
        return {"skipped": True}
    try:
        connection.set_schema_to_public()
        result = services.activity_refresh(shard=shard, shards=shards)
    finally:
        cache.delete(lock)
    return {"tenants": result.tenants, "failed": result.failed, "keys": result.keys_read}


@shared_task(ignore_result=True)
def activity_refresh_tick(jitter_seconds: float = 0) -> None:
    """One run per shard (ACTIVITY_SHARDS), each after its own random delay."""
    shards = max(1, settings.ACTIVITY_SHARDS)
    for shard in range(shards):
        countdown = random.uniform(0, jitter_seconds) if jitter_seconds else 0  # noqa: S311
        activity_refresh_run.apply_async(
            kwargs={"shard": shard, "shards": shards}, countdown=countdown, headers=PUBLIC
        )
