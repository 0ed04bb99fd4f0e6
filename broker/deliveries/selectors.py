"""Reads of the data plane's table (`DATAPLANE_TABLE`, keys in
`broker/functions/shared/records.py`): counters for the console and the charts, the delivery
log and a delivery's history.

Every read is a Query on one partition with an SK range, or one BatchGetItem for many keys:
never a Scan, never one call per row of a page.
"""

import json
import time
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from boto3.dynamodb.types import TypeDeserializer
from django.conf import settings
from django.core.cache import cache

from broker.functions.shared import jsontext, records
from core import aws

TENANT_COUNTERS = ("ingested", "routed", "rejected", "delivered", "failed", "dead")
BATCH_GET_MAX = 100  # DynamoDB's limit of keys per BatchGetItem
BATCH_GET_THREADS = 8
BATCH_GET_ATTEMPTS = 8
# The console's per-tenant counters are kept this long (Redis): "last hour" may lag by it.
ACTIVITY_CACHE_SECONDS = 30
_deserializer = TypeDeserializer()


def _plain(value):
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, set)):
        return [_plain(v) for v in value]
    return value


def _item(raw: dict) -> dict:
    return {k: _plain(_deserializer.deserialize(v)) for k, v in raw.items()}


def _now(now: datetime | None) -> datetime:
    return (now or datetime.now(UTC)).astimezone(UTC)


class UnreadKeys(Exception):
    """DynamoDB still held keys back after the retries: read as absent, they would say
    "nothing counted" where nothing was read."""


def _batch_get_chunk(ddb, table: str, chunk: list[tuple[str, str]]) -> list[dict]:
    request = {table: {"Keys": [{"PK": {"S": pk}, "SK": {"S": sk}} for pk, sk in chunk]}}
    found = []
    for attempt in range(BATCH_GET_ATTEMPTS):
        answer = ddb.batch_get_item(RequestItems=request)
        found.extend(_item(raw) for raw in answer.get("Responses", {}).get(table, []))
        request = answer.get("UnprocessedKeys") or {}
        if not request:
            return found
        time.sleep(min(0.5, 0.02 * 2**attempt))  # DynamoDB hands keys back when throttled
    raise UnreadKeys(f"DynamoDB left {len(request[table]['Keys'])} keys unprocessed")


def batch_get(keys: list[tuple[str, str]]) -> dict[tuple[str, str], dict]:
    """{(PK, SK): item} for the keys that exist, in ⌈n/100⌉ BatchGetItem calls (plus the
    retries of unprocessed keys DynamoDB hands back under load), up to BATCH_GET_THREADS at
    a time (boto3 clients are thread-safe; each call is a network round trip). Raises
    UnreadKeys when DynamoDB still holds keys back after BATCH_GET_ATTEMPTS calls."""
    ddb, table = aws.dynamodb(), settings.DATAPLANE_TABLE
    unique = list(dict.fromkeys(keys))
    chunks = [unique[i : i + BATCH_GET_MAX] for i in range(0, len(unique), BATCH_GET_MAX)]
    if len(chunks) <= 1:
        results = [_batch_get_chunk(ddb, table, c) for c in chunks]
    else:
        with ThreadPoolExecutor(max_workers=min(BATCH_GET_THREADS, len(chunks))) as pool:
            results = list(pool.map(lambda c: _batch_get_chunk(ddb, table, c), chunks))
    return {(item["PK"], item["SK"]): item for found in results for item in found}


