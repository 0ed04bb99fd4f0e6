"""The egress function (docs/data-plane.md, "Egress"): delivery queues → consumers.

Entry points:

- `handler(event, context=None)`: the Lambda handler (`broker.functions.egress.handler`); an
  SQS event `{"Records": [...]}`, each record with `messageId`, `body` and `eventSourceARN`
  (the queue a retry or a deferred message goes back to). Returns
  `{"batchItemFailures": [{"itemIdentifier": <messageId>}, ...]}`. Flushes the records.
- `flush_records()`: writes the buffered delivery records and stats now (the handler does it
  at the end of every invocation); returns the number of BatchWriteItem calls.
- `process_body(body, *, source_arn, slots=None, lambda_context=None, receive_count=1, ...)`:
  the egress for one message, without the batch machinery (returns an outcome name, see
  `deliver.OUTCOMES`; raises `deliver.HandedBack` when `lambda_context` leaves no time for
  an attempt).
"""

from broker.functions.egress.app import handler
from broker.functions.egress.deliver import OUTCOMES, process_body
from broker.functions.egress.recorder import RECORDER, flush_records

__all__ = ["OUTCOMES", "RECORDER", "flush_records", "handler", "process_body"]
