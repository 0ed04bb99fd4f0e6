"""Counters in the data plane's table spent in leases: the hot-key rule for limits.

A limit that holds across any number of function instances lives in one counter item
(conditional UpdateItem ADD, with a TTL). DynamoDB gives one partition key about 1,000
writes/s, so a write per request would cap whatever the item limits near 1,000 a second. So an
instance takes its allowance in leases: one conditional ADD grants it up to `SHARE`-th of the
limit (at most `MOST` units) at once, and it spends that in memory, call after call, until it
needs more. The item never counts more than the limit (the condition holds for the whole
lease), so no set of instances lets more through; the price is the other way round: units
leased by an instance and not spent (it went idle, was reclaimed, or the counter's window
ended) count as used, so callers may be refused up to that much early. Near the limit a
refused lease is asked again for exactly what the call needs, and the instance asks exactly
from then on for that item (no lease where it would strand the last units). Limits under
2 × `SHARE` get no lease beyond the call.

Sharding the item with a budget per shard was the other way: it spreads the writes as well,
but refuses while other shards still have room, and every reader would have to sum the
shards; a lease keeps the one item. Used by the ingress's rate and quota (`ingress/limits.py`)
and the egress's rate limit per consumer (`egress/ratelimit.py`).
"""

import threading

from botocore.exceptions import ClientError

from broker.functions import aws, settings

ROOM = "attribute_not_exists(c) OR c <= :room"
ADD = "ADD c :n SET #ttl = if_not_exists(#ttl, :ttl)"
SHARE = 20  # a lease is at most this fraction of the limit: 1/20 (5 %)
MOST = 1000  # and at most this many units
KEPT = 100_000  # items remembered per instance before the memory is cleared


def conditional_add(key: tuple[str, str], *, n: int, room: int, ttl: int) -> tuple[bool, int]:
    """ADD n to the counter `c` of `key` if it holds at most `room`: (accepted, the count
    seen: after the ADD, or the one that refused it)."""
    client = aws.dynamodb()
    try:
        out = client.update_item(
            TableName=settings.get().dataplane_table,
            Key={"PK": {"S": key[0]}, "SK": {"S": key[1]}},
            UpdateExpression=ADD,
            ConditionExpression=ROOM,
            ExpressionAttributeNames={"#ttl": "ttl"},
            ExpressionAttributeValues={
                ":n": {"N": str(n)},
                ":room": {"N": str(room)},
                ":ttl": {"N": str(ttl)},
            },
            ReturnValues="UPDATED_NEW",
            ReturnValuesOnConditionCheckFailure="ALL_OLD",
        )
    except ClientError as exc:
        if exc.response["Error"]["Code"] != "ConditionalCheckFailedException":
            raise
        old = exc.response.get("Item") or {}
        return False, int(old.get("c", {}).get("N", room + 1))
    return True, int(out["Attributes"]["c"]["N"])


class Leases:
    """One instance's leases (module docstring); safe to share between threads."""

    def __init__(self):
        self._lock = threading.Lock()
        self._left: dict[tuple[str, str], int] = {}  # counter item → units leased, not spent
        self._exact: set[tuple[str, str]] = set()  # items near their limit: no more leases

    def spend(
        self,
        key: tuple[str, str],
        *,
        n: int,
        most: int,
        limit: int,
        ttl: int,
        leases: bool = True,
    ) -> tuple[bool, int | None]:
        """Spends n units of the counter `key`, which may hold at most `most`, from this
        instance's lease, taking a new lease of the limit `limit` when that is short:
        (accepted, the count DynamoDB returned, None when spent from memory). `leases=False`
        asks for exactly n every time (a baseline)."""
        with self._lock:
            have = self._left.get(key, 0)
            if have >= n:
                self._left[key] = have - n
                return True, None
            exact = not leases or key in self._exact
        need = n - have
        lease = need if exact else max(need, min(MOST, limit // SHARE))
        if most - lease < 0:
            lease = need
        if most - need < 0:
            return False, None
        accepted, count = conditional_add(key, n=lease, room=most - lease, ttl=ttl)
        if not accepted and lease > need:
            with self._lock:
                if len(self._exact) > KEPT:
                    self._exact.clear()
                self._exact.add(key)
            lease = need
            accepted, count = conditional_add(key, n=lease, room=most - lease, ttl=ttl)
        if accepted:
            with self._lock:
                if len(self._left) > KEPT:
                    self._left.clear()
                self._left[key] = have + lease - n
        return accepted, count

    def left(self, key: tuple[str, str]) -> int:
        """Units of `key` leased here and not spent yet."""
        with self._lock:
            return self._left.get(key, 0)

    def forget(self, key: tuple[str, str]) -> None:
        """Drops what this instance holds of `key` (a window that has ended)."""
        with self._lock:
            self._left.pop(key, None)
            self._exact.discard(key)

    def reset(self) -> None:
        with self._lock:
            self._left.clear()
            self._exact.clear()
