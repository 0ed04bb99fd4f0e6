"""The operator console's tenant list: one row per tenant with what says it is in trouble.

A constant number of SQL queries whatever the page size (the page with its tier, DLQ state and
activity snapshot joined, its count, the sync overview's two aggregates, the tier
list) and no AWS call: the delivery figures are the activity job's snapshots (broker.activity),
shown with their age.
"""

from dataclasses import dataclass
from datetime import UTC

from django.conf import settings
from django.core.exceptions import ObjectDoesNotExist
from django.core.paginator import Paginator
from django.db.models import (
    BooleanField,
    Case,
    Count,
    Exists,
    F,
    IntegerField,
    Min,
    OuterRef,
    Q,
    Sum,
    Value,
    When,
)
from django.utils import timezone

from broker.activity.models import TenantActivity
from broker.dlq.models import TenantDlqState
from broker.sync.models import OutboxEntry, SyncState
from broker.sync.selectors import platform_sync_overview
from portal.console.tenant import actions_for
from tenants.models import Tenant, TenantStatus, Tier

PAGE_SIZES = (25, 50, 100)
SORTS = {
    "attention": "needs attention first",
    "slug": "slug",
    "-created_at": "newest first",
    "created_at": "oldest first",
    "tier": "tier",
    "status": "status",
}
# The summary's links narrow the list to the tenants behind a figure (`?problem=`).
PROBLEMS = {
    "deliveries": "deliveries failing (last hour)",
    "dlq": "dead letters waiting",
    "sync": "sync failing or queued",
}
# The lower the rank, the higher the row: the tenants an operator must look at come first.
_STATUS_RANK = {
    TenantStatus.FAILED: 0,
    TenantStatus.OFFBOARDING: 1,
    TenantStatus.PROVISIONING: 2,
    TenantStatus.SUSPENDED: 3,
    TenantStatus.ACTIVE: 4,
    TenantStatus.DELETED: 5,
}
# A success rate below this over the last hour marks the row.
LOW_SUCCESS_RATE = 0.95

# The row's buttons (console_tenant.actions_for decides which): label, aria-label (+ slug),
# button style, title.
ROW_ACTIONS = {
    "suspend": ("Suspend…", "Suspend", "secondary", ""),
    "resume": ("Resume", "Resume", "secondary", ""),
    "resync": ("Resync…", "Resync", "secondary", "Rewrite its DynamoDB items from PostgreSQL"),
    "retry-provisioning": ("Retry", "Retry provisioning", "secondary", ""),
    "resume-offboarding": (
        "Resume offboarding",
        "Resume offboarding",
        "secondary",
        "Run the offboarding again from where it stopped",
    ),
    "offboard": ("Offboard…", "Offboard", "danger", ""),
}

# Helper slot for other columns computed per page (e.g. DLQ backlog): callables taking the
# page's tenants and returning {tenant_id (str): value}, registered by name.
EXTRA_COLUMNS: dict[str, callable] = {}


@dataclass
class ConsoleQuery:
    q: str = ""
    tier: str = ""
    status: str = ""
    problem: str = ""
    show_deleted: bool = False
    sort: str = "attention"
    page: int = 1
    per_page: int = 25

    @classmethod
    def from_get(cls, data) -> "ConsoleQuery":
        def _int(name, default):
            try:
                return int(data.get(name, default))
            except (TypeError, ValueError):
                return default

        per_page = _int("per_page", 25)
        return cls(
            q=data.get("q", "").strip()[:100],
            tier=data.get("tier", ""),
            status=data.get("status", "") if data.get("status") in TenantStatus.values else "",
            problem=data.get("problem", "") if data.get("problem") in PROBLEMS else "",
            show_deleted=data.get("deleted") == "1",
            sort=data.get("sort") if data.get("sort") in SORTS else "attention",
            page=max(1, _int("page", 1)),
            per_page=per_page if per_page in PAGE_SIZES else 25,
        )


