"""The moto server as the local stack runs it: `python -m broker.functions.local.moto_server`.

Two changes to moto. Its own SQS → Lambda path is cut. With an enabled event source mapping,
moto receives up to BatchSize messages inside every SendMessage and tries to invoke the
function in Docker; with no Docker engine the invocation fails and the messages come back with
their receive counts raised (12 sends left 2 in the DLQ and the rest at 4–10 receives). Here,
as on AWS, the mapping's poller is a separate service: the local runner
(broker/functions/runner.py), which reads the mappings and invokes the functions itself.

A second change: receives from one FIFO queue are made one at a time. moto takes a snapshot of
the message groups in flight when a ReceiveMessage starts, so two pollers receiving at once
could each take a message of the same group (the second one the group's next message while
the first holds its head), which SQS never does. The receive itself is moto's; a long poll
waits outside the lock, in steps of `FIFO_POLL_STEP` seconds. Two more differences of its FIFO
receive handed out a group's later message before its head (an ordered key's events out of
order, docs/aws-differences.md): a group counts as in flight while any of its messages is in
moto's "pending" set, which keeps a message whose visibility ran out until a receive walks
past it, so a receive skipped the visible head (its group "in flight" because of a later
message still pending) and then, having dropped that later message from the set, handed it
out; and a receive recomputes the groups in flight while it walks the queue, so a DeleteMessage
made at the same moment (the poller deleting a batch's delivered records) could unblock a
group between its head, skipped, and its next message, handed out. So the messages whose
visibility ran out leave the pending set before each receive, and DeleteMessage and
ChangeMessageVisibility of a FIFO queue take the receive's lock.
A third: DynamoDB writes under one lock. DynamoDB applies a write (its condition and its
update) as one step, and moto's threaded server does not: two UpdateItem calls on one item at
the same moment can both read the old value and both pass the condition (six threads taking a
rate limit's tokens from one item were granted 8 of 7); and its TransactWriteItems deep-copies
each table it writes to (its rollback) while other threads write the same table, which fails
("dictionary changed size during iteration", a 500) under concurrent writes.
Everything else is moto's own server, with its arguments (`-H`, `-p`, …).
"""

import sys
import threading
import time

FIFO_POLL_STEP = 0.05


class _Unwired(dict):
    """An always-empty registry: what moto stores in it is dropped."""

    def __setitem__(self, key, value) -> None:
        pass


def unwire_sqs_lambda() -> None:
    """Queues keep no event source mappings of their own (moto reads them on every send).
    The mappings themselves stay in moto's Lambda backend, listed and updated as usual."""
    from moto.sqs.models import Queue

    if isinstance(getattr(Queue, "lambda_event_source_mappings", None), property):
        return
    Queue.lambda_event_source_mappings = property(lambda self: _Unwired(), lambda self, value: None)


def serialize_fifo_receives() -> None:
    """ReceiveMessage on a FIFO queue under a lock per queue, DeleteMessage and
    ChangeMessageVisibility (and their batches, which call them) under the same lock, and
    "in flight" made exact before each receive (the module docstring says why)."""
    from moto.sqs.models import SQSBackend

    if getattr(SQSBackend.receive_message, "_fifo_serialized", False):
        return
    original = SQSBackend.receive_message
    locks: dict[str, threading.Lock] = {}
    guard = threading.Lock()

    def lock_of(queue_name: str) -> threading.Lock:
        with guard:
            return locks.setdefault(queue_name, threading.Lock())

    def receive_message(
        self, queue_name, count, wait_seconds_timeout, visibility_timeout, *a, **kw
    ):
        queue = self.get_queue(queue_name)
        if not queue.fifo_queue:
            return original(
                self, queue_name, count, wait_seconds_timeout, visibility_timeout, *a, **kw
            )
        lock = lock_of(queue_name)
        deadline = time.monotonic() + float(wait_seconds_timeout or 0)
        while True:
            with lock:
                _forget_visible(queue)
                got = original(self, queue_name, count, 0, visibility_timeout, *a, **kw)
            if got or time.monotonic() >= deadline:
                return got
            time.sleep(FIFO_POLL_STEP)

    def locked(method):
        def change(self, queue_name, *a, **kw):
            if not self.get_queue(queue_name).fifo_queue:
                return method(self, queue_name, *a, **kw)
            with lock_of(queue_name):
                return method(self, queue_name, *a, **kw)

        return change

    receive_message._fifo_serialized = True
    SQSBackend.receive_message = receive_message
    SQSBackend.delete_message = locked(SQSBackend.delete_message)
    SQSBackend.change_message_visibility = locked(SQSBackend.change_message_visibility)


def _forget_visible(queue) -> None:
    """moto's "pending" set (the messages whose group is blocked) keeps a message that became
    visible again (its visibility timeout ran out) until a receive walks past it: drop those,
    so that a group is blocked exactly while a message of it is in flight."""
    for message in list(queue.pending_messages):
        if message.visible:
            queue.pending_messages.discard(message)


DYNAMODB_WRITES = (
    "put_item",
    "update_item",
    "delete_item",
    "batch_write_item",
    "transact_write_items",
)


def serialize_dynamodb_writes() -> None:
    """moto's DynamoDB writes one at a time (the module docstring says why)."""
    from moto.dynamodb.models import DynamoDBBackend

    if getattr(DynamoDBBackend, "_writes_serialized", False):
        return
    lock = threading.RLock()

    def locked(method):
        def write(self, *args, **kwargs):
            with lock:
                return method(self, *args, **kwargs)

        return write

    for name in DYNAMODB_WRITES:
        setattr(DynamoDBBackend, name, locked(getattr(DynamoDBBackend, name)))
    DynamoDBBackend._writes_serialized = True


def patch_moto() -> None:
    """The changes of the module docstring (the moto server here, in-process moto in tests)."""
    unwire_sqs_lambda()
    serialize_fifo_receives()
    serialize_dynamodb_writes()


def main(argv: list[str] | None = None) -> None:
    patch_moto()
    from moto.server import main as moto_main

    moto_main(argv if argv is not None else sys.argv[1:])


if __name__ == "__main__":
    main()
