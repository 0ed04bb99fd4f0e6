from django.db import transaction

from . import reconcile, tasks
from .models import SyncJob, SyncJobKind


@transaction.atomic
def sync_job_start(
    *, kind: str = SyncJobKind.RESYNC, tenant=None, actor=None, countdown: float = 0
) -> SyncJob:
    """Queues a resync or reconcile of one tenant (or of every live one) as a job."""
    job = reconcile.job_create(kind=kind, tenant=tenant, actor=actor)
    transaction.on_commit(
        lambda: tasks.sync_job_run.apply_async(
            args=[str(job.pk)], countdown=countdown, headers={"_schema_name": "public"}
        )
    )
    return job
