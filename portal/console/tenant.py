"""The operator's page of one tenant (public host): who its members are, what it has
configured, where its sync and DLQ stand, what happened to it lately, how much of its quota it
uses, and what an operator may do with it now.

A constant number of SQL queries whatever the tenant holds: the tenant, members, invitations,
lifecycle events and jobs in the public schema; the sync status (one query per mirrored model),
the audit events and the dead-letter aggregates in the tenant's schema. The data plane's
counters are one cached BatchGetItem (broker.deliveries.selectors).
"""

import logging
from collections import Counter

from django.core.exceptions import ObjectDoesNotExist
from django.utils import timezone
from django_tenants.utils import schema_context, schema_exists

from broker.deadletters import selectors as dead_letters
from broker.deliveries import held_keys
from broker.deliveries import selectors as deliveries
from broker.models import AuditEvent
from broker.sync import contract
from broker.sync.models import SyncJob, SyncJobKind, SyncJobStatus
from broker.sync.selectors import FAILING, PENDING, tenant_sync_status
from core.handled import handled
from tenants.models import Invitation, Membership, Tenant, TenantEvent, TenantStatus

logger = logging.getLogger(__name__)

RECENT = 15
# What each action does, said on its confirmation page. Only these ask first: the others
# (resume, retry a failed provisioning, resume a stopped offboarding) undo a stop.
CONFIRM = {
    "suspend": (
        "Suspend {slug}?",
        "Its events are refused and its members can only read until an operator resumes it.",
        "secondary",
    ),
    "resync": (
        "Resync {slug}?",
        "Every DynamoDB item of the tenant is rewritten from PostgreSQL; on a large tenant this "
        "takes a while and uses write capacity.",
        "secondary",
    ),
    "offboard": (
        "Offboard {slug}?",
        "Its queues and DynamoDB items are removed, its data is exported without secrets, "
        "then its schema, members and domains are deleted. This cannot be undone.",
        "danger",
    ),
}
ACTION_LABELS = {
    "suspend": "Suspend",
    "resume": "Resume",
    "resync": "Resync",
    "retry-provisioning": "Retry provisioning",
    "resume-offboarding": "Resume offboarding",
    "offboard": "Offboard",
}
# The offboarding's steps in order, each known done by the key it leaves in the report
# (tenants.services.offboarding saves the report after each one).
OFFBOARDING_STEPS = (
    ("deleted_queues", "queues deleted"),
    ("tombstoned_items", "DynamoDB items removed"),
    ("dead_letters_purged", "dead letters purged"),
    ("export_path", "data exported"),
    ("dropped_schema", "schema dropped"),
    ("completed_at", "members and domains removed"),
)
COUNTED = (
    (contract.PRODUCER, "producers", "max_producers"),
    (contract.CONSUMER, "consumers", "max_consumers"),
    (contract.SUBSCRIPTION, "subscriptions", "max_subscriptions"),
    (contract.APIKEY, "API keys", None),
    (contract.EVENT_TYPE, "event types", None),
)


def actions_for(tenant: Tenant) -> list[str]:
    """The actions an operator may take on the tenant in its current state."""
    stopped = bool((tenant.offboarding_report or {}).get("error"))
    return {
        TenantStatus.ACTIVE: ["suspend", "resync", "offboard"],
        TenantStatus.SUSPENDED: ["resume", "resync", "offboard"],
        TenantStatus.FAILED: ["retry-provisioning", "offboard"],
        TenantStatus.OFFBOARDING: ["resume-offboarding"] if stopped else [],
    }.get(tenant.status, [])


def offboarding_progress(tenant: Tenant) -> dict | None:
    """{done, total, steps: [(label, done)], running, error} while the tenant is (or was)
    offboarding, else None."""
    if tenant.status not in (TenantStatus.OFFBOARDING, TenantStatus.DELETED):
        return None
    report = tenant.offboarding_report or {}
    steps = [(label, key in report) for key, label in OFFBOARDING_STEPS]
    done = sum(1 for _, finished in steps if finished)
    return {
        "id": "offboarding",
        "done": done,
        "total": len(steps),
        "steps": steps,
        "running": tenant.status == TenantStatus.OFFBOARDING and not report.get("stopped"),
        "error": report.get("error", ""),
    }


def job_json(job: SyncJob) -> dict:
    return {
        "id": str(job.pk),
        "status": job.status,
        "done": min(job.done, job.total) if job.total else job.done,
        "total": job.total,
        "summary": f"{job.done} of {job.total} objects" if job.total else "counting objects",
    }


def active_jobs(tenant: Tenant) -> list[dict]:
    """The tenant's long jobs still running, for the page's progress bars to poll: its resync
    jobs and its offboarding. Two queries."""
    jobs = [
        job_json(job)
        for job in SyncJob.objects.filter(
            tenant=tenant, status__in=[SyncJobStatus.QUEUED, SyncJobStatus.RUNNING]
        ).order_by("-created_at")[:5]
    ]
    fresh = Tenant.objects.only("status", "offboarding_report").get(pk=tenant.pk)
    progress = offboarding_progress(fresh)
    if progress and progress["running"]:
        jobs.append(
            {
                "id": "offboarding",
                "status": "running",
                "done": progress["done"],
                "total": progress["total"],
                "summary": f"{progress['done']} of {progress['total']} steps",
            }
        )
    return jobs


