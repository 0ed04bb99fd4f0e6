"""The slow lane: pool consumers that do not answer within their timeout get a queue of their
own, so that they stop holding the invocations of the shared delivery queues.

Why. A shared queue's event source mapping runs at most `MaximumConcurrency` invocations at
once (`PoolQueueMaxConcurrency`), and an invocation lasts as long as its slowest attempt. A
consumer that answers in 10 s (cut at its 5-s timeout), trickles its answer or never answers
holds an invocation for its whole timeout; a few of them on a queue hold every invocation it
has, and a healthy tenant's delivery waits in SQS behind them, although its own attempt would
take milliseconds. Concurrent attempts within a batch do not help: the poller's slot is the
invocation, not the attempt. This is the same on AWS (the mapping's MaximumConcurrency is the
cap there too), so the fix is in where slow deliveries wait, not in the runner.

How.

- An attempt still running after `SLOW_ATTEMPT_MS` (2 s) flags its pool consumer slow, while
  it runs, so that the deliveries arriving meanwhile are moved already: `slow_until` (now +
  `SLOW_LANE_SECONDS`) on the consumer's in-flight item (`INFLIGHT#<tenant>#<consumer>`,
  inflight.py), one UpdateItem. If the attempt then answers within the consumer's timeout,
  the flag is taken back (REMOVE, a second UpdateItem): slow, but not a consumer to move. If
  it is cut by the timeout (`timeout_ms`, the wall-clock limit of transport.py), the flag
  stays and its retry is sent to the slow-lane queue. Flags are written by one writer thread,
  in the order they were decided, never by the attempt's own thread.
- A record of a consumer on the slow lane, received from a shared queue, is not tried: it is
  sent to the slow-lane queue as it is (same body, same attempt number; one SendMessage) and
  its record succeeds (outcome `slow_lane`). The flag is read by the UpdateItem that takes the
  consumer's in-flight slots, which every batch makes anyway: no extra call for healthy
  consumers.
- The slow-lane queue (`EGRESS_SLOW_QUEUE`, `<prefix>-delivery-slow` in deploy/template.yaml)
  has its own mapping to the egress, with the shared queues' `MaximumConcurrency`. There the
  records are tried as anywhere else (in-flight cap, lanes, deadline, retries). A fast answer
  there takes the consumer off the slow lane (REMOVE `slow_until`, at most once per
  `CLEAR_EVERY_SECONDS` per process); otherwise the flag expires after `SLOW_LANE_SECONDS`.

Why the flag is taken back: a first version kept it for any answer of 2 s or more. In
bench/dataplane.py the healthy consumer answered in 2 s during a burst of 1,000 deliveries on
the loaded machine, was moved, and its records waited on the slow lane behind the 5-s
consumers. A second version flagged timeouts only, at their end: the deliveries of the slow
consumers that arrived during their first 5 s still held the shared invocations. A timeout is
the consumer's own limit; the early flag only holds until the consumer shows it answers.

What it does not do: the first slow attempts of a consumer (those that start before the first
one has run 2 s) still hold a shared invocation each, up to the consumer's timeout; after that,
one attempt per `SLOW_LANE_SECONDS` does, when the flag expires and the consumer has not
answered in time on the slow lane. A consumer that answers slowly but within its timeout stays
on the shared queues (only its deliveries that arrive while such an attempt runs are moved). Slow consumers share the slow lane with each other. Silo tenants have a
queue of their own already, and a pool consumer without a `concurrency` takes no in-flight
slots, so neither is moved. Without `EGRESS_SLOW_QUEUE` (tests, an older stack) there is no
slow lane and nothing is written.
"""

import contextlib
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from aws_lambda_powertools import Logger
from botocore.exceptions import BotoCoreError, ClientError

from broker.functions import settings
from broker.functions.egress import inflight
from broker.functions.egress.transport import _Watchdog
from broker.functions.shared import messages

SLOW_ATTEMPT_MS = 2_000  # an attempt still running this long flags its consumer, for now
SLOW_LANE_SECONDS = 300  # how long a consumer stays on the slow lane without a fast answer
CLEAR_EVERY_SECONDS = 10  # a process takes a consumer off at most this often

logger = Logger(service="broker-egress", child=True)
_WATCHDOG = _Watchdog()  # its own thread: the attempts' cuts never wait on a flag
# One writer thread: the flags of one consumer are written in the order they were decided.
_writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="egress-slow")
_cleared_lock = threading.Lock()
_cleared: dict[tuple[str, str], float] = {}


