"""Rate, quota, de-duplication and per-minute counters, in the data plane's own table.

The counters are items with a TTL, updated with conditional ADDs, so the limits hold across
any number of function instances. docs/data-plane.md ("Rate and quota") explains the
algorithm; the keys are in `broker.functions.shared.records`.

Leases (`broker.functions.shared.leases`, the hot-key rule). One tenant's quota is one item and
one producer's rate window is one item, and DynamoDB gives one partition about 1,000
writes/s: a write per request would cap a tenant near 1,000 requests/s whatever its quota
says. So an instance takes its allowance in leases of up to a twentieth of the limit (at most
1,000 events) and spends them in memory; the items still never count past the limit, and
events leased and not spent count as used (that module says what that costs).

Rate: a sliding window. A producer with `rate_per_second` r and `burst` b gets windows of
W = max(1, ceil(b / r)) seconds and may send b events per sliding window: at most b at once
after a quiet spell, r per second sustained (b per W seconds). The current window's count is
exact across instances (a conditional ADD refuses what would exceed the room left); the
previous window's count, weighted by the part of it the sliding window still covers, comes
from this instance's memory of the last count DynamoDB returned for it (a lower bound: other
instances may have added to it since; a fresh instance assumes 0). Refused requests add
nothing. 429 `rate_limited`, Retry-After = the seconds left in the current window.

Quota: one counter per tenant per UTC day, the same conditional ADD against
`daily_event_quota`. 429 `quota_exceeded`, Retry-After = the seconds to UTC midnight.
"""

import json
import math
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from time import monotonic

from aws_lambda_powertools import Logger
from botocore.exceptions import BotoCoreError, ClientError

from broker.functions import aws, settings
from broker.functions.shared import leases, records

from .errors import IngressError

logger = Logger(service="broker-ingress", child=True)

DEDUP_SECONDS = 24 * 3600
QUOTA_TTL_SECONDS = 3 * 86_400
STATS_TTL_SECONDS = 30 * 86_400  # as the egress's counters

_lock = threading.Lock()
# (tenant_id, producer_id) → {window start: highest count DynamoDB returned for it}
_windows: dict[tuple, dict[int, int]] = {}

LEASE_MAX = leases.MOST  # a lease holds at most this many events
LEASES = True  # bench/dataplane.py turns leases off for its same-run baseline
_leases = leases.Leases()


def _table() -> str:
    return settings.get().dataplane_table


def _spend(key: tuple[str, str], **kwargs) -> tuple[bool, int | None]:
    """Spends from this instance's lease of the counter `key` (shared/leases.py)."""
    return _leases.spend(key, leases=LEASES, **kwargs)


def window(producer: dict) -> tuple[int, int]:
    """(window seconds, events allowed per sliding window) of a producer."""
    rate = max(1, int(producer.get("rate_per_second") or 1))
    burst = max(rate, int(producer.get("burst") or rate))
    return max(1, math.ceil(burst / rate)), burst


def _remember(who: tuple, start: int, count: int) -> None:
    with _lock:
        seen = _windows.setdefault(who, {})
        seen[start] = max(seen.get(start, 0), count)
        for old in [s for s in seen if s < start - 3600]:
            del seen[old]
        if len(_windows) > 100_000:
            _windows.clear()


