"""Read side of sync: where each object stands, per tenant and across tenants."""

from collections import defaultdict

from django.db.models import Count, Max, Min, Q
from django.utils import timezone
from django_tenants.utils import schema_context

from . import registry
from .models import OutboxEntry, SyncJob, SyncState

IN_SYNC, PENDING, FAILING = "in_sync", "pending", "failing"


def tenant_sync_status(tenant) -> tuple[dict, list[dict]]:
    """(summary, objects) for one tenant: every object with its version, synced version and
    state; deleted objects whose tombstone is still queued are listed too. A constant number
    of queries, whatever the number of objects."""
    now = timezone.now()
    states = {(s.object_type, s.object_id): s for s in SyncState.objects.filter(tenant=tenant)}
    queued = {
        (row["object_type"], row["object_id"]): row
        for row in OutboxEntry.objects.filter(tenant=tenant)
        .values("object_type", "object_id")
        .annotate(
            since=Min("created_at"),
            version=Max("version"),
            attempts=Max("attempts"),
            error=Max("last_error"),
        )
    }
    objects = [
        {
            "object_type": "tenant",
            "object_id": str(tenant.pk),
            "name": tenant.slug,
            "version": tenant.version,
            "synced_version": tenant.synced_version,
            "deleted": False,
        }
    ]
    with schema_context(tenant.schema_name):
        for object_type, model in registry.MODELS.items():
            label = registry.NAME_FIELDS[object_type]
            for pk, version, name in model.objects.values_list("pk", "version", label):
                objects.append(
                    {
                        "object_type": object_type,
                        "object_id": str(pk),
                        "name": name,
                        "version": version,
                        "deleted": False,
                    }
                )
    present = {(o["object_type"], o["object_id"]) for o in objects}
    for (object_type, object_id), row in queued.items():
        if (object_type, object_id) not in present:  # deleted, tombstone not yet written
            objects.append(
                {
                    "object_type": object_type,
                    "object_id": object_id,
                    "name": "",
                    "version": row["version"],
                    "deleted": True,
                }
            )
    counts = defaultdict(int)
    oldest = None
    for obj in objects:
        key = (obj["object_type"], obj["object_id"])
        state, row = states.get(key), queued.get(key)
        if obj["object_type"] != "tenant":
            obj["synced_version"] = state.synced_version if state else 0
        obj["synced_at"] = state.synced_at if state else None
        obj["attempts"] = max(state.attempts if state else 0, row["attempts"] if row else 0)
        obj["last_error"] = (row["error"] if row else "") or (state.last_error if state else "")
        if obj["synced_version"] >= obj["version"] and not row:
            obj["status"] = IN_SYNC
        else:
            obj["status"] = FAILING if obj["last_error"] else PENDING
            since = row["since"] if row else None
            obj["pending_since"] = since
            if since and (oldest is None or since < oldest):
                oldest = since
        counts[obj["status"]] += 1
        obj.setdefault("pending_since", None)
    summary = {
        "objects": len(objects),
        IN_SYNC: counts[IN_SYNC],
        PENDING: counts[PENDING],
        FAILING: counts[FAILING],
        "oldest_pending_age_seconds": round((now - oldest).total_seconds(), 3) if oldest else None,
        "last_reconcile": last_reconcile(tenant),
    }
    return summary, objects


def last_reconcile(tenant) -> dict | None:
    job = (
        SyncJob.objects.filter(Q(tenant=tenant) | Q(tenant__isnull=True), status="done")
        .order_by("-finished_at")
        .first()
    )
    if job is None:
        return None
    return {"job": str(job.pk), "kind": job.kind, "finished_at": job.finished_at}


def platform_sync_overview(tenants) -> list[dict]:
    """Per tenant: queued changes, their age, failing objects, the TENANT item's lag."""
    now = timezone.now()
    ids = [t.pk for t in tenants]
    queued = {
        row["tenant_id"]: row
        for row in OutboxEntry.objects.filter(tenant_id__in=ids)
        .values("tenant_id")
        .annotate(
            rows=Count("id"),
            since=Min("created_at"),
            failing=Count("id", filter=~Q(last_error="")),
        )
    }
    failing_states = {
        row["tenant_id"]: row["n"]
        for row in SyncState.objects.filter(tenant_id__in=ids)
        .exclude(last_error="")
        .values("tenant_id")
        .annotate(n=Count("id"))
    }
    out = []
    for tenant in tenants:
        row = queued.get(tenant.pk)
        out.append(
            {
                "tenant_id": str(tenant.pk),
                "slug": tenant.slug,
                "status": tenant.status,
                "queued_changes": row["rows"] if row else 0,
                "oldest_pending_age_seconds": (
                    round((now - row["since"]).total_seconds(), 3) if row else None
                ),
                "failing_changes": row["failing"] if row else 0,
                "failing_objects": failing_states.get(tenant.pk, 0),
                "tenant_item_lag": max(0, tenant.version - tenant.synced_version),
            }
        )
    return out


