"""The per-consumer in-flight cap of pool tenants (records.inflight_key), so that one slow
consumer cannot hold every worker of the shared delivery queues.

An invocation runs its batch's attempts concurrently (deliver.py), so it takes slots for as
many deliveries as it may have in flight to a consumer at once: on the first record of a pool
consumer, one UpdateItem ADD of `want` (that consumer's records in the batch, at most its
`concurrency`) returns the count; it keeps what fits under `concurrency` and gives the rest
back at once. What it keeps is the consumer's *lane* in this invocation: a semaphore of that
many permits, so at most that many of its attempts run at the same time here, and the total
across every invocation stays within `concurrency`. Nothing fits: the consumer's records of
this batch are put back on the queue with a short delay, without counting as an attempt.
The slots are given back when the batch is done (ADD -kept). So a pool consumer costs two
UpdateItem calls per batch (three when part of the take is given back).

Silo consumers take no slots: their queue's event source mapping has MaximumConcurrency = the
consumer's concurrency, which bounds the invocations. To keep that bound on deliveries, a silo
consumer's lane has one permit per invocation (its records run one after another here, those
of other consumers beside them). Ordered delivery per key needs the same shape: a lane of one
permit per key.

The same item carries the consumer's slow-lane flag (`slow_until`, egress/slowlane.py), so the
take that opens a lane also says, at no extra call, whether the consumer is on the slow lane.

A function killed mid-batch (timeout, crash) never gives its slots back. So the counter is
kept in time slots (attribute `s<epoch // SLOT_SECONDS>`): a taker adds to the current slot
and reads the current and the previous one; older slots are ignored and removed. A leaked
slot stops counting after at most two slot lengths, and a batch longer than one slot length
only ever under-counts.
"""

import random
import threading
import time
from collections import Counter

from broker.functions import aws, settings
from broker.functions.shared import records

SLOT_SECONDS = 300
DEFER_SECONDS = (2, 6)  # a deferred message comes back after this many seconds


def defer_delay() -> int:
    return random.randint(*DEFER_SECONDS)


def _update(tenant_id, consumer_id, *, slot: int, delta: int, remove_old: bool) -> dict:
    pk, sk = records.inflight_key(tenant_id, consumer_id)
    names = {"#cur": f"s{slot}", "#ttl": "ttl"}
    expression = "SET #ttl = :ttl ADD #cur :delta"
    if remove_old:
        names["#old"] = f"s{slot - 2}"
        expression += " REMOVE #old"
    answer = aws.dynamodb().update_item(
        TableName=settings.get().dataplane_table,
        Key={"PK": {"S": pk}, "SK": {"S": sk}},
        UpdateExpression=expression,
        ExpressionAttributeNames=names,
        ExpressionAttributeValues={
            ":delta": {"N": str(delta)},
            ":ttl": {"N": str(int(time.time()) + 3 * SLOT_SECONDS)},
        },
        ReturnValues="ALL_NEW" if delta > 0 else "NONE",
    )
    return answer.get("Attributes", {})


SLOW_ATTRIBUTE = "slow_until"


def set_slow(tenant_id, consumer_id, until: float | None) -> None:
    """Puts the consumer on the slow lane until `until` (epoch seconds), or takes it off. The
    item's `ttl` only moves later (15 minutes past `until`, as a take sets it past now)."""
    pk, sk = records.inflight_key(tenant_id, consumer_id)
    params = {
        "UpdateExpression": "REMOVE #slow",
        "ExpressionAttributeNames": {"#slow": SLOW_ATTRIBUTE},
    }
    if until is not None:
        params = {
            "UpdateExpression": "SET #slow = :until, #ttl = :ttl",
            "ExpressionAttributeNames": {"#slow": SLOW_ATTRIBUTE, "#ttl": "ttl"},
            "ExpressionAttributeValues": {
                ":until": {"N": str(int(until))},
                ":ttl": {"N": str(int(until) + 3 * SLOT_SECONDS)},
            },
        }
    aws.dynamodb().update_item(
        TableName=settings.get().dataplane_table, Key={"PK": {"S": pk}, "SK": {"S": sk}}, **params
    )


class Slots:
    """The slots and lanes of one handler invocation; `release_all()` when the batch is done.
    Safe to share between the batch's worker threads."""

    def __init__(self):
        self._lock = threading.Lock()
        self._planned: Counter[tuple[str, str]] = Counter()
        self._held: dict[tuple[str, str], tuple[int, int]] = {}  # key → (time slot, kept)
        self._lanes: dict[tuple[str, str], threading.Semaphore | None] = {}
        self._slow: dict[tuple[str, str], bool] = {}  # read with the take (slowlane.py)

    def plan(self, tenant_id: str, consumer_id: str, n: int = 1) -> None:
        """Says that the batch holds `n` (more) records of this consumer, before any lane of
        it is taken: the take asks for that many slots at once."""
        with self._lock:
            self._planned[(str(tenant_id), str(consumer_id))] += n

    def lane(self, tenant_id: str, consumer_id: str, cap: int) -> threading.Semaphore | None:
        """The consumer's lane in this invocation (a semaphore: one permit per attempt that
        may run at once), its slots taken on first use; None when the consumer is at its cap."""
        key = (str(tenant_id), str(consumer_id))
        with self._lock:
            if key in self._lanes:
                return self._lanes[key]
            want = max(1, min(int(cap), self._planned.get(key, 0) or 1))
            slot = int(time.time() // SLOT_SECONDS)
            attrs = _update(tenant_id, consumer_id, slot=slot, delta=want, remove_old=True)
            count = sum(int(attrs.get(f"s{s}", {}).get("N", "0")) for s in (slot, slot - 1))
            self._slow[key] = float(attrs.get(SLOW_ATTRIBUTE, {}).get("N", "0")) > time.time()
            kept = max(0, min(want, int(cap) - (count - want)))
            if kept < want:
                _update(tenant_id, consumer_id, slot=slot, delta=kept - want, remove_old=False)
            if kept:
                self._held[key] = (slot, kept)
            lane = threading.Semaphore(kept) if kept else None
            self._lanes[key] = lane
            return lane

    def slow(self, tenant_id: str, consumer_id: str) -> bool:
        """Whether the consumer was on the slow lane when its lane was taken (False before)."""
        return self._slow.get((str(tenant_id), str(consumer_id)), False)

    def silo_lane(self, tenant_id: str, consumer_id: str) -> threading.Semaphore:
        """A silo consumer's lane: one permit, no slot (see the module docstring)."""
        key = (str(tenant_id), str(consumer_id))
        with self._lock:
            lane = self._lanes.get(key)
            if lane is None:
                lane = self._lanes[key] = threading.Semaphore(1)
            return lane

    def acquire(self, tenant_id: str, consumer_id: str, cap: int) -> bool:
        """Takes the consumer's slots for this invocation; False when it is at its cap."""
        return self.lane(tenant_id, consumer_id, cap) is not None

    def release_all(self) -> None:
        current = int(time.time() // SLOT_SECONDS)
        with self._lock:
            held, self._held = self._held, {}
            self._lanes.clear()
            self._planned.clear()
            self._slow.clear()
        for (tenant_id, consumer_id), (slot, kept) in held.items():
            # A slot older than the previous one is no longer read: nothing to give back.
            if slot >= current - 1:
                _update(tenant_id, consumer_id, slot=slot, delta=-kept, remove_old=False)
