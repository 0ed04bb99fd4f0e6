"""The egress Lambda handler: a batch of delivery messages from a delivery queue (SQS event
source with `ReportBatchItemFailures`), each handed to `deliver.process_body`.

The records run concurrently, each on a worker thread in a copy of the handler's context (so
that it sees the batch's pending idempotency marks); Powertools' `BatchProcessor` then reads
their results in order and builds the partial-failure answer. (Its `AsyncBatchProcessor` would
gather them too, but an event loop per invocation, with asyncio.run's signal handling, cost
more CPU per batch than the attempts' own code in bench/dataplane.py, and the work here is
blocking I/O anyway.) `deliver.Batch`
bounds them: attempts at once per invocation, per consumer (its lane), and none started that
could not finish before the invocation's deadline (handed back instead).

A record is reported failed when the platform itself failed (DynamoDB, SQS or KMS
unavailable) or when it was handed back untried: SQS hands that one out again and never its
successful neighbours. A consumer's failure is handled here (retry re-enqueued, or dead
letter) and its record succeeds. After the batch: the idempotency marks are written (one
BatchWriteItem), the in-flight slots given back and the delivery records flushed.
"""

import contextvars
import os
import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import (
    BatchProcessor,
    EventType,
    process_partial_response,
)
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

from broker.functions.egress import deliver, idempotency, inflight
from broker.functions.egress.recorder import flush_records

logger = Logger(service="broker-egress")
FULL_BATCH = 10  # the event source mapping's batch size (deploy/)
# Shared by every invocation of this process (the local runner runs several at once); a worker
# waiting for its consumer's lane holds a thread, so there are more than a batch's worth.
_workers = ThreadPoolExecutor(max_workers=64, thread_name_prefix="egress")


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
    parsed = {}
    for raw in event.get("Records") or []:
        message = deliver.parse(raw.get("body") or "")
        if message is not None:
            parsed[raw.get("messageId")] = message
            slots.plan(message.delivery.tenant_id, message.delivery.consumer_id)

    def work(record: SQSRecord) -> str:
        outcome = "platform_error"  # unless process_body says otherwise
        try:
            outcome = deliver.process_body(
                record.body,
                source_arn=record.event_source_arn,
                batch=batch,
                receive_count=int(record.attributes.approximate_receive_count or 1),
                message=parsed.get(record.message_id),
            )
            return outcome
        except deliver.HandedBack:
            outcome = deliver.HANDED_BACK
            raise
        finally:
            with counts_lock:
                counts[outcome] += 1

    def record_handler(record: SQSRecord) -> str:
        return running[record.message_id].result()  # raises what the attempt raised

    # All records failing is reported like any partial failure, not raised.
    processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)
    pending = None
    try:
        # The idempotency COMPLETED marks are written together when the batch is done.
        with idempotency.completions_batched() as pending:
            running = {
                raw.get("messageId"): _workers.submit(
                    contextvars.copy_context().run, work, SQSRecord(raw)
                )
                for raw in event.get("Records") or []
            }
            return process_partial_response(
                event=event, record_handler=record_handler, processor=processor, context=context
            )
    finally:
        try:
            slots.release_all()
        except Exception:
            logger.exception("Giving back in-flight slots failed (they expire on their own)")
        # A full batch means more are coming: write whole chunks only (recorder.py says why).
        flush_records(full_only=len(event.get("Records") or []) >= FULL_BATCH)
        failed_marks = pending.failed_marks if pending is not None else 0
        _emit(counts, failed=len(processor.fail_messages), failed_marks=failed_marks)


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