def failing_objects(*, tenant_id=None, limit: int = 100) -> list[dict]:
    qs = SyncState.objects.exclude(last_error="").select_related("tenant")
    if tenant_id:
        qs = qs.filter(tenant_id=tenant_id)
    return [
        {
            "tenant_id": str(s.tenant_id),
            "slug": s.tenant.slug,
            "object_type": s.object_type,
            "object_id": s.object_id,
            "version": s.version,
            "synced_version": s.synced_version,
            "attempts": s.attempts,
            "last_error": s.last_error,
            "updated_at": s.updated_at,
        }
        for s in qs.order_by("-updated_at")[:limit]
    ]


# A tenant's mirror at a glance (the operator API's `sync`): ok, pending, failing; and for an
# offboarding or deleted tenant, whose items are tombstoned and no longer mirrored, not_mirrored.
OK, NOT_MIRRORED = "ok", "not_mirrored"
NOT_MIRRORED_STATUSES = ("offboarding", "deleted")


def tenant_sync_summaries(tenants) -> dict:
    """{tenant pk: summary} for the given tenants in three queries, whatever their number.

    An object is failing when its last write was refused (a queued change carrying an error, or
    a sync state whose error is not followed by a success); a tenant is failing when one of its
    objects is, pending when a change waits in the outbox or its TENANT item is behind, ok
    otherwise. `last_error` is the newest refusal; `since` is when the oldest change not yet in
    DynamoDB was made."""
    ids = [t.pk for t in tenants]
    queued = {
        row["tenant_id"]: row
        for row in OutboxEntry.objects.filter(tenant_id__in=ids)
        .values("tenant_id")
        .annotate(rows=Count("id"), since=Min("created_at"))
    }
    failing = defaultdict(set)
    outbox_errors = {}
    for tenant_id, object_type, object_id, error, attempts in (
        OutboxEntry.objects.filter(tenant_id__in=ids)
        .exclude(last_error="")
        .values_list("tenant_id", "object_type", "object_id", "last_error", "attempts")
    ):
        failing[tenant_id].add((object_type, object_id))
        if attempts >= outbox_errors.get(tenant_id, ("", 0))[1]:
            outbox_errors[tenant_id] = (error, attempts)
    newest_state = {}
    for state in (
        SyncState.objects.filter(tenant_id__in=ids)
        .exclude(last_error="")
        .only(
            "tenant_id",
            "object_type",
            "object_id",
            "version",
            "synced_version",
            "last_error",
            "attempts",
            "updated_at",
        )
        .order_by("updated_at")
    ):
        if state.synced_version < state.version or (
            (state.object_type, state.object_id) in failing[state.tenant_id]
        ):
            failing[state.tenant_id].add((state.object_type, state.object_id))
            newest_state[state.tenant_id] = state  # ordered: the newest wins
    return {
        tenant.pk: _summary(
            tenant,
            queued.get(tenant.pk),
            failing[tenant.pk],
            newest_state.get(tenant.pk),
            outbox_errors.get(tenant.pk),
        )
        for tenant in tenants
    }


def _summary(tenant, queued, failing: set, state, outbox_error) -> dict:
    summary = {
        "status": OK,
        "pending_changes": queued["rows"] if queued else 0,
        "failing_objects": len(failing),
        "last_error": "",
        "last_error_at": None,
        "attempts": 0,
        "since": queued["since"] if queued else None,
    }
    if tenant.status in NOT_MIRRORED_STATUSES:
        return {**summary, "status": NOT_MIRRORED, "pending_changes": 0, "since": None}
    if state is not None:
        summary.update(
            last_error=state.last_error, last_error_at=state.updated_at, attempts=state.attempts
        )
    elif outbox_error:
        summary.update(last_error=outbox_error[0], attempts=outbox_error[1])
    if failing:
        summary["status"] = FAILING
    elif queued or tenant.synced_version < tenant.version:
        summary["status"] = PENDING
    return summary
