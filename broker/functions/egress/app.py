"""The egress Lambda handler: a batch of delivery messages from a delivery queue (SQS event
source with `ReportBatchItemFailures`), each handed to `deliver.process_body`.

The records run on the handler's own thread, one after another, as long as each is quick; as
soon as one has run `SPILL_AFTER_S` (a slow consumer, a blackholed one, an AWS call that
waits), up to `deliver.BATCH_CONCURRENCY - 1` worker threads join in and take the records
left (`_run_units`). Each record runs in a copy of the handler's context (so that it sees the
batch's pending idempotency marks); Powertools' `BatchProcessor` then reads their results in
order and builds the partial-failure answer. Why not a worker per record from the start: a
thread handoff per record cost the egress ~30 % more CPU than its attempts' own code when the
consumer answers in well under a millisecond (bench/dataplane.py, part 1: ~1,350 against
~1,950 deliveries per CPU-second, even with a single worker), and most batches are such
batches. (Powertools' `AsyncBatchProcessor` would gather them too, but an event loop per
invocation, with asyncio.run's signal handling, cost more CPU per batch than the attempts'
own code, and the work here is blocking I/O anyway.) `deliver.Batch` bounds them: attempts at
once per invocation, per consumer (its lane), and none started that could not finish before
the invocation's deadline (handed back instead).

A record is reported failed when the platform itself failed (DynamoDB, SQS or KMS
unavailable) or when it was handed back untried: SQS hands that one out again and never its
successful neighbours. A consumer's failure is handled here (retry re-enqueued, or dead
letter) and its record succeeds. After the batch: the idempotency marks are written (one
BatchWriteItem), the in-flight slots given back and the delivery records flushed.

A batch from a FIFO queue (ordered deliveries, docs/data-plane.md, "Ordering") runs its
records one at a time within a message group (a key) and its groups side by side: a group is
a unit of `_run_units`, its records taken in order by whichever thread runs it. A record that
fails (a retry that waits in place, a deferral, a hand-back, a platform error) stops its
group: it and every later record of its group in the batch are reported in
`batchItemFailures`, the rest of the batch goes on. That is
Powertools' `SqsFifoPartialProcessor` with `skip_group_on_error`, which builds the answer. The
other way, stopping at the first failure and reporting every record not processed (AWS's
Lambda documentation for FIFO), would make one key's failure delay every other key of the
batch by a receive and a visibility timeout, which per-key ordering is meant to avoid. The
failed record's visibility is set to its wait (`deliver.PutBack`), and the later records' to
0: they stay behind it (SQS hands out nothing of a group while one of it is in flight), and
their group comes back as soon as its head does.
"""

import contextvars
import functools
import os
import threading
import time
from collections import Counter, deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import (
    BatchProcessor,
    EventType,
    SqsFifoPartialProcessor,
    process_partial_response,
)
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

from broker.functions import aws
from broker.functions.egress import deliver, idempotency, inflight
from broker.functions.egress.recorder import flush_records
from broker.functions.egress.transport import _Watchdog
from broker.functions.shared import held, ordering

logger = Logger(service="broker-egress")
FULL_BATCH = 10  # the event source mapping's batch size (deploy/)
# Shared by every invocation of this process (the local runner runs several at once); a worker
# waiting for its consumer's lane holds a thread, so there are more than a batch's worth.
_workers = ThreadPoolExecutor(max_workers=64, thread_name_prefix="egress")
# A unit (a record, or a FIFO group) still running after this long brings in the workers: well
# above a delivery's own CPU (~0.5 ms), well below what a waiting record would notice.
SPILL_AFTER_S = 0.002
_SPILL = _Watchdog()  # one timer thread for every batch of the process


def _metrics() -> Metrics | None:
    """Powertools Metrics (EMF) in the namespace the template sets (POWERTOOLS_METRICS_NAMESPACE),
    only in Lambda: elsewhere (local runner, tests) they would just be printed."""
    if not os.environ.get("AWS_LAMBDA_FUNCTION_NAME"):
        return None
    return Metrics(
        namespace=os.environ.get("POWERTOOLS_METRICS_NAMESPACE") or "EventBroker",
        service="egress",
    )


