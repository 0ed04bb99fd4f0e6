"""The egress Lambda handler: a batch of delivery messages from a delivery queue (SQS event
source with `ReportBatchItemFailures`), each handed to `deliver.process_body`.

A record is reported failed only when the platform itself failed (DynamoDB, SQS or KMS
unavailable): SQS hands that one out again and never its successful neighbours. A consumer's
failure is handled here (retry re-enqueued, or dead letter) and its record succeeds.
After the batch: the idempotency marks are written (one BatchWriteItem), the in-flight slots
given back and the delivery records flushed.
"""

import os
from collections import Counter

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
# EMF metrics only in Lambda: elsewhere (local runner, tests) they would just be printed.
metrics = (
    Metrics(namespace="Broker", service="egress")
    if os.environ.get("AWS_LAMBDA_FUNCTION_NAME")
    else None
)


def handler(event: dict, context=None) -> dict:
    """Lambda entry point: `{"Records": [SQS records]}` → `{"batchItemFailures": [...]}`."""
    slots = inflight.Slots()
    counts: Counter[str] = Counter()

    def record_handler(record: SQSRecord) -> str:
        outcome = deliver.process_body(
            record.body, source_arn=record.event_source_arn, slots=slots, lambda_context=context
        )
        counts[outcome] += 1
        return outcome

    # All records failing is reported like any partial failure, not raised.
    processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)
    try:
        # The idempotency COMPLETED marks are written together when the batch is done.
        with idempotency.completions_batched():
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
        _emit(counts, failed=len(processor.fail_messages))


def _emit(counts: Counter, *, failed: int) -> None:
    if failed:
        logger.warning("Records failed, SQS will hand them out again", extra={"failed": failed})
    if metrics is None:
        return
    for outcome, n in counts.items():
        metrics.add_metric(name=f"egress_{outcome}", unit=MetricUnit.Count, value=n)
    if failed:
        metrics.add_metric(name="egress_record_failures", unit=MetricUnit.Count, value=failed)
    metrics.flush_metrics(raise_on_empty_metrics=False)
