"""The moto server as the local stack runs it: `python -m broker.functions.local.moto_server`.

Two changes to moto. Its own SQS → Lambda path is cut. With an enabled event source mapping,
moto receives up to BatchSize messages inside every SendMessage and tries to invoke the
function in Docker; with no Docker engine the invocation fails and the messages come back with
their receive counts raised (12 sends left 2 in the DLQ and the rest at 4–10 receives). Here,
as on AWS, the mapping's poller is a separate service: the local runner
(broker/functions/runner.py), which reads the mappings and invokes the functions itself.
And one fix: DynamoDB's writes are atomic, a conditional ADD included, and moto's threaded
server is not: two UpdateItem calls on one item at the same moment can both read the old
value and both pass the condition (six threads taking a rate limit's tokens from one item
in in-process moto were granted 8 of 7). Here every write of moto's DynamoDB backend runs
under one lock (`serialize_dynamodb_writes`).
Everything else is moto's own server, with its arguments (`-H`, `-p`, …).
"""

import functools
import sys
import threading


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


_WRITES = ("put_item", "update_item", "delete_item", "batch_write_item", "transact_write_items")


def serialize_dynamodb_writes() -> None:
    """Each write of moto's DynamoDB backend under one lock, as DynamoDB applies a write (its
    condition and its update) as one step."""
    from moto.dynamodb.models import DynamoDBBackend

    lock = threading.RLock()
    for name in _WRITES:
        original = getattr(DynamoDBBackend, name)
        if getattr(original, "serialized", False):
            continue

        @functools.wraps(original)
        def write(self, *args, _original=original, **kwargs):
            with lock:
                return _original(self, *args, **kwargs)

        write.serialized = True
        setattr(DynamoDBBackend, name, write)


def main(argv: list[str] | None = None) -> None:
    unwire_sqs_lambda()
    serialize_dynamodb_writes()
    from moto.server import main as moto_main

    moto_main(argv if argv is not None else sys.argv[1:])


if __name__ == "__main__":
    main()