def query(
    pk: str,
    *,
    sk_from: str | None = None,
    sk_to: str | None = None,
    newest_first=False,
    limit: int | None = None,
    status: str | None = None,
    equals: dict | None = None,
    max_pages: int | None = None,
) -> list[dict]:
    """Items of one partition with `sk_from <= SK <= sk_to`, in SK order (or reversed), at
    most `limit` after the optional `status` filter (pages are followed until enough, or
    until `max_pages` pages were read)."""
    ddb = aws.dynamodb()
    names, values = {"#pk": "PK"}, {":pk": {"S": pk}}
    condition = "#pk = :pk"
    if sk_from:
        names["#sk"] = "SK"
        values[":lo"] = {"S": sk_from}
    if sk_to:
        names["#sk"] = "SK"
        values[":hi"] = {"S": sk_to}
    if sk_from and sk_to:
        condition += " AND #sk BETWEEN :lo AND :hi"
    elif sk_from:
        condition += " AND #sk >= :lo"
    elif sk_to:
        condition += " AND #sk <= :hi"
    kwargs = {
        "TableName": settings.DATAPLANE_TABLE,
        "KeyConditionExpression": condition,
        "ExpressionAttributeNames": names,
        "ExpressionAttributeValues": values,
        "ScanIndexForward": not newest_first,
    }
    equals = {"status": status, **(equals or {})}
    clauses = []
    for i, (name, value) in enumerate((k, v) for k, v in equals.items() if v):
        names[f"#f{i}"] = name
        values[f":f{i}"] = {"S": str(value)}
        clauses.append(f"#f{i} = :f{i}")
    if clauses:
        kwargs["FilterExpression"] = " AND ".join(clauses)
    if limit:
        kwargs["Limit"] = max(limit, 25)
    out: list[dict] = []
    pages = 0
    while True:
        answer = ddb.query(**kwargs)
        pages += 1
        out.extend(_item(raw) for raw in answer.get("Items", []))
        if (limit and len(out) >= limit) or "LastEvaluatedKey" not in answer:
            break
        if max_pages and pages >= max_pages:
            break
        kwargs["ExclusiveStartKey"] = answer["LastEvaluatedKey"]
    return out[:limit] if limit else out


# --- operator console ------------------------------------------------------------------


def success_rate(ok: int, failed: int) -> float | None:
    """None when nothing was attempted: "no deliveries" is not "100 %"."""
    return None if ok + failed == 0 else ok / (ok + failed)


def tenant_activity(tenant_ids, *, now: datetime | None = None) -> dict[str, dict]:
    """Per tenant: deliveries in the last hour (ok, failed, dead, success rate) and events
    accepted today (the ingress's quota counter, attribute `c`). One BatchGetItem per 100
    keys for the whole page, 61 keys a tenant (60 minutes + today's quota counter); each
    tenant's figures are then kept ACTIVITY_CACHE_SECONDS in the cache."""
    now = _now(now)
    minutes = [records.minute(now - timedelta(minutes=i)) for i in range(60)]
    today = records.day(now)
    cache_keys = {str(t): f"dp-activity:{t}:{minutes[0]}" for t in tenant_ids}
    cached = cache.get_many(list(cache_keys.values()))
    missing = [t for t, key in cache_keys.items() if key not in cached]
    out = {t: cached[key] for t, key in cache_keys.items() if key in cached}
    fresh = _tenant_activity(missing, minutes=minutes, today=today) if missing else {}
    cache.set_many({cache_keys[t]: v for t, v in fresh.items()}, ACTIVITY_CACHE_SECONDS)
    return out | fresh


def _tenant_activity(tenant_ids, *, minutes: list[str], today: str) -> dict[str, dict]:
    keys = []
    for tenant_id in map(str, tenant_ids):
        keys.extend(records.tenant_stats_key(tenant_id, m) for m in minutes)
        keys.append(records.quota_key(tenant_id, today))
    items = batch_get(keys)
    out = {}
    for tenant_id in map(str, tenant_ids):
        sums = defaultdict(int)
        for m in minutes:
            item = items.get(records.tenant_stats_key(tenant_id, m))
            for name in TENANT_COUNTERS:
                sums[name] += int((item or {}).get(name, 0))
        quota_item = items.get(records.quota_key(tenant_id, today)) or {}
        out[tenant_id] = {
            "delivered_1h": sums["delivered"],
            "failed_1h": sums["failed"],
            "dead_1h": sums["dead"],
            "ingested_1h": sums["ingested"],
            "rejected_1h": sums["rejected"],
            "success_rate_1h": success_rate(sums["delivered"], sums["failed"]),
            "events_today": int(quota_item.get("c", 0)),
        }
    return out


