"""Delivery records and per-minute stats, buffered in-process and written in batches.

Every attempt adds two items (the consumer's delivery log and the delivery's history) and a
first attempt the event, written with BatchWriteItem (25 items a call); stats are summed in
memory and written as one UpdateItem ADD per (stats key, minute).

When: the handler calls `flush(full_only=True)` after a full batch and `flush()` after a
partial one. Under load (full batches, 30 items each) only whole chunks of 25 are written and
the rest waits for the next invocation, and the stats wait up to `STATS_MAX_AGE` seconds:
that is what keeps records and counters within 0.2 write calls per delivery (writing all of
it after every batch of 10 would cost two BatchWriteItem calls plus two UpdateItem calls,
0.4). Anything older than `RECORDS_MAX_AGE` is written whatever the batch. A partial batch
means the queue is draining: then everything is written, so a lone delivery shows in the log
at once. What is lost if a Lambda environment is reclaimed right after a full batch: at most
24 record items and `STATS_MAX_AGE` seconds of counts; the local runner flushes when idle.
docs/dynamodb-contract.md, "Data-plane table", documents every item.
"""

import logging
import threading
import time
from collections import defaultdict
from datetime import UTC, datetime

from botocore.exceptions import ClientError

from broker.functions import aws, settings
from broker.functions.shared import jsontext, messages, records

logger = logging.getLogger(__name__)

BATCH_SIZE = 25  # BatchWriteItem's limit
MAX_BUFFERED = 5000  # items kept for a later flush when DynamoDB is unavailable
STATS_TTL_DAYS = 30
RECORDS_MAX_AGE = 2.0  # seconds a record item may wait for a full chunk
STATS_MAX_AGE = 10.0  # seconds counts may wait under load
ERROR_MAX_CHARS = 500


def _s(value) -> dict:
    return {"S": str(value)}


def _n(value) -> dict:
    return {"N": str(value)}