def handler(event: dict, context=None) -> dict:
    """Lambda entry point: `{"Records": [SQS records]}` → `{"batchItemFailures": [...]}`."""
    slots = inflight.Slots()
    batch = deliver.Batch(lambda_context=context, slots=slots)
    counts: Counter[str] = Counter()
    counts_lock = threading.Lock()
    records = event.get("Records") or []
    fifo = bool(records) and ordering.is_fifo(records[0].get("eventSourceARN") or "")
    parsed, planned = {}, set()
    for raw in records:
        message = deliver.parse(raw.get("body") or "")
        if message is not None:
            parsed[raw.get("messageId")] = message
            d = message.delivery
            # A FIFO batch runs one record of a group at a time: a slot per group is enough.
            group = (raw.get("attributes") or {}).get("MessageGroupId") if fifo else None
            if group is None or (d.consumer_id, group) not in planned:
                planned.add((d.consumer_id, group))
                slots.plan(d.tenant_id, d.consumer_id)

    def work(record: SQSRecord) -> str:
        outcome = "platform_error"  # unless process_body says otherwise
        try:
            outcome = deliver.process_body(
                record.body,
                source_arn=record.event_source_arn,
                batch=batch,
                receive_count=int(record.attributes.approximate_receive_count or 1),
                message=parsed.get(record.message_id),
                fifo=_fifo_record(record) if fifo else None,
            )
            return outcome
        except deliver.HandedBack:
            outcome = deliver.HANDED_BACK
            raise
        except deliver.PutBack as exc:
            outcome = exc.outcome
            raise
        finally:
            with counts_lock:
                counts[outcome] += 1

    def record_handler(record: SQSRecord) -> str:
        return running[record.message_id].result()  # raises what the attempt raised

    if fifo:
        processor = SqsFifoPartialProcessor(skip_group_on_error=True)
        processor.raise_on_entire_batch_failure = False
    else:
        # All records failing is reported like any partial failure, not raised.
        processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)
    pending = None
    try:
        # The idempotency COMPLETED marks are written together when the batch is done.
        with idempotency.completions_batched() as pending:
            if fifo:
                running, units = _groups(records, work)
            else:
                running, units = _singles(records, work)
            _run_units(units)
            return process_partial_response(
                event=event, record_handler=record_handler, processor=processor, context=context
            )
    finally:
        try:
            slots.release_all()
        except Exception:
            logger.exception("Giving back in-flight slots failed (they expire on their own)")
        # A full batch means more are coming: write whole chunks only (recorder.py says why).
        flush_records(full_only=len(records) >= FULL_BATCH)
        failed_marks = pending.failed_marks if pending is not None else 0
        _emit(counts, failed=len(processor.fail_messages), failed_marks=failed_marks)


def _fifo_record(record: SQSRecord) -> deliver.FifoRecord:
    attribute = (record.raw_event.get("messageAttributes") or {}).get(held.MARKER_ATTRIBUTE)
    marker = (attribute or {}).get("stringValue")
    return deliver.FifoRecord(queue_url=deliver.queue_url(record.event_source_arn), marker=marker)


def _run_units(units: list[Callable[[], None]]) -> None:
    """Runs `units` on this thread, one after another, each in a copy of this context; when one
    has run `SPILL_AFTER_S` and units are left, up to `deliver.BATCH_CONCURRENCY - 1` workers
    take the rest alongside. Returns when this thread finds none left to start (the workers'
    units may still run: their futures say when they are done)."""
    if not units:
        return
    todo = deque(units)
    base = contextvars.copy_context()
    state = {"spilled": False}
    lock = threading.Lock()

    def take() -> Callable[[], None] | None:
        with lock:
            return todo.popleft() if todo else None

    def drain() -> None:
        while (unit := take()) is not None:
            base.copy().run(unit)

    def spill() -> None:  # on the timer's thread: only submits
        with lock:
            if state["spilled"] or not todo:
                return
            state["spilled"] = True
            n = min(deliver.BATCH_CONCURRENCY - 1, len(todo))
        for _ in range(n):
            _workers.submit(drain)

    while (unit := take()) is not None:
        entry = None if state["spilled"] else _SPILL.watch(time.monotonic() + SPILL_AFTER_S, spill)
        try:
            base.copy().run(unit)
        finally:
            if entry is not None:
                _SPILL.cancel(entry)