# --- charts ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Window:
    since: datetime
    until: datetime
    step_minutes: int

    @classmethod
    def last(cls, hours: int, *, now: datetime | None = None) -> "Window":
        until = _now(now).replace(second=0, microsecond=0)
        step = 1 if hours <= 1 else 5 if hours <= 6 else 15 if hours <= 24 else 60
        return cls(since=until - timedelta(hours=hours), until=until, step_minutes=step)

    def buckets(self) -> list[datetime]:
        out, t = [], self.since
        while t <= self.until:
            out.append(t)
            t += timedelta(minutes=self.step_minutes)
        return out

    def bucket_of(self, minute_: str) -> int:
        at = datetime.strptime(minute_, "%Y-%m-%dT%H:%M").replace(tzinfo=UTC)
        return int((at - self.since).total_seconds() // 60) // self.step_minutes


def _minute_items(pk: str, window: Window) -> list[dict]:
    return query(
        pk,
        sk_from=f"MIN#{records.minute(window.since)}",
        sk_to=f"MIN#{records.minute(window.until)}",
    )


def tenant_series(tenant_id, window: Window) -> dict:
    """The tenant's per-minute counters summed into the window's buckets:
    {"t": [epoch seconds], "ingested": [...], "delivered": [...], ...}."""
    buckets = window.buckets()
    out = {"t": [int(b.timestamp()) for b in buckets]}
    for name in TENANT_COUNTERS:
        out[name] = [0] * len(buckets)
    pk, _ = records.tenant_stats_key(str(tenant_id), "")
    for item in _minute_items(pk, window):
        i = window.bucket_of(item["SK"][4:])
        if 0 <= i < len(buckets):
            for name in TENANT_COUNTERS:
                out[name][i] += int(item.get(name, 0))
    return out


BUCKET_NAMES = [f"lat_{b}" for b in records.LATENCY_BUCKETS_MS] + ["lat_inf"]
BUCKET_BOUNDS = [*records.LATENCY_BUCKETS_MS, None]


def percentile(histogram: dict, fraction: float) -> int | None:
    """The upper bound (ms) of the bucket holding the given fraction of the attempts; None
    when there were none. The last bucket has no bound: it reports the last finite one as a
    floor (shown as "> 30000")."""
    total = sum(int(histogram.get(name, 0)) for name in BUCKET_NAMES)
    if not total:
        return None
    target, seen = fraction * total, 0
    for name, bound in zip(BUCKET_NAMES, BUCKET_BOUNDS, strict=True):
        seen += int(histogram.get(name, 0))
        if seen >= target:
            return bound if bound is not None else records.LATENCY_BUCKETS_MS[-1]
    return records.LATENCY_BUCKETS_MS[-1]


def consumer_series(tenant_id, consumer_ids, window: Window) -> dict:
    """Summed over the given consumers: ok and failed attempts and latency p50/p95 per
    bucket, and the whole window's totals. One Query per consumer."""
    buckets = window.buckets()
    ok, failed = [0] * len(buckets), [0] * len(buckets)
    hist = [defaultdict(int) for _ in buckets]
    total = defaultdict(int)
    for consumer_id in consumer_ids:
        pk, _ = records.consumer_stats_key(str(tenant_id), str(consumer_id), "")
        for item in _minute_items(pk, window):
            i = window.bucket_of(item["SK"][4:])
            if not 0 <= i < len(buckets):
                continue
            ok[i] += int(item.get("ok", 0))
            failed[i] += int(item.get("failed", 0))
            total["ok"] += int(item.get("ok", 0))
            total["failed"] += int(item.get("failed", 0))
            for name in BUCKET_NAMES:
                n = int(item.get(name, 0))
                hist[i][name] += n
                total[name] += n
    return {
        "t": [int(b.timestamp()) for b in buckets],
        "ok": ok,
        "failed": failed,
        "p50": [percentile(h, 0.5) for h in hist],
        "p95": [percentile(h, 0.95) for h in hist],
        "totals": {
            "ok": total["ok"],
            "failed": total["failed"],
            "success_rate": success_rate(total["ok"], total["failed"]),
            "p50": percentile(total, 0.5),
            "p95": percentile(total, 0.95),
        },
    }


def consumer_throttled(tenant_id, consumer_id, *, minutes: int = 60, now=None) -> int:
    """Deliveries the egress held back for the consumer's rate limit in the last `minutes`:
    the `throttled` counter of its STATS minute items (0 where a minute has none)."""
    until = _now(now).replace(second=0, microsecond=0)
    window = Window(since=until - timedelta(minutes=minutes - 1), until=until, step_minutes=1)
    pk, _ = records.consumer_stats_key(str(tenant_id), str(consumer_id), "")
    return sum(int(item.get("throttled", 0)) for item in _minute_items(pk, window))


def daily_events(tenant_id, *, days: int = 14, now: datetime | None = None) -> dict:
    """Events accepted per UTC day (the ingress's quota counters), oldest first."""
    now = _now(now)
    dates = [records.day(now - timedelta(days=i)) for i in range(days - 1, -1, -1)]
    items = batch_get([records.quota_key(str(tenant_id), d) for d in dates])
    counts = []
    for d in dates:
        item = items.get(records.quota_key(str(tenant_id), d)) or {}
        counts.append(int(item.get("c", 0)))
    return {"days": dates, "events": counts}


# --- delivery log and history ------------------------------------------------------------


def _attempt(item: dict) -> dict:
    out = {k: v for k, v in item.items() if k not in ("PK", "SK", "ttl")}
    out["cursor"] = item["SK"]
    out["at_display"] = str(out.get("at", ""))[:23].replace("T", " ")
    out.setdefault("replay", 0)
    out.setdefault("attempt", 1)
    return out


def consumer_log(
    tenant_id,
    consumer_id,
    *,
    status: str | None = None,
    event_type: str | None = None,
    since: str | None = None,
    until: str | None = None,
    before: str | None = None,
    limit: int = 50,
    max_pages: int | None = 20,
) -> list[dict]:
    """A consumer's delivery attempts, newest first. `since`/`until` are ISO times (UTC,
    milliseconds, as the data plane writes `at`); `before` is the `cursor` of the last
    attempt of the previous page. Each attempt carries its `cursor`."""
    pk, _ = records.consumer_log_key(str(tenant_id), str(consumer_id), "", "", 0, 0)
    sk_to = (until + "\uffff") if until else None
    if before and (sk_to is None or before < sk_to):
        sk_to = before
    items = query(
        pk,
        sk_from=since,
        sk_to=sk_to,
        newest_first=True,
        limit=limit + 1 if before else limit,
        status=status,
        equals={"event_type": event_type},
        max_pages=max_pages,
    )
    items = [i for i in items if i["SK"] != before][:limit]
    return [_attempt(i) for i in items]


def consumer_health(tenant_id, consumer_id, *, now: datetime | None = None) -> dict:
    """Success rate over the last 24 h (the consumer's counters), and the newest success and
    the newest failure from its delivery log."""
    now = _now(now)
    series = consumer_series(tenant_id, [consumer_id], Window.last(24, now=now))
    recent = consumer_log(tenant_id, consumer_id, limit=200)
    last_success = next((a for a in recent if a.get("status") == records.OK), None)
    last_failure = next((a for a in recent if a.get("status") != records.OK), None)
    if last_success is None and len(recent) == 200:
        older = consumer_log(tenant_id, consumer_id, status=records.OK, limit=1, max_pages=10)
        last_success = older[0] if older else None
    return {
        **series["totals"],
        "last_success": last_success,
        "last_failure": last_failure,
        "last_attempt": recent[0] if recent else None,
    }


def delivery_history(tenant_id, delivery_id: str, *, for_display: bool = True) -> dict | None:
    """{"delivery_id", "event": {...} | None, "event_escaped", "event_truncated", "attempts":
    [oldest first]} or None.

    `event_truncated`: the EVENT item holds only the start of an event too large for
    DynamoDB (`records.fit_item`); `event` is then `{"raw": <that start>}`. `event_escaped`
    (`for_display` only): the event was stored before the ingress refused NaN, infinities and
    lone surrogates, and those are shown as strings (`jsontext.readable`), which any JSON
    renderer takes. `for_display=False` gives the event as stored (for a resend)."""
    pk, _ = records.delivery_event_key(str(tenant_id), delivery_id)
    items = query(pk)
    if not items:
        return None
    item = next((i for i in items if i["SK"] == "EVENT"), None)
    attempts = [_attempt(i) for i in items if i["SK"].startswith("ATTEMPT#")]
    event = _event(item)
    escaped = False
    if for_display and event is not None:
        event, escaped = jsontext.readable(event)
    return {
        "delivery_id": delivery_id,
        "event": event,
        "event_escaped": escaped,
        "event_truncated": bool(item and item.get("truncated")),
        "attempts": attempts,
    }


def _event(item: dict | None) -> dict | None:
    if item is None:
        return None
    value = item.get("event")  # the event JSON as consumers receive it (the EVENT item)
    if isinstance(value, str):
        try:
            # Python's parser: it reads what older ingresses let through (NaN, surrogates).
            return json.loads(value)
        except (ValueError, RecursionError):
            return {"raw": value}
    return value


# --- the tenant dashboard ---------------------------------------------------------------

DASHBOARD_HOURS = (1, 6, 24, 168)


def tenant_dashboard(
    tenant_id,
    *,
    consumer_ids,
    daily_quota: int | None,
    hours: int = 24,
    now: datetime | None = None,
) -> dict:
    """What the dashboard charts, as uPlot-ready columns (epoch seconds first):

    - deliveries: ok and failed attempts per bucket (the tenant's counters);
    - latency: p50/p95 per bucket (the consumers' histograms, summed);
    - dead: dead-lettered deliveries per bucket;
    - today: events accepted since midnight UTC, cumulative per bucket, with the quota.
    """
    now = _now(now)
    window = Window.last(hours, now=now)
    tenant = tenant_series(tenant_id, window)
    consumers = consumer_series(tenant_id, consumer_ids, window)
    midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
    today_window = Window(since=midnight, until=window.until, step_minutes=15)
    today = tenant_series(tenant_id, today_window)
    running, cumulative = 0, []
    for n in today["ingested"]:
        running += n
        cumulative.append(running)
    # The ingress's quota counter is the figure the quota is enforced on (and the console's).
    counted = batch_get([records.quota_key(str(tenant_id), records.day(now))])
    events_today = int(next(iter(counted.values()), {}).get("c", running))
    delivered, failed = sum(tenant["delivered"]), sum(tenant["failed"])
    return {
        "hours": hours,
        "step_minutes": window.step_minutes,
        "deliveries": {"t": tenant["t"], "ok": tenant["delivered"], "failed": tenant["failed"]},
        "latency": {"t": consumers["t"], "p50": consumers["p50"], "p95": consumers["p95"]},
        "dead": {"t": tenant["t"], "dead": tenant["dead"]},
        "today": {
            "t": today["t"],
            "ingested": cumulative,
            "quota": [daily_quota] * len(cumulative) if daily_quota else [],
        },
        "totals": {
            "delivered": delivered,
            "failed": failed,
            "dead": sum(tenant["dead"]),
            "ingested": sum(tenant["ingested"]),
            "rejected": sum(tenant["rejected"]),
            "success_rate": success_rate(delivered, failed),
            "p50": consumers["totals"]["p50"],
            "p95": consumers["totals"]["p95"],
            "events_today": events_today,
            "daily_quota": daily_quota,
        },
    }


def pretty_json(value) -> str:
    return "" if value is None else json.dumps(value, indent=2, sort_keys=True, default=str)


def tenant_log(tenant_id, consumer_ids, *, limit: int = 50, **filters) -> list[dict]:
    """Attempts of several consumers, newest first: each consumer's log read up to `limit`
    (one Query each), merged."""
    merged = []
    for consumer_id in consumer_ids:
        merged.extend(consumer_log(tenant_id, consumer_id, limit=limit, **filters))
    merged.sort(key=lambda a: a["cursor"].split("#", 1)[0], reverse=True)
    return merged[:limit]


def failing_since(tenant_id, consumer_id, *, hours: float, now: datetime | None = None):
    """The minute from which a consumer has failed without a single success, when that run
    has lasted at least `hours`; else None. Two Queries on the consumer's counters: the last
    `hours` (no `ok`, some `failed`), and the newest minute before them (a failure-only
    minute: the run began before the window; a success or nothing: it began inside it)."""
    now = _now(now)
    start = now - timedelta(hours=hours)
    pk, _ = records.consumer_stats_key(str(tenant_id), str(consumer_id), "")
    window = query(pk, sk_from=f"MIN#{records.minute(start)}", sk_to=f"MIN#{records.minute(now)}")
    if any(int(i.get("ok", 0)) for i in window) or not any(int(i.get("failed", 0)) for i in window):
        return None
    earlier = query(
        pk,
        sk_to=f"MIN#{records.minute(start - timedelta(minutes=1))}",
        newest_first=True,
        limit=1,
    )
    if not earlier or int(earlier[0].get("ok", 0)) or not int(earlier[0].get("failed", 0)):
        return None
    return datetime.strptime(earlier[0]["SK"][4:], "%Y-%m-%dT%H:%M").replace(tzinfo=UTC)