class Recorder:
    def __init__(self):
        self._lock = threading.Lock()
        self._flush_lock = threading.Lock()
        self._items: dict[tuple[str, str], dict] = {}
        self._items_since: float | None = None
        # (pk, sk) of a stats item → attribute → count not yet written.
        self._stats: dict[tuple[str, str], dict[str, int]] = defaultdict(lambda: defaultdict(int))
        self._stats_since: float | None = None
        self.write_calls = 0  # BatchWriteItem + UpdateItem calls made (benchmark and tests)

    # --- recording ----------------------------------------------------------------------

    def attempt(
        self,
        *,
        delivery: messages.Delivery,
        event: dict,
        status: str,
        outcome,
        at: datetime | None = None,
        event_json: str | None = None,
    ) -> None:
        """One attempt: `status` is records.OK / RETRYING / DEAD / HELD; `outcome` a
        transport.Outcome (status, error, error_kind, latency_ms). `event_json`: the event as
        the consumer received it, when the caller has it (not serialised a second time)."""
        at = at or datetime.now(UTC)
        at_iso = at.isoformat(timespec="milliseconds")
        d = delivery
        ttl = int(time.time()) + settings.get().record_ttl_days * 86400
        attrs = {
            "type": _s("attempt"),
            "tenant_id": _s(d.tenant_id),
            "consumer_id": _s(d.consumer_id),
            "delivery_id": _s(d.delivery_id),
            "event_id": _s(d.event_id),
            "event_type": _s(d.event_type),
            "replay": _n(d.replay),
            "attempt": _n(d.attempt),
            "status": _s(status),
            "latency_ms": _n(round(outcome.latency_ms, 1)),
            "test": {"BOOL": bool(d.test)},
            "at": _s(at_iso),
            "ttl": _n(ttl),
        }
        if outcome.status is not None:
            attrs["http_status"] = _n(outcome.status)
        if outcome.error:
            attrs["error"] = _s(outcome.error[:ERROR_MAX_CHARS])
        if outcome.error_kind:
            attrs["error_kind"] = _s(outcome.error_kind)
        if d.throttled_ms:
            attrs["throttled_ms"] = _n(d.throttled_ms)
        for name in ("subscription_id", "producer_id", "ordering_key", "unordered_reason"):
            if getattr(d, name):
                attrs[name] = _s(getattr(d, name))
        log_key = records.consumer_log_key(
            d.tenant_id, d.consumer_id, at_iso, d.delivery_id, d.replay, d.attempt
        )
        history_key = records.delivery_attempt_key(d.tenant_id, d.delivery_id, d.replay, d.attempt)
        minute = records.minute(at)
        now = time.monotonic()
        with self._lock:
            if self._items_since is None:
                self._items_since = now
            if self._stats_since is None:
                self._stats_since = now
            self._put(log_key, attrs)
            self._put(history_key, attrs)
            if d.attempt == 1:
                event_attrs = {
                    "type": _s("event"),
                    # UTF-8 as the consumer got it (a consumer gone got nothing: the same
                    # serialisation), never \u-escaped to up to six times its size.
                    "event": _s(event_json or jsontext.dumps(event)),
                    "at": _s(at_iso),
                    "ttl": _n(ttl),
                }
                for name in ("tenant_id", "consumer_id", "delivery_id", "event_id", "event_type"):
                    event_attrs[name] = attrs[name]
                for name in ("subscription_id", "producer_id"):
                    if name in attrs:
                        event_attrs[name] = attrs[name]
                self._put(
                    records.delivery_event_key(d.tenant_id, d.delivery_id),
                    event_attrs,
                    fit="event",
                )
            consumer_stats = self._stats[
                records.consumer_stats_key(d.tenant_id, d.consumer_id, minute)
            ]
            tenant_stats = self._stats[records.tenant_stats_key(d.tenant_id, minute)]
            ok = status == records.OK
            consumer_stats["ok" if ok else "failed"] += 1
            if outcome.error_kind != messages.ERROR_CONSUMER_GONE:
                consumer_stats[records.latency_bucket(outcome.latency_ms)] += 1
            tenant_stats["delivered" if ok else "failed"] += 1
            if status == records.DEAD:
                tenant_stats["dead"] += 1

    def throttled(self, delivery: messages.Delivery, at: datetime | None = None) -> None:
        """A delivery put back over its consumer's rate limit (not an attempt): counted in the
        consumer's `throttled` per minute."""
        key = records.consumer_stats_key(
            delivery.tenant_id, delivery.consumer_id, records.minute(at or datetime.now(UTC))
        )
        with self._lock:
            if self._stats_since is None:
                self._stats_since = time.monotonic()
            self._stats[key]["throttled"] += 1

    def _put(self, key: tuple[str, str], attrs: dict, *, fit: str | None = None) -> None:
        item = {"PK": _s(key[0]), "SK": _s(key[1]), **attrs}
        # An item over DynamoDB's limit would fail its whole BatchWriteItem: stored cut, and
        # flagged `truncated` (records.fit_item).
        self._items[key] = records.fit_item(item, fit) if fit else item

    # --- flushing -----------------------------------------------------------------------

    def pending(self) -> int:
        with self._lock:
            return len(self._items) + len(self._stats)

    def flush(self, *, full_only: bool = False, client=None) -> int:
        """Writes what is buffered; returns the number of write calls. `full_only`: only whole
        chunks of 25 record items, and the stats only once older than STATS_MAX_AGE (anything
        older than RECORDS_MAX_AGE goes anyway). A failure is logged and the rest kept for the
        next flush: records are not worth failing a delivery batch for, which would make SQS
        hand out every message of it again."""
        with self._flush_lock:
            now = time.monotonic()
            with self._lock:
                items = list(self._items.values())
                old_items = self._items_since is not None and now - self._items_since > (
                    RECORDS_MAX_AGE
                )
                if full_only and not old_items:
                    items = items[: len(items) // BATCH_SIZE * BATCH_SIZE]
                for item in items:
                    del self._items[(item["PK"]["S"], item["SK"]["S"])]
                self._items_since = now if self._items else None
                stats = {}
                old_stats = self._stats_since is not None and now - self._stats_since > (
                    STATS_MAX_AGE
                )
                if not full_only or old_stats:
                    stats, self._stats = dict(self._stats), defaultdict(lambda: defaultdict(int))
                    self._stats_since = None
            if not items and not stats:
                return 0
            client = client or aws.dynamodb()
            table = settings.get().dataplane_table
            calls = 0
            for start in range(0, len(items), BATCH_SIZE):
                try:
                    calls += self._write(client, table, items[start : start + BATCH_SIZE])
                except Exception:
                    logger.exception("Writing delivery records failed; kept for the next flush")
                    self._keep(items[start:])
                    break
            for (pk, sk), counts in stats.items():
                calls += 1
                try:
                    self._add(client, table, pk, sk, counts)
                except Exception:
                    logger.exception("Writing delivery stats failed; kept for the next flush")
                    self._keep_stats((pk, sk), counts)
            return calls

    def _write(self, client, table: str, chunk: list[dict]) -> int:
        requests = {table: [{"PutRequest": {"Item": item}} for item in chunk]}
        calls = 0
        for attempt in range(4):
            calls += 1
            self.write_calls += 1
            try:
                answer = client.batch_write_item(RequestItems=requests)
            except ClientError as exc:
                if exc.response.get("Error", {}).get("Code") != "ValidationException":
                    raise  # throttled, unavailable: the chunk is kept for the next flush
                # DynamoDB refuses the whole call for one bad item: find it, write the rest.
                return calls + self._write_one_by_one(client, table, chunk)
            requests = answer.get("UnprocessedItems") or {}
            if not requests:
                return calls
            time.sleep(0.05 * 2**attempt)
        raise RuntimeError("DynamoDB left items unprocessed after retries")

    def _write_one_by_one(self, client, table: str, chunk: list[dict]) -> int:
        """PutItem per item; an item DynamoDB refuses as invalid is dropped and logged: kept,
        it would fail every later flush of this instance, and the records behind it with it."""
        calls = 0
        for item in chunk:
            calls += 1
            self.write_calls += 1
            try:
                client.put_item(TableName=table, Item=item)
            except ClientError as exc:
                if exc.response.get("Error", {}).get("Code") != "ValidationException":
                    raise
                logger.error(
                    "A delivery record DynamoDB refuses was dropped: %s (%s %s, %d bytes)",
                    exc.response["Error"].get("Message", "")[:200],
                    item["PK"]["S"][:120],
                    item["SK"]["S"][:120],
                    records.item_bytes(item),
                )
        return calls

    def _add(self, client, table: str, pk: str, sk: str, counts: dict[str, int]) -> None:
        self.write_calls += 1
        names = {"#ttl": "ttl"}
        values = {":ttl": _n(int(time.time()) + STATS_TTL_DAYS * 86400)}
        adds = []
        for i, (name, value) in enumerate(counts.items()):
            names[f"#c{i}"], values[f":c{i}"] = name, _n(value)
            adds.append(f"#c{i} :c{i}")
        client.update_item(
            TableName=table,
            Key={"PK": _s(pk), "SK": _s(sk)},
            UpdateExpression="SET #ttl = :ttl ADD " + ", ".join(adds),
            ExpressionAttributeNames=names,
            ExpressionAttributeValues=values,
        )

    def _keep(self, items: list[dict]) -> None:
        with self._lock:
            for item in items:
                self._items.setdefault((item["PK"]["S"], item["SK"]["S"]), item)
            while len(self._items) > MAX_BUFFERED:
                self._items.pop(next(iter(self._items)))
            if self._items and self._items_since is None:
                self._items_since = time.monotonic()

    def _keep_stats(self, key: tuple[str, str], counts: dict[str, int]) -> None:
        with self._lock:
            for name, value in counts.items():
                self._stats[key][name] += value
            if self._stats_since is None:
                self._stats_since = time.monotonic()


RECORDER = Recorder()


def flush_records(*, full_only: bool = False) -> int:
    """Writes the buffered delivery records and stats of this process (see Recorder.flush);
    returns the number of DynamoDB write calls made."""
    return RECORDER.flush(full_only=full_only)
