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
second: an attempt's request reaches the consumer a little after its token (the idempotency
claim, the connection), and that guard keeps it in the token's second, so a consumer limited
to r receives at most r requests in every second of its own clock (when it agrees with ours
and the request takes less than the guard to arrive).

Waits. `acquire` takes no token it cannot use now: a throttled delivery asks again when it
comes back (the FIFO path, which waits with ChangeMessageVisibility, calls the same function).
So the wait it answers spreads the deliveries it refuses: the i-th one this instance refuses in
a second waits until the next second plus i // t seconds, t being the tokens this instance got
in the second (at least 1), the rate at which it may expect tokens; without it every refused
delivery would come back at the next second and all but r be refused again. Once a second's
item refused this instance, it refuses locally until the next second (no write per refusal).
A wait no longer than `SLEEP_MAX_SECONDS` (the guard) is slept through by `admit`, so a
delivery that meets the guard goes a moment later instead of a second later.
"""

import dataclasses
import math
import threading
import time

from broker.functions.egress import policy
from broker.functions.egress.recorder import RECORDER
from broker.functions.shared import leases, messages, records

GUARD_SECONDS = 0.25  # no token is given in the last quarter of a second
SLEEP_MAX_SECONDS = GUARD_SECONDS  # admit() sleeps through waits this short
TTL_SECONDS = 120  # a second's item is read for a second; kept a little longer
KEPT = 100_000  # consumers remembered per instance before its memory is cleared


@dataclasses.dataclass
class _Second:
    """What this instance knows of a consumer's current second."""

    second: int
    full: bool = False  # the item refused a token: refuse locally until the next second
    taken: int = 0  # tokens this instance took in it
    refused: int = 0  # deliveries this instance refused in it


class Limiter:
    """One instance's view of the buckets (one per process: `LIMITER`; tests make several to
    stand for several instances on one table). Safe to share between threads."""

    def __init__(self):
        self.leases = leases.Leases()
        self._lock = threading.Lock()
        self._seconds: dict[tuple[str, str], _Second] = {}

    def acquire(self, tenant_id, consumer_id, rate_per_second, *, now: float | None = None):
        """Seconds to wait before a delivery to this consumer may go; 0.0: a token was taken,
        go now. A rate below 1 is no limit."""
        rate = int(rate_per_second or 0)
        if rate < 1:
            return 0.0
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
                state = self._seconds[who] = _Second(second)
            usable = not state.full and now < second + 1 - GUARD_SECONDS
        if usable:
            accepted, _ = self.leases.spend(
                records.consumer_rate_key(*who, second),
                n=1,
                most=rate,
                limit=rate,
                ttl=second + TTL_SECONDS,
            )
            with self._lock:
                if accepted:
                    state.taken += 1
                    return 0.0
                state.full = True
        with self._lock:
            position = state.refused
            state.refused += 1
            share = max(1, state.taken)
        return min(float(policy.MAX_SQS_DELAY), second + 1 - now + position // share)

    def reset(self) -> None:
        with self._lock:
            self._seconds.clear()
        self.leases.reset()


LIMITER = Limiter()


def acquire(tenant_id: str, consumer_id: str, rate_per_second: int) -> float:
    """Seconds to wait before this delivery may go (0.0 = go now: its token is taken), under
    the consumer's `rate_limit_per_second` across every egress instance (module docstring)."""
    return LIMITER.acquire(tenant_id, consumer_id, rate_per_second)


class Throttled(Exception):
    """The token of a delivery's second ran out before its request could go (`recheck`)."""

    def __init__(self, wait: float):
        super().__init__(f"over the consumer's rate limit: wait {wait:.2f} s")
        self.wait = wait


_taken = threading.local()  # the second of the token this thread took last (admit, recheck)


def _take(limiter: Limiter, d: messages.Delivery, rate) -> float:
    """`acquire`, with a wait no longer than `SLEEP_MAX_SECONDS` slept through once (added to
    the delivery's `throttled_ms`, in place)."""
    wait = limiter.acquire(d.tenant_id, d.consumer_id, rate)
    if 0 < wait <= SLEEP_MAX_SECONDS:
        time.sleep(wait)
        d.throttled_ms = (d.throttled_ms or 0) + math.ceil(wait * 1000)
        wait = limiter.acquire(d.tenant_id, d.consumer_id, rate)
    if not wait:
        _taken.second = int(time.time())
    return wait


def admit(message: messages.Message, consumer: dict, *, limiter: Limiter | None = None) -> float:
    """`acquire` for a delivery about to be attempted: 0.0 when it may go now (also for a
    consumer without a limit), else the seconds it should be put back for. A wait no longer
    than `SLEEP_MAX_SECONDS` is slept through once; that sleep is added to the delivery's
    `throttled_ms` (the message is changed in place)."""
    rate = consumer.get("rate_limit_per_second")
    if not rate:
        return 0.0
    return _take(limiter or LIMITER, message.delivery, rate)


def recheck(message: messages.Message, consumer: dict, *, limiter: Limiter | None = None):
    """Just before the request goes: its token is of a second with more than the guard left
    (what came between `admit` and now, the idempotency claim above all, may have taken
    longer), or a token of the current second is taken instead; raises `Throttled` when none
    is to be had."""
    rate = consumer.get("rate_limit_per_second")
    if not rate:
        return
    second = getattr(_taken, "second", None)
    if second is not None and time.time() < second + 1 - GUARD_SECONDS:
        return
    wait = _take(limiter or LIMITER, message.delivery, rate)
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
