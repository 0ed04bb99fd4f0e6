"""The rate limit per consumer (`rate_limit_per_second` on its CONSUMER item), held across every
egress instance; docs/data-plane.md, "Rate limit", says what it gives and costs.

The bucket is one counter item per consumer and wall-clock second in the data-plane table,
`CRATE#<tenant>#<consumer>` / `S#<epoch second>` (`records.consumer_rate_key`), whose `c`
counts the tokens taken in that second, at most r: a token bucket of r tokens, filled at the
start of every second. Tokens are taken with the conditional ADD of `shared/leases.py`, the
lease design the ingress's rate and quota use (the hot-key rule of docs/data-plane.md): for
r ≥ 40 an instance takes r/20 tokens a write and spends them in memory, so the consumer's
partition takes one write per lease and per second and instance, never one per delivery; the
item never counts past r, so no set of instances starts more than r attempts in a second.

Precision. At most r tokens per wall-clock second, and none in the last `GUARD_SECONDS` of a
second. The egress takes the token (`take`) just before the request goes, after the
idempotency claim (`admit`, before it, only puts back what this instance already knows will
be refused). So a request leaves at least the guard before its token's second ends, and a
consumer limited to r receives at most r requests in every second of its own clock (when it
agrees with ours and the request takes less than the guard to arrive).

Waits. `acquire` takes no token it cannot use now: a throttled delivery asks again when it
comes back (the FIFO path, which waits with ChangeMessageVisibility, calls the same function).
So the wait it answers is the delivery's turn: a place on the consumer's queue cursor
(`records.consumer_queue_key`, `t` in epoch ms), r turns a second from the next second on,
shared by every instance and moved in blocks (one turn below 40/s, r/20 above), so deliveries put back come back at about the rate they can go;
without it every refused delivery would come back at the next second and all but r be refused
again. A turn is not a reservation: whoever comes first takes the tokens. Once a second's item
refused this instance, it asks for no more tokens of that second. A wait no longer than
`SLEEP_MAX_SECONDS` (the guard) is slept through by `take`, so a delivery that meets the
guard goes a moment later instead of a second later.
"""

import dataclasses
import math
import threading
import time

from botocore.exceptions import ClientError

from broker.functions import aws, settings
from broker.functions.egress import policy
from broker.functions.egress.recorder import RECORDER
from broker.functions.shared import leases, messages, records

GUARD_SECONDS = 0.5  # no token is given in the last half of a second
SLEEP_MAX_SECONDS = GUARD_SECONDS  # admit() sleeps through waits this short (0.25 s let
# requests signed in one second arrive in the next on a machine at load 15: docs/data-plane.md)
TTL_SECONDS = 120  # a second's item is read for a second; kept a little longer
KEPT = 100_000  # consumers remembered per instance before its memory is cleared


@dataclasses.dataclass
class _Second:
    """What this instance knows of a consumer's current second."""

    second: int
    full: bool = False  # the item refused a token: refuse locally until the next second