def _queryset(query: ConsoleQuery):
    failing_sync = SyncState.objects.filter(tenant=OuterRef("pk")).exclude(last_error="")
    failing_outbox = OutboxEntry.objects.filter(tenant=OuterRef("pk")).exclude(last_error="")
    qs = (
        # Not tenants.selectors.tenant_list(): its member count (a GROUP BY over every column
        # of the page) and domains (a query) are shown by other lists, not here.
        Tenant.objects.exclude(schema_name="public")
        # The tier comes from the page's tier list (a handful of rows), not one per tenant.
        .select_related("dlq_state", "activity_snapshot")
        # What lets the job read only new minutes: the page needs none of it.
        .defer("activity_snapshot__minutes", "activity_snapshot__settled_through")
        .annotate(
            status_rank=Case(
                *[When(status=s, then=Value(r)) for s, r in _STATUS_RANK.items()],
                default=Value(9),
                output_field=IntegerField(),
            ),
            sync_failing=Exists(failing_sync) | Exists(failing_outbox),
            offboarding_failed=Case(
                When(offboarding_report__has_key="error", then=Value(True)),
                default=Value(False),
                output_field=BooleanField(),
            ),
        )
    )
    if query.q:
        qs = qs.filter(
            Q(slug__icontains=query.q)
            | Q(name__icontains=query.q)
            | Q(admin_email__icontains=query.q)
        )
    if query.tier:
        qs = qs.filter(tier__name=query.tier)
    if query.problem == "deliveries":
        # Below LOW_SUCCESS_RATE over the last hour: failed > (1 - rate) * all attempts.
        qs = qs.filter(activity_snapshot__failed_1h__gt=0).filter(
            activity_snapshot__failed_1h__gt=(1 - LOW_SUCCESS_RATE)
            * (F("activity_snapshot__delivered_1h") + F("activity_snapshot__failed_1h"))
        )
    elif query.problem == "dlq":
        qs = qs.filter(dlq_state__backlog__gt=0)
    elif query.problem == "sync":
        queued = OutboxEntry.objects.filter(tenant=OuterRef("pk"))
        qs = qs.filter(Q(sync_failing=True) | Exists(queued))
    if query.status:
        qs = qs.filter(status=query.status)
    elif not query.show_deleted:
        qs = qs.exclude(status=TenantStatus.DELETED)
    order = {
        "attention": ["status_rank", "-offboarding_failed", "-sync_failing", "slug"],
        "tier": ["tier__name", "slug"],
        "status": ["status", "slug"],
    }.get(query.sort, [query.sort, "slug"])
    return qs.order_by(*order)


def sync_words(sync: dict, tenant) -> tuple[str, bool]:
    """(what to show, is it a problem). "0" never stands for "fine": no queued changes but a
    failing object or an unsynced TENANT item is said as such."""
    if tenant.status in (TenantStatus.DELETED,):
        return "not synced (deleted)", False
    if (
        tenant.status in (TenantStatus.PROVISIONING, TenantStatus.FAILED)
        and not tenant.synced_version
    ):
        return "not synced yet", tenant.status == TenantStatus.FAILED
    parts, bad = [], False
    # A refused write is both a failing object (its sync state) and a failing change (its
    # outbox row): the larger count, not the sum, as the operator API says.
    failing = max(sync["failing_objects"], sync["failing_changes"])
    if failing:
        parts.append(f"{failing} failing")
        bad = True
    if sync["queued_changes"]:
        age = sync["oldest_pending_age_seconds"]
        parts.append(
            f"{sync['queued_changes']} queued"
            + (f", {_age(age)} behind" if age is not None else "")
        )
        bad = bad or (age or 0) > 60
    if sync["tenant_item_lag"]:
        parts.append(f"tenant item {sync['tenant_item_lag']} version(s) behind")
    return ("; ".join(parts) if parts else "in sync"), bad


