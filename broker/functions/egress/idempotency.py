"""Idempotency of the egress's attempts: one conditional write claims a delivery attempt, the
COMPLETED marks of a batch are written together.

The key is (tenant, delivery id, replay, attempt). Before the attempt, one conditional PutItem
in `IDEMPOTENCY_TABLE` claims it: an INPROGRESS item whose `in_progress_expiration` is the
invocation's deadline. It succeeds when no item exists, when the item has expired, or when an
INPROGRESS item outlived its deadline (a killed invocation). Otherwise the old item comes back
with the refusal (`ReturnValuesOnConditionCheckFailure`, no read): COMPLETED, the copy is a
duplicate and gets the first copy's stored result; INPROGRESS, another copy is being tried
right now (`AlreadyInProgress`: its record fails and SQS hands it out again after the
visibility timeout, when the claim is done). An attempt that raises (a platform error, the
rate limiter's `Throttled`) gives its claim back (DeleteItem), so the next receive tries again.

This is the semantics, item layout and key derivation of Powertools' idempotency utility
(`idempotent_function` over its DynamoDB persistence layer), which the egress used before;
claims made by that version are honoured across a deploy. It is written here because
Powertools' machinery around the one PutItem (a handler object, a deep copy and a JSON hash
per call, data records, a config registered per call) cost ~60 µs of CPU per delivery, 14 %
of the egress's own cost in bench/dataplane.py, part 1 (docs/data-plane.md, "Measured").

The COMPLETED mark does not guard anything while the batch is still running (the INPROGRESS
claim already keeps a concurrent duplicate out), so inside `completions_batched()` (the
handler's batch) it is kept in memory and written when the batch ends: one BatchWriteItem for
up to 25 deliveries instead of one write each. So a delivery costs one conditional write,
plus a twenty-fifth of a batch write.

While a mark waits:
- a duplicate of the same key in the same batch is answered from it (the first copy's
  result), as it would have been from the table;
- a duplicate handled elsewhere meanwhile (another function instance) finds INPROGRESS and its
  record fails; SQS hands it out again after the visibility timeout, when the mark is
  written, and it is absorbed then.

What a crash costs: a mark not written leaves its record INPROGRESS until the in-progress
expiry (the invocation's remaining time; 5 minutes outside Lambda); SQS then hands the batch
out again and those deliveries are sent a second time (same `webhook-id`: at least once, never
lost). Marking each delivery at once would re-send only the delivery in flight. Two rules
keep that window small:
- marks are written as soon as the oldest waiting one is `MARKS_MAX_AGE` old (a slow batch
  gains nothing from waiting), and
- the egress starts no attempt that could outlast the invocation (deliver.py), so a Lambda
  timeout, the likely "crash", does not come in the middle of a batch.

The mark is written after the consumer got the delivery, so a mark that cannot be written
(AccessDenied, throttling, any ClientError or an unreachable DynamoDB) never fails the record:
that would make SQS hand out a delivery already made. It is logged at ERROR and counted
(`failed_marks`, the handler's `egress_mark_write_failures` metric); its claim stays in
progress until it expires, as above. That holds inside a batch (one BatchWriteItem) and
outside one (`process_body` called on its own: the mark is written at once).

The batch's marks are one `_Pending` object, which the handler puts in a ContextVar and
whose worker threads run in copies of the handler's context (they see the same object): a lock
guards it, since the batch's attempts may run concurrently.
"""

import contextlib
import contextvars
import hashlib
import json
import logging
import threading
import time

from botocore.exceptions import BotoCoreError, ClientError

logger = logging.getLogger(__name__)

BATCH_SIZE = 25  # BatchWriteItem's limit
WRITE_TRIES = 4
MARKS_MAX_AGE = 1.0  # seconds the oldest mark may wait
KEY_PREFIX = "broker-egress"  # the ids' prefix (Powertools' `key_prefix` before)
INPROGRESS, COMPLETED = "INPROGRESS", "COMPLETED"
# Powertools' DynamoDB attribute names: `id` is the table's key (deploy/template.yaml).
ID, EXPIRY, IN_PROGRESS_EXPIRY, STATUS, DATA = (
    "id",
    "expiration",
    "in_progress_expiration",
    "status",
    "data",
)
_CLAIM_CONDITION = (
    "attribute_not_exists(#id) OR #expiry < :now OR "
    "(#status = :inprogress AND attribute_exists(#ipe) AND #ipe < :now_ms)"
)
_CLAIM_NAMES = {"#id": ID, "#expiry": EXPIRY, "#ipe": IN_PROGRESS_EXPIRY, "#status": STATUS}


class AlreadyInProgress(Exception):
    """Another copy of this delivery attempt holds an unexpired claim: this record fails, and
    SQS hands it out again after the visibility timeout."""


def key_id(key: dict) -> str:
    """The item id of an idempotency key: Powertools' `<prefix>#<md5 of the key's JSON, keys
    sorted>`, so that claims made before (by Powertools) and after are the same items."""
    digest = hashlib.md5(json.dumps(key, sort_keys=True).encode(), usedforsecurity=False)
    return f"{KEY_PREFIX}#{digest.hexdigest()}"


