"""Each tenant's queued and running replay jobs, copied into its public TenantDlqState row.

ReplayJob lives in every tenant's schema; counting them at scrape time would be one query per
tenant (1,000 tenants: 1,000 queries a scrape). Instead every job state change recounts its
own tenant's active jobs (one indexed count) into the shared row, and /metrics sums the rows
in the query it already runs for the DLQ backlog. A recount, not +1/-1, taken under the row's
lock inside the transaction that changed the job: the stored figure is what the schema held
when that transaction committed, a missed call heals at the next change or at the minutely
alert check (alerts.evaluate), and two changes of one tenant write in commit order."""

from django.db import connection, transaction
from django.db.models import Count

from broker.dlq.models import TenantDlqState
from tenants.models import Tenant

from .models import JobStatus, ReplayJob

FIELDS = {JobStatus.QUEUED: "replay_jobs_queued", JobStatus.RUNNING: "replay_jobs_running"}


def _current_tenant_id():
    pk = getattr(connection.tenant, "pk", None)
    if pk is None:  # schema_context() sets a stand-in tenant without a pk
        pk = (
            Tenant.objects.filter(schema_name=connection.schema_name)
            .values_list("pk", flat=True)
            .first()
        )
    return pk


def replay_jobs_recount(*, tenant_id=None) -> dict[str, int]:
    """Recounts the active schema's queued and running replay jobs into the tenant's state
    row (`tenant_id` defaults to the active schema's tenant); returns {status: count}."""
    tenant_id = tenant_id or _current_tenant_id()
    if tenant_id is None:
        return {}
    with transaction.atomic():
        state, _ = TenantDlqState.objects.select_for_update().get_or_create(tenant_id=tenant_id)
        found = dict(
            ReplayJob.objects.filter(status__in=list(FIELDS))
            .order_by()
            .values_list("status")
            .annotate(n=Count("pk"))
            .values_list("status", "n")
        )
        counts = {status: found.get(status, 0) for status in FIELDS}
        changed = [
            FIELDS[status] for status, n in counts.items() if getattr(state, FIELDS[status]) != n
        ]
        for status, n in counts.items():
            setattr(state, FIELDS[status], n)
        if changed:
            state.save(update_fields=changed)
    return counts