def check_rate(tenant_id: str, producer: dict, n: int, *, now: float | None = None) -> None:
    now = time.time() if now is None else now
    length, limit = window(producer)
    start = int(now // length) * length
    elapsed = (now - start) / length
    who = (str(tenant_id), str(producer["producer_id"]))
    with _lock:
        previous = _windows.get(who, {}).get(start - length, 0)
    weighted = math.floor(previous * (1 - elapsed))
    retry_after = max(1, math.ceil(start + length - now))
    room = limit - n - weighted
    if n > limit:
        raise IngressError(
            "rate_limited",
            f"{n} events in one request exceed the producer's burst of {limit}.",
            retry_after=retry_after,
        )
    accepted = False
    if room >= 0:
        accepted, count = _spend(
            records.rate_key(tenant_id, producer["producer_id"], start),
            n=n,
            most=limit - weighted,
            limit=limit,
            ttl=int(now) + 2 * length + 60,
        )
        if count is not None:
            _remember(who, start, count)
    if not accepted:
        raise IngressError(
            "rate_limited",
            f"Over the producer's rate ({limit} events per {length} s); retry later.",
            retry_after=retry_after,
        )


def _seconds_to_midnight(now: datetime) -> int:
    midnight = (now + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    return max(1, math.ceil((midnight - now).total_seconds()))


def check_quota(tenant_id: str, tenant: dict, n: int, *, now: datetime | None = None) -> None:
    quota = (tenant.get("quotas") or {}).get("daily_event_quota")
    if quota is None:
        return
    now = now or datetime.now(UTC)
    room = int(quota) - n
    accepted = False
    if room >= 0:
        accepted, _ = _spend(
            records.quota_key(tenant_id, records.day(now)),
            n=n,
            most=int(quota),
            limit=int(quota),
            ttl=int(now.timestamp()) + QUOTA_TTL_SECONDS,
        )
    if not accepted:
        raise IngressError(
            "quota_exceeded",
            f"The tenant's daily quota of {quota} events is used up.",
            retry_after=_seconds_to_midnight(now),
        )


# --- producer-given ids ----------------------------------------------------------------------

# A claim is "pending" from before the event's deliveries are sent until they are all sent
# ("done", holding the answer). A pending claim older than this was left by a crashed or
# timed-out instance: the next request with the id takes it over and routes the event.
# Longer than the functions' timeouts (HTTP 10 s, SQS producers 60 s: deploy/template.yaml).
CLAIM_LEASE_SECONDS = 90
PENDING, DONE = "pending", "done"
_CLAIMABLE = "attribute_not_exists(PK) OR expires < :now OR (#state = :pending AND lease < :now)"


@dataclass(frozen=True)
class Claim:
    """What claiming a producer id gave: `answer` (the first answer: a duplicate, route
    nothing), `in_progress` (another request holds it right now: answer 503), or neither (it
    is this request's: route the event, with `event_id` when a crashed claim had chosen one)."""

    answer: dict | None = None
    in_progress: bool = False
    event_id: str | None = None


def claim_event_id(tenant_id: str, producer_id: str, source_id: str, event_id: str) -> Claim:
    """Claims the producer id for the event `event_id` (pending, `CLAIM_LEASE_SECONDS`);
    `complete_event_ids` marks it done with its answer once the deliveries are sent."""
    pk, sk = records.event_id_key(tenant_id, producer_id, source_id)
    now = int(time.time())
    client = aws.dynamodb()
    try:
        out = client.put_item(
            TableName=_table(),
            Item={
                "PK": {"S": pk},
                "SK": {"S": sk},
                "state": {"S": PENDING},
                "event_id": {"S": event_id},
                "lease": {"N": str(now + CLAIM_LEASE_SECONDS)},
                "expires": {"N": str(now + DEDUP_SECONDS)},
                "ttl": {"N": str(now + DEDUP_SECONDS)},
            },
            # TTL deletion lags by up to two days: an expired claim counts as absent.
            ConditionExpression=_CLAIMABLE,
            ExpressionAttributeNames={"#state": "state"},
            ExpressionAttributeValues={":now": {"N": str(now)}, ":pending": {"S": PENDING}},
            ReturnValues="ALL_OLD",
            ReturnValuesOnConditionCheckFailure="ALL_OLD",
        )
    except ClientError as exc:
        if exc.response["Error"]["Code"] != "ConditionalCheckFailedException":
            raise
        old = exc.response.get("Item")
        if old is None:
            old = client.get_item(
                TableName=_table(),
                Key={"PK": {"S": pk}, "SK": {"S": sk}},
                ConsistentRead=True,
            ).get("Item", {})
        if old.get("state", {}).get("S") == PENDING:
            return Claim(in_progress=True)
        return Claim(answer=json.loads(old.get("answer", {}).get("S", "{}")))
    old = out.get("Attributes") or {}
    if old.get("state", {}).get("S") == PENDING:
        # Taken over from a request that died before its deliveries were all sent: the same
        # event id, so a consumer that got some of them can tell the event again.
        logger.info("Producer id claim taken over after its lease", extra={"source_id": source_id})
        return Claim(event_id=old.get("event_id", {}).get("S") or None)
    return Claim()


def complete_event_ids(tenant_id: str, producer_id: str, done: list[tuple[str, dict]]) -> None:
    """Marks claims done with their answers ((producer id, answer) pairs), 25 a call. Never
    raises: the events are routed already; a claim left pending is taken over after its
    lease by a repeat, which routes the event again (at least once, never lost)."""
    now = int(time.time())
    items = []
    for source_id, answer in done:
        pk, sk = records.event_id_key(tenant_id, producer_id, source_id)
        items.append(
            {
                "PutRequest": {
                    "Item": {
                        "PK": {"S": pk},
                        "SK": {"S": sk},
                        "state": {"S": DONE},
                        "answer": {"S": json.dumps(answer, separators=(",", ":"))},
                        "expires": {"N": str(now + DEDUP_SECONDS)},
                        "ttl": {"N": str(now + DEDUP_SECONDS)},
                    }
                }
            }
        )
    client = aws.dynamodb()
    for start in range(0, len(items), 25):
        requests = {_table(): items[start : start + 25]}
        try:
            for attempt in range(3):
                requests = client.batch_write_item(RequestItems=requests).get("UnprocessedItems")
                if not requests:
                    break
                time.sleep(0.05 * 2**attempt)
            else:
                raise RuntimeError("DynamoDB left producer id claims unprocessed")
        except (BotoCoreError, ClientError, RuntimeError):
            logger.exception("Marking producer ids done failed; they stay pending for their lease")


def release_event_id(tenant_id: str, producer_id: str, source_id: str) -> None:
    """Forgets a claim whose event could not be routed, so that the producer's retry is not
    answered as a duplicate of a failure (nor as in progress)."""
    pk, sk = records.event_id_key(tenant_id, producer_id, source_id)
    aws.dynamodb().delete_item(TableName=_table(), Key={"PK": {"S": pk}, "SK": {"S": sk}})


# --- per-tenant per-minute counters ----------------------------------------------------------

# Counts are summed in memory per (tenant, minute) and written with one UpdateItem ADD per
# key: at once when this instance has not written for STATS_MAX_AGE seconds (a quiet
# producer's request is counted right away), else by the first request after that (and by the
# local runner every second). Under load that is one write per key per STATS_MAX_AGE instead
# of one per request. What an instance reclaimed (or left idle) after a busy second never
# writes: at most STATS_MAX_AGE seconds of its counts.
STATS_MAX_AGE = 1.0
_stats_lock = threading.Lock()
_stats_flush_lock = threading.Lock()
_stats: dict[tuple[str, str], list[int]] = {}
_stats_written = [0.0]  # monotonic time of the last write (0: never)


def record_stats(tenant_id: str, *, ingested: int, routed: int, rejected: int) -> None:
    """Adds a request's counts to the tenant's current minute (buffered, see above)."""
    if not (ingested or routed or rejected):
        return
    key = records.tenant_stats_key(tenant_id, records.minute())
    with _stats_lock:
        counts = _stats.setdefault(key, [0, 0, 0])
        counts[0] += ingested
        counts[1] += routed
        counts[2] += rejected
        due = monotonic() - _stats_written[0] >= STATS_MAX_AGE
    if due:
        try:
            flush_stats()
        except (BotoCoreError, ClientError) as exc:
            # The events are routed already: a 503 now would make the producer send them
            # again. The counts stay buffered for the next flush.
            logger.warning("writing counters failed", extra={"error": f"{exc}"[:500]})


def flush_stats() -> int:
    """Writes the buffered counts (one UpdateItem per tenant and minute); returns the calls
    made. A failed write keeps its counts for the next flush and raises."""
    with _stats_flush_lock:
        with _stats_lock:
            pending = dict(_stats)
            _stats.clear()
            _stats_written[0] = monotonic()
        calls = 0
        for number, ((pk, sk), (ingested, routed, rejected)) in enumerate(pending.items()):
            try:
                calls += 1
                _add_stats(pk, sk, ingested=ingested, routed=routed, rejected=rejected)
            except Exception:
                with _stats_lock:
                    for key, counts in list(pending.items())[number:]:
                        kept = _stats.setdefault(key, [0, 0, 0])
                        for i in range(3):
                            kept[i] += counts[i]
                raise
        return calls


def _add_stats(pk: str, sk: str, *, ingested: int, routed: int, rejected: int) -> None:
    aws.dynamodb().update_item(
        TableName=_table(),
        Key={"PK": {"S": pk}, "SK": {"S": sk}},
        UpdateExpression="ADD ingested :i, routed :r, rejected :x SET #ttl = :ttl",
        ExpressionAttributeNames={"#ttl": "ttl"},
        ExpressionAttributeValues={
            ":i": {"N": str(ingested)},
            ":r": {"N": str(routed)},
            ":x": {"N": str(rejected)},
            ":ttl": {"N": str(int(time.time()) + STATS_TTL_SECONDS)},
        },
    )


def reset() -> None:
    """Forgets this process's in-memory state (tests): rate windows and unwritten counts."""
    with _lock:
        _windows.clear()
    _leases.reset()
    with _stats_lock:
        _stats.clear()
        _stats_written[0] = 0.0