class _Pending:
    """The marks of one batch (store → item id → the COMPLETED item), shared by its threads."""

    def __init__(self):
        self.lock = threading.Lock()
        self.marks: dict[Store, dict[str, dict]] = {}
        self.since: float | None = None  # when the oldest waiting mark was made
        self.failed_marks = 0  # marks that could not be written

    def done(self, store, kid: str) -> dict | None:
        with self.lock:
            return self.marks.get(store, {}).get(kid)

    def add(self, store, kid: str, item: dict) -> bool:
        """Keeps a mark; True when the oldest waiting one is old enough to write them all."""
        with self.lock:
            self.marks.setdefault(store, {})[kid] = item
            now = time.monotonic()
            if self.since is None:
                self.since = now
            return now - self.since >= MARKS_MAX_AGE

    def write(self) -> None:
        with self.lock:
            marks, self.marks, self.since = self.marks, {}, None
        for store, items in marks.items():
            if not items:
                continue
            try:
                store.write_completed(list(items.values()))
            except Exception:
                with self.lock:
                    self.failed_marks += len(items)
                logger.exception(
                    "Writing idempotency marks failed; they stay in progress until they expire",
                    extra={"marks": len(items)},
                )


_pending: contextvars.ContextVar[_Pending | None] = contextvars.ContextVar(
    "egress_idempotency_pending", default=None
)


class Store:
    """The claims and marks of one table, through one DynamoDB client."""

    def __init__(self, table_name: str, client, *, expires_after_seconds: int):
        self.table_name = table_name
        self.client = client
        self.expires_after_seconds = expires_after_seconds

    def run(self, fn, *, key: dict, remaining_ms: int, **kwargs) -> dict:
        """`fn(key=key, **kwargs)` once per key (its result, a JSON object); for a duplicate,
        the first run's result as stored. Raises `AlreadyInProgress`, what `fn` raised (its
        claim given back), or the DynamoDB error of a claim that could not be written."""
        kid = key_id(key)
        pending = _pending.get()
        done = pending.done(self, kid) if pending is not None else None
        if done is not None:
            # Completed earlier in this batch, mark not written yet: the table would say so.
            return json.loads(done[DATA]["S"])
        stored = self._claim(kid, remaining_ms)
        if stored is not None:
            return stored
        try:
            result = fn(key=key, **kwargs)
        except Exception:
            self._give_back(kid)
            raise
        item = {
            ID: {"S": kid},
            EXPIRY: {"N": str(int(time.time()) + self.expires_after_seconds)},
            STATUS: {"S": COMPLETED},
            # default=str: the delivery is made, a value JSON cannot write must not undo it.
            DATA: {"S": json.dumps(result, sort_keys=True, default=str)},
        }
        if pending is None:
            try:
                self.write_completed([item])
            except Exception:
                # Delivered already: failing the record would deliver it again (docstring).
                logger.exception(
                    "Writing an idempotency mark failed; it stays in progress until it expires"
                )
        elif pending.add(self, kid, item):
            pending.write()
        return json.loads(item[DATA]["S"])

    def _claim(self, kid: str, remaining_ms: int) -> dict | None:
        """None once claimed; the stored result of a completed copy; or AlreadyInProgress."""
        now = time.time()
        try:
            self.client.put_item(
                TableName=self.table_name,
                Item={
                    ID: {"S": kid},
                    EXPIRY: {"N": str(int(now) + self.expires_after_seconds)},
                    STATUS: {"S": INPROGRESS},
                    IN_PROGRESS_EXPIRY: {"N": str(int((now * 1000) + remaining_ms))},
                },
                ConditionExpression=_CLAIM_CONDITION,
                ExpressionAttributeNames=_CLAIM_NAMES,
                ExpressionAttributeValues={
                    ":now": {"N": str(int(now))},
                    ":now_ms": {"N": str(int(now * 1000))},
                    ":inprogress": {"S": INPROGRESS},
                },
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "ConditionalCheckFailedException":
                raise
            old = exc.response.get("Item") or {}
            if old.get(STATUS, {}).get("S") == COMPLETED and DATA in old:
                return json.loads(old[DATA]["S"])
            raise AlreadyInProgress(kid) from None
        return None

    def _give_back(self, kid: str) -> None:
        pending = _pending.get()
        if pending is not None:
            with pending.lock:
                pending.marks.get(self, {}).pop(kid, None)
        try:
            self.client.delete_item(TableName=self.table_name, Key={ID: {"S": kid}})
        except (BotoCoreError, ClientError):
            # The claim then blocks its copies until its in-progress expiry, then is retaken.
            logger.exception("Giving back an idempotency claim failed; it expires on its own")

    def write_completed(self, items: list[dict]) -> int:
        """Writes COMPLETED marks with BatchWriteItem (a whole item each: it replaces the
        INPROGRESS one); returns the number of calls. Raises if DynamoDB keeps refusing."""
        requests_all = [{"PutRequest": {"Item": item}} for item in items]
        calls = 0
        for start in range(0, len(requests_all), BATCH_SIZE):
            requests = {self.table_name: requests_all[start : start + BATCH_SIZE]}
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