def _reserve(key: tuple[str, str], *, span_ms: int, floor_ms: int) -> int:
    """Moves the consumer's queue cursor (`t`, epoch ms) on by `span_ms`, from no earlier
    than `floor_ms`: the start of the turns reserved (epoch ms)."""
    client, table = aws.dynamodb(), settings.get().dataplane_table
    common = {
        "TableName": table,
        "Key": {"PK": {"S": key[0]}, "SK": {"S": key[1]}},
        "ExpressionAttributeNames": {"#ttl": "ttl"},
        "ReturnValues": "UPDATED_NEW",
    }
    ttl = {"N": str(floor_ms // 1000 + policy.MAX_SQS_DELAY + TTL_SECONDS)}
    for _ in range(3):
        try:  # the cursor is ahead of the floor: after it
            out = client.update_item(
                **common,
                UpdateExpression="ADD t :span SET #ttl = :ttl",
                ConditionExpression="t >= :floor",
                ExpressionAttributeValues={
                    ":span": {"N": str(span_ms)},
                    ":floor": {"N": str(floor_ms)},
                    ":ttl": ttl,
                },
            )
            return int(out["Attributes"]["t"]["N"]) - span_ms
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "ConditionalCheckFailedException":
                raise
        try:  # the cursor is behind (or new): from the floor
            client.update_item(
                **common,
                UpdateExpression="SET t = :end, #ttl = :ttl",
                ConditionExpression="attribute_not_exists(t) OR t < :floor",
                ExpressionAttributeValues={
                    ":end": {"N": str(floor_ms + span_ms)},
                    ":floor": {"N": str(floor_ms)},
                    ":ttl": ttl,
                },
            )
            return floor_ms
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "ConditionalCheckFailedException":
                raise
    raise RuntimeError("the consumer's rate-limit queue kept moving")  # retried by SQS


class Limiter:
    """One instance's view of the buckets (one per process: `LIMITER`; tests make several to
    stand for several instances on one table). Safe to share between threads."""

    def __init__(self):
        self.leases = leases.Leases()
        self._lock = threading.Lock()
        self._seconds: dict[tuple[str, str], _Second] = {}
        self._turns: dict[tuple[str, str], tuple[int, int]] = {}  # who → (next, end) epoch ms

    def acquire(self, tenant_id, consumer_id, rate_per_second, *, now: float | None = None):
        """Seconds to wait before a delivery to this consumer may go; 0.0: a token was taken,
        go now. A rate below 1 is no limit."""
        rate = int(rate_per_second or 0)
        if rate < 1:
            return 0.0
        live = now is None  # the clock, not a time given (tests): checked again after the write
        now = time.time() if now is None else now
        second = int(now)
        who = (str(tenant_id), str(consumer_id))
        with self._lock:
            state = self._seconds.get(who)
            if state is None or state.second != second:
                if state is not None:
                    self.leases.forget(records.consumer_rate_key(*who, state.second))
                elif len(self._seconds) > KEPT:
                    self._seconds.clear()
                    self._turns.clear()
                state = self._seconds[who] = _Second(second)
            full = state.full
        if now >= second + 1 - GUARD_SECONDS:
            return second + 1 - now  # the guard: the next second's tokens, in a moment
        if not full:
            accepted, _ = self.leases.spend(
                records.consumer_rate_key(*who, second),
                n=1,
                most=rate,
                limit=rate,
                ttl=second + TTL_SECONDS,
            )
            if accepted:
                late = time.time() - (second + 1 - GUARD_SECONDS) if live else -1
                # A write that outlasted the token's usable part (a loaded machine): the token
                # is lost, and the delivery asks for one of the next second.
                return 0.0 if late < 0 else max(0.001, second + 1 - time.time())
            with self._lock:
                state.full = True
        turn = self._turn(who, state, rate, now)
        return min(float(policy.MAX_SQS_DELAY), max(turn - now, second + 1 - now))

    def known_full(self, tenant_id, consumer_id, rate_per_second, *, now: float | None = None):
        """0.0, unless this instance knows the current second's tokens are gone (its item
        refused it): then, as `acquire`, the wait until the delivery's turn. Takes no token."""
        rate = int(rate_per_second or 0)
        now = time.time() if now is None else now
        second = int(now)
        who = (str(tenant_id), str(consumer_id))
        with self._lock:
            state = self._seconds.get(who)
            if rate < 1 or state is None or state.second != second or not state.full:
                return 0.0
        if now >= second + 1 - GUARD_SECONDS:
            return 0.0  # the next second's tokens are near: `take` waits for them
        turn = self._turn(who, state, rate, now)
        return min(float(policy.MAX_SQS_DELAY), max(turn - now, second + 1 - now))

    def _turn(self, who, state: _Second, rate: int, now: float) -> float:
        """The time (epoch s) from which a delivery refused now should ask again: its turn in
        the consumer's queue of deliveries put back, r turns a second from the next second on,
        shared by every instance (module docstring)."""
        step = 1000 / rate
        with self._lock:
            nxt, end = self._turns.get(who, (0, 0))
            if nxt + step <= end and nxt >= (state.second + 1) * 1000:
                self._turns[who] = (nxt + step, end)
                return nxt / 1000
            block = max(1, min(leases.MOST, rate // leases.SHARE))
        start = _reserve(
            records.consumer_queue_key(*who),
            span_ms=math.ceil(block * step),
            floor_ms=(state.second + 1) * 1000,
        )
        with self._lock:
            self._turns[who] = (start + step, start + math.ceil(block * step))
        return start / 1000

    def reset(self) -> None:
        with self._lock:
            self._seconds.clear()
            self._turns.clear()
        self.leases.reset()


LIMITER = Limiter()


def acquire(tenant_id: str, consumer_id: str, rate_per_second: int) -> float:
    """Seconds to wait before this delivery may go (0.0 = go now: its token is taken), under
    the consumer's `rate_limit_per_second` across every egress instance (module docstring)."""
    return LIMITER.acquire(tenant_id, consumer_id, rate_per_second)


class Throttled(Exception):
    """No token for the delivery: put it back for `wait` seconds (`take`)."""

    def __init__(self, wait: float):
        super().__init__(f"over the consumer's rate limit: wait {wait:.2f} s")
        self.wait = wait


def admit(message: messages.Message, consumer: dict, *, limiter: Limiter | None = None) -> float:
    """Before the idempotency claim, for nothing: 0.0, unless this instance knows the current
    second's tokens are gone; then the seconds the delivery should be put back for (its turn).
    The token itself is taken by `take`, just before the request."""
    rate = consumer.get("rate_limit_per_second")
    if not rate:
        return 0.0
    d = message.delivery
    return (limiter or LIMITER).known_full(d.tenant_id, d.consumer_id, rate)


def take(message: messages.Message, consumer: dict, *, limiter: Limiter | None = None) -> None:
    """Just before the request goes (after the idempotency claim, so that its time does not
    eat into the token's second): takes the delivery's token, a wait no longer than
    `SLEEP_MAX_SECONDS` slept through once (added to the delivery's `throttled_ms`, in
    place); raises `Throttled` with the wait when there is none."""
    rate = consumer.get("rate_limit_per_second")
    if not rate:
        return
    limiter = limiter or LIMITER
    d = message.delivery
    wait = limiter.acquire(d.tenant_id, d.consumer_id, rate)
    if 0 < wait <= SLEEP_MAX_SECONDS:
        time.sleep(wait)
        d.throttled_ms = (d.throttled_ms or 0) + math.ceil(wait * 1000)
        wait = limiter.acquire(d.tenant_id, d.consumer_id, rate)
    if wait:
        raise Throttled(wait)


def throttled(message: messages.Message, wait: float) -> tuple[messages.Message, int]:
    """The delivery put back for `wait` seconds: (the message to send, its DelaySeconds). The
    same attempt number (not an attempt); `throttled_ms` grows by the delay; counted in the
    consumer's `throttled` stats."""
    delay = max(1, min(policy.MAX_SQS_DELAY, math.ceil(wait)))
    d = message.delivery
    later = dataclasses.replace(d, throttled_ms=(d.throttled_ms or 0) + delay * 1000)
    RECORDER.throttled(later)
    return messages.delivery_message(later, message.event), delay
