"""Keys of the data plane's own DynamoDB table (`DATAPLANE_TABLE`, default `broker-dataplane`).

The data plane writes it (counters, delivery records); the portal reads it (charts, delivery
log, endpoint health). The config table is never written by the data plane. Every item has
`PK`/`SK` strings and a `ttl` (epoch seconds), except the held keys' items (held.py), kept
until someone releases them. docs/dynamodb-contract.md documents each item.
"""

from datetime import UTC, datetime

# Upper bounds (ms) of the latency histogram buckets kept per consumer per minute; the last
# bucket is everything slower. p50/p95 are read off the cumulative counts.
LATENCY_BUCKETS_MS = (10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000)

# DynamoDB's item limit is 400 KB (409,600 bytes: names and values in UTF-8); moto refuses
# above 405,000. The data plane keeps its items under this, truncating what does not fit.
MAX_ITEM_BYTES = 400_000

# Attempt statuses in delivery records.
OK = "ok"  # 2xx (or the SQS send succeeded)
RETRYING = "retrying"  # failed, another attempt is scheduled
DEAD = "dead"  # failed, the last attempt: sent to the central DLQ
HELD = "held"  # failed, the last attempt of an ordered key's head under `hold`: the key is held
STATUSES = (OK, RETRYING, DEAD, HELD)


def minute(ts: datetime | None = None) -> str:
    return (ts or datetime.now(UTC)).astimezone(UTC).strftime("%Y-%m-%dT%H:%M")


def day(ts: datetime | None = None) -> str:
    return (ts or datetime.now(UTC)).astimezone(UTC).strftime("%Y-%m-%d")


def latency_bucket(ms: float) -> str:
    """The attribute name of the bucket a latency falls in: `lat_<upper bound>` or `lat_inf`."""
    for bound in LATENCY_BUCKETS_MS:
        if ms <= bound:
            return f"lat_{bound}"
    return "lat_inf"


# --- ingress counters ----------------------------------------------------------------------


def rate_key(tenant_id, producer_id, second: int) -> tuple[str, str]:
    """Events accepted from one producer in one epoch second (ADD n), TTL a few minutes."""
    return f"RATE#{tenant_id}#{producer_id}", f"S#{second}"


def quota_key(tenant_id, day_: str) -> tuple[str, str]:
    """Events accepted for one tenant on one UTC day (ADD n), TTL a few days."""
    return f"QUOTA#{tenant_id}", f"DAY#{day_}"


def event_id_key(tenant_id, producer_id, source_id: str) -> tuple[str, str]:
    """A producer-given event id seen within 24 h: holds the first answer (dedup)."""
    return f"EVENTID#{tenant_id}#{producer_id}#{source_id}", "EVENTID"


# --- egress -------------------------------------------------------------------------------


def inflight_key(tenant_id, consumer_id) -> tuple[str, str]:
    """Deliveries in flight to one pool consumer (ADD ±1), for the per-consumer cap."""
    return f"INFLIGHT#{tenant_id}#{consumer_id}", "INFLIGHT"


def consumer_rate_key(tenant_id, consumer_id, second: int) -> tuple[str, str]:
    """Tokens taken for deliveries to one consumer in one epoch second (conditional ADD, in
    leases), for its `rate_limit_per_second` (egress/ratelimit.py)."""
    return f"CRATE#{tenant_id}#{consumer_id}", f"S#{second}"


def consumer_queue_key(tenant_id, consumer_id) -> tuple[str, str]:
    """The cursor of the turns given to deliveries put back over the consumer's rate limit."""
    return f"CRATE#{tenant_id}#{consumer_id}", "QUEUE"


def consumer_log_key(tenant_id, consumer_id, at: str, delivery_id: str, replay: int, attempt: int):
    """One attempt in a consumer's delivery log, newest last when read in SK order."""
    return (
        f"DLOG#{tenant_id}#{consumer_id}",
        f"{at}#{delivery_id}#{replay:04d}#{attempt:04d}",
    )


def delivery_attempt_key(tenant_id, delivery_id: str, replay: int, attempt: int):
    """The same attempt under its delivery: a Query on the PK lists a delivery's history."""
    return f"DELIVERY#{tenant_id}#{delivery_id}", f"ATTEMPT#{replay:04d}#{attempt:04d}"


def delivery_event_key(tenant_id, delivery_id: str):
    """The event of a delivery (JSON), written with its first attempt."""
    return f"DELIVERY#{tenant_id}#{delivery_id}", "EVENT"


def ordered_attempt_key(tenant_id, delivery_id: str, replay: int):
    """The last attempt made of an ordered delivery in one life: a FIFO message cannot be
    changed, so its retries wait in place (visibility) and the attempt count lives here."""
    return f"ORDATT#{tenant_id}#{delivery_id}", f"R#{replay:04d}"


def consumer_stats_key(tenant_id, consumer_id, minute_: str):
    """Per consumer per minute: `ok`, `failed`, `throttled`, and the latency buckets (ADD)."""
    return f"STATS#{tenant_id}#CONSUMER#{consumer_id}", f"MIN#{minute_}"


def tenant_stats_key(tenant_id, minute_: str):
    """Per tenant per minute: `ingested`, `routed`, `rejected`, `delivered`, `failed`,
    `dead` (ADD)."""
    return f"STATS#{tenant_id}#TENANT", f"MIN#{minute_}"


# --- item sizes ---------------------------------------------------------------------------


def item_bytes(item: dict) -> int:
    """An upper bound of a low-level item's size as DynamoDB counts it: each attribute's name
    and value in UTF-8 (a number counted as its text plus one byte, more than DynamoDB's
    ~1 byte per two digits; a BOOL one byte)."""
    total = 0
    for name, value in item.items():
        total += len(name.encode())
        if "S" in value:
            total += len(value["S"].encode())
        elif "N" in value:
            total += len(value["N"]) + 1
        else:
            total += len(str(value).encode())
    return total


def fit_item(item: dict, attribute: str) -> dict:
    """`item` when within MAX_ITEM_BYTES; otherwise a copy with the string `attribute` cut to
    fit, `truncated` = true and `<attribute>_bytes` = its full size in UTF-8 bytes, so a
    reader knows it holds only the start (no longer valid JSON, for the `event` item)."""
    size = item_bytes(item)
    if size <= MAX_ITEM_BYTES:
        return item
    full = item[attribute]["S"].encode()
    flags = {"truncated": {"BOOL": True}, f"{attribute}_bytes": {"N": str(len(full))}}
    extra = sum(len(k) + len(str(v)) for k, v in flags.items())
    keep = max(0, MAX_ITEM_BYTES - (size - len(full)) - extra)
    # errors="ignore": a character cut in the middle is dropped, not kept half.
    cut = full[:keep].decode("utf-8", errors="ignore")
    return {**item, attribute: {"S": cut}, **flags}
