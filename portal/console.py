"""The operator console's tenant list: one row per tenant with what says it is in trouble.

A constant number of SQL queries whatever the page size (the page, its count, the sync
overview's two aggregates, the tier list) and one BatchGetItem per 100 data-plane keys for the
page's delivery counters (never a call per row).
"""

import logging
from dataclasses import dataclass

from django.core.exceptions import ObjectDoesNotExist
from django.core.paginator import Paginator
from django.db.models import BooleanField, Case, Exists, IntegerField, OuterRef, Q, Value, When
from django.utils import timezone

from broker.deliveries import selectors as deliveries
from broker.sync.models import OutboxEntry, SyncState
from broker.sync.selectors import platform_sync_overview
from tenants import selectors
from tenants.models import TenantStatus, Tier

logger = logging.getLogger(__name__)

PAGE_SIZES = (25, 50, 100)
SORTS = {
    "attention": "needs attention first",
    "slug": "slug",
    "-created_at": "newest first",
    "created_at": "oldest first",
    "tier": "tier",
    "status": "status",
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

# Helper slot for other columns computed per page (e.g. DLQ backlog): callables taking the
# page's tenants and returning {tenant_id (str): value}, registered by name.
EXTRA_COLUMNS: dict[str, callable] = {}


@dataclass
class ConsoleQuery:
    q: str = ""
    tier: str = ""
    status: str = ""
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
            show_deleted=data.get("deleted") == "1",
            sort=data.get("sort") if data.get("sort") in SORTS else "attention",
            page=max(1, _int("page", 1)),
            per_page=per_page if per_page in PAGE_SIZES else 25,
        )


def _queryset(query: ConsoleQuery):
    failing_sync = SyncState.objects.filter(tenant=OuterRef("pk")).exclude(last_error="")
    failing_outbox = OutboxEntry.objects.filter(tenant=OuterRef("pk")).exclude(last_error="")
    qs = (
        selectors.tenant_list()
        .select_related("dlq_state")
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
    failing = sync["failing_objects"] + sync["failing_changes"]
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
    paginator = Paginator(_queryset(query), query.per_page)
    page = paginator.get_page(query.page)
    tenants = list(page.object_list)
    sync = {row["tenant_id"]: row for row in platform_sync_overview(tenants)}
    live = [t.pk for t in tenants if t.status != TenantStatus.DELETED]
    activity_error = ""
    try:
        activity = deliveries.tenant_activity(live) if live else {}
    except Exception as exc:  # the console stays up when the data plane's table is not
        logger.warning("console: delivery counters unavailable: %s", exc)
        activity, activity_error = {}, "Delivery counters are unavailable right now."
    extra = {name: column(tenants) for name, column in EXTRA_COLUMNS.items()}
    for tenant in tenants:
        tid = str(tenant.pk)
        tenant.sync = sync[tid]
        tenant.sync_text, tenant.sync_bad = sync_words(tenant.sync, tenant)
        tenant.activity = activity.get(tid)
        quota = tenant.effective_quotas().get("daily_event_quota") if tenant.tier_id else None
        tenant.daily_quota = quota
        if tenant.activity and quota:
            tenant.quota_used = tenant.activity["events_today"] / quota
        else:
            tenant.quota_used = None
        tenant.extra = {name: values.get(tid) for name, values in extra.items()}
        tenant.dlq = _dlq(tenant)
        tenant.problems = _problems(tenant)
    return {
        "page": page,
        "tenants": tenants,
        "query": query,
        "tiers": list(Tier.objects.order_by("name").values_list("name", flat=True)),
        "statuses": TenantStatus.values,
        "sorts": SORTS,
        "page_sizes": PAGE_SIZES,
        "activity_error": activity_error,
        "extra_columns": list(EXTRA_COLUMNS),
    }


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
    if a and a["success_rate_1h"] is not None and a["success_rate_1h"] < LOW_SUCCESS_RATE:
        out.append("deliveries failing")
    if tenant.quota_used is not None and tenant.quota_used >= 0.9:
        out.append("near daily quota" if tenant.quota_used < 1 else "daily quota reached")
    return out