def queue_name() -> str:
    return settings.get().slow_queue_name


def on_slow_lane(source_arn: str) -> bool:
    """Whether the record came from the slow-lane queue."""
    name = queue_name()
    return bool(name) and source_arn.rsplit(":", 1)[-1] == name


def queue_arn(source_arn: str) -> str:
    """The slow-lane queue's ARN: the shared queue's account and region, the slow lane's name."""
    return f"{source_arn.rsplit(':', 1)[0]}:{queue_name()}"


def moves(slow: bool, source_arn: str) -> bool:
    """Whether a record of a consumer (`slow`: flagged, inflight.Slots.slow) received from
    `source_arn` goes to the slow lane untried: the lane exists and the record is elsewhere."""
    return slow and bool(queue_name()) and not on_slow_lane(source_arn)


def is_slow(outcome) -> bool:
    """An attempt cut by its consumer's own timeout (the wall-clock limit of transport.py)."""
    return outcome.error_kind == messages.ERROR_TIMEOUT


def applies(tenant: dict, consumer: dict | None) -> bool:
    """Whether the consumer can be moved: a slow lane exists, it is a pool consumer with a
    `concurrency` (its in-flight item is read at every batch, and with it the flag)."""
    return (
        bool(queue_name())
        and tenant.get("deployment_model") == "pool"
        and bool((consumer or {}).get("concurrency"))
    )


class Watch:
    """One attempt watched: once it has run `SLOW_ATTEMPT_MS`, its consumer is flagged slow for
    now (by the writer thread, so the watchdog's own thread never waits on DynamoDB)."""

    def __init__(self, delivery):
        self.delivery = delivery
        self.fired = False

    def fire(self) -> None:
        self.fired = True
        _writer.submit(_flag, self.delivery, time.time() + SLOW_LANE_SECONDS)


@contextlib.contextmanager
def watching(delivery, tenant: dict, consumer: dict | None):
    """Around an attempt: flags its consumer slow as soon as the attempt has run
    `SLOW_ATTEMPT_MS`, while it still runs, so that the deliveries arriving meanwhile are moved
    already. Yields the `Watch`, or None when the consumer cannot be moved."""
    if not applies(tenant, consumer):
        yield None
        return
    watch = Watch(delivery)
    entry = _WATCHDOG.watch(time.monotonic() + SLOW_ATTEMPT_MS / 1000, watch.fire)
    try:
        yield watch
    finally:
        _WATCHDOG.cancel(entry)


def observe(watch: Watch | None, outcome, source_arn: str) -> bool:
    """After the attempt: True when it timed out (its consumer stays flagged, its retry goes
    to the slow lane). An attempt that was flagged while it ran but answered within its
    timeout takes the flag back; so does a fast answer on the slow lane."""
    if watch is None:
        return False
    delivery = watch.delivery
    if is_slow(outcome):
        if not watch.fired:  # cut by a timeout shorter than SLOW_ATTEMPT_MS
            _writer.submit(_flag, delivery, time.time() + SLOW_LANE_SECONDS)
        return True
    if watch.fired:  # slow, but it answered: not a consumer to move
        _writer.submit(_flag, delivery, None)
        return False
    if outcome.ok and on_slow_lane(source_arn):
        key = (delivery.tenant_id, delivery.consumer_id)
        now = time.monotonic()
        with _cleared_lock:
            if now - _cleared.get(key, -CLEAR_EVERY_SECONDS) < CLEAR_EVERY_SECONDS:
                return False
            _cleared[key] = now
            if len(_cleared) > 4096:
                _cleared.clear()
        _writer.submit(_flag, delivery, None)
    return False


def written(timeout: float = 10.0) -> None:
    """Waits until the flags decided so far are written (tests; a batch does not wait)."""
    _writer.submit(lambda: None).result(timeout=timeout)


def _flag(delivery, until: float | None) -> None:
    # Beside the attempt: a failed write must not fail the record (the POST was made). The
    # flag is advice; without it the consumer stays where it is.
    try:
        inflight.set_slow(delivery.tenant_id, delivery.consumer_id, until)
    except (BotoCoreError, ClientError):
        logger.warning(
            "Slow-lane flag not written",
            extra={"tenant_id": delivery.tenant_id, "consumer_id": delivery.consumer_id},
        )
