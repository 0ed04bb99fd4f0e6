from django.db import transaction

from .models import SyncJob, SyncJobKind


@transaction.atomic
def sync_job_start(*, kind: str = SyncJobKind.RESYNC, tenant=None, actor=None) -> SyncJob:
    """Queues a resync or reconcile of one tenant (or of every live one) as a job."""
    from .tasks import sync_job_run

    job = SyncJob.objects.create(
        kind=kind,
        tenant=tenant,
        requested_by=actor if actor is not None and actor.is_authenticated else None,
    )
    transaction.on_commit(
        lambda: sync_job_run.apply_async(args=[str(job.pk)], headers={"_schema_name": "public"})
    )
    return job
