"""The Lambda entry points. Thin: the work is in `api.handle` and
`sqs_source.failed_message_ids`, plain functions over dicts."""

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.batch import (
    BatchProcessor,
    EventType,
    process_partial_response,
)

from . import api, sqs_source

logger = Logger(service="broker-ingress")


class RetryLater(Exception):
    """Marks a record to keep in its queue."""


def handler(event: dict, context) -> dict:
    """HTTPS producers: function URL / API Gateway HTTP API (payload v2)."""
    return api.handle(event)


def sqs_source_handler(event: dict, context) -> dict:
    """SQS producers: an event source mapping on the producer's source queue with
    ReportBatchItemFailures. Returns {"batchItemFailures": [...]}."""
    failed = sqs_source.failed_message_ids(event.get("Records") or [])

    def record_handler(record) -> None:
        if record.message_id in failed:
            raise RetryLater(record.message_id)

    # One processor per call: it keeps the batch's state, and the local runner calls this
    # from several threads.
    processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)
    return process_partial_response(
        event=event, record_handler=record_handler, processor=processor, context=context
    )