def _age(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def console_page(query: ConsoleQuery) -> dict:
    # The page's ids first, ordered and filtered over the tenants, then the rows of those ids
    # with their joined snapshot and DLQ state: sorting every tenant with those rows joined
    # read the whole activity table (its kept minutes) for a page of 100, ~35 ms at 10,000
    # tenants (bench/scale.py).
    paginator = Paginator(_queryset(query).values_list("pk", flat=True), query.per_page)
    page = paginator.get_page(query.page)
    ids = list(page.object_list)
    rows = {t.pk: t for t in _queryset(query).filter(pk__in=ids).order_by()}
    tenants = [rows[pk] for pk in ids if pk in rows]
    tiers = {tier.pk: tier for tier in Tier.objects.order_by("name")}
    for tenant in tenants:
        tenant.tier = tiers.get(tenant.tier_id)
    sync = {row["tenant_id"]: row for row in platform_sync_overview(tenants)}
    extra = {name: column(tenants) for name, column in EXTRA_COLUMNS.items()}
    now = timezone.now()
    for tenant in tenants:
        tid = str(tenant.pk)
        tenant.sync = sync[tid]
        tenant.sync_text, tenant.sync_bad = sync_words(tenant.sync, tenant)
        tenant.activity = activity_of(tenant, now=now)
        quota = tenant.effective_quotas().get("daily_event_quota") if tenant.tier_id else None
        tenant.daily_quota = quota
        a = tenant.activity
        if a and a.get("today") and quota:
            tenant.quota_used = a["events_today"] / quota
        else:
            tenant.quota_used = None
        tenant.extra = {name: values.get(tid) for name, values in extra.items()}
        tenant.dlq = _dlq(tenant)
        tenant.problems = _problems(tenant)
        tenant.actions = [
            dict(
                zip(
                    ("action", "label", "aria", "style", "title"), (a, *ROW_ACTIONS[a]), strict=True
                )
            )
            for a in actions_for(tenant)
        ]
    return {
        "page": page,
        "tenants": tenants,
        "query": query,
        "tiers": [tier.name for tier in tiers.values()],
        "statuses": TenantStatus.values,
        "sorts": SORTS,
        "page_sizes": PAGE_SIZES,
        "activity_notes": activity_notes([t.activity for t in tenants if t.activity]),
        "activity_interval": activity_interval(),
        "extra_columns": list(EXTRA_COLUMNS),
        "summary": platform_summary(),
        "problem_label": PROBLEMS.get(query.problem, ""),
    }


def platform_summary() -> dict:
    """The figures above the list, for the whole platform, in four queries whatever the number
    of tenants: tenants by status, last hour's deliveries and success rate, the DLQ total and
    its oldest letter, sync failing and queued. Each links to the list narrowed to it."""
    live = ~Q(tenant__status=TenantStatus.DELETED)
    by_status = dict(
        Tenant.objects.exclude(schema_name="public")
        .values_list("status")
        .annotate(n=Count("pk"))
        .values_list("status", "n")
    )
    deliveries = TenantActivity.objects.filter(live, measured_at__isnull=False).aggregate(
        ok=Sum("delivered_1h"),
        failed=Sum("failed_1h"),
        failing=Count(
            "pk",
            filter=Q(failed_1h__gt=0)
            & Q(failed_1h__gt=(1 - LOW_SUCCESS_RATE) * (F("delivered_1h") + F("failed_1h"))),
        ),
    )
    dlq = TenantDlqState.objects.filter(live).aggregate(
        total=Sum("backlog"), oldest=Min("oldest_at", filter=Q(backlog__gt=0))
    )
    sync = OutboxEntry.objects.aggregate(
        queued=Count("pk"),
        failing=Count("pk", filter=~Q(last_error="")),
        tenants=Count("tenant", distinct=True),
        oldest=Min("created_at"),
    )
    ok, failed = deliveries["ok"] or 0, deliveries["failed"] or 0
    now = timezone.now()
    return {
        "statuses": [
            {"status": s, "count": by_status.get(s, 0)}
            for s in TenantStatus.values
            if by_status.get(s, 0) or s == TenantStatus.ACTIVE
        ],
        "delivered": ok,
        "failed": failed,
        "success_rate": round(ok / (ok + failed) * 100, 1) if ok + failed else None,
        "tenants_failing_deliveries": deliveries["failing"],
        "dlq_total": dlq["total"] or 0,
        "dlq_oldest": _age((now - dlq["oldest"]).total_seconds()) if dlq["oldest"] else None,
        "sync_queued": sync["queued"],
        "sync_failing": sync["failing"],
        "sync_tenants": sync["tenants"],
        "sync_behind": _age((now - sync["oldest"]).total_seconds()) if sync["oldest"] else None,
        "failed_provisioning": by_status.get(TenantStatus.FAILED, 0),
    }


def activity_interval() -> str:
    return _age(settings.CELERY_BEAT_SCHEDULE["activity-refresh"]["schedule"])


def activity_of(tenant, *, now) -> dict | None:
    """The row's delivery figures from the activity job's snapshot, with how old they are and
    whether they can be trusted; None for a deleted tenant (nothing to count). Without a
    successful read `measured` is False: the page says so rather than show zeros."""
    if tenant.status == TenantStatus.DELETED:
        return None
    try:
        snap = tenant.activity_snapshot
    except ObjectDoesNotExist:
        snap = None
    if snap is None or snap.measured_at is None:
        return {
            "measured": False,
            "failing": bool(snap and snap.last_error),
            "error": snap.last_error if snap else "",
            "failed_ago": _age((now - snap.failed_at).total_seconds())
            if snap and snap.failed_at
            else None,
        }
    age = max(0.0, (now - snap.measured_at).total_seconds())
    return {
        "measured": True,
        "delivered_1h": snap.delivered_1h,
        "failed_1h": snap.failed_1h,
        "dead_1h": snap.dead_1h,
        "success_rate_1h": snap.success_rate_1h,
        "events_today": snap.events_today,
        # A snapshot of another UTC day does not say what was counted today.
        "today": snap.day == now.astimezone(UTC).date(),
        "age_seconds": age,
        "age": _age(age),
        "stale": age > settings.ACTIVITY_STALE_SECONDS,
        "failing": bool(snap.last_error),
        "error": snap.last_error,
        "failed_ago": _age((now - snap.failed_at).total_seconds()) if snap.failed_at else None,
    }


def activity_notes(rows: list[dict]) -> list[str]:
    """What the page says above the table when its delivery figures are missing, failing or
    old: a zero in the table must never stand for "could not read"."""
    notes = []
    failing = [r for r in rows if r["failing"]]
    if failing:
        notes.append(
            f"Reading the data plane's counters failed for {len(failing)} tenant(s) on this "
            f"page ({failing[0]['error']}); their figures are the last ones read, with their age."
        )
    if rows and not any(r["measured"] for r in rows) and not failing:
        notes.append(
            "No delivery figures yet: the activity job has not read these tenants' counters "
            f"(it runs every {activity_interval()} under Celery beat)."
        )
    stale = [r for r in rows if r["measured"] and r["stale"] and not r["failing"]]
    if stale:
        oldest = max(r["age_seconds"] for r in stale)
        notes.append(
            f"The delivery figures of {len(stale)} tenant(s) are out of date (up to "
            f"{_age(oldest)} old): is the activity job running?"
        )
    return notes


def _dlq(tenant) -> dict | None:
    """The tenant's DLQ backlog as last measured by the DLQ jobs (broker.dlq), or None."""
    try:
        state = tenant.dlq_state
    except ObjectDoesNotExist:
        return None
    age = (timezone.now() - state.oldest_at).total_seconds() if state.oldest_at else None
    return {
        "backlog": state.backlog,
        "oldest_age": _age(age) if age is not None else None,
        "alerting": state.alerting,
        "reason": state.alert_reason,
    }


def _problems(tenant) -> list[str]:
    out = []
    if tenant.dlq and tenant.dlq["alerting"]:
        out.append("dead letters piling up")
    if tenant.status == TenantStatus.FAILED:
        out.append("provisioning failed")
    if tenant.offboarding_failed:
        out.append("offboarding failed")
    if tenant.sync_bad:
        out.append("sync")
    a = tenant.activity
    if (
        a
        and a["measured"]
        and a["success_rate_1h"] is not None
        and (a["success_rate_1h"] < LOW_SUCCESS_RATE)
    ):
        out.append("deliveries failing")
    if tenant.quota_used is not None and tenant.quota_used >= 0.9:
        out.append("near daily quota" if tenant.quota_used < 1 else "daily quota reached")
    return out