def _schema_reads(tenant: Tenant) -> dict:
    """Everything read inside the tenant's schema (nothing when it is gone)."""
    empty = {
        "sync": None,
        "failing": [],
        "pending": 0,
        "counts": {},
        "audit": [],
        "dlq_backlog": None,
        "dlq_oldest": None,
        "dlq_groups": [],
        "schema": False,
    }
    if tenant.status == TenantStatus.DELETED or not schema_exists(tenant.schema_name):
        return empty
    summary, objects = tenant_sync_status(tenant)
    counts = Counter(o["object_type"] for o in objects if not o["deleted"])
    with schema_context(tenant.schema_name):
        audit = list(AuditEvent.objects.order_by("-created_at", "-id")[:RECENT])
        backlog, oldest = dead_letters.backlog()
        groups = dead_letters.letter_groups(limit=10)
    return {
        "sync": summary,
        "failing": [o for o in objects if o["status"] == FAILING][:50],
        "pending": sum(1 for o in objects if o["status"] == PENDING),
        "counts": counts,
        "audit": audit,
        "dlq_backlog": backlog,
        "dlq_oldest": oldest,
        "dlq_groups": groups,
        "schema": True,
    }


def _quota_rows(tenant: Tenant, counts: Counter, activity: dict | None) -> tuple[list, list]:
    quotas = tenant.effective_quotas() if tenant.tier_id else {}
    rows = []
    if "daily_event_quota" in quotas:
        rows.append(
            {
                "name": "daily_event_quota",
                "used": activity["events_today"] if activity else None,
                "limit": quotas["daily_event_quota"],
            }
        )
    for object_type, _, quota in COUNTED:
        if quota in quotas:
            rows.append({"name": quota, "used": counts.get(object_type, 0), "limit": quotas[quota]})
    for row in rows:
        row["share"] = (
            min(row["used"] / row["limit"], 1) if row["used"] is not None and row["limit"] else None
        )
    used = {row["name"] for row in rows}
    others = [{"name": name, "limit": value} for name, value in quotas.items() if name not in used]
    return rows, others


def _held(tenant: Tenant, *, schema: bool) -> tuple[dict | None, str]:
    """The tenant's held keys per subscription (one Query of the data plane's summary items
    and one SQL query for the subscriptions' names), or None and why not."""
    if not schema:
        return None, ""
    try:
        with schema_context(tenant.schema_name):
            return held_keys.tenant_held_summary(tenant), ""
    except Exception as exc:  # the page stays up when the data plane's table is not
        handled(
            logger,
            "console_tenant_held_keys",
            "tenant page: held keys unavailable: %s",
            exc,
            level=logging.WARNING,
        )
        return None, "Held keys are unavailable right now."


def _dlq_state(tenant: Tenant):
    try:
        return tenant.dlq_state
    except ObjectDoesNotExist:
        return None


def tenant_page(tenant_id) -> dict | None:
    """The page's context, or None for no such tenant (the public schema is none)."""
    tenant = (
        Tenant.objects.select_related("tier", "dlq_state")
        .exclude(schema_name="public")
        .filter(pk=tenant_id)
        .first()
    )
    if tenant is None:
        return None
    members = list(
        Membership.objects.filter(tenant=tenant)
        .select_related("user")
        .order_by("role", "user__email")
    )
    invitations = list(
        Invitation.objects.filter(
            tenant=tenant,
            accepted_at__isnull=True,
            revoked_at__isnull=True,
            expires_at__gt=timezone.now(),
        ).order_by("-created_at")[:RECENT]
    )
    events = list(
        TenantEvent.objects.filter(tenant=tenant)
        .select_related("actor")
        .order_by("-created_at")[:RECENT]
    )
    jobs = list(
        SyncJob.objects.filter(tenant=tenant, kind=SyncJobKind.RESYNC)
        .select_related("requested_by")
        .order_by("-created_at")[:5]
    )
    schema = _schema_reads(tenant)
    activity, activity_error = None, ""
    if tenant.status != TenantStatus.DELETED:
        try:
            activity = deliveries.tenant_activity([tenant.pk]).get(str(tenant.pk))
        except Exception as exc:  # the page stays up when the data plane's table is not
            handled(
                logger,
                "console_tenant_activity",
                "tenant page: delivery counters unavailable: %s",
                exc,
                level=logging.WARNING,
            )
            activity_error = "Delivery counters are unavailable right now."
    quota_rows, other_quotas = _quota_rows(tenant, schema["counts"], activity)
    held, held_error = _held(tenant, schema=schema["schema"])
    offboarding = offboarding_progress(tenant)
    return {
        "tenant": tenant,
        "members": members,
        "invitations": invitations,
        "events": events,
        "jobs": jobs,
        "any_active": any(j.status in ("queued", "running") for j in jobs)
        or bool(offboarding and offboarding["running"]),
        "offboarding": offboarding,
        "config_counts": [(label, schema["counts"].get(t, 0)) for t, label, _ in COUNTED],
        "activity": activity,
        "activity_error": activity_error,
        "quota_rows": quota_rows,
        "other_quotas": other_quotas,
        "dlq_state": _dlq_state(tenant),
        "held": held,
        "held_error": held_error,
        "actions": [(a, ACTION_LABELS[a], a in CONFIRM) for a in actions_for(tenant)],
        **schema,
    }
