"""Powertools idempotency for the egress, with the COMPLETED marks of a batch written together.

Powertools makes two DynamoDB calls per delivery: a conditional PutItem of an INPROGRESS record
before the attempt, an UpdateItem to COMPLETED after it. The second one does not guard
anything while the batch is still running (the INPROGRESS record already keeps a concurrent
duplicate out), so inside `completions_batched()` (the handler's batch) it is kept in memory
and written when the batch ends: one BatchWriteItem for up to 25 deliveries instead of one
UpdateItem each. The claim stays one conditional PutItem per delivery, as before.

While a mark waits:
- a duplicate of the same key in the same batch is answered from it (the first copy's
  result), as it would have been from the table;
- a duplicate handled elsewhere meanwhile (another function instance) finds INPROGRESS and its
  record fails (Powertools' `IdempotencyAlreadyInProgressError`); SQS hands it out again after
  the visibility timeout, when the mark is written, and it is absorbed then.

What a crash costs: a mark not written leaves its record INPROGRESS until the in-progress
expiry (the invocation's remaining time; 5 minutes outside Lambda), exactly as when
Powertools' own UpdateItem fails; SQS then hands the batch out again and those deliveries are
sent a second time (same `webhook-id`: at least once, never lost). Powertools alone re-sends
only the delivery in flight. Two rules keep that window small:
- marks are written as soon as the oldest waiting one is `MARKS_MAX_AGE` old (a slow batch
  gains nothing from waiting), and
- the egress starts no attempt that could outlast the invocation (deliver.py), so a Lambda
  timeout, the likely "crash", does not come in the middle of a batch.

The mark is written after the consumer got the delivery, so a mark that cannot be written
(AccessDenied, throttling, any ClientError or an unreachable DynamoDB) never fails the record:
that would make SQS hand out a delivery already made. It is logged at ERROR and counted
(`failed_marks`, the handler's `egress_mark_write_failures` metric); its claim stays in
progress until it expires, as above. That holds inside a batch (one BatchWriteItem) and
outside one (`process_body` called on its own: the mark is written at once, as Powertools does).

The batch's marks are one `_Pending` object, which the handler puts in a ContextVar and
whose worker threads run in copies of the handler's context (they see the same object): a lock
guards it, since the batch's attempts run concurrently.
"""

import contextlib
import contextvars
import logging
import threading
import time

from aws_lambda_powertools.utilities.idempotency import DynamoDBPersistenceLayer
from aws_lambda_powertools.utilities.idempotency.exceptions import (
    IdempotencyItemAlreadyExistsError,
)
from aws_lambda_powertools.utilities.idempotency.persistence.datarecord import DataRecord

logger = logging.getLogger(__name__)

BATCH_SIZE = 25  # BatchWriteItem's limit
WRITE_TRIES = 4
MARKS_MAX_AGE = 1.0  # seconds the oldest mark may wait


class _Pending:
    """The marks of one batch (layer → idempotency key → record), shared by its threads."""

    def __init__(self):
        self.lock = threading.Lock()
        self.marks: dict[BatchedCompletionLayer, dict[str, DataRecord]] = {}
        self.since: float | None = None  # when the oldest waiting mark was made
        self.failed_marks = 0  # marks that could not be written

    def done(self, layer, key: str) -> DataRecord | None:
        with self.lock:
            return self.marks.get(layer, {}).get(key)

    def add(self, layer, record: DataRecord) -> bool:
        """Keeps a mark; True when the oldest waiting one is old enough to write them all."""
        with self.lock:
            self.marks.setdefault(layer, {})[record.idempotency_key] = record
            now = time.monotonic()
            if self.since is None:
                self.since = now
            return now - self.since >= MARKS_MAX_AGE

    def forget(self, layer, key: str) -> None:
        with self.lock:
            self.marks.get(layer, {}).pop(key, None)

    def write(self) -> None:
        with self.lock:
            marks, self.marks, self.since = self.marks, {}, None
        for layer, records in marks.items():
            if not records:
                continue
            try:
                layer.write_completed(list(records.values()))
            except Exception:
                with self.lock:
                    self.failed_marks += len(records)
                logger.exception(
                    "Writing idempotency marks failed; they stay in progress until they expire",
                    extra={"marks": len(records)},
                )


_pending: contextvars.ContextVar[_Pending | None] = contextvars.ContextVar(
    "egress_idempotency_pending", default=None
)


class BatchedCompletionLayer(DynamoDBPersistenceLayer):
    """DynamoDBPersistenceLayer whose COMPLETED update waits for the end of the batch."""

    def _put_record(self, data_record: DataRecord) -> None:
        pending = _pending.get()
        done = pending.done(self, data_record.idempotency_key) if pending is not None else None
        if done is not None:
            # Completed earlier in this batch, mark not written yet: the table would say so.
            raise IdempotencyItemAlreadyExistsError(old_data_record=done)
        super()._put_record(data_record)

    def _update_record(self, data_record: DataRecord) -> None:
        pending = _pending.get()
        if pending is None:
            try:
                super()._update_record(data_record)
            except Exception:
                # Delivered already: failing the record would deliver it again (docstring).
                logger.exception(
                    "Writing an idempotency mark failed; it stays in progress until it expires"
                )
            return
        if pending.add(self, data_record):
            pending.write()

    def _delete_record(self, data_record: DataRecord) -> None:
        pending = _pending.get()
        if pending is not None:
            pending.forget(self, data_record.idempotency_key)
        super()._delete_record(data_record)

    def _completed_item(self, record: DataRecord) -> dict:
        item = {
            **self._get_key(record.idempotency_key),
            self.expiry_attr: {"N": str(record.expiry_timestamp)},
            self.status_attr: {"S": record.status},
            self.data_attr: {"S": record.response_data},
        }
        if self.payload_validation_enabled and record.payload_hash:
            item[self.validation_key_attr] = {"S": record.payload_hash}
        return item

    def write_completed(self, records: list[DataRecord]) -> int:
        """Writes COMPLETED marks with BatchWriteItem (a whole item each: it replaces the
        INPROGRESS one); returns the number of calls. Raises if DynamoDB keeps refusing."""
        items = [{"PutRequest": {"Item": self._completed_item(r)}} for r in records]
        calls = 0
        for start in range(0, len(items), BATCH_SIZE):
            requests = {self.table_name: items[start : start + BATCH_SIZE]}
            for attempt in range(WRITE_TRIES):
                calls += 1
                answer = self.client.batch_write_item(RequestItems=requests)
                requests = answer.get("UnprocessedItems") or {}
                if not requests:
                    break
                time.sleep(0.05 * 2**attempt)
            else:
                raise RuntimeError("DynamoDB left idempotency marks unprocessed after retries")
        return calls


@contextlib.contextmanager
def completions_batched():
    """The COMPLETED marks made inside (in this context and copies of it taken inside) are
    written together on the way out; yields the `_Pending` (its `failed_marks` is final once
    the block is left). Never raises for the marks: a failed write is logged and counted."""
    pending = _Pending()
    token = _pending.set(pending)
    try:
        yield pending
    finally:
        _pending.reset(token)
        pending.write()
