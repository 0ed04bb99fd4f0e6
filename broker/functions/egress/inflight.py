"""The per-consumer in-flight cap of pool tenants (records.inflight_key), so that one slow
consumer cannot hold every worker of the shared delivery queues.

An invocation works through its batch one record at a time, so it has at most one delivery
in flight: it takes one slot per pool consumer it meets (ADD +1, on the first record of that
consumer) and gives it back when the batch is done (ADD -1). When the count exceeds the
consumer's `concurrency`, it gives the slot back at once and the consumer's records of this
batch are put back on the queue with a short delay, without counting as an attempt.

A function killed mid-batch (timeout, crash) never gives its slot back. So the counter is
kept in time slots (attribute `s<epoch // SLOT_SECONDS>`): a taker adds to the current slot
and reads the current and the previous one; older slots are ignored and removed. A leaked
slot stops counting after at most two slot lengths, and a batch longer than one slot length
(ten 30 s timeouts is 300 s) only ever under-counts.
"""

import random
import time

from broker.functions import aws, settings
from broker.functions.shared import records

SLOT_SECONDS = 300
DEFER_SECONDS = (2, 6)  # a deferred message comes back after this many seconds
DENIED = -1


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


class Slots:
    """The slots one handler invocation holds; `release_all()` when the batch is done."""

    def __init__(self):
        self._held: dict[tuple[str, str], int] = {}

    def acquire(self, tenant_id: str, consumer_id: str, cap: int) -> bool:
        key = (str(tenant_id), str(consumer_id))
        if key in self._held:
            return self._held[key] != DENIED
        slot = int(time.time() // SLOT_SECONDS)
        attrs = _update(tenant_id, consumer_id, slot=slot, delta=1, remove_old=True)
        count = sum(int(attrs.get(f"s{s}", {}).get("N", "0")) for s in (slot, slot - 1))
        if count > cap:
            _update(tenant_id, consumer_id, slot=slot, delta=-1, remove_old=False)
            self._held[key] = DENIED
            return False
        self._held[key] = slot
        return True

    def release_all(self) -> None:
        current = int(time.time() // SLOT_SECONDS)
        held, self._held = self._held, {}
        for (tenant_id, consumer_id), slot in held.items():
            # A slot older than the previous one is no longer read: nothing to give back.
            if slot != DENIED and slot >= current - 1:
                _update(tenant_id, consumer_id, slot=slot, delta=-1, remove_old=False)