def _singles(records: list[dict], work) -> tuple[dict[str, Future], list[Callable[[], None]]]:
    """A unit per record: {message id: its result} and the units that set them."""
    futures: dict[str, Future] = {}
    units = []
    for raw in records:
        future = futures[raw.get("messageId")] = Future()
        units.append(functools.partial(_settle, future, work, raw))
    return futures, units


def _settle(future: Future, work, raw: dict) -> None:
    try:
        future.set_result(work(SQSRecord(raw)))
    except BaseException as exc:
        future.set_exception(exc)


def _groups(records: list[dict], work) -> tuple[dict[str, Future], list[Callable[[], None]]]:
    """A unit per message group, taking its records in order and stopping at the first that
    fails; {message id: its result}, for the records tried (the processor fails the rest of a
    failed group without asking)."""
    groups: dict[str, list[dict]] = {}
    for raw in records:
        group = (raw.get("attributes") or {}).get("MessageGroupId") or raw.get("messageId")
        groups.setdefault(group, []).append(raw)
    futures: dict[str, Future] = {}
    units = []
    for group_records in groups.values():
        slots = {raw.get("messageId"): Future() for raw in group_records}
        futures.update(slots)
        units.append(functools.partial(_run_group, group_records, work, slots))
    return futures, units


def _run_group(group_records: list[dict], work, slots: dict[str, Future]) -> None:
    for i, raw in enumerate(group_records):
        record = SQSRecord(raw)
        future = slots[record.message_id]
        try:
            future.set_result(work(record))
        except BaseException as exc:
            if not isinstance(exc, (deliver.PutBack, deliver.HandedBack)):
                logger.exception("A FIFO record failed; its group waits for SQS to hand it back")
            future.set_exception(exc)
            _hold_place(record, exc, later=group_records[i + 1 :])
            for rest in group_records[i + 1 :]:
                # Never tried: the processor fails them for their group (skip_group_on_error).
                slots[rest.get("messageId")].set_exception(exc)
            return


def _hold_place(record: SQSRecord, exc: BaseException, *, later: list[dict]) -> None:
    """A failed FIFO record keeps its key's head: its visibility is its wait (a retry's delay,
    a deferral), the later records' of its group 0, so the group returns with its head."""
    entries = []
    if isinstance(exc, deliver.PutBack):
        entries.append((record.receipt_handle, exc.delay))
    entries += [(raw.get("receiptHandle"), 0) for raw in later]
    if not entries:
        return
    try:
        aws.sqs().change_message_visibility_batch(
            QueueUrl=deliver.queue_url(record.event_source_arn),
            Entries=[
                {"Id": str(i), "ReceiptHandle": handle, "VisibilityTimeout": seconds}
                for i, (handle, seconds) in enumerate(entries)
            ],
        )
    except Exception:
        # They come back after the queue's visibility timeout instead, still in order.
        logger.exception("Setting the visibility of a failed FIFO record failed")


def _emit(counts: Counter, *, failed: int, failed_marks: int = 0) -> None:
    if failed:
        logger.warning(
            "Records failed or handed back, SQS will hand them out again",
            extra={"failed": failed, "handed_back": counts[deliver.HANDED_BACK]},
        )
    metrics = _metrics()
    if metrics is None:
        return
    for outcome, n in counts.items():
        if outcome != "platform_error":  # counted below, with the hand-backs apart
            metrics.add_metric(name=f"egress_{outcome}", unit=MetricUnit.Count, value=n)
    if counts["platform_error"]:
        metrics.add_metric(
            name="egress_record_failures", unit=MetricUnit.Count, value=counts["platform_error"]
        )
    if failed_marks:
        # Deliveries made whose idempotency mark could not be written (idempotency.py).
        metrics.add_metric(
            name="egress_mark_write_failures", unit=MetricUnit.Count, value=failed_marks
        )
    metrics.flush_metrics(raise_on_empty_metrics=False)
