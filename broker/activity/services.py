"""The activity job: each live tenant's last hour of deliveries and its events today, read
from the data plane's counters (`DATAPLANE_TABLE`, keys in broker/functions/shared/records.py)
into `TenantActivity` rows.

Why incremental: the last hour is 60 per-minute items a tenant. Reading all of them every run
costs 61 item reads a tenant (0.61 BatchGetItem calls); instead each row keeps the hour's
per-minute figures it has read, and a run reads only the minutes that may still change (the
newest `ACTIVITY_SETTLE_MINUTES` + the ones since the last run) and today's quota counter:
7 keys a tenant at the default settings, whatever the hour held. A minute is read after it
settled once, then never again. The data plane writes a minute's counts within seconds
(egress: at most STATS_MAX_AGE = 10 s buffered, plus a Lambda invocation of at most 60 s);
counts written later than ACTIVITY_SETTLE_MINUTES (a Lambda environment reclaimed with
buffered counts, a DynamoDB outage on the data plane's side) are missed by the snapshot (the
tenant's own page and charts read live and show them). bench/console.py measures both ways.

Sharded: beat's tick queues ACTIVITY_SHARDS runs, each over the tenants of its shard (id
modulo the shards), each a task of its own with its own lock and time limit, so that the
workers free run them side by side: at 10,000 tenants one run over all of them took 19-47 s
of a 60-s interval on the benchmark machine (bench/scale.py), most of it the emulator's.

A read that fails (DynamoDB unreachable, throttled beyond retries, keys left unprocessed) is
logged and recorded on the rows of the tenants it was for (`last_error`, `failed_at`), which
keep their previous figures; the run goes on with the next chunk of tenants.
"""

import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.utils import timezone

from broker.deliveries import selectors as deliveries
from broker.functions.shared import records
from tenants.models import Tenant, TenantStatus

from .models import COUNTERS, TenantActivity

logger = logging.getLogger(__name__)
# Tenants read and written per chunk: one failure costs at most this many rows their update.
CHUNK_TENANTS = 200
_FIGURES = [
    "delivered_1h",
    "failed_1h",
    "dead_1h",
    "ingested_1h",
    "rejected_1h",
    "events_today",
    "day",
    "measured_at",
    "last_error",
    "failed_at",
    "minutes",
    "settled_through",
]


@dataclass
class RefreshResult:
    tenants: int = 0
    refreshed: int = 0
    failed: int = 0
    keys_read: int = 0


def activity_refresh(
    *,
    now: datetime | None = None,
    chunk_size: int = CHUNK_TENANTS,
    shard: int = 0,
    shards: int = 1,
):
    """Refreshes the snapshot of every tenant that is not deleted (deleted tenants lose
    theirs), or with `shards` > 1 of the tenants of one shard: those whose id modulo `shards`
    is `shard` (fixed for a tenant, whoever else comes and goes). Returns a RefreshResult."""
    now = now or timezone.now()
    if shard == 0:
        TenantActivity.objects.filter(tenant__status=TenantStatus.DELETED).delete()
    ids = [
        pk
        for pk in Tenant.objects.exclude(schema_name="public")
        .exclude(status=TenantStatus.DELETED)
        .order_by("pk")
        .values_list("pk", flat=True)
        if pk.int % shards == shard
    ]
    result = RefreshResult(tenants=len(ids))
    for start in range(0, len(ids), chunk_size):
        chunk = ids[start : start + chunk_size]
        try:
            result.keys_read += _refresh_chunk(chunk, now=now)
            result.refreshed += len(chunk)
        except AwsReadFailed as exc:
            logger.warning(
                "activity: reading the counters of %d tenant(s) failed: %s",
                len(chunk),
                exc,
                exc_info=exc.__cause__,
            )
            _record_failure(chunk, now=now, error=str(exc))
            result.failed += len(chunk)
    return result


class AwsReadFailed(Exception):
    pass


def _refresh_chunk(tenant_ids, *, now: datetime) -> int:
    states = {s.tenant_id: s for s in TenantActivity.objects.filter(tenant_id__in=tenant_ids)}
    window = [records.minute(now - timedelta(minutes=i)) for i in range(60)]
    today = records.day(now)
    keys = []
    for tenant_id in tenant_ids:
        through = states[tenant_id].settled_through if tenant_id in states else ""
        keys.extend(records.tenant_stats_key(str(tenant_id), m) for m in window if m > through)
        keys.append(records.quota_key(str(tenant_id), today))
    items = read_items(keys)
    settled = records.minute(now - timedelta(minutes=settings.ACTIVITY_SETTLE_MINUTES))
    rows = [
        _snapshot(t, states.get(t), items, window=window, settled=settled, now=now)
        for t in tenant_ids
    ]
    TenantActivity.objects.bulk_create(
        rows, update_conflicts=True, unique_fields=["tenant"], update_fields=_FIGURES
    )
    return len(keys)


def _snapshot(tenant_id, state, items, *, window, settled, now) -> TenantActivity:
    tid = str(tenant_id)
    through = state.settled_through if state else ""
    kept = state.minutes if state else {}
    minutes = {}
    for m in window:
        if m <= through:
            counts = kept.get(m)
        else:
            item = items.get(records.tenant_stats_key(tid, m))
            counts = [int(item.get(name, 0)) for name in COUNTERS] if item else None
        if counts and any(counts):
            minutes[m] = counts
    sums = [sum(c[i] for c in minutes.values()) for i in range(len(COUNTERS))]
    quota = items.get(records.quota_key(tid, records.day(now))) or {}
    return TenantActivity(
        tenant_id=tenant_id,
        **{f"{name}_1h": total for name, total in zip(COUNTERS, sums, strict=True)},
        events_today=int(quota.get("c", 0)),
        day=now.astimezone(UTC).date(),
        measured_at=now,
        last_error="",
        failed_at=None,
        minutes=minutes,
        settled_through=max(through, settled),
    )


def _record_failure(tenant_ids, *, now: datetime, error: str) -> None:
    """The rows keep their figures and say the read failed (rows created here have none)."""
    TenantActivity.objects.bulk_create(
        [TenantActivity(tenant_id=t, last_error=error[:500], failed_at=now) for t in tenant_ids],
        update_conflicts=True,
        unique_fields=["tenant"],
        update_fields=["last_error", "failed_at"],
    )


def read_items(keys: list[tuple[str, str]]) -> dict[tuple[str, str], dict]:
    """{(PK, SK): item} for the keys that exist (broker.deliveries.selectors.batch_get).
    Raises AwsReadFailed when a call fails or DynamoDB still holds keys back after the
    retries: a missing key must mean "nothing counted", never "not read"."""
    try:
        return deliveries.batch_get(keys)
    except Exception as exc:
        raise AwsReadFailed(f"{type(exc).__name__}: {exc}"[:500]) from exc
