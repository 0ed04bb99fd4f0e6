"""The moto server as the local stack runs it: `python -m broker.functions.local.moto_server`.

One change to moto: its own SQS → Lambda path is cut. With an enabled event source mapping,
moto receives up to BatchSize messages inside every SendMessage and tries to invoke the
function in Docker; with no Docker engine the invocation fails and the messages come back with
their receive counts raised (12 sends left 2 in the DLQ and the rest at 4–10 receives). Here,
as on AWS, the mapping's poller is a separate service: the local runner
(broker/functions/runner.py), which reads the mappings and invokes the functions itself.
Everything else is moto's own server, with its arguments (`-H`, `-p`, …).
"""

import sys


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


def main(argv: list[str] | None = None) -> None:
    unwire_sqs_lambda()
    from moto.server import main as moto_main

    moto_main(argv if argv is not None else sys.argv[1:])


if __name__ == "__main__":
    main()
